"""Every number that decides whether a stream is drifting lives here.

One frozen object per model, built from the monitor spec (or the defaults), so
a later calibration step can own the thresholds in one place instead of
chasing constants through the detectors. Detectors never hard-code a
threshold; they receive it from these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Decision thresholds of the per-stream tests and sequential detectors.

    The defaults are deliberately conservative (a monitor that cries wolf gets
    muted): window tests need overwhelming evidence *and* a visible effect
    size before they speak.
    """

    #: Kolmogorov-Smirnov two-sample test: drift when the p-value is below this.
    ks_p_value: float = 1e-6
    #: Chi-square test of category frequencies: drift when the p-value is below this.
    chi_square_p_value: float = 1e-6
    #: Population stability index at or above which the PSI test fires.
    psi_alert: float = 0.2
    #: Share of the current window made of categories never seen in the reference.
    new_category_share: float = 0.05
    #: CUSUM reference value k and decision interval h, on normal scores
    #: (values mapped through the reference distribution to N(0, 1)).
    cusum_k: float = 0.5
    cusum_h: float = 14.0
    #: ADWIN confidence; fed with block means of normal scores.
    adwin_delta: float = 1e-5
    #: Effect sizes that make an alert ``critical`` rather than ``warning``.
    #: Wasserstein is in units of the reference spread; it is an effect size
    #: only, never a trigger on its own (on heavy tails it is too noisy).
    psi_critical: float = 0.25
    wasserstein_critical: float = 0.5
    new_category_critical: float = 0.1

    def __post_init__(self) -> None:
        for name in ("ks_p_value", "chi_square_p_value", "adwin_delta"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"thresholds.{name} must be between 0 and 1 (exclusive), got {value}")
        for f in fields(self):
            value = getattr(self, f.name)
            if value <= 0:
                raise ValueError(f"thresholds.{f.name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Window sizes, schedules and thresholds of one model's streams."""

    #: Events of a stream that form its reference (the first N events seen, unless
    #: a reference file supplies them).
    reference_size: int = 1000
    #: Events in the current sliding window compared against the reference.
    window_size: int = 500
    #: The window tests run each time a stream has seen this many more events.
    #: Must divide ``window_size`` so window boundaries line up with evaluations.
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
    #: ADWIN is fed one mean per block of this many normal scores.
    adwin_block_size: int = 32
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
            "adwin_block_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.reference_size < 50:
            raise ValueError(f"reference_size must be at least 50 events, got {self.reference_size}")
        if self.window_size < 50:
            raise ValueError(f"window_size must be at least 50 events, got {self.window_size}")
        if self.window_size % self.evaluate_every:
            raise ValueError(
                f"evaluate_every ({self.evaluate_every}) must divide window_size ({self.window_size}); "
                "pick e.g. window_size // 2"
            )

    def with_overrides(self, **overrides: Any) -> "DetectionSettings":
        """A copy with some fields replaced; ``thresholds`` may be a partial dict."""
        thresholds = overrides.pop("thresholds", None)
        result = replace(self, **overrides)
        if thresholds:
            result = replace(result, thresholds=replace(result.thresholds, **thresholds))
        return result
