"""Tail functions against scipy's reference implementations."""

import math

import numpy as np
import pytest
from scipy import special, stats

from stream_monitor.stats.distributions import chi2_sf, kolmogorov_sf, normal_ppf


def test_kolmogorov_sf_matches_scipy_on_both_sides_of_the_switch():
    x = np.concatenate([np.linspace(0.0, 10.0, 4001), np.logspace(-3, 1.5, 400), [1.18, np.nextafter(1.18, 0)]])
    ours = np.array([kolmogorov_sf(v) for v in x])
    expected = special.kolmogorov(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    tail = expected > 1e-300
    np.testing.assert_allclose(ours[tail], expected[tail], rtol=1e-12)


def test_kolmogorov_sf_limits():
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(-1.0) == 1.0
    assert kolmogorov_sf(0.05) == 1.0
    assert kolmogorov_sf(40.0) == 0.0  # underflows quietly
    assert math.isnan(kolmogorov_sf(float("nan")))


def test_chi2_sf_matches_scipy_over_a_grid():
    dfs = list(range(1, 41)) + list(range(41, 501, 9)) + [499, 500]
    base = np.logspace(-4, 5, 90)
    worst = 0.0
    for df in dfs:
        near_mean = df + np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 10.0, 30.0]) * math.sqrt(2 * df)
        x = np.unique(np.concatenate([base, near_mean[near_mean > 0], [1e5]]))
        expected = stats.chi2.sf(x, df)
        ours = np.array([chi2_sf(v, df) for v in x])
        representable = expected > 1e-300
        rel = np.abs(ours[representable] - expected[representable]) / expected[representable]
        worst = max(worst, float(rel.max()))
        assert np.all(ours[~representable] < 1e-290)
    assert worst < 1e-8


def test_chi2_sf_edges():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-2.0, 3) == 1.0
    assert chi2_sf(1e5, 1) == 0.0  # underflow returns 0.0, does not raise
    assert chi2_sf(float("inf"), 7) == 0.0
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_normal_ppf_matches_ndtri():
    rng = np.random.default_rng(7)
    p = np.concatenate(
        [
            np.logspace(-12, -0.31, 5000),
            1.0 - np.logspace(-12, -0.31, 5000),
            rng.uniform(1e-12, 1 - 1e-12, 5000),
            [1e-12, 1 - 1e-12, 0.5, 0.02425, 1 - 0.02425],
        ]
    )
    np.testing.assert_allclose(normal_ppf(p), special.ndtri(p), rtol=0, atol=1e-9)


def test_normal_ppf_deep_tail_and_domain():
    p = np.logspace(-300, -12, 200)
    np.testing.assert_allclose(normal_ppf(p), special.ndtri(p), rtol=1e-12)
    out = normal_ppf(np.array([0.0, 1.0, -0.1, 1.1, np.nan]))
    assert out[0] == -np.inf and out[1] == np.inf
    assert np.all(np.isnan(out[2:]))
    assert normal_ppf(np.array([[0.5, 0.975]])).shape == (1, 2)
