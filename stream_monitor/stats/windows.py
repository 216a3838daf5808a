"""The current window: the last ``capacity`` values of a stream.

A preallocated ring buffer rather than a deque or repeated concatenation: a
batch is written with at most two slice assignments, memory per stream is
fixed, and nothing is allocated on the hot path except the chronological copy
handed to a test when the window is evaluated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["RingBuffer"]


class RingBuffer:
    """Fixed-capacity sliding window over a stream of scalars.

    ``len()`` is how many values the window holds (at most ``capacity``);
    ``total`` counts every value ever added, which is what evaluation
    schedules ("every N events") are keyed on.
    """

    __slots__ = ("_buffer", "_head", "_size", "_total")

    def __init__(self, capacity: int, dtype: DTypeLike = np.float64) -> None:
        if not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self._buffer = np.zeros(int(capacity), dtype=dtype)
        self._head = 0  # where the next value goes; also the oldest value once full
        self._size = 0
        self._total = 0

    @property
    def capacity(self) -> int:
        return self._buffer.size

    @property
    def dtype(self) -> np.dtype:
        return self._buffer.dtype

    @property
    def total(self) -> int:
        """Values ever added, including those that have slid out."""
        return self._total

    @property
    def is_full(self) -> bool:
        return self._size == self._buffer.size

    def __len__(self) -> int:
        return self._size

    def extend(self, values: np.ndarray) -> None:
        """Append a batch; the oldest values fall out once the window is full."""
        values = np.asarray(values, dtype=self._buffer.dtype).ravel()
        count = values.size
        if count == 0:
            return
        capacity = self._buffer.size
        self._total += count
        if count >= capacity:
            self._buffer[:] = values[count - capacity :]
            self._head = 0
            self._size = capacity
            return
        first = min(count, capacity - self._head)
        self._buffer[self._head : self._head + first] = values[:first]
        self._buffer[: count - first] = values[first:]
        self._head = (self._head + count) % capacity
        self._size = min(self._size + count, capacity)

    def values(self) -> np.ndarray:
        """A copy of the window, oldest first."""
        if self._size < self._buffer.size:
            # Not wrapped yet: values were written from index 0 on.
            return self._buffer[: self._size].copy()
        return np.concatenate((self._buffer[self._head :], self._buffer[: self._head]))

    def to_state(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "dtype": self._buffer.dtype.str,
            "values": self.values(),
            "total": self._total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RingBuffer":
        window = cls(int(state["capacity"]), np.dtype(state["dtype"]))
        values = np.asarray(state["values"], dtype=window.dtype)
        window.extend(values)
        window._total = int(state["total"])
        return window
