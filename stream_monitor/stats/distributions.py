"""Tail probabilities and quantiles the drift tests need, without scipy.

The runtime must not depend on scipy (it is a heavy install for a service that
needs three functions of it), so the three distributions the tests lean on are
implemented here from their textbook series. Each one is written for the regime
the monitor actually hits: p-values far out in the tail (drift alerts fire at
p < 1e-6), so relative accuracy in the tail matters more than speed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kolmogorov_sf", "chi2_sf", "chi2_isf", "normal_ppf"]

# Below this point the alternating series of Q(x) needs many terms and cancels
# badly; above it the theta-function form for the CDF would need many terms.
# Both forms converge in a handful of terms on their own side of 1.18.
_KOLMOGOROV_SWITCH = 1.18
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_PI2_OVER_8 = math.pi * math.pi / 8.0


def kolmogorov_sf(x: float) -> float:
    """Survival function Q(x) = P(K > x) of the limiting Kolmogorov distribution.

    Why two forms: the defining series 2 * sum (-1)^(k-1) exp(-2 k^2 x^2) is
    exact in the tail (where drift alerts live) but needs ever more terms and
    loses digits to cancellation as x -> 0. Below x ~ 1.18 the Jacobi theta
    form of the CDF, K(x) = sqrt(2 pi)/x * sum exp(-(2k-1)^2 pi^2 / (8 x^2)),
    converges in a few terms instead, and Q = 1 - K loses nothing there
    because Q is not small.
    """
    x = float(x)
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if x < _KOLMOGOROV_SWITCH:
        w = _PI2_OVER_8 / (x * x)
        if w > 745.0:  # the CDF underflows: K(x) == 0 to double precision
            return 1.0
        cdf = 0.0
        for k in range(1, 8):
            term = math.exp(-((2 * k - 1) ** 2) * w)
            cdf += term
            if term < 1e-17 * cdf:
                break
        return max(0.0, 1.0 - _SQRT_2PI / x * cdf)
    total = 0.0
    sign = 1.0
    two_x2 = 2.0 * x * x
    for k in range(1, 20):
        term = math.exp(-two_x2 * k * k)  # underflows to 0.0 for large x, no exception
        total += sign * term
        if term <= 1e-17 * abs(total) or term == 0.0:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


_GAMMA_EPS = 1e-16
_GAMMA_TINY = 1e-300
_GAMMA_MAX_ITER = 100_000
_LOG_DOUBLE_TINY = -745.2  # exp() of anything smaller is exactly 0.0


def _log_gamma_kernel(a: float, x: float) -> float:
    """log(x^a e^-x / Gamma(a)): the prefactor shared by series and fraction.

    Kept in logs so the tail of chi-square statistics of 1e5 underflows to 0.0
    instead of overflowing intermediate powers.
    """
    return a * math.log(x) - x - math.lgamma(a)


def _lower_gamma_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its power series.

    Converges quickly for x < a + 1, where P is at most ~0.92, so the caller's
    1 - P keeps full relative accuracy on Q.
    """
    term = 1.0 / a
    total = term
    denominator = a
    for _ in range(_GAMMA_MAX_ITER):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            break
    return math.exp(_log_gamma_kernel(a, x) + math.log(total))


def _log_upper_gamma_fraction(a: float, x: float) -> float:
    """log Q(a, x) by the modified Lentz continued fraction, for x >= a + 1.

    This is the regime of large statistics and tiny p-values; returning the
    log lets the caller decide about underflow once, at the end.
    """
    b = x + 1.0 - a
    c = 1.0 / _GAMMA_TINY
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _GAMMA_TINY:
            d = _GAMMA_TINY
        c = b + an / c
        if abs(c) < _GAMMA_TINY:
            c = _GAMMA_TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _GAMMA_EPS:
            break
    return _log_gamma_kernel(a, x) + math.log(h)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square(df), i.e. the regularized Q(df/2, x/2).

    Returns 0.0 when the true value is below the smallest double instead of
    raising: an astronomically significant statistic is a valid outcome for a
    drifted stream, not an error.
    """
    x = float(x)
    if df <= 0:
        raise ValueError(f"chi-square degrees of freedom must be positive, got {df}")
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a = 0.5 * df
    half_x = 0.5 * x
    if half_x < a + 1.0:
        return max(0.0, 1.0 - _lower_gamma_series(a, half_x))
    log_q = _log_upper_gamma_fraction(a, half_x)
    if log_q < _LOG_DOUBLE_TINY:
        return 0.0
    return min(1.0, math.exp(log_q))


def chi2_isf(p: float, df: int) -> float:
    """The x with P(X > x) = p for X ~ chi-square(df): the critical value of a test at level p.

    Bisection on :func:`chi2_sf`, in log space where the tail lives, to a
    relative accuracy of ~1e-12. Used to tabulate critical values once per
    calibration, never per event.
    """
    p = float(p)
    if df <= 0:
        raise ValueError(f"chi-square degrees of freedom must be positive, got {df}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    target = math.log(p)
    low, high = 0.0, float(df) + 10.0 * math.sqrt(2.0 * df) + 10.0
    while chi2_sf(high, df) > p:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        sf = chi2_sf(middle, df)
        if sf > 0.0 and math.log(sf) > target:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


# Acklam's rational approximation of the normal quantile (relative error
# below 1.15e-9 before refinement).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _acklam_lower(q: np.ndarray) -> np.ndarray:
    """First guess of the quantile for q in (0, 0.5]: non-positive results."""
    x = np.empty_like(q)
    tail = q < _P_LOW
    if np.any(tail):
        t = np.sqrt(-2.0 * np.log(q[tail]))
        num = ((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]
        den = (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0
        x[tail] = num / den
    body = ~tail
    if np.any(body):
        s = q[body] - 0.5
        r = s * s
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * s
        den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
        x[body] = num / den
    return x


def normal_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF, elementwise, accurate to ~1e-15 relative.

    Why the symmetry fold: for p near 1, p itself carries an absolute error of
    1e-16 that a refinement against Phi(x) ~ 1 would amplify by 1/pdf(x). The
    upper half is therefore solved as -ppf(1 - p), where 1 - p is exact for
    p >= 0.5, and every refinement happens in the lower tail where erfc is
    accurate. One Halley step takes Acklam's 1e-9 to machine precision.

    Cost: math.erfc runs once per element in Python. This is meant for lookup
    tables built once (per reference), not for per-event hot paths.
    """
    p = np.asarray(p, dtype=np.float64)
    flat = p.ravel()
    out = np.full(flat.shape, np.nan)
    upper = flat > 0.5
    q = np.where(upper, 1.0 - flat, flat)
    inside = (q > 0.0) & (q <= 0.5)  # NaN and out-of-range p stay NaN
    if np.any(inside):
        qi = q[inside]
        x = _acklam_lower(qi)
        with np.errstate(over="ignore", invalid="ignore"):
            error = 0.5 * _erfc(-x / math.sqrt(2.0)).astype(np.float64) - qi
            u = error * _SQRT_2PI * np.exp(0.5 * x * x)
            refined = x - u / (1.0 + 0.5 * x * u)
        x = np.where(np.isfinite(refined), refined, x)
        out[inside] = np.minimum(x, 0.0)
    out[q == 0.0] = -np.inf
    out = np.where(upper, -out, out)
    return out.reshape(p.shape)
