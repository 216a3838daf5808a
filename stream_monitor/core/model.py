"""One model's monitor: from a columnar batch to per-stream updates and alerts.

Every monitored quantity of an event is a *signal*: each feature (data
drift), the prediction and class scores (prediction drift), the label (label
drift) and the latency (latency drift). A batch names its columns
``(name, kind)``; the monitor knows each signal by its signal name
(:func:`~stream_monitor.core.signals.signal_name`), so a feature called
``prediction`` is the signal ``feature:prediction``, never the prediction.
Each signal is watched in the whole
model aggregate and in every admitted segment value, one stream each. The
batch arrives as columns, so routing a signal to its streams is array
indexing: no per-event Python work happens here.

The monitor is the unit of ownership: exactly one evaluator holds a model,
reads its batches in one order, and checkpoints it whole (``to_state``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import numpy as np

from stream_monitor.core.alerts import Alert, Kind, alert_id, iso_time
from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.categorical_evaluations import CategoricalEvaluations
from stream_monitor.core.evaluations import NumericEvaluations
from stream_monitor.core.numeric_batch import advance_streams
from stream_monitor.core.events import RawMessage, Reason, Rejection
from stream_monitor.core.resequencer import Resequencer
from stream_monitor.core.segments import SegmentSlots
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.signals import describe, is_reserved, signal_name
from stream_monitor.core.streams import CategoricalStream, CategoryCodebook, Detection, NumericStream

ValueType = Literal["numeric", "categorical"]

#: The aggregate segment: every event of the model.
ALL = ("", "")
#: Caps that keep a misbehaving producer from growing memory without bound.
MAX_SIGNALS = 512
MAX_SEGMENT_KEYS = 8
#: Rows of a batch updated in one pass over the streams (longer batches are taken in parts).
MAX_ROWS_PER_PASS = 8192

StreamKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Signal:
    #: The signal name (see stream_monitor.core.signals): streams, alerts, checkpoints and metrics use it.
    name: str
    kind: str
    value_type: ValueType


@dataclass(slots=True)
class ModelOutcome:
    alerts: list[Alert] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    processed: int = 0
    #: Rows dropped because an earlier batch already applied them (a replay).
    replayed: int = 0
    #: Values of signals or segment keys over the caps: not monitored, but counted.
    untracked: int = 0
    #: Latest window-test statistics of the aggregate streams: (signal, statistic) -> value.
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Event times and latencies (seconds) of the processed rows, for metrics.
    last_event_time: float | None = None
    latencies: np.ndarray | None = None


class ModelMonitor:
    def __init__(
        self,
        name: str,
        detection: DetectionSettings,
        feature_types: dict[str, ValueType] | None = None,
        segment_keys: Iterable[str] = (),
        reorder_idle_seconds: float = 10.0,
    ) -> None:
        self.name = name
        #: Puts rows from differently paced source partitions back in event-time order.
        self.resequencer = Resequencer(reorder_idle_seconds)
        self.detection = detection
        #: Declared types by the feature's own name (as in the event's ``features``).
        self.declared_types: dict[str, ValueType] = dict(feature_types or {})
        self.feature_segment_keys = tuple(segment_keys)
        self.signals: dict[str, Signal] = {}
        self.slots: dict[str, SegmentSlots] = {}
        self.codebooks: dict[str, CategoryCodebook] = {}
        self.streams: dict[StreamKey, NumericStream | CategoricalStream] = {}
        #: Streams whose latest verdict is drift: stream key -> severity.
        self.drifting: dict[StreamKey, str] = {}
        #: Per stream: alerts published so far, by severity (names each alert's occurrence).
        self.alert_counts: dict[StreamKey, dict[str, int]] = {}
        #: Highest source offset applied per (topic, partition): replayed rows are dropped.
        self.applied: dict[tuple[str, int], int] = {}
        #: Events applied to this state, ever (restored with it, so it survives restarts).
        self.events = 0

    # -- typing -----------------------------------------------------------------

    def _type_signals(self, batch: ModelBatch, outcome: ModelOutcome) -> None:
        """Fix each new signal's type: declared, else that of its first value."""
        n = len(batch)
        numeric_first = dict(zip(batch.numeric_signals, _first_rows(~np.isnan(batch.numeric))))
        categorical_first = dict(zip(batch.categorical_signals, _first_rows(batch.categorical >= 0)))
        for name, kind in dict.fromkeys([*batch.numeric_signals, *batch.categorical_signals]):
            signal = signal_name(name, kind)
            if signal in self.signals:
                continue
            if len(self.signals) >= MAX_SIGNALS:
                outcome.untracked += 1
                continue
            declared = self.declared_types.get(name) if kind == Kind.DATA_DRIFT else None
            if declared is None:
                numeric_row = numeric_first.get((name, kind), n)
                categorical_row = categorical_first.get((name, kind), n)
                if numeric_row == categorical_row == n:
                    continue  # no value in these rows (a column of missing values): typed by its first value
                declared = "numeric" if numeric_row < categorical_row else "categorical"
            self.signals[signal] = Signal(signal, kind, declared)

    def _mismatched_rows(self, batch: ModelBatch) -> dict[int, str]:
        """Rows carrying a string for a numeric signal: row -> why."""
        bad: dict[int, str] = {}
        for j, (name, kind) in enumerate(batch.categorical_signals):
            signal = self.signals.get(signal_name(name, kind))
            if signal is None or signal.value_type != "numeric":
                continue
            if kind == Kind.DATA_DRIFT:
                how = "declared in the spec" if name in self.declared_types else "inferred from its first value"
                fix = "fix the producer, or declare the feature categorical in the monitor spec"
            else:
                how = "inferred from its first value"
                fix = f"fix the producer: send the {name} as the same type (number or string) in every event of the model"
            for row in np.flatnonzero(batch.categorical[:, j] >= 0):
                if int(row) not in bad:
                    value = batch.strings[batch.categorical[row, j]]
                    bad[int(row)] = (
                        f"{describe(name, kind)} of model '{self.name}' is numeric ({how}) but got {value[:40]!r}; {fix}"
                    )
        return bad

    # -- batch processing -------------------------------------------------------

    def receive(self, batch: ModelBatch, wall_time: float) -> ModelOutcome:
        """A batch from ingest: drop replayed rows, resequence, evaluate what is ready."""
        dropped = ModelOutcome()
        batch = self._drop_replayed(batch, dropped)
        outcome = self._evaluate(self.resequencer.add(batch, wall_time), wall_time)
        outcome.replayed = dropped.replayed
        return outcome

    def flush(self, wall_time: float, force: bool = False) -> ModelOutcome:
        """Evaluate the rows the resequencer releases now (every buffered row with ``force``)."""
        return self._evaluate(self.resequencer.release(wall_time, force=force), wall_time)

    def _evaluate(self, ready: ModelBatch | None, wall_time: float) -> ModelOutcome:
        return ModelOutcome() if ready is None else self.observe(ready, wall_time)

    def observe(self, batch: ModelBatch, now: float, reference_only: bool = False) -> ModelOutcome:
        """Evaluate rows in the order given (``receive`` is the entry point for live traffic)."""
        outcome = ModelOutcome()
        if not len(batch):
            return outcome
        self._type_signals(batch, outcome)
        bad = self._mismatched_rows(batch)
        if bad:
            for row, detail in bad.items():
                outcome.rejections.append(Rejection(row_message(batch, row), Reason.FEATURE_TYPE_MISMATCH, detail))
            keep = np.setdiff1d(np.arange(len(batch)), np.fromiter(bad, dtype=np.intp))
            batch = batch.take(keep)
            if not len(batch):
                return outcome
        outcome.processed = len(batch)
        if not reference_only:
            self.events += len(batch)
        self._record_times(batch, outcome)
        # A stream's state does not depend on how its values were cut into
        # batches, so a long batch is taken a part at a time: what one pass
        # holds (every window due in it, above all) stays bounded.
        for start in range(0, len(batch), MAX_ROWS_PER_PASS):
            part = batch if len(batch) <= MAX_ROWS_PER_PASS else batch.take(np.arange(start, min(len(batch), start + MAX_ROWS_PER_PASS)))
            self._update_streams(part, outcome, now, reference_only)
        return outcome

    def _update_streams(self, batch: ModelBatch, outcome: ModelOutcome, now: float, reference_only: bool) -> None:
        groups = self._segment_groups(batch, outcome)
        # Streams file their due windows here and get their verdicts once all
        # of them are tested together (see core.evaluations and
        # core.categorical_evaluations).
        evaluations = NumericEvaluations(self.detection)
        categorical = CategoricalEvaluations(self.detection)
        updated: list[tuple[Signal, tuple[str, str], StreamKey, NumericStream | CategoricalStream, np.ndarray]] = []
        group_times = [batch.timestamp[index] for _, index in groups]
        for signal, values, present in self._columns(batch):
            numeric_streams: list[NumericStream] = []
            numeric_values: list[np.ndarray] = []
            numeric_times: list[np.ndarray] = []
            everywhere = bool(present.all())
            for (segment, index), times in zip(groups, group_times):
                if not everywhere:
                    index = index[present[index]]
                    if not len(index):
                        continue
                    times = batch.timestamp[index]
                key = (signal.name, *segment)
                stream = self.streams.get(key) or self._new_stream(key, signal)
                if reference_only:
                    if not stream.ready:
                        stream.add_reference(values[index])
                    continue
                if isinstance(stream, NumericStream):
                    numeric_streams.append(stream)
                    numeric_values.append(values[index])
                    numeric_times.append(times)
                else:
                    stream.advance(values[index], times, categorical)
                updated.append((signal, segment, key, stream, index))
            advance_streams(numeric_streams, numeric_values, numeric_times, evaluations)
        for signal, segment, key, stream, index in updated:
            if isinstance(stream, NumericStream):
                detections = stream.resolve(evaluations, scores=segment == ALL)
            else:
                detections = stream.resolve(categorical)
            self._track_drifting(key, stream)
            for detection in detections:
                occurrence = self._occurrence(key, detection.severity)
                row = int(index[detection.position])
                outcome.alerts.append(self._alert(signal, segment, detection, batch, row, occurrence, now))
            if segment == ALL and stream.scores:
                for statistic, value in stream.scores.items():
                    outcome.scores[(signal.name, statistic)] = value

    def _drop_replayed(self, batch: ModelBatch, outcome: ModelOutcome) -> ModelBatch:
        """Drop rows an earlier batch (or an earlier row of this one) already applied, then advance the high-water marks.

        Ingest processes each source partition in order and replays a prefix
        after a crash, so "offset at or below the highest applied" is exactly
        "already seen". Within a batch, a row is compared with the source's
        rows before it too: a batch may be several internal records put
        together, the replay among them (``Worker._due_for_evaluation``).
        """
        if not len(batch):
            return batch
        keep = np.ones(len(batch), dtype=bool)
        sources = batch.topic_index.astype(np.int64) * (1 << 32) + batch.partition
        for source in np.unique(sources):
            rows = np.flatnonzero(sources == source)
            topic_index = int(source >> 32)
            if topic_index < 0:
                continue
            key = (batch.topics[topic_index], int(source & 0xFFFFFFFF))
            applied = self.applied.get(key, -1)
            offsets = batch.offset[rows]
            # The highest offset seen before each row: the applied one, then the batch's own.
            before = np.maximum.accumulate(np.concatenate(([applied], offsets[:-1])))
            keep[rows] = offsets > before
            self.applied[key] = max(applied, int(offsets.max()))
        dropped = int((~keep).sum())
        if dropped:
            outcome.replayed = dropped
            batch = batch.take(np.flatnonzero(keep))
        return batch

    def _record_times(self, batch: ModelBatch, outcome: ModelOutcome) -> None:
        times = batch.timestamp[~np.isnan(batch.timestamp)]
        if len(times):
            outcome.last_event_time = float(times.max())
        for j, (_name, kind) in enumerate(batch.numeric_signals):
            if kind == Kind.LATENCY_DRIFT:
                column = batch.numeric[:, j]
                outcome.latencies = column[~np.isnan(column)] / 1000.0

    def _new_stream(self, key: StreamKey, signal: Signal) -> NumericStream | CategoricalStream:
        if signal.value_type == "numeric":
            stream: NumericStream | CategoricalStream = NumericStream(self.detection)
        else:
            stream = CategoricalStream(self.detection, self._codebook(signal.name))
        self.streams[key] = stream
        return stream

    def _codebook(self, name: str) -> CategoryCodebook:
        book = self.codebooks.get(name)
        if book is None:
            book = self.codebooks[name] = CategoryCodebook(self.detection.max_categories)
        return book

    def _track_drifting(self, key: StreamKey, stream: NumericStream | CategoricalStream) -> None:
        if stream.drifting is None:
            self.drifting.pop(key, None)
        else:
            self.drifting[key] = stream.drifting

    def drifting_counts(self) -> Counter:
        return Counter(self.drifting.values())

    def _occurrence(self, key: StreamKey, severity: str) -> str:
        """``severity:n``, the n-th alert of that severity on the stream.

        It names the alert by what it is, not by the exact event that triggered
        it: a replay after a crash, or a run that saw the partitions interleaved
        a little differently and so crossed a threshold a few events earlier or
        later, publishes the same ids for the same drifts, and consumers drop
        duplicates by id.
        """
        counts = self.alert_counts.setdefault(key, {})
        counts[severity] = counts.get(severity, 0) + 1
        return f"{severity}:{counts[severity]}"

    def _segment_groups(self, batch: ModelBatch, outcome: ModelOutcome) -> list[tuple[tuple[str, str], np.ndarray]]:
        """Row indices per segment value (plus the aggregate), computed once per pass."""
        n = len(batch)
        groups: list[tuple[tuple[str, str], np.ndarray]] = [(ALL, np.arange(n))]
        columns: dict[str, list[str | None] | np.ndarray] = {}
        for j, key in enumerate(batch.segment_keys):
            columns[key] = batch.segments[:, j]
        for key in self.feature_segment_keys:
            if key not in columns:
                values = _feature_as_segment(batch, key)
                if values is not None:
                    columns[key] = values
        for key, raw in columns.items():
            slots = self.slots.get(key)
            if slots is None:
                if len(self.slots) >= MAX_SEGMENT_KEYS:
                    outcome.untracked += n
                    continue
                d = self.detection
                slots = self.slots[key] = SegmentSlots(key, d.max_segment_values, d.segment_min_events)
            if isinstance(raw, np.ndarray):
                groups += [((key, value), members) for value, members in slots.group_codes(raw, batch.strings)]
                continue
            rows: dict[str, list[int]] = {}
            for row, value in enumerate(slots.assign(raw)):
                if value is not None:
                    rows.setdefault(value, []).append(row)
            for value, members in rows.items():
                groups.append(((key, value), np.asarray(members, dtype=np.intp)))
        return groups

    def _columns(self, batch: ModelBatch) -> Iterable[tuple[Signal, np.ndarray, np.ndarray]]:
        """One array of values per signal, and where it is present."""
        numeric_index = {signal_name(name, kind): j for j, (name, kind) in enumerate(batch.numeric_signals)}
        categorical_index = {signal_name(name, kind): j for j, (name, kind) in enumerate(batch.categorical_signals)}
        for name in dict.fromkeys([*numeric_index, *categorical_index]):
            signal = self.signals.get(name)
            if signal is None:
                continue
            if signal.value_type == "numeric":
                if name not in numeric_index:
                    continue  # only strings in this batch: those rows were rejected as mismatches
                values = batch.numeric[:, numeric_index[name]]
                yield signal, values, ~np.isnan(values)
                continue
            yield signal, *self._category_codes(name, batch, categorical_index.get(name), numeric_index.get(name))

    def _category_codes(
        self, name: str, batch: ModelBatch, categorical_column: int | None, numeric_column: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A categorical signal's codes per row (-1 where missing), and where it is present.

        Names new to the codebook get their codes in the order of their first
        row. The batch's string table is in no such order (a resequenced batch
        is joined from several, each with its own table), and the codes, and
        which names the codebook's cap sends to ``__other__``, must not depend
        on how the rows were cut into batches.
        """
        firsts: dict[str, int] = {}  # name -> its first row
        strings_at: tuple[np.ndarray, np.ndarray] | None = None
        if categorical_column is not None:
            column = batch.categorical[:, categorical_column]
            rows = np.flatnonzero(column >= 0)
            used, first = np.unique(column[rows], return_index=True)
            firsts.update(zip([batch.strings[c] for c in used.tolist()], rows[first].tolist()))
            strings_at = (column, used)
        numbers_at: tuple[np.ndarray, list[str], np.ndarray] | None = None
        if numeric_column is not None:
            # Numbers sent for a categorical signal are named by their text, formatted once per distinct value.
            numbers = batch.numeric[:, numeric_column]
            rows = np.flatnonzero(~np.isnan(numbers))
            # By bit pattern: np.unique takes -0.0 for 0.0 (and keeps whichever sorts first), "-0" is not "0".
            bits, first, inverse = np.unique(numbers[rows].view(np.int64), return_index=True, return_inverse=True)
            texts = [f"{v:g}" for v in bits.view(np.float64).tolist()]
            for text, row in zip(texts, rows[first].tolist()):  # distinct values may share a text
                if firsts.get(text, row) >= row:
                    firsts[text] = row
            numbers_at = (rows, texts, inverse)
        names = sorted(firsts, key=firsts.__getitem__)
        code_of = dict(zip(names, self._codebook(name).encode(names).tolist()))
        codes = np.full(len(batch), -1, dtype=np.int32)
        if strings_at is not None:
            column, used = strings_at
            lookup = np.full(len(batch.strings) + 1, -1, dtype=np.int32)  # code -1 maps through the last entry
            lookup[used] = [code_of[batch.strings[c]] for c in used.tolist()]
            codes = lookup[column]
        if numbers_at is not None and len(numbers_at[0]):
            rows, texts, inverse = numbers_at
            codes[rows] = np.array([code_of[text] for text in texts], dtype=np.int32)[inverse]
        return codes, codes >= 0

    # -- alerts -----------------------------------------------------------------

    def _alert(
        self,
        signal: Signal,
        segment: tuple[str, str],
        d: Detection,
        batch: ModelBatch,
        row: int,
        occurrence: str,
        now: float,
    ) -> Alert:
        segment_dict = {} if segment == ALL else {segment[0]: segment[1]}
        topic_index = int(batch.topic_index[row])
        return Alert(
            alert_id=alert_id(self.name, signal.name, segment_dict, occurrence),
            kind=signal.kind,
            severity=d.severity,
            model=self.name,
            model_version=batch.versions[int(batch.version_code[row])],
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
                "topic": batch.topics[topic_index] if topic_index >= 0 else None,
                "partition": int(batch.partition[row]) if topic_index >= 0 else None,
                "offset": int(batch.offset[row]) if topic_index >= 0 else None,
                "event_id": batch.event_ids[row],
                "event_time": iso_time(float(batch.timestamp[row])),
            },
        )

    # -- checkpoints ------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        # Streams, verdicts and alert counts are listed by key, not in the order
        # they came about: that order follows where the batches were cut (two
        # streams crossing into drift in one batch or in two), which a restarted
        # or differently paced worker does elsewhere, and the same state must
        # give the same checkpoint.
        return {
            "name": self.name,
            "signals": [[s.name, s.kind, s.value_type] for s in self.signals.values()],
            "slots": {key: slots.to_state() for key, slots in self.slots.items()},
            "codebooks": {name: book.to_state() for name, book in self.codebooks.items()},
            "streams": [[list(key), self.streams[key].to_state()] for key in sorted(self.streams)],
            "drifting": [[list(key), self.drifting[key]] for key in sorted(self.drifting)],
            "alert_counts": [[list(key), dict(sorted(self.alert_counts[key].items()))] for key in sorted(self.alert_counts)],
            "applied": [[topic, partition, offset] for (topic, partition), offset in self.applied.items()],
            "events": self.events,
            "resequencer": self.resequencer.to_state(),
        }

    def restore(self, state: dict[str, Any], wall_time: float = 0.0) -> None:
        """Load a checkpoint into a monitor built with the same settings."""
        self.resequencer.restore(state["resequencer"], wall_time)
        # Before features had signal names of their own, a feature called like a
        # reserved signal (a feature "prediction") shared that signal's streams,
        # and whichever came first set the kind. A reserved name recorded as data
        # drift is such a mix, which no version writes any more: its streams start
        # a new reference. Its alert counts are kept, so alert ids never repeat.
        mixed = {name for name, kind, _ in state["signals"] if kind == Kind.DATA_DRIFT and is_reserved(name)}
        self.signals = {
            name: Signal(name, kind, value_type) for name, kind, value_type in state["signals"] if name not in mixed
        }
        self.slots = {key: SegmentSlots.from_state(s) for key, s in state["slots"].items()}
        self.codebooks = {name: CategoryCodebook.from_state(s) for name, s in state["codebooks"].items() if name not in mixed}
        self.streams = {}
        for key, stream_state in state["streams"]:
            key = tuple(key)
            if key[0] in mixed:
                continue
            signal = self.signals[key[0]]
            if signal.value_type == "numeric":
                self.streams[key] = NumericStream.from_state(self.detection, stream_state)
            else:
                self.streams[key] = CategoricalStream.from_state(self.detection, self.codebooks[key[0]], stream_state)
        self.drifting = {tuple(key): severity for key, severity in state["drifting"] if key[0] not in mixed}
        self.alert_counts = {tuple(key): counts for key, counts in state["alert_counts"]}
        self.applied = {(topic, partition): offset for topic, partition, offset in state["applied"]}
        self.events = state["events"]


def _first_rows(present: np.ndarray) -> list[int]:
    """Per column, the first row where a value is present (the row count when none)."""
    rows, columns = present.shape
    if columns == 0:
        return []
    if rows == 0:
        return [0] * columns
    first = present.argmax(axis=0)
    return [int(f) if any_ else rows for f, any_ in zip(first, present.any(axis=0))]


def _decode_codes(codes: np.ndarray, strings: list[str]) -> list[str | None]:
    return [strings[c] if c >= 0 else None for c in codes.tolist()]


def _feature_as_segment(batch: ModelBatch, key: str) -> list[str | None] | None:
    for j, (name, kind) in enumerate(batch.categorical_signals):
        if name == key and kind == "data_drift":
            return _decode_codes(batch.categorical[:, j], batch.strings)
    for j, (name, kind) in enumerate(batch.numeric_signals):
        if name == key and kind == "data_drift":
            return [f"{v:g}" if v == v else None for v in batch.numeric[:, j].tolist()]
    return None


def row_message(batch: ModelBatch, row: int) -> RawMessage:
    topic_index = int(batch.topic_index[row])
    return RawMessage(
        value=batch.row_json(row),
        topic=batch.topics[topic_index] if topic_index >= 0 else "",
        partition=int(batch.partition[row]),
        offset=int(batch.offset[row]),
    )
