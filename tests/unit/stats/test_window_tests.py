"""Window tests of many windows at once (stats.window_tests, core.evaluations) against scipy and the one-window functions."""

import numpy as np
import pytest
from scipy import stats

from stream_monitor.core.evaluations import NumericEvaluations, _run_tables
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.calibration import PSI_MIN_EXPECTED
from stream_monitor.stats.reference import NumericReference
from stream_monitor.stats.two_sample import compare_windows, pool_cells, psi, sorted_bin_counts
from stream_monitor.stats.window_tests import bin_counts_from_sorted_ranks, ks_from_sorted_ranks, psi_rows, wasserstein_rows


def _windows(kind: str, n: int, m: int, rows: int, seed: int) -> tuple[list[NumericReference], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    references, windows = [], []
    for row in range(rows):
        shift = 0.6 * row / rows
        if kind == "continuous":
            reference, window = rng.normal(size=n), rng.normal(shift, 1.0 + shift, size=m)
        elif kind == "ties":
            reference, window = rng.poisson(3, size=n), rng.poisson(3 + 2 * shift, size=m)
        else:  # mostly one value, as low-variance features are
            reference = np.where(rng.random(n) < 0.9, 0.0, rng.normal(size=n))
            window = np.where(rng.random(m) < 0.9 - shift, 0.0, rng.normal(size=m))
        references.append(NumericReference(np.asarray(reference, dtype=np.float64)))
        windows.append(np.asarray(window, dtype=np.float64))
    return references, windows


def _ranks(references, windows):
    pairs = [r.ranks(w) for r, w in zip(references, windows)]
    return np.stack([b for b, _ in pairs]), np.stack([a for _, a in pairs])


@pytest.mark.parametrize("kind", ["continuous", "ties", "low_variance"])
@pytest.mark.parametrize("n,m", [(1000, 500), (997, 500), (60, 200)])
def test_ks_from_sorted_ranks_is_exactly_scipys(kind, n, m):
    references, windows = _windows(kind, n, m, rows=12, seed=n + m)
    below, at_or_below = _ranks(references, windows)
    tables = None
    if kind != "continuous":
        assert all(r.has_ties for r in references)
        pairs = [_run_tables(r, n) for r in references]
        tables = np.stack([end for end, _ in pairs]), np.stack([start for _, start in pairs])
    ours = ks_from_sorted_ranks(np.sort(below, axis=1), np.sort(at_or_below, axis=1), n, *(tables or ()))
    for row, (reference, window) in enumerate(zip(references, windows)):
        assert ours[row] == stats.ks_2samp(reference.sorted_values, window).statistic
        assert ours[row] == compare_windows(reference.sorted_values, window)[0].statistic


@pytest.mark.parametrize("kind", ["continuous", "ties"])
@pytest.mark.parametrize("n,m", [(1000, 500), (997, 500), (60, 200)])
def test_wasserstein_rows_is_scipys(kind, n, m):
    references, windows = _windows(kind, n, m, rows=8, seed=3)
    ours = wasserstein_rows(np.stack([r.sorted_values for r in references]), np.sort(np.stack(windows), axis=1))
    for row, (reference, window) in enumerate(zip(references, windows)):
        assert ours[row] == pytest.approx(stats.wasserstein_distance(reference.sorted_values, window), rel=1e-12, abs=1e-15)


def test_wasserstein_of_values_at_the_float_limits_is_infinite_without_a_warning():
    references = np.array([[-1e308, 1e308]])
    with np.errstate(all="raise"):
        assert wasserstein_rows(references, np.array([[1e308]])).tolist() == [np.inf]


@pytest.mark.parametrize("kind", ["continuous", "ties", "low_variance"])
def test_psi_bins_from_ranks_are_the_sorted_window_counts(kind):
    references, windows = _windows(kind, 1000, 500, rows=10, seed=11)
    _, at_or_below = _ranks(references, windows)
    ordered = np.sort(at_or_below, axis=1)
    for row, (reference, window) in enumerate(zip(references, windows)):
        ours = bin_counts_from_sorted_ranks(ordered[row : row + 1], reference.edge_starts[None, :], 1000)[0]
        expected = sorted_bin_counts(np.sort(window), reference.edges)
        np.testing.assert_array_equal(ours, expected)
        assert psi_rows(reference.counts[None, :], ours[None, :])[0] == psi(reference.counts, expected)


@pytest.mark.parametrize("kind", ["continuous", "ties", "low_variance"])
def test_evaluations_give_each_window_the_statistics_it_gets_alone(kind):
    """Rows of different streams and references, tested together, as if each were tested alone."""
    settings = DetectionSettings()
    cal = settings.calibration
    references, windows = _windows(kind, 1000, 500, rows=9, seed=21)
    # A reference of another size (a reference file) joins the same batch.
    extra, extra_windows = _windows(kind, 400, 500, rows=2, seed=22)
    evaluations = NumericEvaluations(settings)
    rows = []
    for reference, window in zip(references + extra, windows + extra_windows):
        below, at_or_below = reference.ranks(window)
        rows.append(evaluations.add(reference, window[None, :], below[None, :], at_or_below[None, :]))
    results = evaluations.run()
    for row, reference, window in zip(rows, references + extra, windows + extra_windows):
        ks, distance = compare_windows(reference.sorted_values, window)
        assert results.ks[row] == ks.statistic
        assert results.ks_p_value[row] == ks.p_value
        assert results.wasserstein(row) == pytest.approx(distance / reference.scale, rel=1e-12)
        ref_cells, cur_cells = pool_cells(reference.counts, sorted_bin_counts(np.sort(window), reference.edges), PSI_MIN_EXPECTED)
        assert results.psi[row] == (psi(ref_cells, cur_cells) if ref_cells.size > 1 else 0.0)
        assert results.psi_threshold[row] == cal.psi_threshold(500, int(ref_cells.size), categorical=False)
        np.testing.assert_array_equal(results.windows[row], window)


@pytest.mark.parametrize("n,m", [(1000, 500), (997, 500), (60, 200), (50, 50)])
def test_ks_from_sorted_ranks_is_exactly_scipys_with_values_on_and_beyond_the_reference(n, m):
    """Tie-free references; windows hitting reference values exactly, and values beyond both ends."""
    rng = np.random.default_rng(n * m)
    for trial in range(20):
        references = [NumericReference(rng.normal(size=n)) for _ in range(6)]
        windows = []
        for reference in references:
            window = rng.normal(rng.choice([0.0, 0.5, 3.0]), rng.choice([1.0, 0.2, 4.0]), size=m)
            on_reference = int(rng.integers(0, m // 3))
            window[:on_reference] = rng.choice(reference.sorted_values, size=on_reference)
            window[-5:] = (1e9, -1e9, 0.0)[trial % 3]
            windows.append(window)
        below, at_or_below = _ranks(references, windows)
        ours = ks_from_sorted_ranks(np.sort(below, axis=1), np.sort(at_or_below, axis=1), n)
        edges = {r.edge_starts.size for r in references}
        counts = None
        if len(edges) == 1:
            counts = bin_counts_from_sorted_ranks(np.sort(at_or_below, axis=1), np.stack([r.edge_starts for r in references]), n)
        for row, (reference, window) in enumerate(zip(references, windows)):
            assert ours[row] == stats.ks_2samp(reference.sorted_values, window).statistic
            if counts is not None:
                np.testing.assert_array_equal(counts[row], sorted_bin_counts(np.sort(window), reference.edges))


def test_ks_reads_shared_tables_as_it_reads_per_row_tables():
    references, windows = _windows("ties", 1000, 500, rows=6, seed=5)
    below, at_or_below = _ranks(references, windows)
    below, at_or_below = np.sort(below, axis=1), np.sort(at_or_below, axis=1)
    pairs = [_run_tables(r, 1000) for r in references]
    per_row = ks_from_sorted_ranks(below, at_or_below, 1000, np.stack([e for e, _ in pairs]), np.stack([s for _, s in pairs]))
    # Rows 0..5 read tables stored in another order, some twice.
    order = [3, 0, 5, 1, 4, 2]
    shared_end, shared_start = np.stack([pairs[i][0] for i in order]), np.stack([pairs[i][1] for i in order])
    table_of_row = np.array([order.index(r) for r in range(6)])
    np.testing.assert_array_equal(ks_from_sorted_ranks(below, at_or_below, 1000, shared_end, shared_start, table_of_row), per_row)
    assert per_row.tolist() == [stats.ks_2samp(r.sorted_values, w).statistic for r, w in zip(references, windows)]


def test_run_table_cache_gives_each_reference_its_own_tables_through_growth_and_eviction():
    from stream_monitor.core.evaluations import _RunTableCache

    references, _ = _windows("ties", 200, 50, rows=150, seed=8)
    cache = _RunTableCache(capacity=100)
    for calls in ([references[:70]], [references[60:130]], [references[:20], references[140:]], [references[::3][:100]]):
        for picked in calls:
            end_at, start_before, slots = cache.tables(picked, 200)
            assert len(set(slots.tolist())) == len(picked)
            for reference, slot in zip(picked, slots.tolist()):
                expected_end, expected_start = _run_tables(reference, 200)
                np.testing.assert_array_equal(end_at[slot], expected_end)
                np.testing.assert_array_equal(start_before[slot], expected_start)
    assert cache._by_size[200].end_at.shape[0] == 100
    # More references than capacity in one call: tables for that call only.
    end_at, _, slots = cache.tables(references[:120], 200)
    assert end_at.shape[0] == 120 and slots.tolist() == list(range(120))
    np.testing.assert_array_equal(end_at[7], _run_tables(references[7], 200)[0])
