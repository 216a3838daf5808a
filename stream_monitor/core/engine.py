"""The pure engine: a batch of raw messages in, alerts and metric updates out.

No Kafka, no sockets, no global clock: the worker shell hands it messages and
the time, and applies what comes back. That keeps every detection decision
testable without a broker and replayable from the same input.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from stream_monitor.core.alerts import Alert
from stream_monitor.core.events import Event, RawMessage, Reason, Rejection, decode_batch
from stream_monitor.core.model import ModelMonitor
from stream_monitor.core.settings import DetectionSettings

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

    @property
    def invalid_by_reason(self) -> Counter:
        return Counter(r.reason for r in self.rejections)


class MonitorEngine:
    def __init__(
        self,
        spec: SpecLike,
        *,
        clock: Callable[[], float] = time.time,
        max_models: int = MAX_MODELS,
        reference_loader: Callable[[Path], list[RawMessage]] | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.max_models = max_models
        self.models: dict[str, ModelMonitor] = {}
        self._reference_loader = reference_loader or read_reference_file

    def preload_references(self) -> None:
        """Build the monitors of models whose spec names a reference file, now.

        A broken reference file should stop the service at start-up, with the
        line at fault, not hours later when the model's first event arrives.
        """
        for name in getattr(self.spec, "models", {}):
            self.monitor_for(name)

    def monitor_for(self, name: str) -> ModelMonitor | None:
        monitor = self.models.get(name)
        if monitor is None:
            if len(self.models) >= self.max_models:
                return None
            model_spec = self.spec.model(name)
            monitor = ModelMonitor(
                name,
                model_spec.detection,
                feature_types=dict(model_spec.feature_types),
                segment_keys=model_spec.segment_keys,
            )
            if model_spec.reference_file is not None:
                self._load_reference(monitor, model_spec.reference_file)
            self.models[name] = monitor
        return monitor

    def _load_reference(self, monitor: ModelMonitor, path: Path) -> None:
        decoded = decode_batch(self._reference_loader(path))
        if decoded.rejections:
            first = decoded.rejections[0]
            raise ValueError(
                f"reference file {path}: {len(decoded.rejections)} invalid line(s), first at line "
                f"{first.message.offset + 1}: {first.detail}. Fix the file or remove reference_file from the spec."
            )
        events = [e for e in decoded.events if e.model == monitor.name]
        outcome = monitor.observe(events, self.clock(), reference_only=True)
        if outcome.rejections:
            raise ValueError(f"reference file {path}: {outcome.rejections[0].detail}")

    def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        result = BatchResult()
        for message in messages:
            result.consumed_by_topic[message.topic] += 1
        decoded = decode_batch(messages)
        result.rejections.extend(decoded.rejections)

        by_model: dict[str, list[Event]] = defaultdict(list)
        for event in decoded.events:
            by_model[event.model].append(event)

        now = self.clock()
        for name, events in by_model.items():
            monitor = self.monitor_for(name)
            if monitor is None:
                detail = (
                    f"model '{name}' is beyond the limit of {self.max_models} monitored models; "
                    "check the producer's model names, or run a separate monitor for more models"
                )
                result.rejections.extend(Rejection(e.message, Reason.TOO_MANY_MODELS, detail) for e in events)
                continue
            outcome = monitor.observe(events, now)
            result.alerts.extend(outcome.alerts)
            result.rejections.extend(outcome.rejections)
            if outcome.processed:
                result.processed_by_model[name] += outcome.processed
            if outcome.untracked:
                result.untracked_by_model[name] += outcome.untracked
            for (feature, statistic), value in outcome.scores.items():
                result.drift_scores[(name, feature, statistic)] = value
            result.drifting_streams[name] = monitor.drifting_counts()
            times = [e.timestamp for e in events if e.timestamp == e.timestamp]
            if times:
                result.last_event_time[name] = max(times)
            latencies = [e.latency_ms for e in events if e.latency_ms is not None]
            if latencies:
                result.latencies[name] = np.asarray(latencies, dtype=np.float64) / 1000.0
        return result

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
