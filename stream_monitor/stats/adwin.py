"""ADWIN fed with block means, so the hot path makes one call per block.

River's ADWIN takes one value per call. With thousands of streams, one Python
call per event per stream dominates the cost of the whole service, so each
stream's values are cut into consecutive blocks of ``block_size`` and ADWIN
sees one mean per block. Averaging also makes the input closer to normal and
lowers its variance, which is what ADWIN's Hoeffding-style bound is least
conservative on; the price is a detection delay of up to one block (on top of
ADWIN's own check interval, ``clock`` blocks in river).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from river.drift import ADWIN

__all__ = ["BlockAdwin"]


class BlockAdwin:
    """River's ADWIN over the means of consecutive blocks of ``block_size`` values.

    A partial block is carried over between calls, so block boundaries depend
    only on the position in the stream, never on how the stream was batched.

    Same batch contract as :class:`~stream_monitor.stats.cusum.TwoSidedCusum`:
    :meth:`update` returns how many values it consumed, stopping at the end of
    the block whose mean raised an alarm; ``drift_detected`` is then True until
    the next non-empty update. Note that river's ADWIN forgets its whole
    window on the update after a detection, so it needs a fresh grace period
    before it can fire again.

    ``clock`` is river's check interval, in blocks (river's default, 32). With
    blocks of 32 values that is one check per 1024 values, which dominates the
    detection delay; since block means already amortize the calls, a smaller
    clock (even 1) is cheap and roughly halves the delay on a 1-sd shift.
    """

    __slots__ = ("_delta", "_block_size", "_clock", "_adwin", "_pending", "_drift_detected")

    def __init__(self, delta: float, block_size: int, *, clock: int = 32) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"ADWIN delta must be in (0, 1), got {delta}")
        if not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if not isinstance(clock, (int, np.integer)) or clock < 1:
            raise ValueError(f"clock must be a positive integer, got {clock!r}")
        self._delta = float(delta)
        self._block_size = int(block_size)
        self._clock = int(clock)
        self._adwin = ADWIN(delta=self._delta, clock=self._clock)
        self._pending = np.empty(0, dtype=np.float64)
        self._drift_detected = False

    @property
    def delta(self) -> float:
        return self._delta

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def clock(self) -> int:
        return self._clock

    @property
    def drift_detected(self) -> bool:
        """True right after the update whose last block raised an alarm."""
        return self._drift_detected

    @property
    def estimation(self) -> float:
        """Mean of the values in ADWIN's current window (block means average to it)."""
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        """Length of ADWIN's current window, in values (blocks x block_size)."""
        return int(self._adwin.width) * self._block_size

    @property
    def pending(self) -> int:
        """Values waiting for their block to fill up."""
        return int(self._pending.size)

    def update(self, values: np.ndarray) -> int:
        """Feed values; returns how many were consumed (see class doc).

        Values must be finite; an empty batch consumes nothing and changes nothing.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
        if values.size == 0:
            return 0
        self._drift_detected = False

        carried = self._pending.size
        buffer = np.concatenate((self._pending, values))
        n_blocks = buffer.size // self._block_size
        means = buffer[: n_blocks * self._block_size].reshape(n_blocks, self._block_size).mean(axis=1)
        for index, mean in enumerate(means.tolist()):
            self._adwin.update(mean)
            if self._adwin.drift_detected:
                self._drift_detected = True
                self._pending = np.empty(0, dtype=np.float64)
                return (index + 1) * self._block_size - carried
        self._pending = buffer[n_blocks * self._block_size :].copy()
        return values.size

    def to_state(self) -> dict[str, Any]:
        """Checkpoint state; ``adwin`` is river's detector pickled to bytes.

        River's ADWIN is backed by a Rust object whose only serialization is
        pickle, so the state carries pickle bytes. Unpickling executes code:
        :meth:`from_state` must only ever be given states this service wrote to
        its own checkpoints, never data from outside.
        """
        return {
            "delta": self._delta,
            "block_size": self._block_size,
            "clock": self._clock,
            "adwin": pickle.dumps(self._adwin, protocol=pickle.HIGHEST_PROTOCOL),
            "pending": self._pending.copy(),
            "drift_detected": self._drift_detected,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "BlockAdwin":
        """Restore from :meth:`to_state` output of our own checkpoints only (pickle)."""
        detector = cls(state["delta"], state["block_size"], clock=state["clock"])
        detector._adwin = pickle.loads(state["adwin"])
        detector._pending = np.array(state["pending"], dtype=np.float64)
        detector._drift_detected = bool(state["drift_detected"])
        return detector
