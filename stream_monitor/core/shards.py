"""Evaluation shards: one busy model's signals spread over several evaluators.

A model's signals (features, prediction, scores, label, latency) are
independent of each other once rows are in order: a stream's verdict needs
every value of its signal in one place and one order, not the other signals.
So with ``evaluation_shards = S`` ingest cuts each model batch into S batches
by signal (``crc32(signal name) % S``, the name alerts carry in ``feature``:
see :mod:`stream_monitor.core.signals`), and each goes to its own internal
partition, where one evaluator owns it. Every shard batch carries **every
row** of the original: event ids, timestamps, versions, source offsets and
segment columns, plus as segment columns the features the spec names in
``segment_keys``. Only the signal columns are divided.

Keeping every row everywhere is what makes a shard behave like the whole
model restricted to its signals, with no coordination between shards:

- dedup (``ModelMonitor.applied``) and the resequencer see the same rows with
  the same source offsets and times in every shard, so each shard drops the
  same replays and releases the same rows in the same (event time, partition,
  offset) order as an unsharded monitor;
- segment discovery (``SegmentSlots``) is a deterministic function of the
  sequence of segment values, which is the same in every shard, so every
  shard admits the same segment values (and pools the same ones as
  ``__other__``);
- ``ModelMonitor.events`` and ``processed`` count rows, so each shard counts
  the model's events: metrics take them from shard 0 only;
- a row that carries no signal of a shard still advances that shard's
  high-water marks, watermark and segment counters.

Alert ids hash (model, signal, segment, occurrence), and a signal lives in
exactly one shard, so the alerts are the same whatever S is.

What a shard cannot know is the type another shard inferred for its signals.
An unsharded monitor drops a whole row when one of its values contradicts
its signal's inferred type; a shard cannot drop the row in the other shards.
So a sharded monitor (:class:`ShardMonitor`) rejects just the offending value:
the event is dead-lettered by the shard that owns the signal, and its other
values are evaluated as if that one were missing. Every shard keeps every
row. Types declared in the spec are checked at ingest, before the split, and
are unaffected.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Iterable, Union

import numpy as np

from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.events import Reason, Rejection
from stream_monitor.core.model import ModelMonitor, ModelOutcome, _feature_as_segment, row_message
from stream_monitor.core.signals import signal_name

#: Kafka header of an internal record naming its shard, as ``b"k/S"``. A
#: record without it is a whole model batch (S = 1, or written before shards).
SHARD_HEADER = "stream-monitor.shard"

#: One evaluation shard of a model: (shard index, shard count).
Shard = tuple[int, int]
#: How the engine keys its monitors: the model name for a whole (unsharded)
#: model, as always; (model, shard, shards) for one shard of a model.
MonitorKey = Union[str, tuple[str, int, int]]


def signal_shard(signal: str, shards: int) -> int:
    """The shard evaluating a signal (by its signal name): stable across processes and versions."""
    return zlib.crc32(signal.encode()) % shards if shards > 1 else 0


def shard_partition(model: str, shard: int, partitions: int) -> int:
    """The internal partition of one shard of a model.

    Consecutive partitions from the model's own (``crc32(model) % partitions``):
    the shards of a model never share a partition while S <= partitions (a hash
    of ``model#shard`` would, by chance), and shard 0 of S = 1 is exactly the
    partition a model always had, so unsharded deployments keep their
    checkpoints.
    """
    return (zlib.crc32(model.encode()) + shard) % partitions


def monitor_key(model: str, shard: Shard | None) -> MonitorKey:
    if shard is None or shard[1] <= 1:
        return model
    return (model, shard[0], shard[1])


def key_model(key: MonitorKey) -> str:
    return key if isinstance(key, str) else key[0]


def key_shard(key: MonitorKey) -> Shard | None:
    return None if isinstance(key, str) else (key[1], key[2])


def is_first_shard(key: MonitorKey) -> bool:
    """Shard 0 (or a whole model): the one that reports per-model event counts."""
    return isinstance(key, str) or key[1] == 0


def owns_signal(key: MonitorKey, signal: str) -> bool:
    return isinstance(key, str) or signal_shard(signal, key[2]) == key[1]


def encode_header(shard: Shard) -> bytes:
    return f"{shard[0]}/{shard[1]}".encode()


def decode_header(headers: Iterable[tuple[str, bytes]] | None) -> Shard | None:
    """The shard an internal record belongs to, from its headers (None: a whole model)."""
    for name, value in headers or ():
        if name == SHARD_HEADER:
            shard, _, shards = bytes(value).decode(errors="replace").partition("/")
            if not (shard.isdigit() and shards.isdigit() and int(shard) < int(shards)):
                raise ValueError(f"bad {SHARD_HEADER} header {value!r}; is another producer writing to the internal topic?")
            return int(shard), int(shards)
    return None


def checkpoint_name(key: MonitorKey) -> str:
    """A monitor's name in a changelog checkpoint (``model`` or ``model#k/S``)."""
    return key if isinstance(key, str) else f"{key[0]}#{key[1]}/{key[2]}"


def parse_checkpoint_name(name: str, model: str) -> MonitorKey:
    """The key of a checkpointed monitor, given the model name its state records.

    Unambiguous whatever the model name contains: the state says which model
    it is, and the rest of the checkpoint name is the shard.
    """
    if name == model:
        return model
    suffix = name[len(model) :]
    if not name.startswith(model) or not suffix.startswith("#"):
        raise ValueError(f"checkpoint entry {name!r} does not belong to model {model!r}")
    shard, _, shards = suffix[1:].partition("/")
    return (model, int(shard), int(shards))


def split_batch(batch: ModelBatch, shards: int, segment_features: Iterable[str] = ()) -> list[ModelBatch]:
    """Cut a model batch into ``shards`` batches, one per evaluation shard.

    Shard k gets the signal columns whose ``signal_shard`` is k, and every
    row with everything else: ids, times, versions, sources, progress and the
    segment columns. Features named in ``segment_features`` (the spec's
    segment keys) become segment columns of every shard, with the values the
    unsharded monitor would derive from them (``_feature_as_segment``), so
    every shard splits rows into the same segments; the feature itself is
    still evaluated by its own shard only. String tables are trimmed to what
    each shard references.
    """
    if shards <= 1:
        return [batch]
    n = len(batch)
    strings = list(batch.strings)
    codes = {s: i for i, s in enumerate(strings)}
    segment_keys = list(batch.segment_keys)
    derived: list[np.ndarray] = []
    for key in dict.fromkeys(segment_features):
        if key in segment_keys:
            continue
        values = _feature_as_segment(batch, key)
        if values is None:
            continue
        column = np.empty(n, dtype=np.int32)
        for row, value in enumerate(values):
            if value is None:
                column[row] = -1
            else:
                code = codes.get(value)
                if code is None:
                    code = codes[value] = len(strings)
                    strings.append(value)
                column[row] = code
        segment_keys.append(key)
        derived.append(column)
    segments = np.column_stack([batch.segments, *derived]) if derived else batch.segments
    segments = segments.astype(np.int32, copy=False).reshape(n, len(segment_keys))
    numeric_owner = np.array([signal_shard(signal_name(*s), shards) for s in batch.numeric_signals], dtype=np.int64)
    categorical_owner = np.array([signal_shard(signal_name(*s), shards) for s in batch.categorical_signals], dtype=np.int64)
    parts = []
    for shard in range(shards):
        numeric_cols = np.flatnonzero(numeric_owner == shard)
        categorical_cols = np.flatnonzero(categorical_owner == shard)
        categorical = batch.categorical[:, categorical_cols]
        used = np.unique(np.concatenate([categorical.ravel(), segments.ravel()]))
        used = used[used >= 0]
        remap = np.full(len(strings) + 1, -1, dtype=np.int32)  # code -1 maps through the last entry
        remap[used] = np.arange(len(used), dtype=np.int32)
        parts.append(
            replace(
                batch,
                numeric_signals=[batch.numeric_signals[j] for j in numeric_cols],
                numeric=np.ascontiguousarray(batch.numeric[:, numeric_cols]),
                categorical_signals=[batch.categorical_signals[j] for j in categorical_cols],
                categorical=remap[categorical],
                strings=[strings[c] for c in used.tolist()],
                segment_keys=list(segment_keys),
                segments=remap[segments],
                progress=dict(batch.progress),
            )
        )
    return parts


class ShardMonitor(ModelMonitor):
    """One shard of a model: a ModelMonitor that never drops a row.

    The unsharded monitor drops a row with a value of the wrong type for its
    (inferred) numeric signal; here the value alone is rejected: the event is
    dead-lettered, the value is treated as missing, and the row goes on, so
    every shard of the model keeps applying the same rows (same event counts,
    same segment discovery). See the module docstring.
    """

    def __init__(self, name: str, shard: Shard, *args, **kwargs) -> None:
        super().__init__(name, *args, **kwargs)
        self.shard = shard

    def observe(self, batch: ModelBatch, now: float, reference_only: bool = False) -> ModelOutcome:
        rejections: list[Rejection] = []
        if len(batch) and len(batch.categorical_signals):
            self._type_signals(batch, ModelOutcome())  # what observe does first; counted there
            bad = self._mismatched_rows(batch)
            if bad:
                rejections = [Rejection(row_message(batch, row), Reason.FEATURE_TYPE_MISMATCH, detail) for row, detail in bad.items()]
                batch = _without_mismatches(batch, self)
        outcome = super().observe(batch, now, reference_only)
        outcome.rejections[:0] = rejections
        return outcome


def _without_mismatches(batch: ModelBatch, monitor: ModelMonitor) -> ModelBatch:
    """The batch with the string values of numeric signals removed (as if missing)."""
    categorical = batch.categorical.copy()
    for j, (name, kind) in enumerate(batch.categorical_signals):
        signal = monitor.signals.get(signal_name(name, kind))
        if signal is not None and signal.value_type == "numeric":
            categorical[:, j] = -1
    return replace(batch, categorical=categorical)
