"""Checkpoints of the evaluator's state in a compacted Kafka topic.

The unit is one partition of the internal topic: every model that hashes
there, plus the offset of the next internal record to evaluate. A checkpoint
and its offset are written together, so restoring one and seeking to the
other resumes exactly where the state left off: the evaluator never applies
an internal record twice or skips one, whatever happened to the worker.

A full snapshot is written to one of two key *slots*, alternately; only after
every chunk of it is acknowledged does the partition's *marker* record point
at that slot. A worker dying mid-write leaves the previous slot, and the
marker pointing at it, intact. Compaction keeps the latest value per key,
which is all a restore reads. Records are produced one per request because
the embedded broker reports a wrong high watermark after multi-record
batches, and a restore reads up to the high watermark.

Writing is split in two so the evaluator need not wait for the broker:
:meth:`Changelog.begin` produces the chunks of a snapshot that is already
encoded (the snapshot and its offset are fixed there) and returns at once;
:meth:`Changelog.poll`, called on every turn of the worker's loop, writes the
marker once every chunk is acknowledged, and the checkpoint is complete when
the marker is. :meth:`Changelog.wait` blocks until the checkpoints of some
partitions are complete (before a partition is handed over, and at
shutdown); :meth:`Changelog.write` is ``begin`` plus ``wait``. A partition
has at most one checkpoint in flight: the next one waits for it, since it
would write to the slot the current marker points at. A checkpoint whose
partition was lost is abandoned: its marker is never written.

*Owners.* A worker that lost a partition without knowing it yet (its session
expired in a long pause: a *zombie*) may still write a checkpoint of it
while the new owner writes its own. Kafka transactions would fence it, but
the embedded broker lets ``read_committed`` readers see aborted records. So
every restore (:meth:`Changelog.read`) opens a key space of its own,
``<epoch>.<token>``: a fresh random token, and an epoch one above the
highest found in the partition, which the restore records at once (a
*claim* record), so an owner restoring later counts it even before it has
written a checkpoint. The owner's chunks and markers go under that space:
two owners' chunks can never mix, and a worker given a partition back
writes under a new space, not over what it left. A restore takes the
checkpoint of the highest epoch (then the highest id) whose chunks are all
there: the new owner's once it has written one, else the zombie's, which is
whole and consistent with the alerts the zombie published. Once an owner's
first checkpoint is complete, it deletes (tombstones) every key it found at
its restore, so compaction can reclaim older owners' snapshots. A changelog
written before owners existed reads as epoch 0.
"""

from __future__ import annotations

import logging
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger("stream_monitor.changelog")

#: Chunk size of a snapshot: well under the default 1 MB message limit.
CHUNK_BYTES = 256 * 1024
_CHUNK_HEADER = struct.Struct("<Q")
#: A caller blocked in :meth:`Changelog.wait` this long reports the changelog as stalled (``on_wait(True)``) ...
BLOCKED_AFTER_SECONDS = 1.0
#: ... and so does a checkpoint left in flight this long while the caller goes on.
STALLED_AFTER_SECONDS = 5.0


class CheckpointError(RuntimeError):
    pass


@dataclass(slots=True)
class Checkpoint:
    partition: int
    checkpoint_id: int
    #: Offset of the next internal record to evaluate.
    next_offset: int
    #: model name -> encoded state.
    models: dict[str, bytes]


@dataclass(slots=True, eq=False)
class PendingCheckpoint:
    """A checkpoint whose chunks (or marker) the broker has not acknowledged yet."""

    partition: int
    checkpoint_id: int
    #: The writer's key space, ``<epoch>.<owner>``.
    space: str
    slot: int
    next_offset: int
    chunks: dict[str, int]
    started: float
    #: Records produced and not yet acknowledged (chunks, then the marker).
    unacknowledged: int = 0
    marker_sent: bool = False
    errors: list[str] = field(default_factory=list)

    def on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        self.unacknowledged -= 1
        if err is not None:
            self.errors.append(err.str())


class Changelog:
    def __init__(
        self,
        topic: str,
        producer_config: Mapping[str, Any],
        consumer_config: Mapping[str, Any],
        on_wait: Any = None,
    ) -> None:
        self.topic = topic
        #: Called with True while a checkpoint waits for the broker, False once acknowledged.
        self._on_wait = on_wait or (lambda waiting: None)
        self._producer = Producer(
            {**producer_config, "linger.ms": 0, "batch.num.messages": 1, "compression.type": "none"}
        )
        self._consumer_config = dict(consumer_config)
        #: Latest checkpoint id written or restored, per partition (complete checkpoints only).
        self.checkpoint_ids: dict[int, int] = {}
        #: Per partition, the key space ``<epoch>.<token>`` this writer's checkpoints go under,
        #: opened by ``read`` (see the module docstring).
        self.spaces: dict[int, str] = {}
        #: Per partition, the keys found at ``read``, deleted once this writer completes a checkpoint.
        self._stale: dict[int, list[bytes]] = {}
        #: Checkpoints in flight, by partition (at most one each), oldest first.
        self._pending: dict[int, PendingCheckpoint] = {}
        self._waiting = False

    def write(self, partition: int, models: Mapping[str, bytes], next_offset: int) -> int:
        """Write one snapshot of ``partition``; returns its checkpoint id once fully acknowledged."""
        pending = self.begin(partition, models, next_offset)
        self.wait([partition])
        return pending.checkpoint_id

    def begin(self, partition: int, models: Mapping[str, bytes], next_offset: int) -> PendingCheckpoint:
        """Produce the chunks of one snapshot of ``partition`` and return without waiting for the broker.

        The snapshot is complete once :meth:`poll` (or :meth:`wait`) has seen
        every chunk acknowledged and then written and seen acknowledged the
        marker. An earlier checkpoint of the partition still in flight is
        waited for first.
        """
        if partition in self._pending:
            self.wait([partition])
        if partition not in self.spaces:
            self.read(partition)  # a writer's epoch must be above every one written before
        checkpoint_id = self.checkpoint_ids.get(partition, 0) + 1
        space = self.spaces[partition]
        pending = PendingCheckpoint(partition, checkpoint_id, space, checkpoint_id % 2, next_offset, {}, time.monotonic())
        prefix = _CHUNK_HEADER.pack(checkpoint_id)
        for model, blob in models.items():
            count = max(1, -(-len(blob) // CHUNK_BYTES))
            pending.chunks[model] = count
            view = memoryview(blob)
            for index in range(count):
                value = prefix + view[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
                self._produce(pending, _chunk_key(partition, space, pending.slot, model, index), value)
        self._pending[partition] = pending
        self.poll()
        return pending

    def pending(self) -> list[int]:
        """Partitions with a checkpoint in flight."""
        return list(self._pending)

    def poll(self) -> list[int]:
        """Serve acknowledgements without blocking; returns the partitions whose checkpoint completed.

        Writes the marker of every checkpoint whose chunks are all
        acknowledged. Raises :class:`CheckpointError` if the broker refused a
        record (the previous checkpoint of that partition stays valid).
        """
        if not self._pending:
            return []
        self._producer.poll(0)
        completed = []
        for partition, pending in list(self._pending.items()):
            if pending.errors:
                del self._pending[partition]
                raise CheckpointError(
                    f"checkpoint of {self.topic}[{partition}] failed: {pending.errors[0]}; the previous checkpoint "
                    "stays valid. Check that the changelog topic exists and the broker accepts writes."
                )
            if pending.unacknowledged:
                continue
            if not pending.marker_sent:
                marker = {
                    "checkpoint_id": pending.checkpoint_id,
                    "space": pending.space,
                    "slot": pending.slot,
                    "next_offset": pending.next_offset,
                    "chunks": pending.chunks,
                }
                self._produce(pending, f"{partition}/marker/{pending.space}", orjson.dumps(marker))
                pending.marker_sent = True
                continue
            del self._pending[partition]
            self.checkpoint_ids[partition] = pending.checkpoint_id
            self._sweep(partition)
            completed.append(partition)
        if self._waiting and not self._pending:
            self._waiting = False
            self._on_wait(False)
        elif self._pending and not self._waiting:
            oldest = min(p.started for p in self._pending.values())
            if time.monotonic() - oldest > STALLED_AFTER_SECONDS:
                self._stalled()
        return completed

    def wait(self, partitions: list[int] | None = None) -> None:
        """Block until the checkpoints in flight of ``partitions`` (None: of every partition, and the sweeps' tombstones) are complete."""
        started = time.monotonic()
        while True:
            self.poll()
            if not any(partitions is None or p in partitions for p in self._pending):
                if partitions is None:
                    self._producer.flush(5.0)  # tombstones: best effort, a lost one only leaves garbage
                return
            self._producer.poll(0.05)
            if time.monotonic() - started > BLOCKED_AFTER_SECONDS and not self._waiting:
                self._stalled()

    def _stalled(self) -> None:
        log.warning("changelog %s: waiting for the broker to acknowledge a checkpoint", self.topic)
        self._waiting = True
        self._on_wait(True)

    def abandon(self, partitions: list[int]) -> None:
        """Forget the checkpoints in flight of partitions this worker lost: their markers are never written."""
        for partition in partitions:
            if self._pending.pop(partition, None) is not None:
                log.info("changelog %s[%d]: checkpoint in flight abandoned (partition lost)", self.topic, partition)

    def _sweep(self, partition: int) -> None:
        """Tombstone the keys found at restore: this writer's complete checkpoint supersedes them.

        Fire and forget: a tombstone lost only leaves garbage for compaction
        to keep, which the next owner's sweep deletes.
        """
        for key in self._stale.pop(partition, ()):
            while True:
                try:
                    self._producer.produce(self.topic, value=None, key=key, partition=partition)
                    break
                except BufferError:
                    self._producer.poll(0.1)

    def _produce(self, pending: PendingCheckpoint, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key.encode(), partition=pending.partition, on_delivery=pending.on_delivery
                )
                pending.unacknowledged += 1
                return
            except BufferError:
                self._producer.poll(0.1)

    def read(self, partition: int, timeout: float = 60.0) -> Checkpoint | None:
        """The checkpoint of ``partition`` to resume from (highest epoch, then id, whole), or None when there is none.

        Also makes this writer the partition's newest owner: its checkpoints
        of it take the next epoch, and the keys found here are swept once the
        first of them is complete.
        """
        consumer = Consumer(
            {
                **self._consumer_config,
                "group.id": f"stream-monitor-restore-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        latest: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10, cached=False)
            if high <= 0:
                self._open_space(partition, {})
                self.checkpoint_ids[partition] = 0
                return None
            consumer.assign([TopicPartition(self.topic, partition, OFFSET_BEGINNING)])
            position = -1
            while position < high - 1:
                if time.monotonic() > deadline:
                    raise CheckpointError(
                        f"restoring {self.topic}[{partition}] timed out at offset {position} of {high}; is the broker healthy?"
                    )
                for message in consumer.consume(num_messages=500, timeout=0.5):
                    if message.error() is not None:
                        if message.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(message.error())
                    if message.value() is None:
                        latest.pop(message.key(), None)  # a tombstone
                    else:
                        latest[message.key()] = message.value()
                    position = message.offset()
        finally:
            consumer.close()
        self._open_space(partition, latest)
        checkpoint = _newest_whole(partition, _markers(partition, latest), latest)
        self.checkpoint_ids[partition] = checkpoint.checkpoint_id if checkpoint is not None else 0
        return checkpoint

    def _open_space(self, partition: int, latest: dict[bytes, bytes]) -> None:
        """Take the key space of this restore, above every epoch found, and claim it."""
        epoch = max((_key_epoch(partition, key) for key in latest), default=0) + 1
        space = self.spaces[partition] = f"{epoch}.{uuid.uuid4().hex[:12]}"
        self._stale[partition] = list(latest)
        failed: list[str] = []
        self._producer.produce(
            self.topic,
            key=f"{partition}/claim/{space}".encode(),
            value=orjson.dumps({"claimed_at": time.time()}),
            partition=partition,
            on_delivery=lambda err, _msg: failed.append(err.str()) if err is not None else None,
        )
        if self._producer.flush(10.0) > 0 or failed:
            log.warning(
                "changelog %s[%d]: could not record the claim of epoch %d (%s); an owner restoring the partition "
                "before this one writes a checkpoint may take the same epoch. Check that the broker accepts writes",
                self.topic, partition, epoch, failed[0] if failed else "not acknowledged in 10 s",
            )


def _chunk_key(partition: int, space: str | None, slot: int, model: str, index: int) -> str:
    if space is None:  # written before owners existed
        return f"{partition}/{slot}/{model}/{index}"
    return f"{partition}/{space}/{slot}/{model}/{index}"


def _markers(partition: int, latest: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """Every owner's latest marker of the partition (the pre-owner marker as epoch 0)."""
    found = []
    prefix = f"{partition}/marker/".encode()
    for key, value in latest.items():
        if key.startswith(prefix):
            found.append(orjson.loads(value))
        elif key == f"{partition}/marker".encode():
            found.append({**orjson.loads(value), "space": None})
    return found


def _space_epoch(space: str | None) -> int:
    """The epoch of a key space ``<epoch>.<token>``; 0 for anything else (the format before owners)."""
    head, dot, _token = (space or "").partition(".")
    return int(head) if dot and head.isdigit() else 0


def _epoch(marker: dict[str, Any]) -> int:
    return _space_epoch(marker["space"])


def _key_epoch(partition: int, key: bytes) -> int:
    """The epoch of any key of the partition: a marker's, a claim's or a chunk's space."""
    parts = key.decode(errors="replace").split("/", 3)
    if len(parts) < 2 or parts[0] != str(partition):
        return 0
    return _space_epoch(parts[2] if parts[1] in ("marker", "claim") and len(parts) > 2 else parts[1])


def _newest_whole(partition: int, markers: list[dict[str, Any]], latest: dict[bytes, bytes]) -> Checkpoint | None:
    """The checkpoint of the highest epoch, then id, whose chunks are all there."""
    missing = []
    for marker in sorted(markers, key=lambda m: (_epoch(m), m["checkpoint_id"]), reverse=True):
        checkpoint = _assemble(partition, marker, latest)
        if isinstance(checkpoint, Checkpoint):
            if missing:
                log.warning(
                    "checkpoint of partition %d: skipped %s with missing chunks, restored %s (epoch %d, id %d)",
                    partition, "; ".join(missing), marker["space"], _epoch(marker), marker["checkpoint_id"],
                )
            return checkpoint
        missing.append(checkpoint)
    if missing:
        raise CheckpointError(
            f"no checkpoint of partition {partition} is whole ({'; '.join(missing)}): the changelog topic was "
            "truncated or written by another deployment with the same group id. Give this deployment its own "
            "--group-id, or delete the changelog topic to start the detectors afresh"
        )
    return None


def _assemble(partition: int, marker: dict[str, Any], latest: dict[bytes, bytes]) -> Checkpoint | str:
    """The marker's checkpoint, or what is missing of it."""
    models: dict[str, bytes] = {}
    for model, count in marker["chunks"].items():
        parts = []
        for index in range(count):
            value = latest.get(_chunk_key(partition, marker["space"], marker["slot"], model, index).encode())
            if value is None or _CHUNK_HEADER.unpack_from(value)[0] != marker["checkpoint_id"]:
                return f"checkpoint {marker['checkpoint_id']} of {marker['space'] or 'the pre-owner format'} lacks chunk {index} of model '{model}'"
            parts.append(value[_CHUNK_HEADER.size :])
        models[model] = b"".join(parts)
    return Checkpoint(partition, marker["checkpoint_id"], marker["next_offset"], models)
