"""NumericReference: frozen reference, normal scores, spread, summaries."""

import numpy as np
import pytest
from scipy import special, stats

from stream_monitor.stats.reference import SUMMARY_KEYS, NumericReference, summarize


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.lognormal(0.0, 1.0, n),
        lambda rng, n: rng.standard_t(3, n),
        lambda rng, n: rng.exponential(5.0, n) + 100.0,
    ],
    ids=["lognormal", "student_t3", "shifted_exponential"],
)
def test_scores_are_standard_normal_for_any_continuous_feature(draw):
    rng = np.random.default_rng(31)
    reference = NumericReference(draw(rng, 2000))
    scores = reference.normal_scores(draw(rng, 20_000))
    assert abs(scores.mean()) < 0.06
    assert 0.93 < scores.std() < 1.05
    # Shape, not just moments: close to N(0, 1) in distribution.
    assert stats.kstest(scores, "norm").statistic < 0.03


def test_one_sd_shift_moves_the_mean_score_by_about_one():
    rng = np.random.default_rng(32)
    reference = NumericReference(rng.normal(10.0, 2.0, 2000))
    same = reference.normal_scores(rng.normal(10.0, 2.0, 20_000)).mean()
    shifted = reference.normal_scores(rng.normal(12.0, 2.0, 20_000)).mean()
    assert 0.9 < shifted - same < 1.1


def test_scores_use_mid_ranks_for_ties():
    sample = np.array([1.0, 2.0, 2.0, 2.0, 3.0, 5.0, 5.0, 8.0])
    reference = NumericReference(sample)
    x = np.array([0.0, 1.0, 2.0, 2.5, 5.0, 8.0, 9.0, 4.0])
    n = sample.size
    expected_u = [((sample < v).sum() + 0.5 * (sample == v).sum() + 0.5) / (n + 1) for v in x]
    np.testing.assert_allclose(reference.normal_scores(x), special.ndtri(expected_u), atol=1e-12)
    # Integer data: equal values get equal scores, symmetric data centres on 0.
    integers = NumericReference(np.repeat(np.arange(5.0), 200))
    scores = integers.normal_scores(np.array([0.0, 0.0, 2.0, 4.0]))
    assert scores[0] == scores[1] and scores[2] == pytest.approx(0.0, abs=1e-15)
    assert scores[3] == pytest.approx(-scores[0], abs=1e-12)


def test_scores_keep_the_input_shape():
    reference = NumericReference(np.arange(10.0))
    assert reference.normal_scores(np.zeros((2, 3))).shape == (2, 3)


def test_psi_bins_and_counts():
    rng = np.random.default_rng(33)
    reference = NumericReference(rng.uniform(0, 1, 1000))
    assert reference.edges.size == 9
    np.testing.assert_array_equal(reference.counts, np.full(10, 100))
    np.testing.assert_array_equal(reference.bin_counts(reference.sorted_values), reference.counts)
    discrete = NumericReference(rng.integers(0, 3, 1000).astype(float))
    assert discrete.edges.tolist() == [1.0, 2.0] and discrete.counts.min() > 0


@pytest.mark.parametrize(
    "sample,expected",
    [
        (np.random.default_rng(34).normal(0.0, 3.0, 20_000), 3.0),
        # IQR 0 (80% of the mass at 0): falls back to the standard deviation.
        (np.concatenate([np.zeros(800), np.arange(1.0, 201.0)]), None),
        (np.full(100, 7.0), 1.0),
    ],
    ids=["normal", "mostly_constant", "constant"],
)
def test_scale_is_robust_and_never_zero(sample, expected):
    scale = NumericReference(sample).scale
    if expected is None:
        expected = np.std(sample, ddof=1)
    assert scale == pytest.approx(expected, rel=0.03)


def test_iqr_scale_ignores_outliers():
    sample = np.random.default_rng(35).normal(0.0, 1.0, 5000)
    sample[:20] = 1e6
    assert NumericReference(sample).scale == pytest.approx(1.0, rel=0.05)


def test_constant_reference():
    reference = NumericReference(np.full(100, 7.0))
    assert reference.edges.size == 0 and reference.counts.tolist() == [100]
    scores = reference.normal_scores(np.array([6.0, 7.0, 8.0]))
    assert scores[0] < -2 and scores[1] == pytest.approx(0.0, abs=1e-15) and scores[2] > 2


def test_summary_and_summarize_match_numpy():
    values = np.random.default_rng(36).lognormal(size=3001)
    reference = NumericReference(values)
    for summary in (reference.summary(), summarize(values)):
        assert tuple(summary) == SUMMARY_KEYS
        assert summary["count"] == 3001
        assert summary["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert summary["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert summary["min"] == values.min() and summary["max"] == values.max()
        for key, q in (("p05", 5), ("p25", 25), ("p50", 50), ("p75", 75), ("p95", 95)):
            assert summary[key] == pytest.approx(np.percentile(values, q), rel=1e-12)
        assert all(type(summary[key]) is float for key in SUMMARY_KEYS[1:])


def test_summarize_ignores_nans_and_handles_empty():
    assert summarize(np.array([np.nan, 1.0, 3.0]))["mean"] == 2.0
    empty = summarize(np.array([np.nan]))
    assert empty["count"] == 0 and empty["p50"] is None


def test_reference_is_frozen():
    reference = NumericReference(np.array([3.0, 1.0, 2.0]))
    assert reference.sorted_values.tolist() == [1.0, 2.0, 3.0]
    for array in (reference.sorted_values, reference.edges, reference.counts):
        with pytest.raises(ValueError):
            array[...] = 0


def test_state_round_trip():
    rng = np.random.default_rng(37)
    original = NumericReference(np.round(rng.lognormal(size=997), 2))
    state = original.to_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    restored = NumericReference.from_state(state)
    probe = rng.lognormal(size=5000)
    np.testing.assert_array_equal(restored.normal_scores(probe), original.normal_scores(probe))
    np.testing.assert_array_equal(restored.sorted_values, original.sorted_values)
    np.testing.assert_array_equal(restored.edges, original.edges)
    np.testing.assert_array_equal(restored.counts, original.counts)
    assert restored.scale == original.scale and restored.summary() == original.summary()


@pytest.mark.parametrize("bad", [np.array([1.0]), np.array([1.0, np.nan, 2.0]), np.ones((3, 2))])
def test_rejects_unusable_samples(bad):
    with pytest.raises(ValueError):
        NumericReference(bad)


def test_summary_and_scale_of_values_near_the_float_limit_do_not_warn():
    # A mean or a spread of values near 1e308 overflows: reported as inf/nan,
    # never as a RuntimeWarning per alert, and the scale falls back to a finite one.
    import warnings

    data = np.array([1e308, -1e308, 1e308, -1e308, 0.0] * 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize(data)
        reference = NumericReference(data)
    assert summary["count"] == 1000
    assert summary["max"] == 1e308 and summary["min"] == -1e308
    assert np.isfinite(reference.scale) and reference.scale > 0.0
