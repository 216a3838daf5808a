"""Two-sample comparisons of a frozen reference window against a current window.

The reference side is sorted once when it is frozen and reused for every
evaluation, so every function here takes it already sorted; only the current
window (small, and new each time) is sorted per call. Everything works on
whole arrays: one evaluation is a handful of numpy calls, never a Python loop
over values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stream_monitor.stats.distributions import chi2_sf, kolmogorov_sf

__all__ = [
    "KSResult",
    "ChiSquareResult",
    "ks_2samp",
    "wasserstein_1d",
    "psi",
    "quantile_bin_edges",
    "bin_counts",
    "chi_square_2xk",
]


@dataclass(frozen=True, slots=True)
class KSResult:
    """Outcome of a two-sided Kolmogorov-Smirnov test.

    ``statistic`` is the largest vertical gap between the two empirical CDFs;
    ``p_value`` is asymptotic (see :func:`ks_2samp` for its accuracy).
    """

    statistic: float
    p_value: float


@dataclass(frozen=True, slots=True)
class ChiSquareResult:
    """Outcome of a Pearson chi-square test of homogeneity.

    ``dof`` is reported because it changes with the number of categories seen,
    and a statistic is meaningless to a reader without it.
    """

    statistic: float
    dof: int
    p_value: float


def _as_sample(values: np.ndarray, name: str) -> np.ndarray:
    sample = np.asarray(values, dtype=np.float64)
    if sample.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {sample.shape}")
    if sample.size == 0:
        raise ValueError(f"{name} is empty: a two-sample comparison needs values on both sides")
    return sample


def _ecdf_gap(reference_sorted: np.ndarray, current_sorted: np.ndarray, at: np.ndarray) -> np.ndarray:
    """F_ref(at) - F_cur(at), both right-continuous ECDFs.

    side='right' counts values <= t, which is what makes ties come out the
    same as in scipy: a tied value moves both ECDFs at the same point.
    """
    cdf_ref = np.searchsorted(reference_sorted, at, side="right") / reference_sorted.size
    cdf_cur = np.searchsorted(current_sorted, at, side="right") / current_sorted.size
    return cdf_ref - cdf_cur


def ks_2samp(reference_sorted: np.ndarray, current: np.ndarray) -> KSResult:
    """Two-sided two-sample Kolmogorov-Smirnov test, reference already sorted.

    The statistic is exact (the ECDFs are compared at every pooled value, and
    the result is snapped to its exact rational value k / lcm(m, n)). The
    p-value is the limiting Kolmogorov distribution with Stephens' small-sample
    correction: cheap and closed form. Against scipy's asymptotic p-value it is
    within ~6% relative down to 1e-10 once m n / (m + n) >= 200 (1000 vs 500
    values); for small samples (m n / (m + n) ~ 40) it stays within 3% above
    1e-3 but is higher (conservative) deeper in the tail, up to 2.4x at 1e-10.
    The unit tests pin these tolerances down. With ties the true test is
    conservative and so is this p-value.
    """
    reference_sorted = _as_sample(reference_sorted, "reference")
    current_sorted = np.sort(_as_sample(current, "current"))
    pooled = np.concatenate((reference_sorted, current_sorted))
    gap = _ecdf_gap(reference_sorted, current_sorted, pooled)
    m, n = reference_sorted.size, current_sorted.size
    # The gap is always a multiple of 1 / lcm(m, n); snapping to it removes
    # the rounding noise of the two divisions (identical samples give exactly
    # 0, equal gaps compare equal), and is what scipy reports by default.
    lcm = math.lcm(m, n)
    raw = float(max(np.max(gap), -np.min(gap), 0.0))
    statistic = round(raw * lcm) / lcm
    root_en = math.sqrt(m * n / (m + n))
    p_value = kolmogorov_sf((root_en + 0.12 + 0.11 / root_en) * statistic)
    return KSResult(statistic=statistic, p_value=p_value)


def wasserstein_1d(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """Earth mover's distance between the two empirical distributions.

    In one dimension it is the area between the two ECDFs, which is exact and
    needs only the pooled sorted support: between consecutive pooled points
    both ECDFs are constant, so the integral is a sum of rectangles. It is in
    the units of the feature; callers divide by the reference spread to get an
    effect size comparable across features.
    """
    reference_sorted = _as_sample(reference_sorted, "reference")
    current_sorted = np.sort(_as_sample(current, "current"))
    support = np.sort(np.concatenate((reference_sorted, current_sorted)))
    widths = np.diff(support)
    gap = _ecdf_gap(reference_sorted, current_sorted, support[:-1])
    return float(np.sum(np.abs(gap) * widths))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index sum((c - r) * ln(c / r)) over shared bins.

    Proportions are floored at ``epsilon`` because a bin (or category) that is
    empty on one side would otherwise make the index infinite, and one unseen
    category must raise the index a lot, not break every comparison after it.
    With the floor, an empty bin contributes about p * ln(p / epsilon), which
    is large but finite. No renormalisation after flooring: the index stays
    the symmetric KL divergence of the floored proportions.
    """
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    if reference.shape != current.shape or reference.ndim != 1:
        raise ValueError(
            f"PSI needs counts over the same bins, got shapes {reference.shape} and {current.shape}"
        )
    if not epsilon > 0.0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    reference_total = reference.sum()
    current_total = current.sum()
    if reference_total <= 0 or current_total <= 0:
        raise ValueError("PSI needs at least one count on each side")
    r = np.maximum(reference / reference_total, epsilon)
    c = np.maximum(current / current_total, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_bin_edges(reference_sorted: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Interior cut points at reference quantiles, every resulting bin non-empty.

    Edges are taken *from the reference values themselves* (not interpolated)
    and used with "value >= edge goes up" binning, so each bin [e_i, e_i+1)
    contains at least its own lower edge; duplicates and an edge equal to the
    minimum (which would leave the first bin empty) are dropped. Hence tied,
    discrete or low-variance references merge bins instead of producing empty
    ones (which PSI would punish through its epsilon floor for no reason), and
    a constant reference yields no edges at all: one bin.
    """
    reference_sorted = _as_sample(reference_sorted, "reference")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    n = reference_sorted.size
    positions = np.round(np.arange(1, n_bins) * (n / n_bins)).astype(np.int64)
    candidates = reference_sorted[np.clip(positions, 0, n - 1)]
    edges = np.unique(candidates)
    return edges[edges > reference_sorted[0]]


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the len(edges) + 1 bins cut by ``edges``.

    Bin i holds edges[i-1] <= v < edges[i] (open-ended at both extremes), the
    convention :func:`quantile_bin_edges` relies on to keep bins non-empty.
    """
    index = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64, copy=False)


def chi_square_2xk(reference_counts: np.ndarray, current_counts: np.ndarray) -> ChiSquareResult:
    """Pearson chi-square test of homogeneity on the 2 x K table of counts.

    Categories absent from both sides are dropped: they carry no evidence and
    would otherwise produce 0/0 expected cells. With a single category left
    the two sides cannot differ, so the result is (0, dof 0, p 1). No
    continuity correction: with the window sizes used here it only costs power.
    """
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    if reference.shape != current.shape or reference.ndim != 1:
        raise ValueError(
            f"chi-square needs counts over the same categories, got shapes {reference.shape} and {current.shape}"
        )
    if np.any(reference < 0) or np.any(current < 0):
        raise ValueError("counts must be non-negative")
    seen = (reference + current) > 0
    table = np.stack((reference[seen], current[seen]))
    categories = table.shape[1]
    if categories <= 1:
        return ChiSquareResult(statistic=0.0, dof=0, p_value=1.0)
    row_totals = table.sum(axis=1, keepdims=True)
    if np.any(row_totals == 0):
        raise ValueError("chi-square needs at least one count on each side")
    expected = row_totals * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = categories - 1
    return ChiSquareResult(statistic=statistic, dof=dof, p_value=chi2_sf(statistic, dof))
