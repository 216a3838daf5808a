"""The calibration: one budget in, every threshold out, each checked against a simulation."""

import math

import numpy as np
import pytest
from scipy import stats

from stream_monitor.calibration import (
    CATEGORICAL_DETECTORS,
    NUMERIC_DETECTORS,
    PSI_MIN_EXPECTED,
    _siegmund_rate,
    cusum_h,
    cusum_rate,
    cusum_table,
)
from stream_monitor.calibration.simulate import cusum_arl, rates
from stream_monitor.core.settings import DetectionSettings, Thresholds
from stream_monitor.stats.reference import gap_scores, self_score_moments
from stream_monitor.stats.two_sample import pool_cells, psi


def test_budget_is_split_across_the_detectors_of_a_stream():
    settings = DetectionSettings(expected_run_length=2_000_000.0)
    cal = settings.calibration
    assert cal.numeric_rate * len(NUMERIC_DETECTORS) == pytest.approx(1 / 2_000_000)
    assert cal.categorical_rate * len(CATEGORICAL_DETECTORS) == pytest.approx(1 / 2_000_000)
    # A window test runs every evaluate_every events: its level per evaluation.
    assert cal.ks_p_value == pytest.approx(settings.evaluate_every * cal.numeric_rate)
    assert cal.chi_square_p_value == pytest.approx(settings.evaluate_every * cal.categorical_rate)
    assert cal.cusum_h == pytest.approx(cusum_h(settings.reference_size, cal.numeric_rate), abs=1e-3)


def test_a_longer_run_length_raises_every_threshold():
    quiet = DetectionSettings(expected_run_length=1e8).calibration
    loud = DetectionSettings(expected_run_length=1e4).calibration
    assert quiet.cusum_h > loud.cusum_h
    assert quiet.ks_p_value < loud.ks_p_value and quiet.chi_square_p_value < loud.chi_square_p_value
    assert quiet.mean_test(2000)[1] > loud.mean_test(2000)[1]
    q_low, q_high = quiet.variance_test(2000)[1:]
    l_low, l_high = loud.variance_test(2000)[1:]
    assert q_low < l_low < 1 < l_high < q_high
    assert quiet.psi_threshold(500, 10, False) > loud.psi_threshold(500, 10, False)


def test_pinned_thresholds_are_used_as_given():
    pinned = DetectionSettings(thresholds=Thresholds(cusum_h=9.0, ks_p_value=1e-3, psi_alert=0.3, mean_z=5.0))
    cal = pinned.calibration
    assert (cal.cusum_h, cal.ks_p_value, cal.mean_test(2000)[1]) == (9.0, 1e-3, 5.0)
    assert cal.psi_threshold(500, 10, categorical=False) == 0.3
    assert cal.chi_square_p_value == DetectionSettings().calibration.chi_square_p_value


def test_zero_means_calibrated_and_nonsense_is_refused():
    assert Thresholds().pinned() == {}
    assert Thresholds(cusum_h=3.0).pinned() == {"cusum_h": 3.0}
    for bad in ({"ks_p_value": 1.0}, {"cusum_h": -1.0}, {"cusum_k": 0.0}, {"psi_critical": 0.0}):
        with pytest.raises(ValueError):
            Thresholds(**bad)
    with pytest.raises(ValueError, match="expected_run_length"):
        DetectionSettings(expected_run_length=10.0)
    with pytest.raises(ValueError, match="long_window_size"):
        DetectionSettings(long_window_size=600)
    assert DetectionSettings().long_window == 4 * DetectionSettings().window_size


# --------------------------------------------------------------------------- CUSUM


def test_markov_chain_arl_matches_a_direct_simulation():
    # Normal increments, k = 0.5, h = 4: the textbook one-sided ARL is ~336.
    z = np.linspace(-8, 8, 4001)
    p = np.exp(-z * z / 2)
    p /= p.sum()
    assert cusum_arl(z - 0.5, p, 4.0) == pytest.approx(336, rel=0.01)
    rng = np.random.default_rng(1)
    lengths = []
    for _ in range(3000):
        s, t = 0.0, 0
        while s <= 4.0:
            s = max(0.0, s + rng.normal() - 0.5)
            t += 1
        lengths.append(t)
    assert np.mean(lengths) == pytest.approx(336, rel=0.05)


def test_table_agrees_with_a_fresh_simulation():
    # 40 references instead of 1000: within the Monte Carlo error of the table.
    hs = (8.0, 12.0)
    fresh = np.log10(rates(1000, draws=40, seed=7, hs=hs))
    row = cusum_table.LOG10_RATE[cusum_table.REFERENCE_SIZES.index(1000)]
    tabulated = [row[cusum_table.H_GRID.index(h)] for h in hs]
    np.testing.assert_allclose(fresh, tabulated, atol=0.15)


def test_cusum_rate_includes_the_reference_error():
    # With a perfect reference the two-sided rate would be 2 / ARL(N(0,1));
    # a reference of 1000 makes it higher, one of 50,000 nearly as low.
    h = 14.0
    z = np.linspace(-8, 8, 4001)
    p = np.exp(-z * z / 2)
    p /= p.sum()
    ideal = 2.0 / cusum_arl(z - 0.5, p, h)
    assert cusum_rate(h, 1000) > 1.3 * ideal
    assert cusum_rate(h, 50_000) == pytest.approx(ideal, rel=0.25)


def test_cusum_threshold_is_monotone_and_extrapolates():
    assert cusum_h(1000, 2e-7) > cusum_h(1000, 2e-6) > cusum_h(1000, 2e-5)
    assert cusum_h(200, 2e-7) > cusum_h(1000, 2e-7) > cusum_h(20_000, 2e-7)
    # Beyond the table's last h (30): log-rate extended linearly.
    assert cusum_h(1000, 1e-15) > 30.0
    # A larger reference than tabulated uses the last row (conservative).
    assert cusum_h(10**6, 2e-7) == cusum_h(50_000, 2e-7)


def test_siegmund_fallback_for_other_allowances_is_close_to_the_table():
    for n in (500, 1000, 5000):
        for h in (10.0, 14.0):
            assert _siegmund_rate(h, n, 0.5) == pytest.approx(cusum_rate(h, n), rel=0.6)
    assert cusum_h(1000, 2e-7, k=0.75) < cusum_h(1000, 2e-7)


# --------------------------------------------------------------------------- window tests


def _null_windows(n, events, draws, rng):
    """Mean and variance ratio of ``events`` scores of continuous streams with random references."""
    g = gap_scores(n) - self_score_moments(n)[0]
    v = g.var()
    weights = rng.dirichlet(np.ones(n + 1), size=draws)
    counts = np.stack([rng.multinomial(events, w) for w in weights])
    mean = counts @ g / events
    second = counts @ (g * g) / events
    return mean, 1.0 + (second - mean**2 - v) / v


@pytest.fixture(scope="module")
def null_windows():
    return _null_windows(1000, 2000, 20_000, np.random.default_rng(11))


@pytest.mark.parametrize("evaluate_every", [250, 500])
def test_long_window_tests_hold_their_level(null_windows, evaluate_every):
    # Levels of ~1e-2 so 20,000 simulated streams can check them; the tails at
    # the default levels (~5e-5) are checked by the offline simulation in
    # docs/calibration.md.
    mean, ratio = null_windows
    settings = DetectionSettings(expected_run_length=evaluate_every / (5 * 0.02), evaluate_every=evaluate_every)
    assert settings.calibration.numeric_level == pytest.approx(0.02)
    cal = settings.calibration
    se, z = cal.mean_test(2000)
    assert np.mean(np.abs(mean / se) >= z) == pytest.approx(cal.numeric_level, rel=0.2)
    _, low, high = cal.variance_test(2000)
    # The variance test keeps a 2x margin on its level.
    assert np.mean((ratio <= low) | (ratio >= high)) == pytest.approx(cal.numeric_level / 2, rel=0.3)


def test_psi_threshold_holds_its_level():
    rng = np.random.default_rng(12)
    settings = DetectionSettings(expected_run_length=250 / (5 * 0.01))
    cal = settings.calibration
    exceed = 0
    draws = 20_000
    for _ in range(draws):
        reference = np.full(10, 100)
        shares = rng.dirichlet(np.full(10, 100.0))
        current = rng.multinomial(500, shares)
        r, c = pool_cells(reference, current, PSI_MIN_EXPECTED)
        exceed += psi(r, c) >= cal.psi_threshold(500, r.size, categorical=False)
    assert exceed / draws <= cal.numeric_level


def test_ks_level_is_the_per_evaluation_share():
    rng = np.random.default_rng(13)
    from stream_monitor.stats.two_sample import ks_2samp

    cal = DetectionSettings(expected_run_length=250 / (5 * 0.01)).calibration
    p = [ks_2samp(np.sort(rng.random(1000)), rng.random(500)).p_value for _ in range(5000)]
    assert np.mean(np.array(p) < cal.ks_p_value) == pytest.approx(0.01, abs=0.004)


def test_mean_test_critical_value_is_nearly_normal_at_default_sizes():
    cal = DetectionSettings().calibration
    se, z = cal.mean_test(2000)
    assert z == pytest.approx(stats.norm.isf(cal.numeric_level / 2), rel=0.01)
    assert se == pytest.approx(math.sqrt(gap_scores(1000).var() * (1 / 2000 + 1 / 1002)), rel=1e-9)
