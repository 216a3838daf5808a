"""The categorical window tests of many windows at once, each against its own reference.

A model's categorical streams evaluate a few hundred windows per batch, and
one evaluation at a time (``pool_cells`` twice, ``chi_square_2xk``,
``category_share_test``, ``psi``, ``unseen_category_test``) spends most of
its time in the overhead of several dozen small numpy calls. Here every
window is one row of a 2-D array of category counts and each step is a
handful of numpy calls over all rows.

The results are the numbers of the ``two_sample`` functions to the last bit:
pooling decides on the same float comparisons (a row whose sparse-cell sum
lands too close to the pooling threshold to be sure is decided by the very
expression ``pool_cells`` evaluates); sums of counts are sums of integers,
exact in any order; and every sum of fractional terms (the chi-square and
PSI statistics) is taken over rows grouped by their number of cells, so that
each row is summed as numpy sums the 1-D array of the same cells, pairwise
in the same order. Only the parts that are scalar by nature stay per row:
the chi-square tail, the two exact hypergeometric tails of the share test,
and the unseen-category test of the (rare) windows holding a category the
reference never saw, which calls ``unseen_category_test`` itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from stream_monitor.stats.distributions import chi2_sf
from stream_monitor.stats.two_sample import _hypergeometric_tails, unseen_category_test

__all__ = ["PooledRows", "pool_rows", "chi_square_rows", "share_test_rows", "unseen_rows"]

#: Relative margin within which a sparse-cell sum is recomputed as ``pool_cells``
#: computes it: the vectorized value is within about 70 ulps of it.
_POOLING_MARGIN = 1e-12


@dataclass(slots=True)
class PooledRows:
    """``pool_cells`` of each row, as masks over the input cells plus one pooled cell.

    Column ``j < K`` is input cell ``j``, column ``K`` the pooled cell; a
    row's output cells are its ``included`` columns in column order, which is
    the order ``pool_cells`` returns them in (kept cells ascending, then the
    pooled one).
    """

    reference: np.ndarray  # (rows, K + 1) float64
    current: np.ndarray  # (rows, K + 1) float64
    included: np.ndarray  # (rows, K + 1) bool
    cells: np.ndarray  # (rows,) int: output cells per row

    def groups(self) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per cell count c: (c, rows, reference (r, c), current (r, c), codes (r, c), -1 for the pooled cell)."""
        out = []
        width = self.included.shape[1]
        for c in np.unique(self.cells).tolist():
            rows = np.flatnonzero(self.cells == c)
            mask = self.included[rows]
            reference = self.reference[rows][mask].reshape(rows.size, c)
            current = self.current[rows][mask].reshape(rows.size, c)
            codes = np.nonzero(mask)[1].reshape(rows.size, c)
            codes = np.where(codes == width - 1, -1, codes)
            out.append((c, rows, reference, current, codes))
        return out


def pool_rows(reference_counts: np.ndarray, current_counts: np.ndarray, min_expected: float) -> PooledRows:
    """:func:`two_sample.pool_cells` of each row of two (rows, K) count arrays (positive row totals)."""
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    rows, k = reference.shape
    n = reference.sum(axis=1)
    m = current.sum(axis=1)
    totals = reference + current
    factor = np.minimum(n, m) / (n + m)
    expected = totals * factor[:, None]
    keep = expected >= min_expected
    sparse = ~keep & (totals > 0)
    has_sparse = sparse.any(axis=1)
    rest_reference = np.where(sparse, reference, 0.0).sum(axis=1)
    rest_current = np.where(sparse, current, 0.0).sum(axis=1)
    # The sparse cells' expected total, as pool_cells sums it; the product of
    # their (integer) count by the factor is that to within rounding, and a
    # row too close to call is summed the way pool_cells does.
    sparse_expected = np.where(sparse, totals, 0.0).sum(axis=1) * factor
    close = has_sparse & (np.abs(sparse_expected - min_expected) <= _POOLING_MARGIN * min_expected)
    for row in np.flatnonzero(close).tolist():
        sparse_expected[row] = expected[row][sparse[row]].sum()
    kept_cells = keep.sum(axis=1)
    pooled_cell = has_sparse & ((sparse_expected >= min_expected) | (kept_cells == 0))
    merged = has_sparse & ~pooled_cell

    out_reference = np.empty((rows, k + 1))
    out_current = np.empty((rows, k + 1))
    out_reference[:, :k] = reference
    out_current[:, :k] = current
    out_reference[:, k] = rest_reference
    out_current[:, k] = rest_current
    included = np.empty((rows, k + 1), dtype=bool)
    included[:, :k] = keep
    included[:, k] = pooled_cell
    if merged.any():
        # Into the sparsest kept cell (the first of equals, as argmin).
        which = np.flatnonzero(merged)
        target = np.argmin(np.where(keep[which], expected[which], np.inf), axis=1)
        out_reference[which, target] += rest_reference[which]
        out_current[which, target] += rest_current[which]
    return PooledRows(out_reference, out_current, included, kept_cells + pooled_cell)


def chi_square_rows(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """:func:`two_sample.chi_square_2xk` of rows of c pooled cells, all non-empty: (statistics, dof, p-values)."""
    rows, c = reference.shape
    if c <= 1:
        return np.zeros(rows), 0, np.ones(rows)
    table = np.stack((reference, current), axis=1)  # (rows, 2, c), each row as chi_square_2xk's table
    row_totals = table.sum(axis=2, keepdims=True)
    expected = row_totals * table.sum(axis=1, keepdims=True) / table.reshape(rows, 2 * c).sum(axis=1)[:, None, None]
    statistics = ((table - expected) ** 2 / expected).reshape(rows, 2 * c).sum(axis=1)
    dof = c - 1
    return statistics, dof, np.array([chi2_sf(s, dof) for s in statistics.tolist()])


@functools.lru_cache(maxsize=8192)
def _tails(total: int, successes: int, draws: int, observed: int) -> tuple[float, float]:
    return _hypergeometric_tails(total, successes, draws, observed)


def share_test_rows(reference_cells: np.ndarray, current_cells: np.ndarray) -> list[tuple[int, float, float, float]]:
    """:func:`two_sample.category_share_test` of rows of c pooled cells, all non-empty.

    Per row (cell, reference share, current share, p-value), as the function's ``ShareResult``.
    """
    rows, c = reference_cells.shape
    if c < 2:
        return [(0, 1.0, 1.0, 1.0)] * rows
    reference = reference_cells.astype(np.int64)
    current = current_cells.astype(np.int64)
    n = reference.sum(axis=1)
    m = current.sum(axis=1)
    totals = reference + current
    pooled = totals / (n + m)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (current / m[:, None] - reference / n[:, None]) / np.sqrt(
            pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m)[:, None]
        )
    z = np.where(totals > 0, np.abs(np.nan_to_num(z)), -1.0)
    tests = c if c > 2 else 1
    top = np.argsort(-z, axis=1, kind="stable")[:, :2].tolist()
    out = []
    for row, cells in enumerate(top):
        n_row, m_row = int(n[row]), int(m[row])
        best: tuple[int, float] | None = None
        for cell in cells:
            below, above = _tails(n_row + m_row, int(totals[row, cell]), m_row, int(current[row, cell]))
            p = min(1.0, 2.0 * min(below, above) * tests)
            if best is None or p < best[1]:
                best = (cell, p)
        assert best is not None
        cell, p = best
        out.append((cell, float(reference[row, cell]) / n_row, float(current[row, cell]) / m_row, p))
    return out


def unseen_rows(reference: np.ndarray, current: np.ndarray) -> list[tuple[int, float, float]]:
    """:func:`two_sample.unseen_category_test` of each row: (observed, share, p-value)."""
    observed = np.where(reference == 0, current, 0).sum(axis=1)
    out: list[tuple[int, float, float]] = [(0, 0.0, 1.0)] * reference.shape[0]
    for row in np.flatnonzero(observed).tolist():
        result = unseen_category_test(reference[row], current[row])
        out[row] = (result.count, result.share, result.p_value)
    return out
