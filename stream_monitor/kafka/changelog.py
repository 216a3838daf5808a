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
"""

from __future__ import annotations

import logging
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger("stream_monitor.changelog")

#: Chunk size of a snapshot: well under the default 1 MB message limit.
CHUNK_BYTES = 256 * 1024
_CHUNK_HEADER = struct.Struct("<Q")


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
        #: Latest checkpoint id written or restored, per partition.
        self.checkpoint_ids: dict[int, int] = {}

    def write(self, partition: int, models: Mapping[str, bytes], next_offset: int) -> int:
        """Write one snapshot of ``partition``; returns its checkpoint id once fully acknowledged."""
        checkpoint_id = self.checkpoint_ids.get(partition, 0) + 1
        slot = checkpoint_id % 2
        chunks: dict[str, int] = {}
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        for model, blob in models.items():
            count = max(1, -(-len(blob) // CHUNK_BYTES))
            chunks[model] = count
            for index in range(count):
                value = _CHUNK_HEADER.pack(checkpoint_id) + blob[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
                self._produce(partition, f"{partition}/{slot}/{model}/{index}", value, on_delivery)
        self._flush(errors, partition)
        marker = {"checkpoint_id": checkpoint_id, "slot": slot, "next_offset": next_offset, "chunks": chunks}
        self._produce(partition, f"{partition}/marker", orjson.dumps(marker), on_delivery)
        self._flush(errors, partition)
        self.checkpoint_ids[partition] = checkpoint_id
        return checkpoint_id

    def _produce(self, partition: int, key: str, value: bytes, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key.encode(), partition=partition, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _flush(self, errors: list[str], partition: int) -> None:
        waited = False
        while self._producer.flush(1.0) > 0:
            if not waited:
                log.warning("changelog %s[%d]: waiting for the broker to acknowledge a checkpoint", self.topic, partition)
            waited = True
            self._on_wait(True)
        if waited:
            self._on_wait(False)
        if errors:
            raise CheckpointError(
                f"checkpoint of {self.topic}[{partition}] failed: {errors[0]}; the previous checkpoint stays valid. "
                "Check that the changelog topic exists and the broker accepts writes."
            )

    def read(self, partition: int, timeout: float = 60.0) -> Checkpoint | None:
        """The latest complete checkpoint of ``partition``, or None when there is none."""
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
                    latest[message.key()] = message.value()
                    position = message.offset()
        finally:
            consumer.close()
        checkpoint = _assemble(partition, latest)
        if checkpoint is not None:
            self.checkpoint_ids[partition] = checkpoint.checkpoint_id
        return checkpoint


def _assemble(partition: int, latest: dict[bytes, bytes]) -> Checkpoint | None:
    raw_marker = latest.get(f"{partition}/marker".encode())
    if raw_marker is None:
        return None
    marker = orjson.loads(raw_marker)
    models: dict[str, bytes] = {}
    for model, count in marker["chunks"].items():
        parts = []
        for index in range(count):
            value = latest.get(f"{partition}/{marker['slot']}/{model}/{index}".encode())
            if value is None or _CHUNK_HEADER.unpack_from(value)[0] != marker["checkpoint_id"]:
                raise CheckpointError(
                    f"checkpoint {marker['checkpoint_id']} of partition {partition} is missing chunk {index} of model "
                    f"'{model}': the changelog topic was truncated or written by another deployment with the same group id"
                )
            parts.append(value[_CHUNK_HEADER.size :])
        models[model] = b"".join(parts)
    return Checkpoint(partition, marker["checkpoint_id"], marker["next_offset"], models)
