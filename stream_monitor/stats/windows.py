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

__all__ = ["RingBuffer", "BlockCounts"]


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
        buffer = self._buffer
        if values.__class__ is not np.ndarray or values.ndim != 1:
            values = np.asarray(values, dtype=buffer.dtype).ravel()
        count = len(values)
        if count == 0:
            return
        capacity = len(buffer)
        self._total += count
        head = self._head
        if count >= capacity:
            buffer[:] = values[count - capacity :]
            self._head = 0
            self._size = capacity
            return
        first = capacity - head
        if count <= first:
            buffer[head : head + count] = values
        else:
            buffer[head:] = values[:first]
            buffer[: count - first] = values[first:]
        self._head = (head + count) % capacity
        size = self._size + count
        self._size = size if size < capacity else capacity

    def append(self, value: float) -> None:
        """Append one value: what ``extend`` does with a 1-element batch, without the array."""
        capacity = self._buffer.size
        self._buffer[self._head] = value
        self._head = (self._head + 1) % capacity
        self._size = min(self._size + 1, capacity)
        self._total += 1

    def values(self) -> np.ndarray:
        """A copy of the window, oldest first."""
        if self._size < self._buffer.size:
            # Not wrapped yet: values were written from index 0 on.
            return self._buffer[: self._size].copy()
        return np.concatenate((self._buffer[self._head :], self._buffer[: self._head]))

    def joined(self, values: np.ndarray, start: int = 0) -> np.ndarray:
        """The window followed by ``values``, from position ``start`` on: one new array.

        What ``np.concatenate((self.values(), values))[start:]`` gives, without
        the intermediate copies (an evaluation that reaches back into the
        window needs it for every one of a stream's arrays).
        """
        size, capacity = self._size, self._buffer.size
        start = min(max(start, 0), size + len(values))
        out = np.empty(size + len(values) - start, dtype=self._buffer.dtype)
        oldest = self._head if size == capacity else 0
        kept = size - min(start, size)  # window values in the output
        if kept:
            first = (oldest + size - kept) % capacity
            run = min(kept, capacity - first)
            out[:run] = self._buffer[first : first + run]
            out[run:kept] = self._buffer[: kept - run]
        out[kept:] = values[max(start - size, 0) :]
        return out

    def last(self, count: int) -> np.ndarray:
        """The newest ``count`` values (at most ``len()``), oldest first: a copy of just those."""
        count = min(count, self._size)
        start = (self._head - count) % self._buffer.size
        if start + count <= self._buffer.size:
            return self._buffer[start : start + count].copy()
        return np.concatenate((self._buffer[start:], self._buffer[: self._head]))

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


class BlockCounts:
    """Category counts of the last ``blocks`` closed blocks of a stream, plus the open one.

    A categorical window needs counts, not values: keeping one count vector
    per evaluation block lets a long window (thousands of events) cost
    ``blocks x categories`` small integers, and any suffix of whole blocks
    (the short window, the long one) is a sum of rows. Counts are integers,
    so the sums do not depend on how the stream was batched.
    """

    __slots__ = ("_rows", "_head", "_closed", "_open")

    def __init__(self, blocks: int, categories: int) -> None:
        if not isinstance(blocks, (int, np.integer)) or blocks < 1:
            raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
        if not isinstance(categories, (int, np.integer)) or categories < 1:
            raise ValueError(f"categories must be a positive integer, got {categories!r}")
        self._rows = np.zeros((int(blocks), int(categories)), dtype=np.int32)
        self._head = 0  # row the next closed block goes to; the oldest row once full
        self._closed = 0
        self._open = np.zeros(int(categories), dtype=np.int32)

    @property
    def blocks(self) -> int:
        """Closed blocks held (at most the capacity)."""
        return min(self._closed, self._rows.shape[0])

    @property
    def capacity(self) -> int:
        """Closed blocks it can hold."""
        return self._rows.shape[0]

    @property
    def categories(self) -> int:
        return self._rows.shape[1]

    def add(self, codes: np.ndarray) -> None:
        """Count codes (0 <= code < categories) into the open block."""
        codes = np.asarray(codes)
        if codes.size:
            self._open += np.bincount(codes, minlength=self.categories).astype(np.int32, copy=False)

    def close_block(self) -> None:
        """The open block becomes the newest closed one; the oldest falls out once full."""
        self._rows[self._head] = self._open
        self._head = (self._head + 1) % self._rows.shape[0]
        self._closed += 1
        self._open[:] = 0

    def extend(self, codes: np.ndarray, room: int, size: int) -> np.ndarray:
        """Count a run of codes into consecutive blocks; returns the blocks it closed, oldest first.

        The first ``room`` codes complete the open block, every ``size`` after
        that close another; the rest stays in the new open block. The same
        counts, rows and ring position as ``add`` and ``close_block`` at every
        boundary, with one bincount for the whole run.
        """
        codes = np.asarray(codes)
        categories = self.categories
        count = codes.size
        if not 0 < room <= size:
            raise ValueError(f"room must be in 1..{size}, got {room}")
        if count < room:
            self.add(codes)
            return np.empty((0, categories), dtype=np.int32)
        closes = 1 + (count - room) // size
        # Block of each code: 0 for the open block, then one per ``size`` codes.
        block = (np.arange(count) - room) // size + 1
        counts = np.bincount(block * categories + codes, minlength=(closes + 1) * categories)
        counts = counts.reshape(closes + 1, categories).astype(np.int32)
        counts[0] += self._open
        closed = counts[:closes]
        capacity = self._rows.shape[0]
        kept = min(closes, capacity)
        self._rows[(self._head + np.arange(closes - kept, closes)) % capacity] = closed[closes - kept :]
        self._head = (self._head + closes) % capacity
        self._closed += closes
        self._open[:] = counts[closes]
        return closed

    def rows(self) -> np.ndarray:
        """The held closed blocks' counts, oldest first (a copy)."""
        order = (self._head - self.blocks + np.arange(self.blocks)) % self._rows.shape[0]
        return self._rows[order]

    def counts(self, last: int | None = None) -> np.ndarray:
        """Counts over the newest ``last`` closed blocks (all held blocks by default), int64."""
        held = self.blocks
        take = held if last is None else min(int(last), held)
        rows = (self._head - 1 - np.arange(take)) % self._rows.shape[0]
        return self._rows[rows].sum(axis=0, dtype=np.int64)

    def to_state(self) -> dict[str, Any]:
        return {
            "capacity": int(self._rows.shape[0]),
            "rows": self.rows(),  # oldest first
            "closed": self._closed,
            "open": self._open.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "BlockCounts":
        rows = np.asarray(state["rows"], dtype=np.int32)
        window = cls(int(state["capacity"]), int(np.asarray(state["open"]).size))
        held = rows.shape[0]
        window._rows[:held] = rows
        window._head = held % window._rows.shape[0]
        window._closed = int(state["closed"])
        window._open[:] = np.asarray(state["open"], dtype=np.int32)
        return window
