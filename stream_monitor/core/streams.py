"""Per-stream state: one feature of one model in one segment.

A stream first fills its reference window (the first ``reference_size``
values, or a reference file), then keeps a current sliding window and two
sequential detectors. Updates take whole arrays of values; the only splits
inside a batch are at evaluation boundaries (every ``evaluate_every`` values)
and at sequential alarms, so the state after a batch does not depend on how
the input was cut into batches. That is what makes checkpoint/replay give the
same verdicts and the same alert ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_monitor.core.alerts import Severity, iso_time
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.stats.adwin import BlockAdwin
from stream_monitor.stats.cusum import TwoSidedCusum
from stream_monitor.stats.reference import NumericReference, summarize
from stream_monitor.stats.two_sample import bin_counts, chi_square_2xk, ks_2samp, psi, wasserstein_1d
from stream_monitor.stats.windows import RingBuffer

OTHER_CATEGORY = "__other__"


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
    """What numeric and categorical streams share: warm-up, window, schedule, gate."""

    kind_of_values = ""

    def __init__(self, settings: DetectionSettings, window_dtype: Any) -> None:
        self.settings = settings
        self.window = RingBuffer(settings.window_size, window_dtype)
        #: Event time of the first value of each evaluation block still in the window.
        self.block_starts = RingBuffer(settings.window_size // settings.evaluate_every, np.float64)
        #: Values seen since the reference was frozen.
        self.seen = 0
        self.last_timestamp = math.nan
        self.gate = AlertGate(settings.cooldown_events)
        #: Severity of the latest verdict, ``None`` while the stream looks stable.
        self.drifting: str | None = None
        #: Latest window-test statistics, for the drift-score gauges.
        self.scores: dict[str, float] = {}
        #: Stream position of the latest detection, admitted by the gate or not.
        self._last_detection: int | None = None

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def _window_info(self) -> dict[str, Any]:
        starts = self.block_starts.values()
        return {
            "events": len(self.window),
            "first_event_at": iso_time(float(starts[0])) if len(starts) else None,
            "last_event_at": iso_time(self.last_timestamp),
        }

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

    def _advance(self, timestamps: np.ndarray, start: int, used: int) -> None:
        if self.seen % self.settings.evaluate_every == 0:
            self.block_starts.extend(timestamps[start : start + 1])
        self.seen += used
        self.last_timestamp = float(timestamps[start + used - 1])

    def _at_evaluation(self) -> bool:
        return self.seen % self.settings.evaluate_every == 0 and len(self.window) == self.settings.window_size

    def _base_state(self) -> dict[str, Any]:
        return {
            "window": self.window.to_state(),
            "block_starts": self.block_starts.to_state(),
            "seen": self.seen,
            "last_timestamp": self.last_timestamp,
            "gate": self.gate.to_state(),
            "drifting": self.drifting,
            "last_detection": self._last_detection,
        }

    def _restore_base(self, state: dict[str, Any]) -> None:
        self.window = RingBuffer.from_state(state["window"])
        self.block_starts = RingBuffer.from_state(state["block_starts"])
        self.seen = state["seen"]
        self.last_timestamp = state["last_timestamp"]
        self.gate.restore(state["gate"])
        self.drifting = state["drifting"]
        self._last_detection = state["last_detection"]


class NumericStream(_Stream):
    """Reference vs current window (KS, PSI, Wasserstein) plus CUSUM and ADWIN.

    The sequential detectors run on normal scores (values mapped through the
    reference distribution to N(0, 1)), so one threshold fits every feature
    whatever its distribution, and they catch a shift within tens of events
    while the window tests confirm it and measure its size.
    """

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings, np.float64)
        self._warmup: np.ndarray | None = np.empty(settings.reference_size, dtype=np.float64)
        self._warm_count = 0
        self.reference: NumericReference | None = None
        th = settings.thresholds
        self.cusum = TwoSidedCusum(th.cusum_k, th.cusum_h)
        self.adwin = BlockAdwin(th.adwin_delta, settings.adwin_block_size)

    @property
    def ready(self) -> bool:
        return self.reference is not None

    def add_reference(self, values: np.ndarray) -> int:
        """Fill the reference; returns how many values it took."""
        if self._warmup is None:
            return 0
        take = min(len(values), len(self._warmup) - self._warm_count)
        self._warmup[self._warm_count : self._warm_count + take] = values[:take]
        self._warm_count += take
        if self._warm_count == len(self._warmup):
            self.reference = NumericReference(self._warmup)
            self._warmup = None
        return take

    def update(self, values: np.ndarray, timestamps: np.ndarray) -> list[Detection]:
        detections: list[Detection] = []
        i = self.add_reference(values) if self.reference is None else 0
        n = len(values)
        every = self.settings.evaluate_every
        while i < n and self.reference is not None:
            end = min(n, i + every - self.seen % every)
            z = self.reference.normal_scores(values[i:end])
            used = self.cusum.update(z)
            adwin_alarms = []
            j = 0
            while j < used:
                j += self.adwin.update(z[j:used])
                if self.adwin.drift_detected:
                    adwin_alarms.append(j - 1)
            self.window.extend(values[i : i + used])
            seen_before = self.seen
            self._advance(timestamps, i, used)
            for offset in adwin_alarms:
                detections += self._sequential("adwin", i + offset, seen_before + offset + 1, z)
            if self.cusum.drift_detected:
                detections += self._sequential("cusum", i + used - 1, self.seen, z)
            i += used
            if self._at_evaluation():
                detections += self._evaluate(i - 1)
        return detections

    def _sequential(self, detector: str, position: int, stream_position: int, z: np.ndarray) -> list[Detection]:
        th = self.settings.thresholds
        if detector == "cusum":
            statistic, threshold = float(self.cusum.statistic), th.cusum_h
            tests = {"cusum": {"statistic": statistic, "threshold": threshold, "direction": self.cusum.direction}}
        else:
            statistic, threshold = float(self.adwin.estimation), th.adwin_delta
            tests = {"adwin": {"mean_normal_score": statistic, "delta": threshold}}
        return self._gate(
            Detection(
                position=position,
                stream_position=self.reference_size + stream_position,
                detector=detector,
                severity=Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=None,
                tests=tests,
                reference=self.reference.summary(),
                current=summarize(self.window.values()),
                window=self._window_info(),
            )
        )

    @property
    def reference_size(self) -> int:
        return self.settings.reference_size

    def _evaluate(self, position: int) -> list[Detection]:
        th = self.settings.thresholds
        ref = self.reference
        current = self.window.values()
        ks = ks_2samp(ref.sorted_values, current)
        psi_value = psi(ref.counts, bin_counts(current, ref.edges))
        wasserstein = wasserstein_1d(ref.sorted_values, current) / ref.scale
        self.scores = {"ks": float(ks.statistic), "psi": psi_value, "wasserstein": wasserstein}
        tests = {
            "ks": {"statistic": float(ks.statistic), "p_value": float(ks.p_value), "threshold": th.ks_p_value},
            "psi": {"statistic": psi_value, "threshold": th.psi_alert},
            "wasserstein": {"statistic": wasserstein, "critical": th.wasserstein_critical},
        }
        if ks.p_value < th.ks_p_value:
            detector, statistic, threshold, p_value = "ks", float(ks.statistic), th.ks_p_value, float(ks.p_value)
        elif psi_value >= th.psi_alert:
            detector, statistic, threshold, p_value = "psi", psi_value, th.psi_alert, None
        else:
            self._stable(self.settings.reference_size + self.seen)
            return []
        critical = psi_value >= th.psi_critical or wasserstein >= th.wasserstein_critical
        return self._gate(
            Detection(
                position=position,
                stream_position=self.reference_size + self.seen,
                detector=detector,
                severity=Severity.CRITICAL if critical else Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=p_value,
                tests=tests,
                reference=ref.summary(),
                current=summarize(current),
                window=self._window_info(),
            )
        )

    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state.update(
            warmup=None if self._warmup is None else self._warmup[: self._warm_count].copy(),
            reference=None if self.reference is None else self.reference.to_state(),
            cusum=self.cusum.to_state(),
            adwin=self.adwin.to_state(),
        )
        return state

    @classmethod
    def from_state(cls, settings: DetectionSettings, state: dict[str, Any]) -> "NumericStream":
        stream = cls(settings)
        stream._restore_base(state)
        if state["reference"] is not None:
            stream.reference = NumericReference.from_state(state["reference"])
            stream._warmup = None
        else:
            stream.add_reference(np.asarray(state["warmup"], dtype=np.float64))
        stream.cusum = TwoSidedCusum.from_state(state["cusum"])
        stream.adwin = BlockAdwin.from_state(state["adwin"])
        return stream


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


class CategoricalStream(_Stream):
    """Reference vs current category frequencies: chi-square, PSI, new-category share."""

    def __init__(self, settings: DetectionSettings, codebook: CategoryCodebook) -> None:
        super().__init__(settings, np.int32)
        self.codebook = codebook
        self.reference_counts = np.zeros(codebook.size, dtype=np.int64)
        self._reference_total = 0

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
        detections: list[Detection] = []
        i = 0 if self.ready else self.add_reference(codes)
        n = len(codes)
        every = self.settings.evaluate_every
        while i < n:
            end = min(n, i + every - self.seen % every)
            self.window.extend(codes[i:end])
            self._advance(timestamps, i, end - i)
            i = end
            if self._at_evaluation():
                detections += self._evaluate(i - 1)
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

    def _evaluate(self, position: int) -> list[Detection]:
        th = self.settings.thresholds
        ref = self.reference_counts
        current = np.bincount(self.window.values(), minlength=self.codebook.size)
        chi = chi_square_2xk(ref, current)
        present = (ref > 0) | (current > 0)
        psi_value = psi(ref[present], current[present])
        unseen = ref == 0
        new_share = float(current[unseen].sum()) / float(current.sum())
        self.scores = {"chi_square": float(chi.statistic), "psi": psi_value}
        tests = {
            "chi_square": {
                "statistic": float(chi.statistic),
                "dof": int(chi.dof),
                "p_value": float(chi.p_value),
                "threshold": th.chi_square_p_value,
            },
            "psi": {"statistic": psi_value, "threshold": th.psi_alert},
            "new_category_share": {"statistic": new_share, "threshold": th.new_category_share},
        }
        if new_share >= th.new_category_share:
            detector, statistic, threshold, p_value = "new_category", new_share, th.new_category_share, None
        elif chi.p_value < th.chi_square_p_value:
            detector, statistic, threshold, p_value = "chi_square", float(chi.statistic), th.chi_square_p_value, float(chi.p_value)
        elif psi_value >= th.psi_alert:
            detector, statistic, threshold, p_value = "psi", psi_value, th.psi_alert, None
        else:
            self._stable(self.settings.reference_size + self.seen)
            return []
        critical = psi_value >= th.psi_critical or new_share >= th.new_category_critical
        return self._gate(
            Detection(
                position=position,
                stream_position=self.settings.reference_size + self.seen,
                detector=detector,
                severity=Severity.CRITICAL if critical else Severity.WARNING,
                statistic=statistic,
                threshold=threshold,
                p_value=p_value,
                tests=tests,
                reference=self._shares(ref),
                current=self._shares(current, extra=np.flatnonzero(unseen & (current > 0))),
                window=self._window_info(),
            )
        )

    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state.update(reference_counts=self.reference_counts.copy(), reference_total=self._reference_total)
        return state

    @classmethod
    def from_state(cls, settings: DetectionSettings, codebook: CategoryCodebook, state: dict[str, Any]) -> "CategoricalStream":
        stream = cls(settings, codebook)
        stream._restore_base(state)
        stream.reference_counts = np.asarray(state["reference_counts"], dtype=np.int64).copy()
        stream._reference_total = state["reference_total"]
        return stream
