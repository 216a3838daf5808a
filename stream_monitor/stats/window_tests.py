"""KS, Wasserstein and PSI of many current windows at once, each against its own reference.

Why a second implementation next to ``two_sample``: a model with a few
thousand streams evaluates hundreds of windows per batch, and one call per
window spends most of its time in the Python and numpy overhead of a dozen
small calls. Here every window of a batch is one row of a 2-D array, and each
test is a handful of numpy calls over all rows.

What makes that possible is that a value's *ranks* in its stream's reference,
how many reference values lie below it and how many at or below it, are known
from the moment it is scored (the normal score is a function of them). Both
empirical CDFs at every reference value, and so the KS statistic and the PSI
bin counts, follow from counting ranks; no window needs merging with its
reference. Only Wasserstein needs the values themselves, sorted, and is read
off the two quantile functions.

The results are the statistics of ``two_sample.compare_windows`` and ``psi``
(the unit tests hold them to those and to scipy), except that sums are taken
in another order, so a Wasserstein distance can differ in its last bits.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "cumulative_rank_counts",
    "ks_statistics",
    "ks_from_sorted_ranks",
    "counts_at_or_below",
    "wasserstein_rows",
    "bin_counts_from_ranks",
    "bin_counts_from_sorted_ranks",
    "psi_rows",
]


def cumulative_rank_counts(ranks: np.ndarray, n: int) -> np.ndarray:
    """Per row, how many of its ranks are <= k, for k = 0..n: shape (rows, n + 1).

    One bincount over all rows (each row offset into its own n + 1 slots)
    and one cumulative sum.
    """
    rows = ranks.shape[0]
    offsets = (np.arange(rows, dtype=np.intp) * (n + 1))[:, None]
    counts = np.bincount((ranks + offsets).ravel(), minlength=rows * (n + 1))
    return np.cumsum(counts.reshape(rows, n + 1), axis=1)


def ks_statistics(
    below_counts: np.ndarray, at_or_below_counts: np.ndarray, run_starts: np.ndarray | None, run_ends: np.ndarray | None, n: int
) -> np.ndarray:
    """Exact two-sample KS statistic of each row's window against its reference of n values.

    ``below_counts`` and ``at_or_below_counts`` are :func:`cumulative_rank_counts`
    of the windows' ranks (values below, values at or below). Between two
    consecutive distinct reference values v < w the reference ECDF is flat
    and the window's rises, so the largest gap on [v, w) is at v itself or
    just below w. With s and e the reference values below and at or below v:
    F_ref(v) = e / n, F_cur(v) = #(below <= s) / m, F_ref(v-) = s / n and
    F_cur(v-) = #(at_or_below <= s) / m. Below the smallest reference value
    and beyond the largest the gaps are no larger, so checking every distinct
    reference value both ways is the supremum over the pooled sample.

    ``run_starts``/``run_ends`` give s and e per reference position (rows, n)
    for references with ties; ``None`` means no ties (s = k, e = k + 1).
    The gaps are counted in units of 1 / (n m), in integers, so the result
    is exact: k / lcm(n, m), the value ``two_sample.compare_windows`` snaps to.
    """
    rows = below_counts.shape[0]
    if not rows:
        return np.empty(0)
    m = int(below_counts[0, -1])
    if run_starts is None:
        starts = np.arange(n, dtype=np.int64)
        at_value, before_value = below_counts[:, :n], at_or_below_counts[:, :n]
        at_reference, before_reference = (starts + 1) * m, starts * m
    else:
        at_value = np.take_along_axis(below_counts, run_starts, axis=1)
        before_value = np.take_along_axis(at_or_below_counts, run_starts, axis=1)
        at_reference, before_reference = run_ends * m, run_starts * m
    widest = np.zeros(rows, dtype=np.int64)
    for counts, reference in ((at_value, at_reference), (before_value, before_reference)):
        gap = counts * n
        np.subtract(reference, gap, out=gap)
        np.maximum(widest, gap.max(axis=1), out=widest)
        np.maximum(widest, -gap.min(axis=1), out=widest)
    g = math.gcd(n, m)
    return (widest // g) / (n * m // g)


def ks_from_sorted_ranks(below_sorted: np.ndarray, at_or_below_sorted: np.ndarray, n: int) -> np.ndarray:
    """Exact KS statistic of each row's window against its reference of n *distinct* values.

    The same supremum as :func:`ks_statistics` with s = k and e = k + 1, read
    from the window's sorted ranks instead of counts over all n reference
    positions (m values per row instead of n + 1 counts: a quarter of the
    work for the usual sizes). In units of 1 / (n m), with j the position in
    the sorted ranks b (below) and a (at or below):

    * F(k) = (k + 1) m - #(b <= k) n is largest just before #(b <= k) steps,
      at k = b_j - 1, where it is b_j m - j' n with j' the first position of
      b_j: the candidates b_j m - j n over all j include it and are no
      larger elsewhere. It is smallest just after a step, at k = b_j < n:
      (b_j + 1) m - (j'' + 1) n with j'' the last position of b_j, and the
      candidates over all j are no smaller.
    * G(k) = k m - #(a <= k) n likewise: largest at (a_j - 1) m - j n,
      smallest at a_j m - (j + 1) n for a_j < n.

    Candidates that fall outside 0 <= k < n are never positive, and the
    statistic is at least 0, so they change nothing.
    """
    rows, m = below_sorted.shape
    if not rows:
        return np.empty(0)
    step = np.arange(m, dtype=np.int64) * n
    widest = np.zeros(rows, dtype=np.int64)
    for ranks, high, low in ((below_sorted, 0, m - n), (at_or_below_sorted, -m, -n)):
        candidates = ranks.astype(np.int64) * m
        candidates -= step
        np.maximum(widest, candidates.max(axis=1) + high, out=widest)
        inside = np.where(ranks < n, candidates, np.iinfo(np.int64).max // 2)
        np.maximum(widest, -(inside.min(axis=1) + low), out=widest)
    g = math.gcd(n, m)
    return (widest // g) / (n * m // g)


def counts_at_or_below(ranks_sorted: np.ndarray, limits: np.ndarray, n: int) -> np.ndarray:
    """Per row, how many of its (sorted, 0..n) ranks are <= each of its ``limits``: shape of ``limits``.

    Shifting row r by r (n + 1) makes the whole array one ascending sequence,
    so one search answers every row.
    """
    rows, m = ranks_sorted.shape
    shift = np.arange(rows, dtype=np.int64)[:, None] * (n + 1)
    keys = (ranks_sorted + shift).ravel()
    found = np.searchsorted(keys, (limits + shift).ravel(), side="right").reshape(limits.shape)
    return found - np.arange(rows, dtype=np.int64)[:, None] * m


def bin_counts_from_sorted_ranks(at_or_below_sorted: np.ndarray, edge_starts: np.ndarray, n: int) -> np.ndarray:
    """:func:`bin_counts_from_ranks` from the windows' sorted ranks (values below an edge = #(a <= edge start))."""
    rows, m = at_or_below_sorted.shape
    bounds = np.empty((rows, edge_starts.shape[1] + 2), dtype=np.int64)
    bounds[:, 0] = 0
    bounds[:, -1] = m
    bounds[:, 1:-1] = counts_at_or_below(at_or_below_sorted, edge_starts, n)
    return np.diff(bounds, axis=1)


@functools.lru_cache(maxsize=64)
def _quantile_pairs(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the quantile functions of an n- and an m-value sample step, and the widths between.

    W1 = integral over u in (0, 1] of |F^-1(u) - G^-1(u)|, and both inverses
    are constant between consecutive multiples of 1/n and of 1/m; in units
    of 1/lcm(n, m) those breakpoints are integers, so the pairing is exact.
    """
    lcm = math.lcm(n, m)
    points = np.union1d(np.arange(1, n + 1) * (lcm // n), np.arange(1, m + 1) * (lcm // m))
    widths = np.diff(points, prepend=0) / lcm
    # Interval (p_prev, p] reads the sample value of index ceil(p * size / lcm) - 1.
    reference_index = -(-points // (lcm // n)) - 1
    current_index = -(-points // (lcm // m)) - 1
    return reference_index, current_index, widths


def wasserstein_rows(references: np.ndarray, currents_sorted: np.ndarray) -> np.ndarray:
    """Earth mover's distance of each row of ``currents_sorted`` (rows, m) to the same row of ``references`` (rows, n), both ascending."""
    # Values near the float limits (1e308) overflow a difference to inf: an
    # infinite distance is the truth at that precision, not an error.
    with np.errstate(over="ignore", invalid="ignore"):
        return _wasserstein_rows(references, currents_sorted)


def _wasserstein_rows(references: np.ndarray, currents_sorted: np.ndarray) -> np.ndarray:
    n, m = references.shape[1], currents_sorted.shape[1]
    if n % m == 0:
        # Each current value pairs with n / m consecutive reference values, all
        # with weight 1 / n: no gather needed.
        distances = np.abs(references.reshape(-1, m, n // m) - currents_sorted[:, :, None])
        return distances.reshape(-1, n).sum(axis=1) / n
    reference_index, current_index, widths = _quantile_pairs(n, m)
    if n == reference_index.size:
        left = references  # every reference step is a breakpoint: no gather needed
    else:
        left = references[:, reference_index]
    distances = np.abs(left - currents_sorted[:, current_index])
    return distances @ widths


def bin_counts_from_ranks(at_or_below_counts: np.ndarray, edge_starts: np.ndarray) -> np.ndarray:
    """Counts in the PSI bins cut at reference edges, from the cumulative rank counts.

    A value lies below an edge exactly when the reference values at or below
    it are no more than those below the edge, so the count below edge k is
    the cumulative count at ``edge_starts[:, k]``. Shape (rows, edges + 1).
    """
    rows = at_or_below_counts.shape[0]
    bounds = np.empty((rows, edge_starts.shape[1] + 2), dtype=np.int64)
    bounds[:, 0] = 0
    bounds[:, -1] = at_or_below_counts[:, -1]
    bounds[:, 1:-1] = np.take_along_axis(at_or_below_counts, edge_starts, axis=1)
    return np.diff(bounds, axis=1)


def psi_rows(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """``two_sample.psi`` of each row pair (rows with at least one count on each side)."""
    reference = reference_counts.astype(np.float64)
    current = current_counts.astype(np.float64)
    r = np.maximum(reference / reference.sum(axis=1, keepdims=True), epsilon)
    c = np.maximum(current / current.sum(axis=1, keepdims=True), epsilon)
    return np.sum((c - r) * np.log(c / r), axis=1)
