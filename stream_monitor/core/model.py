"""One model's monitor: from a batch of its events to per-stream updates and alerts.

Every monitored quantity of an event is a *signal*: each feature (data
drift), the prediction and each class score (prediction drift), the label
(label drift) and the latency (latency drift). Each signal is watched in the
whole-model aggregate and in every admitted segment value, one stream each.
Values are gathered per signal into one array per batch, then handed to each
stream as a slice, so the per-event Python work is the gather only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np

from stream_monitor.core.alerts import Alert, Kind, alert_id, iso_time
from stream_monitor.core.events import Event, Reason, Rejection
from stream_monitor.core.segments import SegmentSlots
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.streams import CategoricalStream, CategoryCodebook, Detection, NumericStream

ValueType = Literal["numeric", "categorical"]

#: The aggregate segment: every event of the model.
ALL = ("", "")
#: Caps that keep a misbehaving producer from growing memory without bound.
MAX_SIGNALS = 512
MAX_SCORE_CLASSES = 32
MAX_SEGMENT_KEYS = 8


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    kind: str
    value_type: ValueType


@dataclass(slots=True)
class ModelOutcome:
    alerts: list[Alert] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    processed: int = 0
    #: Values of signals or segment keys over the caps: not monitored, but counted.
    untracked: int = 0
    #: Latest window-test statistics of the aggregate streams: (signal, statistic) -> value.
    scores: dict[tuple[str, str], float] = field(default_factory=dict)


class ModelMonitor:
    def __init__(
        self,
        name: str,
        detection: DetectionSettings,
        feature_types: dict[str, ValueType] | None = None,
        segment_keys: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.detection = detection
        self.declared_types: dict[str, ValueType] = dict(feature_types or {})
        self.feature_segment_keys = tuple(segment_keys)
        self.signals: dict[str, Signal] = {}
        self.slots: dict[str, SegmentSlots] = {}
        self.codebooks: dict[str, CategoryCodebook] = {}
        self.streams: dict[tuple[str, str, str], NumericStream | CategoricalStream] = {}
        #: Streams whose latest verdict is drift: stream key -> severity.
        self.drifting: dict[tuple[str, str, str], str] = {}
        self.model_version: str | None = None

    # -- typing -----------------------------------------------------------------

    def _signal(self, name: str, kind: str, value: float | str) -> Signal | None:
        signal = self.signals.get(name)
        if signal is None:
            if len(self.signals) >= MAX_SIGNALS:
                return None
            declared = self.declared_types.get(name) if kind == Kind.DATA_DRIFT else None
            value_type = declared or ("numeric" if isinstance(value, float) else "categorical")
            signal = self.signals[name] = Signal(name, kind, value_type)
        return signal

    def _check_types(self, event: Event) -> str | None:
        """Fix each signal's type on first sight; return why the event conflicts, if it does."""
        for name, kind, value in _signal_values(event):
            if value is None:
                continue
            signal = self._signal(name, kind, value)
            if signal is not None and signal.value_type == "numeric" and not isinstance(value, float):
                how = "declared in the spec" if name in self.declared_types else "inferred from its first value"
                return (
                    f"'{name}' of model '{self.name}' is numeric ({how}) but got {value[:40]!r}; "
                    "fix the producer, or declare the feature categorical in the monitor spec"
                )
        return None

    # -- batch processing -------------------------------------------------------

    def observe(self, events: list[Event], now: float, reference_only: bool = False) -> ModelOutcome:
        outcome = ModelOutcome()
        accepted: list[Event] = []
        for event in events:
            conflict = self._check_types(event)
            if conflict is None:
                accepted.append(event)
            else:
                outcome.rejections.append(Rejection(event.message, Reason.FEATURE_TYPE_MISMATCH, conflict))
        if not accepted:
            return outcome
        outcome.processed = len(accepted)
        if not reference_only:
            self.model_version = accepted[-1].model_version or self.model_version
        timestamps = np.fromiter((e.timestamp for e in accepted), dtype=np.float64, count=len(accepted))
        groups = self._segment_groups(accepted, outcome)
        for signal, column in self._columns(accepted, outcome):
            if signal.value_type == "numeric":
                values = np.asarray(column, dtype=np.float64)
                present = ~np.isnan(values)
            else:
                book = self.codebooks.get(signal.name)
                if book is None:
                    book = self.codebooks[signal.name] = CategoryCodebook(self.detection.max_categories)
                values = book.encode([_category(v) for v in column])
                present = values >= 0
            for segment, index in groups:
                index = index[present[index]]
                if not len(index):
                    continue
                key = (signal.name, *segment)
                stream = self.streams.get(key) or self._new_stream(key, signal)
                if reference_only:
                    if not stream.ready:
                        stream.add_reference(values[index])
                    continue
                detections = stream.update(values[index], timestamps[index])
                self._track_drifting(key, stream)
                for detection in detections:
                    outcome.alerts.append(self._alert(signal, segment, detection, accepted[index[detection.position]], now))
                if segment == ALL and stream.scores:
                    for statistic, value in stream.scores.items():
                        outcome.scores[(signal.name, statistic)] = value
        return outcome

    def _new_stream(self, key: tuple[str, str, str], signal: Signal) -> NumericStream | CategoricalStream:
        if signal.value_type == "numeric":
            stream: NumericStream | CategoricalStream = NumericStream(self.detection)
        else:
            stream = CategoricalStream(self.detection, self.codebooks[signal.name])
        self.streams[key] = stream
        return stream

    def _track_drifting(self, key: tuple[str, str, str], stream: NumericStream | CategoricalStream) -> None:
        if stream.drifting is None:
            self.drifting.pop(key, None)
        else:
            self.drifting[key] = stream.drifting

    def drifting_counts(self) -> Counter:
        return Counter(self.drifting.values())

    def _segment_groups(self, events: list[Event], outcome: ModelOutcome) -> list[tuple[tuple[str, str], np.ndarray]]:
        """Row indices per segment value (plus the aggregate), computed once per batch."""
        n = len(events)
        groups: list[tuple[tuple[str, str], np.ndarray]] = [(ALL, np.arange(n))]
        keys: dict[str, None] = {}
        for event in events:
            for key in event.segment:
                keys[key] = None
        for key in self.feature_segment_keys:
            keys[key] = None
        for key in keys:
            slots = self.slots.get(key)
            if slots is None:
                if len(self.slots) >= MAX_SEGMENT_KEYS:
                    outcome.untracked += n
                    continue
                d = self.detection
                slots = self.slots[key] = SegmentSlots(key, d.max_segment_values, d.segment_min_events)
            raw = [_segment_of(e, key) for e in events]
            rows: dict[str, list[int]] = {}
            for row, value in enumerate(slots.assign(raw)):
                if value is not None:
                    rows.setdefault(value, []).append(row)
            for value, members in rows.items():
                groups.append(((key, value), np.asarray(members, dtype=np.intp)))
        return groups

    def _columns(self, events: list[Event], outcome: ModelOutcome) -> Iterable[tuple[Signal, list[Any]]]:
        """One column of values per signal present in the batch (None where absent)."""
        names: dict[str, None] = {}
        for event in events:
            for name, _, value in _signal_values(event):
                if value is not None:
                    names[name] = None
        for name in names:
            signal = self.signals.get(name)
            if signal is None:
                outcome.untracked += 1
                continue
            yield signal, [_value_of(e, name) for e in events]

    # -- alerts -----------------------------------------------------------------

    def _alert(self, signal: Signal, segment: tuple[str, str], d: Detection, event: Event, now: float) -> Alert:
        segment_dict = {} if segment == ALL else {segment[0]: segment[1]}
        message = event.message
        return Alert(
            alert_id=alert_id(self.name, signal.name, segment_dict, d.detector, d.stream_position),
            kind=signal.kind,
            severity=d.severity,
            model=self.name,
            model_version=event.model_version,
            feature=signal.name,
            segment=segment_dict,
            detector=d.detector,
            statistic=d.statistic,
            threshold=d.threshold,
            p_value=d.p_value,
            window=d.window,
            reference=d.reference,
            current=d.current,
            tests=d.tests,
            detected_at=iso_time(now) or "",
            source={
                "topic": message.topic if message else None,
                "partition": message.partition if message else None,
                "offset": message.offset if message else None,
                "event_id": event.event_id,
                "event_time": iso_time(event.timestamp),
            },
        )


def _signal_values(event: Event) -> Iterable[tuple[str, str, Any]]:
    for name, value in event.features.items():
        yield name, Kind.DATA_DRIFT, value
    if event.prediction is not None:
        yield "prediction", Kind.PREDICTION_DRIFT, event.prediction
    if event.scores and not isinstance(event.prediction, float):
        # With a numeric prediction the scores restate it; with a class label
        # (or none) they carry the model's confidence. Of two classes' scores
        # the second is the first's complement, so one stream says it all.
        limit = 1 if len(event.scores) == 2 else MAX_SCORE_CLASSES
        for i, (cls, value) in enumerate(event.scores.items()):
            if i >= limit:
                break
            yield f"score:{cls}", Kind.PREDICTION_DRIFT, value
    if event.label is not None:
        yield "label", Kind.LABEL_DRIFT, event.label
    if event.latency_ms is not None:
        yield "latency_ms", Kind.LATENCY_DRIFT, event.latency_ms


_SPECIAL: dict[str, Callable[[Event], Any]] = {
    "prediction": lambda e: e.prediction,
    "label": lambda e: e.label,
    "latency_ms": lambda e: e.latency_ms,
}


def _value_of(event: Event, name: str) -> Any:
    if name in event.features:
        return event.features[name]
    special = _SPECIAL.get(name)
    if special is not None:
        return special(event)
    if name.startswith("score:") and event.scores:
        return event.scores.get(name[6:])
    return None


def _segment_of(event: Event, key: str) -> str | None:
    value = event.segment.get(key)
    if value is None:
        value = event.features.get(key)
        if isinstance(value, float):
            value = f"{value:g}"
    return value


def _category(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return f"{value:g}"
