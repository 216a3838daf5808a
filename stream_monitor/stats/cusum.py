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

Why integers: in floating point the closed form rounds differently from the
recursion, and differently again when a stream is cut into batches at other
places (a restart after a crash, a slower poll), so a replayed stream ended
with sums that differed in the last bits. The scores are therefore summed as
fixed-point integers (units of 2^-32, far below any meaningful shift); integer
sums are exact and associative, so the sums after any cut of the stream into
batches are the recursion's, to the last bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["TwoSidedCusum"]

_FIRST_CHUNK = 4096
_MAX_CHUNK = 65_536


#: Fixed-point unit of the sums: 2^-32 of a standard deviation (see the module doc).
_UNIT = 2.0**32
#: Row 0 runs the upward sum on increments z - k, row 1 the downward one on -z - k.
_SIDES = np.array([[1], [-1]], dtype=np.int64)


def _to_units(value: float) -> int:
    return int(round(value * _UNIT))


def _lindley_path(increments: np.ndarray, start: np.ndarray) -> np.ndarray:
    """S_1..S_n of S_t = max(0, S_{t-1} + x_t) from S_0 = start, vectorized (integers: exact).

    Along the last axis: the upper and lower sums run as the two rows of one
    array, in half the numpy calls.
    """
    cumulative = np.cumsum(increments, axis=-1)
    floor = np.minimum.accumulate(cumulative, axis=-1)
    np.minimum(floor, np.negative(start), out=floor)
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

    __slots__ = ("_k", "_h", "_k_units", "_h_units", "_upper_units", "_lower_units", "_drift_detected", "_direction")

    def __init__(self, k: float, h: float) -> None:
        if not k >= 0.0:
            raise ValueError(f"CUSUM allowance k must be non-negative, got {k}")
        if not h > 0.0:
            raise ValueError(f"CUSUM decision interval h must be positive, got {h}")
        self._k = float(k)
        self._h = float(h)
        self._k_units = _to_units(self._k)
        # S > h exactly when S in units exceeds floor(h in units): S is an integer.
        self._h_units = math.floor(self._h * _UNIT)
        self._upper_units = 0
        self._lower_units = 0
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
        return self._upper_units / _UNIT

    @property
    def lower(self) -> float:
        """S-: accumulated evidence that the mean went down."""
        return self._lower_units / _UNIT

    @property
    def statistic(self) -> float:
        """The larger of the two sums, i.e. how close the detector is to firing."""
        return max(self._upper_units, self._lower_units) / _UNIT

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
            self._upper_units = self._lower_units = 0
            self._drift_detected = False
            self._direction = None

        # Scan in chunks that double from _FIRST_CHUNK: an alarm early in a
        # big batch then costs little more than the values it consumed, and
        # the cumulative sums stay far from the int64 range (65,536 x 2^34).
        start, size = 0, _FIRST_CHUNK
        while start < z.size:
            chunk = np.rint(z[start : start + size] * _UNIT).astype(np.int64)
            increments = chunk * _SIDES
            increments -= self._k_units
            paths = _lindley_path(increments, np.array([[self._upper_units], [self._lower_units]], dtype=np.int64))
            over = self._h_units
            alarms = np.flatnonzero((paths > over).any(axis=0)) if paths.max() > over else ()
            last = int(alarms[0]) if len(alarms) else chunk.size - 1
            self._upper_units = int(paths[0, last])
            self._lower_units = int(paths[1, last])
            if len(alarms):
                self._drift_detected = True
                self._direction = "up" if self._upper_units >= self._lower_units else "down"
                return start + last + 1
            start += chunk.size
            size = min(2 * size, _MAX_CHUNK)
        return z.size

    def to_state(self) -> dict[str, Any]:
        return {
            "k": self._k,
            "h": self._h,
            "upper": self.upper,
            "lower": self.lower,
            "drift_detected": self._drift_detected,
            "direction": self._direction,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TwoSidedCusum":
        detector = cls(state["k"], state["h"])
        # Exact: the stored floats are integers times 2^-32 (< 2^53); an older
        # checkpoint's floats round to the nearest unit.
        detector._upper_units = _to_units(float(state["upper"]))
        detector._lower_units = _to_units(float(state["lower"]))
        detector._drift_detected = bool(state["drift_detected"])
        detector._direction = state["direction"]
        return detector


def update_many(detectors: list[TwoSidedCusum], z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Feed many detectors at once: detector i gets the next ``counts[i]`` scores of ``z``.

    Why: a model has thousands of streams and each gets a few dozen values
    per batch, so one :meth:`TwoSidedCusum.update` per stream is mostly call
    overhead. Concatenated, the sums of all detectors are one cumulative sum,
    and the running minimum restarts per detector because each detector's
    stretch is shifted below all earlier ones by more than the whole range
    of the sums (integers: the shift is exact and undone exactly).

    A detector whose stretch raises an alarm is left untouched, exactly as
    it was: its stretch must be fed through ``update`` (which stops at the
    alarm) by the caller. Returns the mask of those detectors. The sums of
    the others are those ``update`` would have reached, to the last bit. All
    detectors must share k and h; every count must be positive.
    """
    size = len(detectors)
    alarmed = np.zeros(size, dtype=bool)
    if not size:
        return alarmed
    if not (np.asarray(counts) > 0).all():
        raise ValueError("update_many needs at least one score per detector")
    k_units, h_units = detectors[0]._k_units, detectors[0]._h_units
    if any(d._k_units != k_units or d._h_units != h_units for d in detectors):
        raise ValueError("update_many needs detectors with the same k and h")
    units = np.rint(np.asarray(z, dtype=np.float64) * _UNIT).astype(np.int64)
    increments = units * _SIDES
    increments -= k_units
    cumulative = np.cumsum(increments, axis=1)
    ends = np.cumsum(counts)
    starts = ends - counts
    segment = np.repeat(np.arange(size), counts)
    before = np.zeros((2, size), dtype=np.int64)
    before[:, 1:] = cumulative[:, starts[1:] - 1]
    cumulative -= before[:, segment]  # each detector's own cumulative sums C_t
    span = int(cumulative.max()) - int(cumulative.min()) + 1
    if span * size >= 2**62:
        return np.ones(size, dtype=bool)  # the shifts would overflow: one by one instead
    shift = np.arange(size, dtype=np.int64) * span
    floor = np.minimum.accumulate(cumulative - shift[segment], axis=1)
    floor += shift[segment]
    start = np.array(
        [(0, 0) if d._drift_detected else (d._upper_units, d._lower_units) for d in detectors], dtype=np.int64
    ).T
    np.minimum(floor, -start[:, segment], out=floor)
    paths = cumulative - floor
    peaks = np.maximum.reduceat(paths.max(axis=0), starts)
    alarmed = peaks > h_units
    quiet = np.flatnonzero(~alarmed)
    ends_of_quiet = paths[:, ends[quiet] - 1].tolist()
    for i, upper, lower in zip(quiet.tolist(), *ends_of_quiet):
        detector = detectors[i]
        detector._upper_units = upper
        detector._lower_units = lower
        detector._drift_detected = False
        detector._direction = None
    return alarmed
