"""Every number that decides whether a stream is drifting lives here.

One frozen object per model, built from the monitor spec (or the defaults).
The user states one number, :attr:`DetectionSettings.expected_run_length`:
how many events of a stream should pass, on average, between two false
alarms. Every decision threshold follows from it through the calibration
(:mod:`stream_monitor.calibration`, method in ``docs/calibration.md``) unless
an expert pins it in :class:`Thresholds`. Detectors never hard-code a
threshold; they read :attr:`DetectionSettings.calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream_monitor.calibration import Calibration

#: Thresholds whose value 0 means "derived from expected_run_length".
CALIBRATED_THRESHOLDS = (
    "ks_p_value",
    "chi_square_p_value",
    "new_category_p_value",
    "psi_alert",
    "cusum_h",
    "mean_z",
)
_P_VALUES = ("ks_p_value", "chi_square_p_value", "new_category_p_value")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Expert overrides of the calibrated decision thresholds, and severity cut-offs.

    Leave the decision thresholds at 0 (the default): each is then derived
    from :attr:`DetectionSettings.expected_run_length` and the window sizes,
    so that all of a stream's detectors together keep its false-alarm rate
    within the budget. A non-zero value pins that one threshold; the others
    stay calibrated (pinning a looser one spends more than its share of the
    budget, and the promise no longer holds).
    """

    #: Kolmogorov-Smirnov test, per evaluation: drift when the p-value is below this.
    ks_p_value: float = 0.0
    #: Chi-square detector of category frequencies, per evaluation: drift when the
    #: omnibus p-value or the smallest per-category p-value is below half of this.
    chi_square_p_value: float = 0.0
    #: Test of the share of never-seen categories, per evaluation: drift when the p-value is below this.
    new_category_p_value: float = 0.0
    #: Population stability index at or above which the PSI test fires. Calibrated
    #: per reference and window, it is typically 0.05-0.15 at the default sizes.
    psi_alert: float = 0.0
    #: Mean CUSUM on normal scores (values mapped through the reference to N(0, 1)):
    #: allowance k (half the shift, in standard deviations, it is tuned for) and
    #: decision interval h.
    cusum_k: float = 0.5
    cusum_h: float = 0.0
    #: Long-window mean test: drift when the mean normal score of the last
    #: ``long_window_size`` events is this many standard errors from the reference's.
    mean_z: float = 0.0
    #: Effect sizes that make an alert ``critical`` rather than ``warning``.
    #: Wasserstein is in units of the reference spread; it is an effect size
    #: only, never a trigger on its own (on heavy tails it is too noisy).
    psi_critical: float = 0.25
    wasserstein_critical: float = 0.5
    new_category_critical: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _P_VALUES:
                if not 0.0 <= value < 1.0:
                    raise ValueError(
                        f"thresholds.{f.name} must be between 0 and 1 (exclusive), "
                        f"or 0 to derive it from expected_run_length; got {value}"
                    )
            elif f.name in CALIBRATED_THRESHOLDS:
                if not value >= 0.0:
                    raise ValueError(
                        f"thresholds.{f.name} must be positive, or 0 to derive it from expected_run_length; got {value}"
                    )
            elif not value > 0.0:
                raise ValueError(f"thresholds.{f.name} must be positive, got {value}")

    def pinned(self) -> dict[str, float]:
        """The decision thresholds set explicitly (non-zero), by name."""
        return {name: getattr(self, name) for name in CALIBRATED_THRESHOLDS if getattr(self, name) > 0.0}


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Window sizes, schedules, the false-alarm budget and thresholds of one model's streams."""

    #: The one knob: events of a stream expected between two false alarms, on
    #: stationary data. Each stream's false-alarm rate is at most 1 / this,
    #: counted in that stream's own events; a model with S streams therefore
    #: expects at most S / this false alarms per stream-event. Larger = quieter
    #: and slower to detect (the delay grows with its logarithm); see
    #: docs/calibration.md for the trade-off.
    expected_run_length: float = 1_000_000.0
    #: Events of a stream that form its reference (the first N events seen, unless
    #: a reference file supplies them).
    reference_size: int = 1000
    #: Events in the current sliding window compared against the reference
    #: (KS, PSI, Wasserstein; the new-category share).
    window_size: int = 500
    #: Events in the long window of the mean and variance tests (numeric) and
    #: of the chi-square and PSI tests (categorical): small, persistent changes
    #: need more events than ``window_size`` to stand out from the reference's
    #: own sampling error. Kept as per-block sums and counts, so it costs a few
    #: numbers per block, not a value per event. 0 (the default) means
    #: 4 x ``window_size``; otherwise a multiple of ``evaluate_every``, at
    #: least ``window_size``.
    long_window_size: int = 0
    #: The window tests run each time a stream has seen this many more events.
    #: Must divide ``window_size`` and ``long_window_size`` so window boundaries
    #: line up with evaluations.
    evaluate_every: int = 250
    #: After an alert, the same stream is not re-alerted for this many of its
    #: events, unless the severity escalates from warning to critical.
    cooldown_events: int = 5000
    #: Values of one segment key that get their own streams; the rest are pooled
    #: into the ``__other__`` segment.
    max_segment_values: int = 50
    #: A segment value needs this many events before it gets its own streams, so
    #: the slots go to the values with volume rather than to whatever came first.
    segment_min_events: int = 20
    #: Distinct categories of a categorical feature tracked by name; rarer ones pool.
    max_categories: int = 64
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        for name in (
            "reference_size",
            "window_size",
            "evaluate_every",
            "cooldown_events",
            "max_segment_values",
            "segment_min_events",
            "max_categories",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.expected_run_length >= 1000.0:
            raise ValueError(
                f"expected_run_length must be at least 1000 events, got {self.expected_run_length!r}; "
                "a stream that false-alarms more often than that is noise"
            )
        if self.reference_size < 50:
            raise ValueError(f"reference_size must be at least 50 events, got {self.reference_size}")
        if self.window_size < 50:
            raise ValueError(f"window_size must be at least 50 events, got {self.window_size}")
        if self.window_size % self.evaluate_every:
            raise ValueError(
                f"evaluate_every ({self.evaluate_every}) must divide window_size ({self.window_size}); "
                "pick e.g. window_size // 2"
            )
        if not isinstance(self.long_window_size, int) or self.long_window_size < 0:
            raise ValueError(f"long_window_size must be a positive integer or 0, got {self.long_window_size!r}")
        if self.long_window_size and (
            self.long_window_size < self.window_size or self.long_window_size % self.evaluate_every
        ):
            raise ValueError(
                f"long_window_size ({self.long_window_size}) must be a multiple of evaluate_every "
                f"({self.evaluate_every}) and at least window_size ({self.window_size}); e.g. 4 * window_size"
            )

    @property
    def long_window(self) -> int:
        """Events in the long window (``long_window_size``, or 4 x ``window_size`` if 0)."""
        return self.long_window_size or 4 * self.window_size

    @property
    def calibration(self) -> "Calibration":
        """The thresholds in force: pinned ones as given, the rest derived (cached)."""
        from stream_monitor.calibration import calibrate

        return calibrate(self)

    def with_overrides(self, **overrides: Any) -> "DetectionSettings":
        """A copy with some fields replaced; ``thresholds`` may be a partial dict."""
        thresholds = overrides.pop("thresholds", None)
        result = replace(self, **overrides)
        if thresholds:
            result = replace(result, thresholds=replace(result.thresholds, **thresholds))
        return result
