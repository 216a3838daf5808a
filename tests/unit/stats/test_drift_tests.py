"""The tests added for calibrated detection: cell pooling, per-category shares,
never-seen categories, block counts, reference score moments, chi2 quantiles."""

import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from stream_monitor.stats.distributions import chi2_isf
from stream_monitor.stats.reference import NumericReference, gap_scores, self_score_moments
from stream_monitor.stats.two_sample import (
    _hypergeometric_tails,
    category_share_test,
    chi_square_2xk,
    pool_cells,
    unseen_category_test,
)
from stream_monitor.stats.windows import BlockCounts


@pytest.mark.parametrize("df", [1, 2, 4, 9, 40, 300])
@pytest.mark.parametrize("p", [0.5, 1e-2, 5e-5, 1e-9, 1e-40])
def test_chi2_isf_inverts_scipy(df, p):
    assert chi2_isf(p, df) == pytest.approx(stats.chi2.isf(p, df), rel=1e-9)


def test_chi2_isf_rejects_nonsense():
    for p, df in ((0.0, 3), (1.0, 3), (0.5, 0)):
        with pytest.raises(ValueError):
            chi2_isf(p, df)


# --------------------------------------------------------------------------- pooling


def test_pooling_keeps_dense_cells_and_merges_sparse_ones():
    reference = np.array([400, 300, 200, 95, 3, 2, 0])
    current = np.array([200, 150, 100, 45, 2, 1, 0])
    r, c, codes = pool_cells(reference, current, 10, return_codes=True)
    # expected counts in the smaller row: (r + c) / 3 -> 200, 150, 100, 46.7, 1.7, 1, 0
    np.testing.assert_array_equal(codes, [0, 1, 2, 3])
    np.testing.assert_array_equal(r, [400, 300, 200, 100])  # the sparse rest joined the sparsest kept cell
    np.testing.assert_array_equal(c, [200, 150, 100, 48])
    assert r.sum() == reference.sum() and c.sum() == current.sum()


def test_pooled_rest_stands_alone_when_big_enough():
    reference = np.array([500, 400] + [10] * 10)
    current = np.array([250, 200] + [5] * 10)
    r, c, codes = pool_cells(reference, current, 10, return_codes=True)
    np.testing.assert_array_equal(codes, [0, 1, -1])
    np.testing.assert_array_equal(r, [500, 400, 100])
    np.testing.assert_array_equal(c, [250, 200, 50])


def test_pooling_uses_the_totals_not_the_reference_alone():
    # Same totals, different split: the same cells are kept.
    a = pool_cells(np.array([30, 0, 500]), np.array([0, 30, 500]), 10, return_codes=True)[2]
    b = pool_cells(np.array([0, 30, 500]), np.array([30, 0, 500]), 10, return_codes=True)[2]
    np.testing.assert_array_equal(a, b)


def test_pooled_chi_square_keeps_its_level_with_rare_categories():
    rng = np.random.default_rng(3)
    shares = 1.0 / np.arange(1, 41) ** 1.2
    shares /= shares.sum()
    pooled = []
    for _ in range(4000):
        reference, current = rng.multinomial(1000, shares), rng.multinomial(2000, shares)
        pooled.append(chi_square_2xk(*pool_cells(reference, current, 10)).p_value)
    assert np.mean(np.array(pooled) < 0.01) < 0.014


# --------------------------------------------------------------------------- per-category shares


@pytest.mark.parametrize("total,successes,draws", [(3000, 800, 2000), (3000, 12, 2000), (120, 60, 40), (50, 50, 20)])
def test_hypergeometric_tails_are_scipys(total, successes, draws):
    low, high = max(0, draws - (total - successes)), min(successes, draws)
    for observed in sorted({low, high, (low + high) // 2, min(high, low + 3)}):
        below, above = _hypergeometric_tails(total, successes, draws, observed)
        expected_below = stats.hypergeom.cdf(observed, total, successes, draws)
        expected_above = stats.hypergeom.sf(observed - 1, total, successes, draws)
        # The smaller tail exactly; the larger one (a complement) to absolute precision.
        small, expected_small = (below, expected_below) if expected_below < expected_above else (above, expected_above)
        assert small == pytest.approx(expected_small, rel=1e-9, abs=1e-300)
        assert below == pytest.approx(expected_below, abs=1e-12)
        assert above == pytest.approx(expected_above, abs=1e-12)


def test_category_share_test_is_fishers_exact_test_with_bonferroni():
    reference = np.array([350, 250, 200, 120, 80])
    current = np.array([640, 700, 370, 180, 110])
    result = category_share_test(reference, current)
    assert result.cell == 1
    table = [[current[1], current.sum() - current[1]], [reference[1], reference.sum() - reference[1]]]
    # scipy's two-sided Fisher p-value sums the small tables; ours doubles the smaller tail.
    one_sided = min(stats.fisher_exact(table, alternative="greater")[1], stats.fisher_exact(table, alternative="less")[1])
    assert result.p_value == pytest.approx(min(1.0, 2 * one_sided * 5), rel=1e-9)
    assert (result.reference_share, result.current_share) == (0.25, 0.35)


def test_category_share_test_keeps_its_level():
    rng = np.random.default_rng(4)
    shares = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    p = [category_share_test(rng.multinomial(1000, shares), rng.multinomial(2000, shares)).p_value for _ in range(3000)]
    assert np.mean(np.array(p) < 0.05) <= 0.05


def test_category_share_with_two_cells_is_one_test():
    result = category_share_test(np.array([500, 500]), np.array([260, 240]))
    table = [[260, 240], [500, 500]]
    one_sided = min(stats.fisher_exact(table, alternative="greater")[1], stats.fisher_exact(table, alternative="less")[1])
    assert result.p_value == pytest.approx(2 * one_sided, rel=1e-9)


# --------------------------------------------------------------------------- never-seen categories


def test_unseen_categories_nothing_new_means_p_one():
    result = unseen_category_test(np.array([10, 20, 0]), np.array([5, 5, 0]))
    assert (result.count, result.share, result.p_value) == (0, 0.0, 1.0)


def test_unseen_single_category_matches_the_split_probability():
    # One category, 4 pooled occurrences, all in the window of 500 (reference 1000):
    # a random split does that with probability C(500, 4) / C(1500, 4).
    result = unseen_category_test(np.array([600, 400, 0]), np.array([300, 196, 4]))
    assert result.count == 4 and result.share == pytest.approx(4 / 500)
    assert result.p_value == pytest.approx(math.comb(500, 4) / math.comb(1500, 4), rel=1e-9)


def test_unseen_category_p_value_is_conservative_under_random_splits():
    """Long-tailed stationary categories: the reference misses many rare ones by chance."""
    rng = np.random.default_rng(5)
    shares = 1.0 / np.arange(1, 201) ** 1.05
    shares /= shares.sum()
    p_values = []
    for _ in range(1500):
        sample = rng.choice(shares.size, size=1500, p=shares)
        reference = np.bincount(sample[:1000], minlength=shares.size)
        current = np.bincount(sample[1000:], minlength=shares.size)
        p_values.append(unseen_category_test(reference, current).p_value)
    p_values = np.array(p_values)
    for level in (0.01, 0.05, 0.2):
        assert np.mean(p_values <= level) <= level * 1.1


def test_a_new_category_at_two_percent_is_significant():
    # 10 of 500 current values in a new category: a random split hides all 10
    # from a reference of 1000 with probability ~(1/3)^10.
    result = unseen_category_test(np.array([500, 300, 200, 0]), np.array([245, 147, 98, 10]))
    assert result.share == 0.02 and result.p_value < 1e-4


# --------------------------------------------------------------------------- block counts


@settings(max_examples=100, deadline=None)
@given(
    blocks=st.integers(1, 6),
    batches=st.lists(st.lists(st.integers(0, 4), max_size=12), max_size=25),
)
def test_block_counts_match_a_model(blocks, batches):
    window = BlockCounts(blocks, 5)
    model = deque(maxlen=blocks)
    open_block: list[int] = []
    for batch in batches:
        window.add(np.array(batch, dtype=np.int64))
        open_block += batch
        window.close_block()
        model.append(np.bincount(np.array(open_block, dtype=np.int64), minlength=5))
        open_block = []
        assert window.blocks == len(model)
        np.testing.assert_array_equal(window.counts(), np.sum(model, axis=0) if model else np.zeros(5))
        np.testing.assert_array_equal(window.counts(1), model[-1])
        restored = BlockCounts.from_state(window.to_state())
        np.testing.assert_array_equal(restored.counts(), window.counts())
        np.testing.assert_array_equal(restored.counts(1), window.counts(1))


def test_block_counts_state_round_trip_keeps_the_open_block():
    window = BlockCounts(3, 4)
    for codes in ([0, 1], [1, 1, 2], [3], [0, 0]):
        window.add(np.array(codes))
        window.close_block()
    window.add(np.array([2, 2]))
    restored = BlockCounts.from_state(window.to_state())
    for w in (window, restored):
        w.close_block()
    np.testing.assert_array_equal(restored.counts(), window.counts())
    np.testing.assert_array_equal(window.counts(), [2, 0, 2, 1])


# --------------------------------------------------------------------------- reference scores


def test_continuous_reference_scores_centre_on_zero_with_the_gap_variance():
    reference = NumericReference(np.random.default_rng(7).lognormal(size=1000))
    assert reference.score_mean == pytest.approx(0.0, abs=1e-12)
    assert reference.score_variance == pytest.approx(float(gap_scores(1000).var()), rel=1e-12)
    assert reference.continuous_score_variance == reference.score_variance
    mean, variance = self_score_moments(1000)
    assert mean == pytest.approx(0.0, abs=1e-12) and 0.98 < variance < reference.score_variance < 1.0


def test_new_values_score_as_the_reference_predicts():
    rng = np.random.default_rng(8)
    for draw in (lambda n: rng.normal(size=n), lambda n: rng.poisson(0.7, n).astype(float), lambda n: np.where(rng.random(n) < 0.97, 5.0, 6.0)):
        reference = NumericReference(draw(2000))
        scores = reference.normal_scores(draw(200_000))
        # The stream's mean score sits within the reference's sampling error of the centre.
        assert abs(scores.mean() - reference.score_mean) < 4 * math.sqrt(reference.continuous_score_variance / 2000)
        assert scores.var() <= reference.continuous_score_variance * 1.1
        assert scores.var() == pytest.approx(reference.score_variance, rel=0.15, abs=0.01)


def test_tied_references_have_smaller_score_variance():
    rng = np.random.default_rng(9)
    continuous = NumericReference(rng.normal(size=1000))
    counts = NumericReference(rng.poisson(2.0, 1000).astype(float))
    nearly_constant = NumericReference(np.where(rng.random(1000) < 0.99, 5.0, 6.0))
    constant = NumericReference(np.full(1000, 3.0))
    assert continuous.score_variance > counts.score_variance > nearly_constant.score_variance > constant.score_variance == 0.0
    assert abs(counts.score_mean) > 1e-3  # ties pull the mid-rank scores off the centre
