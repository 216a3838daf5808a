"""Two-sided CUSUM on normal scores, updated a whole batch at a time.

The detector watches standardized values z (normal scores of a feature under
its reference), so one pair (k, h) fits every feature: under no drift z is
N(0, 1) whatever the raw distribution.

Why a closed form instead of a loop: the textbook recursion
S_t = max(0, S_{t-1} + x_t) is a Lindley recursion, and unrolling it gives

    S_t = C_t - min(-S_0, min_{s <= t} C_s),   C_t = x_1 + ... + x_t,

(induction: max(0, C_{t+1} + M_t) = C_{t+1} + max(-C_{t+1}, M_t) with
M_t = max(S_0, max_{s<=t} -C_s)). That is one cumsum and one running minimum
per side, so a batch of thousands of events costs a few numpy calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TwoSidedCusum"]

_FIRST_CHUNK = 256
_MAX_CHUNK = 65_536


def _lindley_path(increments: np.ndarray, start: float) -> np.ndarray:
    """S_1..S_n of S_t = max(0, S_{t-1} + x_t) from S_0 = start, vectorized."""
    cumulative = np.cumsum(increments)
    floor = np.minimum.accumulate(cumulative)
    np.minimum(floor, -start, out=floor)
    return cumulative - floor


class TwoSidedCusum:
    """Page's CUSUM for an upward and a downward shift of the mean of z.

    ``k`` is the allowance (half the shift, in standard deviations, the
    detector is tuned for) and ``h`` the decision interval. Upper and lower
    sums run side by side; an alarm is raised when either exceeds ``h``.

    Batch contract, shared with the other detectors: :meth:`update` consumes
    values from the front of the batch and stops right after the value that
    raised an alarm, returning how many it consumed. The caller then reads
    ``drift_detected`` / ``direction`` and feeds the remainder in a new call;
    that next call first resets both sums to 0. The alarm positions are
    therefore the same however a stream is cut into batches.
    """

    __slots__ = ("_k", "_h", "_upper", "_lower", "_drift_detected", "_direction")

    def __init__(self, k: float, h: float) -> None:
        if not k >= 0.0:
            raise ValueError(f"CUSUM allowance k must be non-negative, got {k}")
        if not h > 0.0:
            raise ValueError(f"CUSUM decision interval h must be positive, got {h}")
        self._k = float(k)
        self._h = float(h)
        self._upper = 0.0
        self._lower = 0.0
        self._drift_detected = False
        self._direction: str | None = None

    @property
    def k(self) -> float:
        return self._k

    @property
    def h(self) -> float:
        return self._h

    @property
    def upper(self) -> float:
        """S+: accumulated evidence that the mean went up."""
        return self._upper

    @property
    def lower(self) -> float:
        """S-: accumulated evidence that the mean went down."""
        return self._lower

    @property
    def statistic(self) -> float:
        """The larger of the two sums, i.e. how close the detector is to firing."""
        return max(self._upper, self._lower)

    @property
    def drift_detected(self) -> bool:
        """True right after the update whose last consumed value raised an alarm."""
        return self._drift_detected

    @property
    def direction(self) -> str | None:
        """'up' or 'down' while ``drift_detected``; None otherwise."""
        return self._direction

    def update(self, z: np.ndarray) -> int:
        """Feed normal scores; returns how many were consumed (see class doc).

        ``z`` must be finite: a NaN would poison the cumulative sums for the
        whole batch. An empty batch consumes nothing and changes nothing.
        """
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 1:
            raise ValueError(f"z must be one-dimensional, got shape {z.shape}")
        if z.size == 0:
            return 0
        if self._drift_detected:
            self._upper = self._lower = 0.0
            self._drift_detected = False
            self._direction = None

        # Scan in chunks that start small and double: an alarm early in a big
        # batch then costs about as much as the values it consumed, and the
        # cumulative sums stay short enough for rounding to stay ~1e-12.
        start, size = 0, _FIRST_CHUNK
        while start < z.size:
            chunk = z[start : start + size]
            upper = _lindley_path(chunk - self._k, self._upper)
            lower = _lindley_path(-chunk - self._k, self._lower)
            alarms = np.flatnonzero((upper > self._h) | (lower > self._h))
            last = int(alarms[0]) if alarms.size else chunk.size - 1
            self._upper = float(upper[last])
            self._lower = float(lower[last])
            if alarms.size:
                self._drift_detected = True
                self._direction = "up" if self._upper >= self._lower else "down"
                return start + last + 1
            start += chunk.size
            size = min(2 * size, _MAX_CHUNK)
        return z.size

    def to_state(self) -> dict[str, Any]:
        return {
            "k": self._k,
            "h": self._h,
            "upper": self._upper,
            "lower": self._lower,
            "drift_detected": self._drift_detected,
            "direction": self._direction,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TwoSidedCusum":
        detector = cls(state["k"], state["h"])
        detector._upper = float(state["upper"])
        detector._lower = float(state["lower"])
        detector._drift_detected = bool(state["drift_detected"])
        detector._direction = state["direction"]
        return detector
