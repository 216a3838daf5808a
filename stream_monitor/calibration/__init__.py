"""From one number, the expected run length between false alarms, to every threshold.

The user states :attr:`~stream_monitor.core.settings.DetectionSettings.expected_run_length`
(ERL): how many events of one stream should pass, on average, between two
false alarms on stationary data. The false-alarm budget of a stream is then
1 / ERL per event, split evenly (Bonferroni) among the detectors of the
stream, so the sum of their rates, an upper bound on the rate of the union,
stays within it:

* numeric streams: the mean CUSUM, the long-window mean and variance tests,
  the KS test and the PSI test (five shares);
* categorical streams: the chi-square detector (Pearson's omnibus test and
  the exact test of each category's share, half the share each), the PSI test
  and the new-category test (three shares).

Each share becomes a threshold:

* sequential detectors (the CUSUM) are checked at every event, so their
  share is a rate per event; ``h`` comes from :mod:`cusum_table`, a simulation
  that includes the estimation of the reference (``simulate.py``);
* window tests run every ``evaluate_every`` events, so each evaluation may
  spend ``evaluate_every`` times the per-event share as its level. Consecutive
  windows overlap and all of them reuse the same reference; by linearity of
  expectation the expected number of false alarms per event is still at most
  the share, whatever the correlation (overlap only makes it smaller). Each
  test's null distribution is exact for continuous features up to a
  documented approximation, and conservative for tied ones.

The expected count is over the randomness of the reference too: a stream
whose reference happens to be unlucky alarms more often than one whose
reference is typical, and the promise is on the average, which is what a
user with many streams experiences (S streams of T events each: at most
S * T / ERL false alarms expected). ``docs/calibration.md`` has the details.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.calibration import cusum_table
from stream_monitor.stats.distributions import chi2_isf, normal_ppf
from stream_monitor.stats.reference import gap_scores, self_score_moments

if TYPE_CHECKING:
    from stream_monitor.core.settings import DetectionSettings

__all__ = [
    "Calibration",
    "calibrate",
    "cusum_h",
    "cusum_rate",
    "NUMERIC_DETECTORS",
    "CATEGORICAL_DETECTORS",
    "CHI_SQUARE_MIN_EXPECTED",
    "PSI_MIN_EXPECTED",
]

NUMERIC_DETECTORS = ("cusum", "mean", "variance", "ks", "psi")
CATEGORICAL_DETECTORS = ("chi_square", "psi", "new_category")

#: Cells expected to hold fewer events than this (in the smaller sample) are
#: pooled before a chi-square / PSI test (:func:`~stream_monitor.stats.two_sample.pool_cells`).
CHI_SQUARE_MIN_EXPECTED = 10.0
PSI_MIN_EXPECTED = 20.0
#: PSI's null law is (1/n + 1/m) chi-square(cells - 1) only asymptotically; by
#: simulation (docs/calibration.md) its tail at the levels used is up to ~10%
#: heavier with >= 20 expected events per cell. The critical value carries a
#: 25% margin.
PSI_MARGIN = 1.25
#: The asymptotic KS p-value is accurate to ~10% for m n / (m + n) >= 100 (the
#: defaults give 333) and up to 1.5x too small below; the level is divided by
#: this factor below that size.
KS_SMALL_SAMPLE = 100.0
KS_SMALL_SAMPLE_FACTOR = 1.5
#: Safety factor on the rate from the Siegmund approximation used when the
#: CUSUM allowance is not the tabulated one: it errs low by up to 1.6x at a
#: reference of 200 (less for larger ones) against the simulated table.
SIEGMUND_MARGIN = 2.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """The thresholds in force for one DetectionSettings: pinned ones as given, the rest derived."""

    expected_run_length: float
    #: False-alarm rate per event allowed to each detector of a numeric / categorical stream.
    numeric_rate: float
    categorical_rate: float
    #: Level of each window test per evaluation (= evaluate_every * rate).
    numeric_level: float
    categorical_level: float
    cusum_k: float
    cusum_h: float
    #: Level of the long-window mean test, and its critical |z| when pinned.
    mean_level: float
    mean_z: float
    mean_z_pinned: bool
    ks_p_value: float
    #: Level of the chi-square detector; its omnibus and per-category tests get half each.
    chi_square_p_value: float
    new_category_p_value: float
    #: Pinned PSI threshold, or 0 for the per-test critical value of :meth:`psi_threshold`.
    psi_alert: float
    reference_size: int

    def psi_threshold(self, current_size: int, cells: int, categorical: bool) -> float:
        """PSI at or above which the PSI test fires, for ``cells`` pooled cells.

        PSI is the symmetrised Kullback-Leibler divergence; with every cell
        expected to hold at least PSI_MIN_EXPECTED events, (1/n + 1/m)^-1 PSI is
        chi-square with cells - 1 degrees of freedom under no drift, like
        Pearson's statistic. Infinite (never fires) with fewer than 2 cells.
        """
        if self.psi_alert > 0.0:
            return self.psi_alert
        level = self.categorical_level if categorical else self.numeric_level
        return _psi_critical(self.reference_size, current_size, cells, level)

    def mean_test(self, events: int) -> tuple[float, float]:
        """(standard error, critical |z|) of the long-window mean test over ``events`` scores.

        The statistic is the window's mean normal score minus the reference's,
        divided by the standard error; it fires beyond the critical value.
        """
        se, critical = _mean_critical(self.reference_size, events, self.mean_level)
        return se, (self.mean_z if self.mean_z_pinned else critical)

    def variance_test(self, events: int) -> tuple[float, float, float]:
        """(expected ratio, lower, upper critical ratio) of the long-window variance test.

        The statistic is R = 1 + (window variance of the scores - reference
        spread) / (spread of a continuous feature's scores): the variance
        ratio for a continuous feature, a diluted one for a tied feature.
        """
        law = _long_window_laws(self.reference_size, events)
        lower, upper = _variance_critical(self.reference_size, events, self.numeric_level / (2.0 * VARIANCE_MARGIN))
        return law.ratio_mean, lower, upper


@functools.lru_cache(maxsize=256)
def _mean_critical(n: int, events: int, level: float) -> tuple[float, float]:
    law = _long_window_laws(n, events)
    return law.mean_se, _cornish_fisher(law.mean_kurtosis, 0.0, level / 2.0)


@dataclass(frozen=True, slots=True)
class _Law:
    mean_se: float
    mean_kurtosis: float
    ratio_mean: float
    ratio_se: float
    ratio_skew: float
    ratio_kurtosis: float


@functools.lru_cache(maxsize=256)
def _long_window_laws(n: int, events: int) -> _Law:
    """Null laws of a long window of ``events`` normal scores against a reference of n.

    Exact cumulants for a continuous feature, to the order that matters at
    the levels used: given its reference, a stream's scores are i.i.d. over
    the n + 1 gap scores g with Dirichlet(1, ..., 1) weights D, so the
    stream's own mean score sum(D g) (the reference's estimation error, the
    same for ever) and the window's sampling error add up. The r-th cumulant
    of sum(D c) for centred c is close to (r - 1)! sum(c^r) / (n + 1)^r
    (normalized exponentials); the window's is that of a mean of ``events``
    i.i.d. values. The same holds for the squared deviations d = (g - mean)^2
    behind the variance test. Both are then nearly, not exactly, normal:
    the critical values use the Cornish-Fisher expansion with these
    cumulants (docs/calibration.md checks them by simulation).
    """
    g = gap_scores(n) - self_score_moments(n)[0]
    k = n + 1.0
    v = float(np.mean(g * g) - np.mean(g) ** 2)
    c = g - g.mean()
    mean_k2 = v / events + v / (n + 2.0)
    mean_k4 = (float(np.mean(c**4)) - 3.0 * v * v) / events**3 + 6.0 * float(np.sum(c**4)) / k**4
    d = g * g
    dc = d - d.mean()
    var_d = float(np.mean(dc**2))
    ratio_k2 = (var_d / events + var_d / (n + 2.0)) / v**2
    ratio_k3 = (float(np.mean(dc**3)) / events**2 + 2.0 * float(np.sum(dc**3)) / k**3) / v**3
    ratio_k4 = ((float(np.mean(dc**4)) - 3.0 * var_d**2) / events**3 + 6.0 * float(np.sum(dc**4)) / k**4) / v**4
    return _Law(
        mean_se=math.sqrt(mean_k2),
        mean_kurtosis=mean_k4 / mean_k2**2,
        ratio_mean=(1.0 - 1.0 / (n + 2.0)) * (1.0 - 1.0 / events),
        ratio_se=math.sqrt(ratio_k2),
        ratio_skew=ratio_k3 / ratio_k2**1.5,
        ratio_kurtosis=ratio_k4 / ratio_k2**2,
    )


#: Simulated references behind the variance test's critical values (fixed seed:
#: the same thresholds on every run and every machine with the same numpy).
VARIANCE_DRAWS = 20_000
VARIANCE_SEED = 20260102
#: The semi-analytic law errs low in the far upper tail (by ~10% at 1e-4 and
#: more further out, docs/calibration.md); the level is halved to cover it.
VARIANCE_MARGIN = 2.0


@functools.lru_cache(maxsize=8)
def _variance_mixture(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per simulated reference: the stream's true score-variance ratio, the spread and
    the skewness of one squared deviation, relative to a continuous feature's spread.

    The long-window variance statistic mixes two errors of very different
    kinds: the window's sampling error (an average of many squared
    deviations, close to normal) and the reference's own estimation error
    (fixed for the stream's life, skewed). Their sum is skewed in a way no
    two-moment formula captures at the 1e-5 level, so the reference part is
    simulated (distribution-free for continuous features, as for the CUSUM
    table) and the window part is integrated analytically per reference.
    """
    g = gap_scores(n) - self_score_moments(n)[0]
    v = float(np.mean(g * g) - np.mean(g) ** 2)
    powers = np.stack([g**r for r in range(1, 7)], axis=1)
    rng = np.random.default_rng([VARIANCE_SEED, n])
    ratio, spread, skew = [], [], []
    for start in range(0, VARIANCE_DRAWS, 2000):
        weights = rng.dirichlet(np.ones(n + 1), size=min(2000, VARIANCE_DRAWS - start))
        raw = weights @ powers  # raw moments M_1..M_6 of the score under each reference
        c = raw[:, 0]

        def central(k: int) -> np.ndarray:
            out = (-c) ** k
            for j in range(1, k + 1):
                out = out + math.comb(k, j) * raw[:, j - 1] * (-c) ** (k - j)
            return out

        mu2, mu4, mu6 = central(2), central(4), central(6)
        # d = (z - centre)^2 - mu2: variance and third moment.
        var_d = np.maximum(mu4 - mu2**2, 1e-12)
        third = mu6 - 3.0 * mu2 * mu4 + 2.0 * mu2**3
        ratio.append(mu2 / v)
        spread.append(np.sqrt(var_d) / v)
        skew.append(third / var_d**1.5)
    return np.concatenate(ratio), np.concatenate(spread), np.concatenate(skew)


@functools.lru_cache(maxsize=256)
def _variance_critical(n: int, events: int, tail: float) -> tuple[float, float]:
    """(lower, upper) critical ratios with ``tail`` probability beyond each, unconditionally."""
    ratio, spread, skew = _variance_mixture(n)
    centre = ratio * (1.0 - 1.0 / events)
    scale = spread / math.sqrt(events)
    gamma = skew / math.sqrt(events)

    def exceed(r: float, upper: bool) -> float:
        x = (r - centre) / scale
        if not upper:
            x, g3 = -x, -gamma
        else:
            g3 = gamma
        # One-term Edgeworth correction for the window mean's own skewness.
        tail_x = _normal_sf(x)
        density = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return float(np.mean(np.clip(tail_x + density * g3 / 6.0 * (x * x - 1.0), 0.0, 1.0)))

    bounds = []
    for upper in (False, True):
        inner, outer = 1.0, (1.0 + 10.0 * float(spread.mean())) if upper else 0.0
        for _ in range(40):
            middle = 0.5 * (inner + outer)
            if exceed(middle, upper) > tail:
                inner = middle
            else:
                outer = middle
        bounds.append(outer)
    return bounds[0], bounds[1]


def _normal_sf(x: np.ndarray) -> np.ndarray:
    """P(Z > x), vectorized: Chebyshev fit of erfc (relative error < 1.2e-7, Numerical
    Recipes' erfcc), plenty for tail probabilities that are averaged and bisected."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0.0, 0.5 * erfc, 1.0 - 0.5 * erfc)


def _cornish_fisher(kurtosis: float, skew: float, tail: float) -> float:
    """Upper ``tail`` quantile, in standard deviations, of a law with this skewness and
    excess kurtosis (Cornish-Fisher to the fourth cumulant). Pass -skew for the lower
    tail of the same law, as a positive distance below the mean."""
    z = float(-normal_ppf(np.array([tail]))[0])
    return (
        z
        + (z * z - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * kurtosis / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0
    )


@functools.lru_cache(maxsize=256)
def _psi_critical(n: int, m: int, cells: int, level: float) -> float:
    if cells < 2:
        return math.inf
    return PSI_MARGIN * (1.0 / n + 1.0 / m) * chi2_isf(level, cells - 1)


def _two_sided_z(level: float) -> float:
    return float(-normal_ppf(np.array([level / 2.0]))[0])


def calibrate(settings: "DetectionSettings") -> Calibration:
    """The thresholds for ``settings`` (cached: settings are frozen and hashable)."""
    return _calibrate(settings)


@functools.lru_cache(maxsize=64)
def _calibrate(settings: "DetectionSettings") -> Calibration:
    th = settings.thresholds
    budget = 1.0 / settings.expected_run_length
    numeric_rate = budget / len(NUMERIC_DETECTORS)
    categorical_rate = budget / len(CATEGORICAL_DETECTORS)
    numeric_level = min(0.5, settings.evaluate_every * numeric_rate)
    categorical_level = min(0.5, settings.evaluate_every * categorical_rate)
    n, m = settings.reference_size, settings.window_size
    ks_level = numeric_level
    if n * m / (n + m) < KS_SMALL_SAMPLE:
        ks_level /= KS_SMALL_SAMPLE_FACTOR
    return Calibration(
        expected_run_length=settings.expected_run_length,
        numeric_rate=numeric_rate,
        categorical_rate=categorical_rate,
        numeric_level=numeric_level,
        categorical_level=categorical_level,
        cusum_k=th.cusum_k,
        cusum_h=th.cusum_h or cusum_h(n, numeric_rate, th.cusum_k),
        mean_level=numeric_level,
        mean_z=th.mean_z or _two_sided_z(numeric_level),
        mean_z_pinned=th.mean_z > 0.0,
        ks_p_value=th.ks_p_value or ks_level,
        chi_square_p_value=th.chi_square_p_value or categorical_level,
        new_category_p_value=th.new_category_p_value or categorical_level,
        psi_alert=th.psi_alert,
        reference_size=n,
    )


# --------------------------------------------------------------------------- CUSUM


def _table_curve(n: int) -> np.ndarray:
    """log10 rate at each tabulated h for a reference of n values (interpolated in log n)."""
    sizes = np.log(np.asarray(cusum_table.REFERENCE_SIZES, dtype=np.float64))
    rows = np.asarray(cusum_table.LOG10_RATE, dtype=np.float64)
    # Monte Carlo noise must not make the curve rise with h.
    rows = np.minimum.accumulate(rows, axis=1)
    x = math.log(n)
    if x <= sizes[0]:
        return rows[0]
    if x >= sizes[-1]:
        # A larger reference only lowers the rate: the last row is conservative.
        return rows[-1]
    j = int(np.searchsorted(sizes, x)) - 1
    t = (x - sizes[j]) / (sizes[j + 1] - sizes[j])
    return (1.0 - t) * rows[j] + t * rows[j + 1]


def cusum_rate(h: float, n: int, k: float = cusum_table.CUSUM_K) -> float:
    """Expected false alarms per event of the two-sided mean CUSUM (k, h) with a reference of n.

    From the simulated table at the tabulated k and reference sizes (200 and
    up), else from Siegmund's approximation integrated over the reference's
    estimation error, with a margin (it is on the safe side of a simulation at
    references of 50 and 100 too).
    """
    if k == cusum_table.CUSUM_K and n >= cusum_table.REFERENCE_SIZES[0]:
        curve = _table_curve(n)
        grid = np.asarray(cusum_table.H_GRID, dtype=np.float64)
        if h <= grid[-1]:
            return float(10.0 ** np.interp(h, grid, curve))
        # log rate is asymptotically linear in h: extend the last segment.
        slope = (curve[-1] - curve[-2]) / (grid[-1] - grid[-2])
        return float(10.0 ** (curve[-1] + slope * (h - grid[-1])))
    return SIEGMUND_MARGIN * _siegmund_rate(h, n, k)


@functools.lru_cache(maxsize=128)
def cusum_h(n: int, rate: float, k: float = cusum_table.CUSUM_K) -> float:
    """The decision interval at which the two-sided mean CUSUM false-alarms ``rate`` times per event."""
    low, high = 0.0, 1.0
    while cusum_rate(high, n, k) > rate:
        low, high = high, 2.0 * high
        if high > 1e6:
            raise ValueError(f"no CUSUM threshold reaches a rate of {rate} with k = {k} and a reference of {n}")
    for _ in range(100):
        middle = 0.5 * (low + high)
        if cusum_rate(middle, n, k) > rate:
            low = middle
        else:
            high = middle
        if high - low < 1e-6:
            break
    return round(high, 4)


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _siegmund_rate(h: float, n: int, k: float) -> float:
    """Siegmund's ARL for normal increments, averaged over the stream's true score mean
    and variance, which the reference's sampling makes random (Gaussian quadrature)."""
    g = gap_scores(n)
    variance = float(g.var())
    mean_sd = math.sqrt(variance / (n + 2))
    second_sd = math.sqrt(float((g * g).var()) / (n + 2))
    mu = (_NODES * mean_sd)[:, None]
    second = variance + (_NODES * second_sd)[None, :]
    sigma = np.sqrt(np.maximum(second - mu * mu, 1e-6))
    weights = _WEIGHTS[:, None] * _WEIGHTS[None, :]
    total = 0.0
    for sign in (1.0, -1.0):
        delta = (sign * mu - k) / sigma
        b = h / sigma + 1.166
        with np.errstate(over="ignore"):
            arl = np.where(
                np.abs(delta) < 1e-9,
                b * b,
                (np.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * np.maximum(delta * delta, 1e-18)),
            )
        total += float(np.sum(weights / arl))
    return total
