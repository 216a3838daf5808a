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

__all__ = ["ks_from_sorted_ranks", "counts_at_or_below", "bin_counts_from_sorted_ranks", "wasserstein_rows", "psi_rows"]


def ks_from_sorted_ranks(
    below_sorted: np.ndarray,
    at_or_below_sorted: np.ndarray,
    n: int,
    run_end_at: np.ndarray | None = None,
    run_start_before: np.ndarray | None = None,
    table_of_row: np.ndarray | None = None,
) -> np.ndarray:
    """Exact KS statistic of each row's window against its reference of n values, from the window's sorted ranks.

    The largest gap between the two ECDFs over the pooled sample, read at
    the m sorted ranks of the window (no merge, no count over all n + 1
    reference positions). Let the distinct
    reference values be v_i, with s_i values below v_i and e_i at or below;
    a window value's ranks b (below) and a (at or below) are always some s_i
    (or n) and some e_i (or 0). In units of 1 / (n m), with j the position in
    the sorted ranks:

    * F_i = e_i m - #(b <= s_i) n (the gap at v_i) is largest just before
      #(b <= s_i) steps, at the value before the run that starts at b_j,
      where e = b_j: b_j m - j' n, j' the first position of b_j; the
      candidates b_j m - j n over all j include it and are no larger
      elsewhere. It is smallest where it steps, at the run that starts at
      b_j < n: E(b_j) m - (j'' + 1) n, E(b_j) that run's end and j'' the last
      position of b_j; the candidates over all j are no smaller.
    * G_i = s_i m - #(a <= s_i) n (the gap just below v_i) likewise: largest
      at S(a_j) m - j n, S(a_j) the start of the run that ends at a_j;
      smallest at a_j m - (j + 1) n for a_j < n.

    Without ties E(b) = b + 1 and S(a) = a - 1; with ties, ``run_end_at`` and
    ``run_start_before`` give them as tables indexed by rank (tables, n + 1),
    row r reading table ``table_of_row[r]`` (default: table r): a model's
    windows share a few hundred references, so the tables need not be
    copied out per row. Candidates outside the reference (a value below
    or above all of it) are never positive, and the statistic is at least
    0, so they change nothing.
    """
    rows, m = below_sorted.shape
    if not rows:
        return np.empty(0)
    step = np.arange(m, dtype=np.int64) * n
    widest = np.zeros(rows, dtype=np.int64)
    if table_of_row is None:
        table_of_row = np.arange(rows)
    table_start = (np.asarray(table_of_row, dtype=np.int64) * (n + 1))[:, None]
    for ranks, lookup, shift in ((below_sorted, run_end_at, 1), (at_or_below_sorted, run_start_before, -1)):
        ranks = ranks.astype(np.int64)
        moved = ranks + shift if lookup is None else np.take(lookup, ranks + table_start).astype(np.int64, copy=False)
        # F: its maximum at b_j m - j n, its minimum at E(b_j) m - (j + 1) n;
        # G: its maximum at S(a_j) m - j n, its minimum at a_j m - (j + 1) n.
        high = (ranks if shift == 1 else moved) * m - step
        low = (moved if shift == 1 else ranks) * m - step - n
        np.maximum(widest, high.max(axis=1), out=widest)
        low[ranks >= n] = np.iinfo(np.int64).max // 2
        np.maximum(widest, -low.min(axis=1), out=widest)
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
    """Counts in the PSI bins cut at reference edges, (rows, edges + 1), from the windows' sorted ranks.

    A value lies below an edge exactly when the reference values at or below
    it are no more than those below the edge: the count below edge k is
    #(a <= edge_starts[:, k]).
    """
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


def psi_rows(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """``two_sample.psi`` of each row pair (rows with at least one count on each side); 0 for a single cell."""
    if reference_counts.shape[1] <= 1:
        return np.zeros(reference_counts.shape[0])
    reference = reference_counts.astype(np.float64)
    current = current_counts.astype(np.float64)
    r = np.maximum(reference / reference.sum(axis=1, keepdims=True), epsilon)
    c = np.maximum(current / current.sum(axis=1, keepdims=True), epsilon)
    return np.sum((c - r) * np.log(c / r), axis=1)
