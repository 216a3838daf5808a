"""The frozen reference of a numeric stream, and summaries for alert payloads.

A reference is built once from a sample and never changes, so everything the
window tests and detectors need from it is computed up front: the sorted
sample (KS, Wasserstein), PSI bins and their reference counts, a robust
spread, and a lookup table that maps any value to a normal score.
"""

from __future__ import annotations

import functools

from typing import Any

import numpy as np

from stream_monitor.stats.distributions import normal_ppf
from stream_monitor.stats.two_sample import bin_counts, quantile_bin_edges

__all__ = ["NumericReference", "summarize", "SUMMARY_KEYS", "gap_scores", "self_score_moments"]

PSI_BINS = 10
#: Batches at least this long are sorted before they are scored (see ``normal_scores``).
_SEARCH_SORTED_FROM = 768
# IQR of N(0, sigma) is 1.349 sigma: IQR / 1.349 estimates sigma without
# letting a few outliers (heavy tails are the norm for model features) set it.
_IQR_TO_SIGMA = 1.349

SUMMARY_KEYS = ("count", "mean", "std", "min", "p05", "p25", "p50", "p75", "p95", "max")
_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)


def summarize(values: np.ndarray) -> dict[str, Any]:
    """Count, mean, std, extremes and percentiles: *what* moved, for humans.

    NaNs are ignored (an alert should describe the values that were there).
    ``count`` is an int; the rest are floats, or None when there is no value,
    so the payload stays valid JSON. ``std`` is the sample standard deviation
    (0.0 for a single value).
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[~np.isnan(data)]
    if data.size == 0:
        return {"count": 0, **{key: None for key in SUMMARY_KEYS[1:]}}
    # Huge finite values (1e308) may overflow the mean and std to inf/nan:
    # reported as such, without a warning per alert.
    with np.errstate(over="ignore", invalid="ignore"):
        p05, p25, p50, p75, p95 = np.percentile(data, _PERCENTILES).tolist()
        mean = float(np.mean(data))
        std = float(np.std(data, ddof=1)) if data.size > 1 else 0.0
    return {
        "count": int(data.size),
        "mean": mean,
        "std": std,
        "min": float(np.min(data)),
        "p05": p05,
        "p25": p25,
        "p50": p50,
        "p75": p75,
        "p95": p95,
        "max": float(np.max(data)),
    }


def _robust_scale(sorted_sample: np.ndarray) -> float:
    """Spread used to turn Wasserstein distances into effect sizes.

    IQR / 1.349 first; when at least half the reference is a single value
    (low-variance or mostly-constant features) the IQR is 0, so fall back to
    the standard deviation, and for a constant reference to 1.0: dividing by
    zero would turn any movement into an infinite effect size.
    """
    # Values near the float limits (1e308) overflow the differences and the
    # standard deviation to inf: not an error, the next fallback applies.
    with np.errstate(over="ignore", invalid="ignore"):
        p25, p75 = np.percentile(sorted_sample, (25.0, 75.0))
        iqr = (p75 - p25) / _IQR_TO_SIGMA
        if np.isfinite(iqr) and iqr > 0.0:
            return float(iqr)
        std = np.std(sorted_sample, ddof=1)
    if np.isfinite(std) and std > 0.0:
        return float(std)
    return 1.0


class NumericReference:
    """Frozen reference distribution of one numeric stream.

    Built from a 1-D sample of at least 2 finite values (NaNs removed by the
    caller). Arrays it exposes are read-only.
    """

    __slots__ = (
        "_sorted",
        "_edges",
        "_counts",
        "_scale",
        "_score_table",
        "_summary",
        "_score_mean",
        "_score_variance",
        "_has_ties",
        "_edge_starts",
        "_rank_dtype",
    )

    def __init__(self, sample: np.ndarray) -> None:
        data = np.asarray(sample, dtype=np.float64)
        if data.ndim != 1:
            raise ValueError(f"reference sample must be one-dimensional, got shape {data.shape}")
        if data.size < 2:
            raise ValueError(f"reference sample needs at least 2 values, got {data.size}")
        if not np.all(np.isfinite(data)):
            raise ValueError("reference sample must be finite (remove NaNs before building it)")
        self._freeze(np.sort(data))

    def _freeze(self, sorted_sample: np.ndarray) -> None:
        self._sorted = _read_only(sorted_sample)
        self._edges = _read_only(quantile_bin_edges(self._sorted, PSI_BINS))
        self._counts = _read_only(bin_counts(self._sorted, self._edges))
        self._scale = _robust_scale(self._sorted)
        self._score_table = _score_table(self._sorted.size)
        self._summary = summarize(self._sorted)
        n = self._sorted.size
        # What the window tests read from a window's ranks: whether runs of
        # equal values need tracking, and where each PSI edge's run starts.
        self._has_ties = bool(np.any(self._sorted[1:] == self._sorted[:-1]))
        self._edge_starts = _read_only(np.searchsorted(self._sorted, self._edges, side="left"))
        self._rank_dtype = np.dtype(np.uint16 if n < np.iinfo(np.uint16).max else np.int64)
        own = self.normal_scores(self._sorted)
        self._score_mean = float(own.mean())
        self._score_variance = float(own.var()) * _new_value_variance_factor(self._sorted.size)

    @property
    def size(self) -> int:
        return int(self._sorted.size)

    @property
    def sorted_values(self) -> np.ndarray:
        """The reference sample, ascending (read-only): input to KS and Wasserstein."""
        return self._sorted

    @property
    def edges(self) -> np.ndarray:
        """Interior PSI bin edges (read-only); len(edges) + 1 bins."""
        return self._edges

    @property
    def counts(self) -> np.ndarray:
        """Reference counts in the PSI bins (read-only)."""
        return self._counts

    @property
    def scale(self) -> float:
        """Robust spread of the reference, never zero (see ``_robust_scale``)."""
        return self._scale

    @property
    def score_mean(self) -> float:
        """Mean normal score of the reference's own values (mid-ranks for ties).

        It is what a new value drawn from the reference distribution scores
        on average: exactly 0 for a continuous feature (the scores of ranks
        1..n are symmetric), but not for a tied one (a feature that is 0 on 90%
        of events puts them all at one mid-rank score, off the centre). The
        detectors centre the scores on it, which is what keeps discrete
        features from drifting by construction.
        """
        return self._score_mean

    @property
    def score_variance(self) -> float:
        """Expected variance of a new value's score under the reference.

        The variance of the reference's own scores, scaled up by the factor
        that makes it exact for a continuous feature: a new value falls in a
        gap between reference values, and the n + 1 gap scores reach further
        out (+/-3.29 for n = 1000) than the n scores of the values themselves
        (+/-3.09), so they spread about 1% more. Just under 1 for a continuous
        feature, smaller the more ties, 0 for a constant one.
        """
        return self._score_variance

    @property
    def continuous_score_variance(self) -> float:
        """:attr:`score_variance` of a tie-free reference of the same size (just under 1)."""
        return _gap_variance(self._sorted.size)

    @property
    def has_ties(self) -> bool:
        """Whether some value occurs more than once in the reference."""
        return self._has_ties

    def runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct reference value, how many reference values are below it and at or below it.

        Worked out when asked (for references with ties, at their
        evaluations) rather than kept: 16 KB a stream otherwise.
        """
        values = self._sorted
        starts = np.flatnonzero(values[1:] != values[:-1])
        starts += 1
        return np.concatenate(([0], starts)), np.concatenate((starts, [values.size]))

    @property
    def edge_starts(self) -> np.ndarray:
        """Per PSI edge, how many reference values are below it (read-only)."""
        return self._edge_starts

    @property
    def rank_dtype(self) -> np.dtype:
        """Smallest integer type that holds a rank 0..n: what a window's ranks are kept in."""
        return self._rank_dtype

    def ranks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reference values below, reference values at or below) each value.

        A value's ranks say everything the window tests need about where it
        falls in the reference: its normal score, its PSI bin and both ECDFs
        at every reference value. Computing them once, when the value
        arrives, and keeping them beside the window, turns each evaluation
        of KS and PSI into counting instead of searching.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and x.size >= _SEARCH_SORTED_FROM:
            # A search for ascending keys starts where the previous one ended:
            # for a whole aggregate batch, sorting first costs less than the
            # mispredicted branches of thousands of searches in random order.
            order = np.argsort(x, kind="stable")
            ordered = x[order]
            below = np.empty(x.shape, dtype=self._rank_dtype)
            at_or_below = np.empty(x.shape, dtype=self._rank_dtype)
            below[order] = np.searchsorted(self._sorted, ordered, side="left")
            at_or_below[order] = np.searchsorted(self._sorted, ordered, side="right")
            return below, at_or_below
        # The methods, not np.searchsorted: a segment stream's batch is a few
        # dozen values, for which the function wrapper's overhead shows.
        below = self._sorted.searchsorted(x, side="left").astype(self._rank_dtype)
        at_or_below = self._sorted.searchsorted(x, side="right").astype(self._rank_dtype)
        return below, at_or_below

    def scores_from_ranks(self, below: np.ndarray, at_or_below: np.ndarray) -> np.ndarray:
        """Normal scores of values with these ranks (see :meth:`normal_scores`)."""
        return self._score_table.take(below.astype(np.intp) + at_or_below)

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of ``values`` in this reference's PSI bins."""
        return bin_counts(values, self._edges)

    def normal_scores(self, x: np.ndarray) -> np.ndarray:
        """Map values to N(0, 1) scores through the reference's empirical CDF.

        Why: under no drift the scores are (nearly) standard normal for *any*
        continuous feature distribution, lognormal or heavy-tailed alike, so
        one CUSUM/ADWIN threshold fits every feature. Ties get mid-ranks, so
        values equal to a reference atom land in the middle of its step; the
        scores are bounded by the table's extremes (about +/-3.3 for n = 1000),
        so a single outlier cannot blow up a detector.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            below = np.searchsorted(self._sorted, x, side="left")
            return self._score_table.take(below + np.searchsorted(self._sorted, x, side="right"))
        return self.scores_from_ranks(*self.ranks(x))

    def summary(self) -> dict[str, Any]:
        """:func:`summarize` of the reference sample (computed once)."""
        return dict(self._summary)

    def to_state(self) -> dict[str, Any]:
        # Everything else is a deterministic function of the sorted sample.
        return {"sorted": self._sorted.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "NumericReference":
        reference = cls.__new__(cls)
        reference._freeze(np.array(state["sorted"], dtype=np.float64))
        return reference


@functools.lru_cache(maxsize=16)
def _score_table(n: int) -> np.ndarray:
    """Normal scores of every possible mid-rank, indexed by twice the mid-rank.

    A value with b reference values below it and e equal to it has mid-rank
    u = (b + e/2 + 1/2) / (n + 1) = (2b + e + 1) / (2(n + 1)); the index
    2b + e runs over 0..2n. Tabulating all of them once makes scoring a
    batch two searchsorted calls and one take, with no ppf evaluation. The
    table depends only on n, so every stream with the same reference size
    shares one (read-only) copy instead of carrying 16 KB each.
    """
    half_ranks = np.arange(2 * n + 1, dtype=np.float64)
    return _read_only(normal_ppf((half_ranks + 1.0) / (2.0 * (n + 1))))


def gap_scores(n: int) -> np.ndarray:
    """Scores of values strictly between consecutive reference values of a continuous feature.

    A new value of a continuous feature lands in one of the n + 1 gaps of the
    sorted reference (never on a reference value), so these n + 1 numbers are
    every score it can get; the calibration simulates with them.
    """
    return _score_table(n)[0::2]


def self_score_moments(n: int) -> tuple[float, float]:
    """(mean, variance) of the scores of a tie-free reference's own n values."""
    own = _score_table(n)[1::2]
    return float(own.mean()), float(own.var())


@functools.lru_cache(maxsize=16)
def _gap_variance(n: int) -> float:
    return float(gap_scores(n).var())


def _new_value_variance_factor(n: int) -> float:
    """Variance of the n + 1 gap scores over that of the n own scores (tie-free)."""
    return _gap_variance(n) / self_score_moments(n)[1]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
