"""Event-time order for one model's rows, whatever the ingest workers' pace.

Kafka orders events within a partition only. One ingest worker reading all
partitions interleaves them roughly in step; several workers, a restart or a
rebalance let one partition run minutes ahead of another. Fed in arrival
order, a model's streams would then see the drifted tail of one partition
before the older events of another: drift that comes, goes and comes back,
and verdicts that depend on how many workers there were.

So rows wait here and leave in (event time, partition, offset) order once
every active source partition has passed them (the *watermark*: the least of
the sources' latest event times). The sources are every partition of the
rows' topics, heard from or not (ingest reads how many there are from the
cluster's metadata): at start-up with a backlog the first batches come from
one partition, and counting only the partitions heard from would release
that one's whole backlog, drift and all, before the others' first rows.

A source that sends nothing for ``idle_seconds`` of wall time (a partition
never heard from included) stops holding the others back; rows that then
arrive behind the watermark are released at once (late, out of order, but
never dropped). With all sources flowing, the released sequence is the same
for one worker or many, and a replay after a crash releases the same rows in
the same order, since the buffer is part of the checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.core.columns import ModelBatch

#: Above this many buffered rows the oldest are released regardless of the
#: watermark: memory stays bounded when one source stalls without going idle.
MAX_BUFFERED_ROWS = 200_000


class Resequencer:
    def __init__(self, idle_seconds: float, max_rows: int = MAX_BUFFERED_ROWS) -> None:
        self.idle_seconds = idle_seconds
        self.max_rows = max_rows
        self._buffer: list[ModelBatch] = []
        self._buffered = 0
        #: The least event time buffered (rows without one count as -inf): while
        #: the watermark is below it nothing can leave, and the buffer is not
        #: joined and sorted again on every batch and every flush.
        self._earliest = np.inf
        #: (topic, partition) -> [latest event time, wall time of the last arrival]
        self.sources: dict[tuple[str, int], list[float]] = {}

    def __len__(self) -> int:
        return self._buffered

    def add(self, batch: ModelBatch, wall_time: float) -> ModelBatch | None:
        """Buffer a batch; return the rows now in order and ready, if any."""
        self._note_partitions(batch.source_partitions, wall_time)
        if len(batch):
            self._note_sources(batch, wall_time)
            self._buffer.append(batch)
            self._buffered += len(batch)
            self._earliest = min(self._earliest, _earliest_time(batch))
        return self.release(wall_time)

    def release(self, wall_time: float, force: bool = False) -> ModelBatch | None:
        """The buffered rows at or below the watermark (all of them with ``force``), sorted."""
        if not self._buffered:
            return None
        if not force and self._buffered <= self.max_rows and self._watermark(wall_time) < self._earliest:
            return None
        rows = ModelBatch.concat(self._buffer)
        order = np.lexsort((rows.offset, rows.partition, np.nan_to_num(rows.timestamp, nan=-np.inf)))
        rows = rows.take(order)
        if force:
            cut = len(rows)
        else:
            watermark = self._watermark(wall_time)
            times = np.nan_to_num(rows.timestamp, nan=-np.inf)
            cut = int(np.searchsorted(times, watermark, side="right"))
            cut = max(cut, len(rows) - self.max_rows)
        if cut == 0:
            self._buffer = [rows]
            return None
        released, kept = rows.take(np.arange(cut)), rows.take(np.arange(cut, len(rows)))
        self._buffer = [kept] if len(kept) else []
        self._buffered = len(kept)
        self._earliest = _earliest_time(kept)
        return released

    def _note_partitions(self, source_partitions: dict[str, int], wall_time: float) -> None:
        """Every partition of the rows' topics is a source; one not heard from has passed no time yet."""
        for topic, count in source_partitions.items():
            for partition in range(count):
                if (topic, partition) not in self.sources:
                    self.sources[(topic, partition)] = [-np.inf, wall_time]

    def _note_sources(self, batch: ModelBatch, wall_time: float) -> None:
        sources = batch.topic_index.astype(np.int64) * (1 << 32) + batch.partition
        for source in np.unique(sources):
            topic_index = int(source >> 32)
            if topic_index < 0:
                continue
            key = (batch.topics[topic_index], int(source & 0xFFFFFFFF))
            times = batch.timestamp[sources == source]
            latest = float(np.nanmax(times)) if not np.all(np.isnan(times)) else -np.inf
            entry = self.sources.get(key)
            if entry is None:
                self.sources[key] = [latest, wall_time]
            else:
                entry[0] = max(entry[0], latest)
                entry[1] = wall_time

    def _watermark(self, wall_time: float) -> float:
        active = [latest for latest, seen in self.sources.values() if wall_time - seen < self.idle_seconds]
        return min(active) if active else np.inf

    def to_state(self) -> dict[str, Any]:
        buffered = ModelBatch.concat(self._buffer).to_bytes() if self._buffer else None
        # Arrival wall times are not kept: a restore counts every source as just seen.
        return {"buffer": buffered, "sources": [[t, p, v[0]] for (t, p), v in self.sources.items()]}

    def restore(self, state: dict[str, Any], wall_time: float) -> None:
        """Load a checkpoint; sources count as just seen, so restarts do not flush early."""
        self._buffer = [ModelBatch.from_bytes(state["buffer"])] if state["buffer"] is not None else []
        self._buffered = sum(len(b) for b in self._buffer)
        self._earliest = min((_earliest_time(b) for b in self._buffer), default=np.inf)
        self.sources = {(t, p): [latest, wall_time] for t, p, latest in state["sources"]}


def _earliest_time(batch: ModelBatch) -> float:
    """The least event time of the batch's rows; -inf if one has none, +inf for no rows."""
    if not len(batch):
        return np.inf
    if np.isnan(batch.timestamp).any():
        return -np.inf
    return float(batch.timestamp.min())
