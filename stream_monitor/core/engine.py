"""The pure engine: a batch of raw messages in, alerts and metric updates out.

No Kafka, no sockets, no global clock: the worker shell hands it messages and
the time, and applies what comes back. That keeps every detection decision
testable without a broker and replayable from the same input.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from stream_monitor.core.alerts import Alert, Kind
from stream_monitor.core.bulk import assemble, decode_columns, events_part, gc_paused
from stream_monitor.core.columns import ModelBatch, build_model_batches
from stream_monitor.core.events import Event, RawMessage, Reason, Rejection, decode_batch
from stream_monitor.core.model import ModelMonitor, row_message
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.signals import describe
from stream_monitor.core.shards import MonitorKey, Shard, ShardMonitor, is_first_shard, key_model, monitor_key, split_batch

#: Models are discovered from traffic; past this many, events of new models are
#: rejected (a producer that invents model names must not grow memory forever).
MAX_MODELS = 100


class ModelSpecLike(Protocol):
    detection: DetectionSettings
    segment_keys: tuple[str, ...]
    feature_types: dict[str, str]
    reference_file: Path | None


class SpecLike(Protocol):
    def model(self, name: str) -> ModelSpecLike: ...


@dataclass(slots=True)
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    consumed_by_topic: Counter = field(default_factory=Counter)
    processed_by_model: Counter = field(default_factory=Counter)
    untracked_by_model: Counter = field(default_factory=Counter)
    #: (model, feature, statistic) -> latest value, aggregate streams only.
    drift_scores: dict[tuple[str, str, str], float] = field(default_factory=dict)
    #: model -> severity -> streams currently drifting (every model touched in the batch).
    drifting_streams: dict[str, Counter] = field(default_factory=dict)
    #: model -> latest event time (epoch seconds) in the batch.
    last_event_time: dict[str, float] = field(default_factory=dict)
    #: model -> prediction latencies in seconds.
    latencies: dict[str, np.ndarray] = field(default_factory=dict)

    #: Rows dropped as replays of rows already applied (after an ingest crash).
    replayed: int = 0
    #: model -> events applied to its state, ever (for every model evaluated in the batch;
    #: a sharded model's from its shard 0).
    model_events: dict[str, int] = field(default_factory=dict)
    #: (model, shard index) -> events applied to that shard's state (0 for a whole model).
    shard_events: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def invalid_by_reason(self) -> Counter:
        return Counter(r.reason for r in self.rejections)


@dataclass(slots=True)
class IngestResult:
    """What the stateless first stage makes of a batch of raw messages."""

    batches: list[ModelBatch]
    rejections: list[Rejection]
    consumed_by_topic: Counter


def ingest(
    messages: Sequence[RawMessage], spec: SpecLike | None = None, source_partitions: Mapping[str, int] | None = None
) -> IngestResult:
    """Decode, validate and gather: one columnar batch per model, plus the rejects.

    Stateless on purpose: any worker can ingest any partition, and a replay
    after a crash produces the same rows again (the evaluator drops them).
    Features the spec declares numeric are checked here, where the original
    message is still at hand for the dead-letter topic; types inferred from
    traffic can only be checked by the model's evaluator.

    ``source_partitions`` (partitions per events topic, from the cluster's
    metadata) travels with each batch to its resequencer, which then waits for
    the partitions it has not heard from as well.

    Events are decoded by shape groups (:mod:`stream_monitor.core.bulk`); the
    result is exactly :func:`ingest_per_event`'s, only faster.
    """
    consumed, progress = _consumed(messages)
    with gc_paused():
        decoded = decode_columns(messages, _declared_numeric(spec))
        rejections = decoded.rejections
        events = decoded.events
        if spec is not None and events:
            kept = {id(e) for e in _check_declared_types([e for _, e in events], spec, rejections)}
            events = [(i, e) for i, e in events if id(e) in kept]
        by_model = decoded.parts
        for model, indexed in _by_model(events).items():
            by_model.setdefault(model, []).append(events_part(indexed))
        first_row = {model: min(p.rows[0] for p in parts) for model, parts in by_model.items()}
        batches = [assemble(model, by_model[model], progress) for model in sorted(by_model, key=first_row.__getitem__)]
    return IngestResult(_with_partitions(batches, source_partitions), rejections, consumed)


def ingest_per_event(
    messages: Sequence[RawMessage], spec: SpecLike | None = None, source_partitions: Mapping[str, int] | None = None
) -> IngestResult:
    """:func:`ingest` one event at a time: the reference the shape-group path must match, byte for byte."""
    consumed, progress = _consumed(messages)
    decoded = decode_batch(messages)
    events, rejections = decoded.events, list(decoded.rejections)
    if spec is not None:
        events = _check_declared_types(events, spec, rejections)
    return IngestResult(_with_partitions(build_model_batches(events, progress), source_partitions), rejections, consumed)


def _with_partitions(batches: list[ModelBatch], source_partitions: Mapping[str, int] | None) -> list[ModelBatch]:
    """Each batch told how many partitions its rows' topics have."""
    if source_partitions:
        for batch in batches:
            batch.source_partitions = {t: source_partitions[t] for t in batch.topics if t in source_partitions}
    return batches


def _consumed(messages: Sequence[RawMessage]) -> tuple[Counter, dict[tuple[str, int], int]]:
    """Messages per topic, and the highest offset seen per (topic, partition), keys in order of first appearance."""
    topics = list(map(_TOPIC, messages))
    consumed = Counter(topics)
    partitions, offsets = list(map(_PARTITION, messages)), list(map(_OFFSET, messages))
    if len(consumed) == 1:
        return consumed, _progress_of_topic(topics[0], partitions, offsets)
    progress = dict.fromkeys(zip(topics, partitions), -1)
    for key, offset in zip(zip(topics, partitions), offsets):
        if offset > progress[key]:
            progress[key] = offset
    return consumed, progress


def _progress_of_topic(topic: str, partitions: list[int], offsets: list[int]) -> dict[tuple[str, int], int]:
    """:func:`_consumed`'s progress for a batch of one topic (the usual one), without a Python loop per message."""
    partition, offset = np.array(partitions, dtype=np.int64), np.array(offsets, dtype=np.int64)
    order = np.argsort(partition, kind="stable")
    by_partition = partition[order]
    starts = np.flatnonzero(np.concatenate(([True], by_partition[1:] != by_partition[:-1])))
    first_row = order[starts]  # the sort is stable: each partition's first message
    highest = np.maximum.reduceat(offset[order], starts)
    found = sorted(zip(first_row.tolist(), by_partition[starts].tolist(), highest.tolist()))
    return {(topic, p): max(o, -1) for _, p, o in found}


_TOPIC, _PARTITION, _OFFSET = attrgetter("topic"), attrgetter("partition"), attrgetter("offset")


def _declared_numeric(spec: SpecLike | None) -> Callable[[str], list[str]]:
    def numeric(model: str) -> list[str]:
        if spec is None:
            return []
        return [name for name, kind in spec.model(model).feature_types.items() if kind == "numeric"]

    return numeric


def _by_model(events: list[tuple[int, Event]]) -> dict[str, list[tuple[int, Event]]]:
    grouped: dict[str, list[tuple[int, Event]]] = {}
    for i, event in events:
        grouped.setdefault(event.model, []).append((i, event))
    return grouped


def _check_declared_types(events: list[Event], spec: SpecLike, rejections: list[Rejection]) -> list[Event]:
    numeric_by_model: dict[str, list[str]] = {}
    kept = []
    for event in events:
        numeric = numeric_by_model.get(event.model)
        if numeric is None:
            types = spec.model(event.model).feature_types
            numeric = numeric_by_model[event.model] = [name for name, kind in types.items() if kind == "numeric"]
        bad = next((name for name in numeric if isinstance(event.features.get(name), str)), None)
        if bad is None:
            kept.append(event)
            continue
        value = event.features[bad]
        rejections.append(
            Rejection(
                event.message,
                Reason.FEATURE_TYPE_MISMATCH,
                f"{describe(bad, Kind.DATA_DRIFT)} of model '{event.model}' is declared numeric in the monitor spec "
                f"but got {value[:40]!r}; "
                "fix the producer, or declare the feature categorical",
            )
        )
    return kept


class MonitorEngine:
    """The evaluator: owns model monitors and turns model batches into verdicts."""

    def __init__(
        self,
        spec: SpecLike,
        *,
        clock: Callable[[], float] = time.time,
        max_models: int = MAX_MODELS,
        reference_loader: Callable[[Path], list[RawMessage]] | None = None,
        reorder_idle_seconds: float = 10.0,
    ) -> None:
        self.spec = spec
        self.reorder_idle_seconds = reorder_idle_seconds
        self.clock = clock
        self.max_models = max_models
        #: Monitors by key: the model name for a whole model, (model, shard, shards)
        #: for one evaluation shard of it (stream_monitor.core.shards).
        self.models: dict[MonitorKey, ModelMonitor] = {}
        self._reference_loader = reference_loader or read_reference_file

    def preload_references(self, keep: bool = True) -> None:
        """Build the monitors of models whose spec names a reference file, now.

        A broken reference file should stop the service at start-up, with the
        line at fault, not hours later when the model's first event arrives.
        ``keep=False`` only checks the files (a worker evaluating shards of
        models builds each shard's monitor when it gets the shard).
        """
        for name in getattr(self.spec, "models", {}):
            if keep:
                self.monitor_for(name)
            else:
                self.new_monitor(name)

    def monitor_for(self, name: str, shard: Shard | None = None) -> ModelMonitor | None:
        key = monitor_key(name, shard)
        monitor = self.models.get(key)
        if monitor is None:
            if not self.holds(name) and len({key_model(k) for k in self.models}) >= self.max_models:
                return None
            monitor = self.new_monitor(name, shard)
            self.models[key] = monitor
        return monitor

    def holds(self, model: str) -> bool:
        """Whether a monitor of ``model`` (whole or any shard of it) is held here."""
        return any(key_model(key) == model for key in self.models)

    def new_monitor(self, name: str, shard: Shard | None = None) -> ModelMonitor:
        """A fresh monitor for ``name`` (or one shard of it) with its spec's settings and reference file applied."""
        model_spec = self.spec.model(name)
        settings: dict[str, Any] = dict(
            feature_types=dict(model_spec.feature_types),
            segment_keys=model_spec.segment_keys,
            reorder_idle_seconds=self.reorder_idle_seconds,
        )
        if monitor_key(name, shard) == name:
            monitor = ModelMonitor(name, model_spec.detection, **settings)
        else:
            assert shard is not None
            monitor = ShardMonitor(name, shard, model_spec.detection, **settings)
        if model_spec.reference_file is not None:
            self._load_reference(monitor, model_spec.reference_file)
        return monitor

    def _load_reference(self, monitor: ModelMonitor, path: Path) -> None:
        decoded = decode_batch(self._reference_loader(path))
        if decoded.rejections:
            first = decoded.rejections[0]
            raise ValueError(
                f"reference file {path}: {len(decoded.rejections)} invalid line(s), first at line "
                f"{first.message.offset + 1}: {first.detail}. Fix the file or remove reference_file from the spec."
            )
        for batch in build_model_batches([e for e in decoded.events if e.model == monitor.name]):
            if isinstance(monitor, ShardMonitor):
                shard, shards = monitor.shard
                batch = split_batch(batch, shards, monitor.feature_segment_keys)[shard]
            outcome = monitor.observe(batch, self.clock(), reference_only=True)
            if outcome.rejections:
                raise ValueError(f"reference file {path}: {outcome.rejections[0].detail}")

    def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Ingest and evaluate in one process (the demo's and the tests' short cut)."""
        ingested = ingest(messages, self.spec)
        result = BatchResult(rejections=list(ingested.rejections), consumed_by_topic=ingested.consumed_by_topic)
        for batch in ingested.batches:
            self.evaluate(batch, into=result)
        self.flush(into=result, force=True)
        return result

    def flush(self, into: BatchResult | None = None, force: bool = False) -> BatchResult:
        """Evaluate rows the resequencers release by now (every buffered row with ``force``)."""
        result = into if into is not None else BatchResult()
        wall_time = self.clock()
        for key, monitor in list(self.models.items()):
            if len(monitor.resequencer):
                self._record(key, monitor, monitor.flush(wall_time, force=force), result)
        return result

    def evaluate(self, batch: ModelBatch, into: BatchResult | None = None, shard: Shard | None = None) -> BatchResult:
        """Evaluate a model batch from ingest: the whole model's, or with ``shard`` one shard's."""
        result = into if into is not None else BatchResult()
        name = batch.model
        monitor = self.monitor_for(name, shard)
        if monitor is None:
            key = monitor_key(name, shard)
            if not is_first_shard(key):
                # Shard 0 dead-letters the events (once per event, not once per
                # shard); the other shards only count the values they skip.
                result.untracked_by_model[name] += len(batch)
                return result
            detail = (
                f"model '{name}' is beyond the limit of {self.max_models} monitored models; "
                "check the producer's model names, or run a separate monitor for more models"
            )
            for row in range(len(batch)):
                result.rejections.append(Rejection(row_message(batch, row), Reason.TOO_MANY_MODELS, detail))
            return result
        self._record(monitor_key(name, shard), monitor, monitor.receive(batch, self.clock()), result)
        return result

    def drifting_counts(self, model: str) -> Counter:
        """Drifting streams by severity of every monitor of ``model`` held here."""
        counts: Counter = Counter()
        for key, monitor in self.models.items():
            if key_model(key) == model:
                counts.update(monitor.drifting_counts())
        return counts

    def _record(self, key: MonitorKey, monitor: ModelMonitor, outcome: Any, result: BatchResult) -> None:
        # Every shard of a model applies every row: per-model event counts come
        # from shard 0 alone; per-signal results from the shard owning the signal.
        name = key_model(key)
        first = is_first_shard(key)
        result.alerts.extend(outcome.alerts)
        result.rejections.extend(outcome.rejections)
        if first:
            result.replayed += outcome.replayed
        if outcome.processed and first:
            result.processed_by_model[name] += outcome.processed
        if outcome.untracked:
            result.untracked_by_model[name] += outcome.untracked
        for (feature, statistic), value in outcome.scores.items():
            result.drift_scores[(name, feature, statistic)] = value
        result.drifting_streams[name] = monitor.drifting_counts() if isinstance(key, str) else self.drifting_counts(name)
        if first:
            result.model_events[name] = monitor.events
        result.shard_events[(name, 0 if isinstance(key, str) else key[1])] = monitor.events
        if outcome.last_event_time is not None:
            result.last_event_time[name] = max(outcome.last_event_time, result.last_event_time.get(name, -np.inf))
        if outcome.latencies is not None and len(outcome.latencies):
            previous = result.latencies.get(name)
            result.latencies[name] = outcome.latencies if previous is None else np.concatenate([previous, outcome.latencies])

    def buffered_rows(self) -> int:
        """Rows waiting in the resequencers for their turn."""
        return sum(len(m.resequencer) for m in self.models.values())

    def stream_count(self) -> int:
        return sum(len(m.streams) for m in self.models.values())


def read_reference_file(path: Path) -> list[RawMessage]:
    """A JSONL file of v1 events as messages (offset = line number - 1, for error messages)."""
    messages = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if line:
                messages.append(RawMessage(line, topic=f"file:{path}", partition=0, offset=number))
    return messages
