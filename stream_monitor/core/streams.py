"""Per-stream state: one feature of one model in one segment.

A stream first fills its reference window (the first ``reference_size``
values, or a reference file), then keeps a current sliding window, per-block
summaries of a longer window, and (numeric streams) a sequential detector.
Updates take whole arrays of values; the only splits inside a batch are at
evaluation boundaries (every ``evaluate_every`` values) and at sequential
alarms, and block summaries are computed from the block's values once it is
complete, so the state after a batch does not depend on how the input was cut
into batches. That is what makes checkpoint/replay give the same verdicts and
the same alert ids.

Every threshold comes from ``settings.calibration``, which derives it from
the false-alarm budget ``expected_run_length`` (see stream_monitor.calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from stream_monitor.core.alerts import Severity, iso_time
from stream_monitor.core.categorical_evaluations import CategoricalEvaluations, CategoryStatistics
from stream_monitor.core.evaluations import NumericEvaluations, WindowStatistics
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.stats.cusum import TwoSidedCusum
from stream_monitor.stats.reference import NumericReference, summarize
from stream_monitor.stats.windows import BlockCounts, RingBuffer

OTHER_CATEGORY = "__other__"
#: A window as an alert describes it: values in it, first and last event time (epoch seconds).
_WindowInfo = tuple[int, float | None, float]


@dataclass(slots=True)
class Detection:
    """A stream's verdict that it drifted, before it becomes an alert."""

    #: Index into the arrays handed to ``update`` of the value that triggered it.
    position: int
    #: How many values the stream had seen when it triggered (alert id, cooldown).
    stream_position: int
    detector: str
    severity: str
    statistic: float
    threshold: float
    p_value: float | None
    tests: dict[str, Any]
    reference: dict[str, Any]
    current: dict[str, Any]
    window: dict[str, Any]


class AlertGate:
    """Cooldown per stream: a drift that persists is reported once, not every evaluation.

    An *episode* runs from a stream's first drift verdict until a window
    evaluation finds it stable again. Within an episode an alert goes out when
    the severity rises above the episode's worst so far, or, as a reminder,
    once ``cooldown_events`` of the stream's events have passed and the
    detection is at least as severe as the episode's worst (a persisting
    critical drift is not re-announced as a fresh warning). Counted in the
    stream's own events rather than wall-clock time so that a replay of the
    same events makes the same decisions.
    """

    def __init__(self, cooldown_events: int) -> None:
        self.cooldown_events = cooldown_events
        self.last_position: int | None = None
        self.episode_severity: str | None = None

    def admit(self, stream_position: int, severity: str) -> bool:
        rank = Severity.RANK[severity]
        worst = Severity.RANK[self.episode_severity] if self.episode_severity else 0
        cooled = self.last_position is None or stream_position - self.last_position >= self.cooldown_events
        if rank > worst or (cooled and rank == worst):
            self.last_position = stream_position
            self.episode_severity = severity
            return True
        return False

    def end_episode(self) -> None:
        self.episode_severity = None

    def to_state(self) -> dict[str, Any]:
        return {"last_position": self.last_position, "episode_severity": self.episode_severity}

    def restore(self, state: dict[str, Any]) -> None:
        self.last_position = state["last_position"]
        self.episode_severity = state["episode_severity"]


class _Stream:
    """What numeric and categorical streams share: warm-up, schedule, gate."""

    def __init__(self, settings: DetectionSettings) -> None:
        self.settings = settings
        self.calibration = settings.calibration
        #: Event time of the first value of each evaluation block still in the short window.
        self.block_starts = RingBuffer(settings.window_size // settings.evaluate_every, np.float64)
        #: Values seen since the reference was frozen.
        self.seen = 0
        self.last_timestamp = math.nan
        self.gate = AlertGate(settings.cooldown_events)
        #: Severity of the latest verdict, ``None`` while the stream looks stable.
        self.drifting: str | None = None
        #: Latest window-test statistics, for the drift-score gauges (a numeric
        #: stream adds Wasserstein only when asked to: see NumericStream.resolve).
        self.scores: dict[str, float] = {}
        #: Stream position of the latest detection, admitted by the gate or not.
        self._last_detection: int | None = None

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def long_blocks(self) -> int:
        return self.settings.long_window // self.settings.evaluate_every

    def _gate(self, detection: Detection) -> list[Detection]:
        self._last_detection = detection.stream_position
        if self.drifting != Severity.CRITICAL or detection.severity == Severity.CRITICAL:
            self.drifting = detection.severity
        if self.gate.admit(detection.stream_position, detection.severity):
            return [detection]
        return []

    def _stable(self, stream_position: int) -> None:
        """A stable verdict ends the episode only once the window holds no event
        from before the latest detection: the window tests lag the sequential
        detectors, so a window still full of pre-change values proves nothing."""
        if self._last_detection is None or stream_position - self._last_detection >= self.settings.window_size:
            self.drifting = None
            self.gate.end_episode()

    def _window_at(self, held_starts: list[float], timestamps: np.ndarray, starts: range, seen: int, p: int) -> _WindowInfo:
        """The window as it stood once a batch's ``p``-th value was taken.

        ``held_starts``: event times of the blocks begun before the batch (the
        ring's values then); ``starts``: where blocks began in the batch;
        ``seen``: values seen before the batch. Window tests need a full short
        window, so a window's first event is the start of its oldest block.
        """
        every = self.settings.evaluate_every
        begun = 0 if p < starts.start else min(len(starts), (p - starts.start) // every + 1)
        held = (held_starts + [float(timestamps[q]) for q in starts[:begun]])[-self.block_starts.capacity :]
        return min(seen + p + 1, self.settings.window_size), held[0] if held else None, float(timestamps[p])

    def _base_state(self) -> dict[str, Any]:
        return {
            "block_starts": self.block_starts.to_state(),
            "seen": self.seen,
            "last_timestamp": self.last_timestamp,
            "gate": self.gate.to_state(),
            "drifting": self.drifting,
            "last_detection": self._last_detection,
        }

    def _restore_base(self, state: dict[str, Any]) -> None:
        self.block_starts = RingBuffer.from_state(state["block_starts"])
        self.seen = state["seen"]
        self.last_timestamp = state["last_timestamp"]
        self.gate.restore(state["gate"])
        self.drifting = state["drifting"]
        self._last_detection = state["last_detection"]


class NumericStream(_Stream):
    """A mean CUSUM on normal scores, and window tests against the frozen reference.

    * ``cusum``: two-sided CUSUM on the normal scores (values mapped through the
      reference distribution to N(0, 1), centred on the reference's own mean
      score), checked at every value: catches a shift of the mean of about one
      standard deviation within a few dozen events.
    * ``mean`` and ``variance``: the mean and the variance of the scores over
      the last ``long_window`` values against the reference's, for small
      persistent shifts and changes of spread; kept as per-block sums.
    * ``ks``: Kolmogorov-Smirnov, the current window against the reference.
    * ``psi``: PSI over the reference's quantile bins (sparse bins pooled).

    Wasserstein, in units of the reference spread, and PSI grade the severity.
    Scores depend on ranks only, so the same thresholds fit skewed,
    heavy-tailed and discrete features; ties get mid-ranks, and the scores are
    centred on (not scaled by) what the reference itself shows, so tied
    features only ever make the detectors more conservative.

    A batch is taken in two steps so that a model's streams can share the
    window tests (see ``core.evaluations``): :meth:`advance` updates the state
    and files the windows that fell due; :meth:`resolve` reads their
    statistics back and turns them, and any CUSUM alarm, into detections in
    the order the values came. :meth:`update` does both for a stream alone.
    """

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        self.window = RingBuffer(settings.window_size, np.float64)
        #: Per closed block: sum of centred scores, sum of their squares.
        self.block_sums = RingBuffer(self.long_blocks, np.float64)
        self.block_squares = RingBuffer(self.long_blocks, np.float64)
        self._warmup: np.ndarray | None = np.empty(settings.reference_size, dtype=np.float64)
        self._warm_count = 0
        self.reference: NumericReference | None = None
        #: Ranks of the window's values in the reference (see ``NumericReference.ranks``):
        #: derived from the window, so not part of the state.
        self._below: RingBuffer | None = None
        self._at_or_below: RingBuffer | None = None
        self.cusum = TwoSidedCusum(self.calibration.cusum_k, self.calibration.cusum_h)
        #: The batch's latest evaluation, whose Wasserstein distance completes ``scores`` (see :meth:`resolve`).
        self._distance_of: tuple[WindowStatistics, int] | None = None
        #: What :meth:`advance` left for :meth:`resolve`: (position, kind, details), and
        #: where in its batch the values after the reference started, and how many there were.
        self._steps: list[tuple[int, int, Any]] = []
        self._offset = self._advanced = 0

    @property
    def ready(self) -> bool:
        return self.reference is not None

    @property
    def reference_size(self) -> int:
        return self.settings.reference_size

    def add_reference(self, values: np.ndarray) -> int:
        """Fill the reference; returns how many values it took."""
        if self._warmup is None:
            return 0
        take = min(len(values), len(self._warmup) - self._warm_count)
        self._warmup[self._warm_count : self._warm_count + take] = values[:take]
        self._warm_count += take
        if self._warm_count == len(self._warmup):
            self._freeze(NumericReference(self._warmup))
            self._warmup = None
        return take

    def _freeze(self, reference: NumericReference) -> None:
        self.reference = reference
        self._below = RingBuffer(self.settings.window_size, reference.rank_dtype)
        self._at_or_below = RingBuffer(self.settings.window_size, reference.rank_dtype)

    def update(self, values: np.ndarray, timestamps: np.ndarray) -> list[Detection]:
        """Take a batch of this stream's values and return its detections."""
        evaluations = NumericEvaluations(self.settings)
        self.advance(values, timestamps, evaluations)
        return self.resolve(evaluations, scores=True)

    def advance(self, values: np.ndarray, timestamps: np.ndarray, evaluations: NumericEvaluations) -> None:
        """Update the state with a batch; file its due windows with ``evaluations``.

        Everything here is whole-batch arithmetic: the CUSUM over the batch
        (split only at its alarms), the windows extended once, each closed
        block's sums from that block's scores. A value's score and ranks
        depend on the reference alone and the block sums on the block's
        scores alone, so the state after a batch is the same, to the last
        bit, however the stream was cut into batches.
        """
        part = self._after_reference(values, timestamps)
        if part is not None:
            self._advance_ready(*part, evaluations)

    def _advance_ready(self, values: np.ndarray, timestamps: np.ndarray, evaluations: NumericEvaluations) -> None:
        """:meth:`advance` for values after the reference, the stream alone."""
        assert self.reference is not None
        below, at_or_below = self.reference.ranks(values)
        z = self.reference.scores_from_ranks(below, at_or_below) - self.reference.score_mean
        self._absorb(values, timestamps, below, at_or_below, z, self._run_cusum(z), evaluations)

    def _after_reference(self, values: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Fill the reference from the front of a batch; the rest, if any (and the reference is ready)."""
        self._steps = []
        i = self.add_reference(values) if self.reference is None else 0
        if i == len(values) or self.reference is None:
            return None
        self._offset = i
        return values[i:], timestamps[i:]

    def _absorb(
        self,
        values: np.ndarray,
        timestamps: np.ndarray,
        below: np.ndarray,
        at_or_below: np.ndarray,
        z: np.ndarray,
        alarms: list[tuple[int, float, str | None]],
        evaluations: NumericEvaluations,
    ) -> None:
        """Everything but the CUSUM, for values after the reference with their ranks and scores."""
        assert self._below is not None and self._at_or_below is not None
        count = len(values)
        every = self.settings.evaluate_every
        seen = self.seen
        # Blocks: the open one (its first values came in an earlier batch, and
        # their ranks are the newest in the window) closes first.
        open_values = seen % every
        closes = range(every - open_values - 1, count, every)
        starts = range((-seen) % every, count, every)
        sums = squares = None
        if closes:
            closed = z[: closes[-1] + 1]
            if open_values:
                closed = np.concatenate((self._open_block_scores(open_values), closed))
            blocks = closed.reshape(len(closes), every)
            sums, squares = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
        if alarms or closes:
            self._file_steps(values, timestamps, below, at_or_below, alarms, closes, starts, sums, squares, evaluations)
        self.window.extend(values)
        self._below.extend(below)
        self._at_or_below.extend(at_or_below)
        if sums is not None:
            self.block_sums.extend(sums)
            self.block_squares.extend(squares)
        for p in starts:
            self.block_starts.append(timestamps[p])
        self.seen += count
        self.last_timestamp = float(timestamps[-1])
        self._advanced = count

    def _run_cusum(self, z: np.ndarray) -> list[tuple[int, float, str | None]]:
        """Feed the scores; (position, statistic, direction) of each alarm."""
        alarms = []
        done = 0
        while done < z.size:
            done += self.cusum.update(z[done:])
            if self.cusum.drift_detected:
                alarms.append((done - 1, float(self.cusum.statistic), self.cusum.direction))
        return alarms

    def _open_block_scores(self, open_values: int) -> np.ndarray:
        assert self.reference is not None and self._below is not None and self._at_or_below is not None
        below = self._below.last(open_values)
        at_or_below = self._at_or_below.last(open_values)
        return self.reference.scores_from_ranks(below, at_or_below) - self.reference.score_mean

    def _file_steps(
        self,
        values: np.ndarray,
        timestamps: np.ndarray,
        below: np.ndarray,
        at_or_below: np.ndarray,
        alarms: list[tuple[int, float, str | None]],
        closes: range,
        starts: range,
        sums: np.ndarray | None,
        squares: np.ndarray | None,
        evaluations: NumericEvaluations,
    ) -> None:
        """Record the batch's alarms and evaluations, with what their verdicts will need.

        The window of each is cut from the old window followed by the batch;
        its event times are kept as numbers, and turned into an alert's
        ``window`` only for a detection.
        """
        assert self.reference is not None and self._below is not None and self._at_or_below is not None
        settings = self.settings
        m, every = settings.window_size, settings.evaluate_every
        old = len(self.window)
        seen = self.seen
        held_starts = self.block_starts.values()

        def window_info(p: int) -> _WindowInfo:
            """Worked out for a detection only: most evaluations find the stream stable."""
            return self._window_at(held_starts.tolist(), timestamps, starts, seen, p)

        for p, statistic, direction in alarms:
            end = old + p + 1
            current = self.window.joined(values[: p + 1], end - m)
            self._steps.append((p, _SEQUENTIAL, (statistic, direction, current, window_info)))
        # A full window is due: ``old`` is min(seen, m) but for a window that
        # grew since its checkpoint, which must fill up first. Due are the
        # closes at or past m - old - 1: a tail of the (arithmetic) range.
        first_due = max(0, -(-(m - old - 1 - closes.start) // every)) if closes else 0
        due = range(first_due, len(closes))
        if not due:
            return
        assert sums is not None and squares is not None
        first_end = closes[first_due] + 1
        if first_end >= m:
            # Every window lies within this batch.
            sources, offset = (values, below, at_or_below), first_end - m
        else:
            # The first reaches back into the window: from its first value on.
            start = old + first_end - m
            sources = (self.window.joined(values, start), self._below.joined(below, start), self._at_or_below.joined(at_or_below, start))
            offset = 0
        if len(due) == 1:
            rows = tuple(source[None, offset : offset + m] for source in sources)
        else:
            index = offset + np.arange(0, len(due) * every, every)[:, None] + np.arange(m)
            rows = tuple(source[index] for source in sources)
        first_row = evaluations.add(self.reference, *rows)
        long_blocks = self.long_blocks
        block_sums = self.block_sums.values().tolist() + sums.tolist()
        block_squares = self.block_squares.values().tolist() + squares.tolist()
        held_before = len(block_sums) - sums.size
        for row, k in enumerate(due):
            p = closes[k]
            last = held_before + k + 1
            first = max(0, last - long_blocks)
            events = (last - first) * every
            long = (math.fsum(block_sums[first:last]) / events, math.fsum(block_squares[first:last]) / events, events)
            self._steps.append((p, _EVALUATION, (first_row + row, long, window_info)))

    def resolve(self, evaluations: NumericEvaluations, scores: bool = False) -> list[Detection]:
        """Verdicts on what :meth:`advance` filed, in the order of the values; clears them.

        ``scores``: complete the latest ``scores`` with the Wasserstein
        distance (a window's distance is worked out only when something reads
        it: the gauges of the aggregate streams, or a detection).
        """
        steps, self._steps = self._steps, []
        if not steps:
            return []
        steps.sort(key=lambda step: (step[0], step[1]))
        results = evaluations.run() if any(kind == _EVALUATION for _, kind, _ in steps) else None
        detections: list[Detection] = []
        for p, kind, details in steps:
            if kind == _SEQUENTIAL:
                detections += self._sequential(p, details)
            else:
                assert results is not None
                detections += self._evaluate(p, details, results)
        if self._distance_of is not None:
            # Not kept past the batch: it holds every window of the batch.
            latest, row = self._distance_of
            self._distance_of = None
            if scores and "wasserstein" not in self.scores:
                self.scores["wasserstein"] = latest.wasserstein(row)
        return detections

    def _stream_position(self, p: int) -> int:
        """Values the stream had seen once it took the batch's ``p``-th (after the reference), counting the reference."""
        return self.reference_size + self.seen - self._advanced + p + 1

    def _sequential(self, p: int, details: tuple[float, str | None, np.ndarray, Callable[[int], _WindowInfo]]) -> list[Detection]:
        assert self.reference is not None
        statistic, direction, current, window = details
        threshold = self.cusum.h
        tests = {"cusum": {"statistic": statistic, "threshold": threshold, "k": self.cusum.k, "direction": direction}}
        return self._gate(
            Detection(
                position=self._offset + p,
                stream_position=self._stream_position(p),
                detector="cusum",
                severity=Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=None,
                tests=tests,
                reference=self.reference.summary(),
                current=summarize(current),
                window=_window_payload(window(p)),
            )
        )

    def _long_window(self, mean: float, second: float, events: int) -> tuple[dict[str, Any], dict[str, Any] | None, bool, bool]:
        """Mean test over the closed blocks of the long window; variance test once it is full."""
        assert self.reference is not None
        cal = self.calibration
        se, z_critical = cal.mean_test(events)
        z = mean / se
        mean_test = {"statistic": z, "threshold": z_critical, "mean_score": mean, "events": events}
        if events < self.settings.long_window:
            return mean_test, None, abs(z) >= z_critical, False
        _, lower, upper = cal.variance_test(events)
        # Deviation of the window's score variance from the reference's, on the
        # scale of a continuous feature's (see Calibration.variance_test).
        continuous = self.reference.continuous_score_variance
        ratio = 1.0 + (max(second - mean * mean, 0.0) - self.reference.score_variance) / continuous
        variance_test = {"statistic": ratio, "lower": lower, "upper": upper, "events": events}
        return mean_test, variance_test, abs(z) >= z_critical, not lower < ratio < upper

    def _evaluate(
        self, p: int, details: tuple[int, tuple[float, float, int], Callable[[int], _WindowInfo]], results: WindowStatistics
    ) -> list[Detection]:
        th = self.settings.thresholds
        cal = self.calibration
        ref = self.reference
        assert ref is not None
        row, long, window = details
        ks_statistic, ks_p_value = float(results.ks[row]), float(results.ks_p_value[row])
        psi_value, psi_threshold = float(results.psi[row]), float(results.psi_threshold[row])
        mean_test, variance_test, mean_fired, variance_fired = self._long_window(*long)
        self.scores = {"ks": ks_statistic, "psi": psi_value}
        self._distance_of = (results, row)
        tests = {
            "ks": {"statistic": ks_statistic, "p_value": ks_p_value, "threshold": cal.ks_p_value},
            "psi": {"statistic": psi_value, "threshold": psi_threshold},
            "mean": mean_test,
        }
        if variance_test is not None:
            tests["variance"] = variance_test
        if ks_p_value < cal.ks_p_value:
            detector, statistic, threshold, p_value = "ks", ks_statistic, cal.ks_p_value, ks_p_value
        elif mean_fired:
            detector, statistic, threshold, p_value = "mean", mean_test["statistic"], mean_test["threshold"], None
        elif variance_fired and variance_test is not None:
            upper = variance_test["statistic"] >= variance_test["upper"]
            detector, statistic, p_value = "variance", variance_test["statistic"], None
            threshold = variance_test["upper"] if upper else variance_test["lower"]
        elif psi_value >= psi_threshold:
            detector, statistic, threshold, p_value = "psi", psi_value, psi_threshold, None
        else:
            self._stable(self._stream_position(p))
            return []
        wasserstein = self.scores["wasserstein"] = results.wasserstein(row)
        tests["wasserstein"] = {"statistic": wasserstein, "critical": th.wasserstein_critical}
        critical = psi_value >= th.psi_critical or wasserstein >= th.wasserstein_critical
        return self._gate(
            Detection(
                position=self._offset + p,
                stream_position=self._stream_position(p),
                detector=detector,
                severity=Severity.CRITICAL if critical else Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=p_value,
                tests=tests,
                reference=ref.summary(),
                current=summarize(results.windows[row]),
                window=_window_payload(window(p)),
            )
        )

    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state.update(
            window=self.window.to_state(),
            block_sums=self.block_sums.to_state(),
            block_squares=self.block_squares.to_state(),
            warmup=None if self._warmup is None else self._warmup[: self._warm_count].copy(),
            reference=None if self.reference is None else self.reference.to_state(),
            cusum=self.cusum.to_state(),
        )
        return state

    @classmethod
    def from_state(cls, settings: DetectionSettings, state: dict[str, Any]) -> "NumericStream":
        stream = cls(settings)
        stream._restore_base(state)
        stream.window = RingBuffer.from_state(state["window"])
        if stream.window.capacity != settings.window_size:
            # The window size changed since the checkpoint: keep the newest values that fit.
            resized = RingBuffer(settings.window_size, np.float64)
            resized.extend(stream.window.values())
            stream.window = resized
        stream.block_sums = RingBuffer.from_state(state["block_sums"])
        stream.block_squares = RingBuffer.from_state(state["block_squares"])
        if state["reference"] is not None:
            stream._freeze(NumericReference.from_state(state["reference"]))
            stream._warmup = None
            # The window's ranks are not in the state: they follow from its values.
            assert stream._below is not None and stream._at_or_below is not None
            below, at_or_below = stream.reference.ranks(stream.window.values())
            stream._below.extend(below)
            stream._at_or_below.extend(at_or_below)
        else:
            stream.add_reference(np.asarray(state["warmup"], dtype=np.float64))
        # The sums carry over; k and h are today's calibration (the settings may
        # have changed since the checkpoint).
        cusum = dict(state["cusum"], k=stream.calibration.cusum_k, h=stream.calibration.cusum_h)
        stream.cusum = TwoSidedCusum.from_state(cusum)
        return stream


def _window_payload(info: _WindowInfo) -> dict[str, Any]:
    """An alert's ``window``: (values in the window, first and last event time) as the payload has them."""
    events, first, last = info
    return {"events": events, "first_event_at": iso_time(first) if first is not None else None, "last_event_at": iso_time(last)}


#: Kinds of the steps :meth:`NumericStream.advance` leaves for :meth:`NumericStream.resolve`;
#: a CUSUM alarm on a block's last value comes before that block's evaluation.
_SEQUENTIAL, _EVALUATION = 0, 1


class CategoryCodebook:
    """Category names <-> small integer codes, shared by a feature's streams.

    Capped at ``max_categories`` names; later newcomers share the last code,
    ``__other__``, so a free-text field sent as a category can't grow memory.
    """

    def __init__(self, max_categories: int) -> None:
        self.max_categories = max_categories
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    @property
    def size(self) -> int:
        """Length of count arrays: one slot per possible name plus ``__other__``."""
        return self.max_categories + 1

    @property
    def other_code(self) -> int:
        return self.max_categories

    def encode(self, values: list[str | None]) -> np.ndarray:
        """Codes for a column of values; -1 marks a missing value."""
        codes = self.codes
        out = np.empty(len(values), dtype=np.int32)
        for i, value in enumerate(values):
            if value is None:
                out[i] = -1
                continue
            code = codes.get(value)
            if code is None:
                if len(self.names) < self.max_categories:
                    code = codes[value] = len(self.names)
                    self.names.append(value)
                else:
                    code = self.other_code
            out[i] = code
        return out

    def name(self, code: int) -> str:
        return self.names[code] if code < len(self.names) else OTHER_CATEGORY

    def to_state(self) -> dict[str, Any]:
        return {"max_categories": self.max_categories, "names": list(self.names)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "CategoryCodebook":
        book = cls(state["max_categories"])
        for name in state["names"]:
            book.codes[name] = len(book.names)
            book.names.append(name)
        return book


class _CategoricalBatch(NamedTuple):
    """What :meth:`CategoricalStream.resolve` needs of the batch :meth:`CategoricalStream.advance` took."""

    #: Where the values after the reference started in the batch.
    offset: int
    #: Values the stream had seen before the batch (after its reference).
    seen: int
    #: Event times of the blocks begun in the short window before the batch.
    held_starts: list[float]
    #: Event times of the values after the reference; where blocks began among them.
    timestamps: np.ndarray
    starts: range
    #: Short-window counts of each filed window (the alert's ``current``).
    short: np.ndarray


class CategoricalStream(_Stream):
    """Reference vs current category frequencies.

    * ``chi_square``: Pearson's test of homogeneity over the long window
      (cells expected to hold fewer than 10 events pooled), and its cell by
      cell follow-up, the exact test of each category's share (Bonferroni over
      categories), which is the sharper of the two when one category gains or
      loses share; each gets half the detector's level;
    * ``psi``: PSI over the same window (cells pooled below 20 expected);
    * ``new_category``: whether the short window holds more values of
      categories the reference never saw than a random split would explain.

    The window is kept as per-block category counts (bounded by
    ``max_categories``), so the long window costs no value per event.

    As for numeric streams, a batch is taken in two steps so that a model's
    streams can share the window tests (see ``core.categorical_evaluations``):
    :meth:`advance` counts the batch into blocks and files the windows that
    fell due; :meth:`resolve` reads their statistics back and turns them into
    verdicts in order. :meth:`update` does both for a stream alone.
    """

    def __init__(self, settings: DetectionSettings, codebook: CategoryCodebook) -> None:
        super().__init__(settings)
        self.codebook = codebook
        self.reference_counts = np.zeros(codebook.size, dtype=np.int64)
        self._reference_total = 0
        self.blocks = BlockCounts(self.long_blocks, codebook.size)
        #: What :meth:`advance` left for :meth:`resolve`: (position, row filed, index among
        #: the stream's rows) per due window, and what their verdicts need of the batch.
        self._steps: list[tuple[int, int, int]] = []
        self._batch: _CategoricalBatch | None = None

    @property
    def ready(self) -> bool:
        return self._reference_total >= self.settings.reference_size

    def add_reference(self, codes: np.ndarray) -> int:
        take = min(len(codes), self.settings.reference_size - self._reference_total)
        if take > 0:
            self.reference_counts += np.bincount(codes[:take], minlength=self.codebook.size)
            self._reference_total += take
        return max(take, 0)

    def update(self, codes: np.ndarray, timestamps: np.ndarray) -> list[Detection]:
        """Take a batch of this stream's values and return its detections."""
        evaluations = CategoricalEvaluations(self.settings)
        self.advance(codes, timestamps, evaluations)
        return self.resolve(evaluations)

    def advance(self, codes: np.ndarray, timestamps: np.ndarray, evaluations: CategoricalEvaluations) -> None:
        """Update the state with a batch; file its due windows with ``evaluations``.

        The batch is counted into blocks in one go (``BlockCounts.extend``);
        each due window's short and long counts are sums of whole blocks, the
        blocks held before the batch followed by those it closed, as
        ``BlockCounts.counts`` would have given them at that evaluation.
        """
        self._steps = []
        i = 0 if self.ready else self.add_reference(codes)
        if i == len(codes):
            return
        codes, timestamps = codes[i:], timestamps[i:]
        settings = self.settings
        every, m = settings.evaluate_every, settings.window_size
        count = len(codes)
        seen = self.seen
        room = every - seen % every
        closes = range(room - 1, count, every)
        starts = range((-seen) % every, count, every)
        due = [k for k, p in enumerate(closes) if seen + p + 1 >= m]
        held = self.blocks.rows() if due else None
        closed = self.blocks.extend(codes, room, every)
        if due:
            assert held is not None
            rows = np.concatenate((held, closed)).astype(np.int64)
            sums = np.zeros((rows.shape[0] + 1, rows.shape[1]), dtype=np.int64)
            np.cumsum(rows, axis=0, out=sums[1:])
            ends = np.array(due) + held.shape[0] + 1
            short = sums[ends] - sums[np.maximum(ends - m // every, 0)]
            long = sums[ends] - sums[np.maximum(ends - self.blocks.capacity, 0)]
            first_row = evaluations.add(self.reference_counts, short, long)
            self._steps = [(closes[k], first_row + j, j) for j, k in enumerate(due)]
            self._batch = _CategoricalBatch(i, seen, self.block_starts.values().tolist(), timestamps, starts, short)
        for p in starts:
            self.block_starts.append(timestamps[p])
        self.seen += count
        self.last_timestamp = float(timestamps[-1])

    def resolve(self, evaluations: CategoricalEvaluations) -> list[Detection]:
        """Verdicts on what :meth:`advance` filed, in the order of the values; clears them."""
        steps, self._steps = self._steps, []
        if not steps:
            return []
        results = evaluations.run()
        detections: list[Detection] = []
        for p, row, j in steps:
            detections += self._evaluate(p, j, results[row])
        self._batch = None
        return detections

    def _shares(self, counts: np.ndarray, extra: np.ndarray | None = None, top: int = 5) -> dict[str, Any]:
        total = int(counts.sum())
        order = np.argsort(-counts, kind="stable")
        picked = [int(c) for c in order[:top] if counts[c] > 0]
        if extra is not None:
            picked += [int(c) for c in extra if c not in picked and counts[c] > 0]
        return {
            "count": total,
            "categories": int(np.count_nonzero(counts)),
            "top_shares": {self.codebook.name(c): round(float(counts[c]) / total, 6) for c in picked},
        }

    def _evaluate(self, p: int, j: int, statistics: CategoryStatistics) -> list[Detection]:
        """The verdict of the evaluation after the batch's ``p``-th value, the ``j``-th it filed."""
        th = self.settings.thresholds
        cal = self.calibration
        ref = self.reference_counts
        batch = self._batch
        assert batch is not None
        offset, seen, short_rows = batch.offset, batch.seen, batch.short
        stream_position = self.settings.reference_size + seen + p + 1
        st = statistics
        if st.category >= 0:
            category = self.codebook.name(st.category)
        else:
            category = "(rare categories pooled)"
        psi_value, psi_threshold = st.psi, st.psi_threshold
        self.scores = {"chi_square": st.chi_square, "psi": psi_value}
        half = cal.chi_square_p_value / 2.0
        tests = {
            "chi_square": {
                "statistic": st.chi_square,
                "dof": st.dof,
                "p_value": st.chi_square_p_value,
                "threshold": half,
                "events": st.events,
                "category": category,
                "category_reference_share": st.category_reference_share,
                "category_current_share": st.category_current_share,
                "category_p_value": st.category_p_value,
            },
            "psi": {"statistic": psi_value, "threshold": psi_threshold, "events": st.events},
            "new_category": {
                "share": st.unseen_share,
                "p_value": st.unseen_p_value,
                "threshold": cal.new_category_p_value,
                "events": st.short_events,
            },
        }
        if st.unseen_p_value < cal.new_category_p_value:
            detector, statistic, threshold, p_value = "new_category", st.unseen_share, cal.new_category_p_value, st.unseen_p_value
        elif st.chi_square_p_value < half or st.category_p_value < half:
            detector, statistic, threshold = "chi_square", st.chi_square, half
            p_value = float(min(st.chi_square_p_value, st.category_p_value))
        elif psi_value >= psi_threshold:
            detector, statistic, threshold, p_value = "psi", psi_value, psi_threshold, None
        else:
            self._stable(stream_position)
            return []
        critical = psi_value >= th.psi_critical or st.unseen_share >= th.new_category_critical
        short = short_rows[j]
        return self._gate(
            Detection(
                position=offset + p,
                stream_position=stream_position,
                detector=detector,
                severity=Severity.CRITICAL if critical else Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=p_value,
                tests=tests,
                reference=self._shares(ref),
                current=self._shares(short, extra=np.flatnonzero((ref == 0) & (short > 0))),
                window=_window_payload(self._window_at(batch.held_starts, batch.timestamps, batch.starts, batch.seen, p)),
            )
        )

    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state.update(
            blocks=self.blocks.to_state(),
            reference_counts=self.reference_counts.copy(),
            reference_total=self._reference_total,
        )
        return state

    @classmethod
    def from_state(cls, settings: DetectionSettings, codebook: CategoryCodebook, state: dict[str, Any]) -> "CategoricalStream":
        stream = cls(settings, codebook)
        stream._restore_base(state)
        stream.blocks = BlockCounts.from_state(state["blocks"])
        stream.reference_counts = np.asarray(state["reference_counts"], dtype=np.int64).copy()
        stream._reference_total = state["reference_total"]
        return stream
