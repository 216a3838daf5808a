"""RingBuffer against a deque(maxlen=...) model under random chunking."""

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.stats.windows import RingBuffer

chunks = st.lists(st.lists(st.integers(-1000, 1000), max_size=40), max_size=30)


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 25), batches=chunks)
def test_matches_a_deque_model(capacity, batches):
    window = RingBuffer(capacity, np.int64)
    model = deque(maxlen=capacity)
    total = 0
    for batch in batches:
        window.extend(np.array(batch, dtype=np.int64))
        model.extend(batch)
        total += len(batch)
        assert window.values().tolist() == list(model)
        assert len(window) == len(model)
        assert window.total == total
        assert window.is_full == (len(model) == capacity)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 25), before=chunks, after=chunks)
def test_state_round_trip_continues_identically(capacity, before, after):
    original = RingBuffer(capacity, np.float64)
    for batch in before:
        original.extend(np.array(batch, dtype=np.float64))
    state = original.to_state()
    assert all(isinstance(v, (int, str, np.ndarray)) for v in state.values())
    restored = RingBuffer.from_state(state)
    assert restored.dtype == original.dtype and restored.capacity == original.capacity
    for batch in after:
        original.extend(np.array(batch, dtype=np.float64))
        restored.extend(np.array(batch, dtype=np.float64))
        np.testing.assert_array_equal(restored.values(), original.values())
        assert restored.total == original.total and len(restored) == len(original)


def test_values_is_a_copy():
    window = RingBuffer(3)
    window.extend(np.array([1.0, 2.0, 3.0, 4.0]))
    snapshot = window.values()
    snapshot[:] = 0.0
    assert window.values().tolist() == [2.0, 3.0, 4.0]


def test_batch_longer_than_capacity_keeps_the_newest():
    window = RingBuffer(4, np.float32)
    window.extend(np.arange(2, dtype=np.float32))
    window.extend(np.arange(10, 20, dtype=np.float32))
    assert window.values().tolist() == [16.0, 17.0, 18.0, 19.0]
    assert window.values().dtype == np.float32 and window.total == 12


def test_rejects_bad_capacity():
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_last_values_are_the_tail_of_the_window_however_it_wrapped():
    rng = np.random.default_rng(8)
    window = RingBuffer(7, np.float64)
    seen: list[float] = []
    for _ in range(60):
        batch = rng.normal(size=int(rng.integers(0, 10)))
        window.extend(batch)
        seen += batch.tolist()
        for count in range(0, 9):
            held = min(count, 7, len(seen))
            assert window.last(count).tolist() == (seen[len(seen) - held :] if held else [])


def test_joined_is_the_window_then_the_values_from_any_start_however_it_wrapped():
    rng = np.random.default_rng(9)
    window = RingBuffer(7, np.uint16)
    for _ in range(60):
        values = rng.integers(0, 1000, size=int(rng.integers(0, 6))).astype(np.uint16)
        expected = np.concatenate((window.values(), values))
        for start in range(-2, expected.size + 3):
            joined = window.joined(values, start)
            assert joined.dtype == np.uint16
            assert joined.tolist() == expected[max(start, 0) :].tolist()
        window.extend(rng.integers(0, 1000, size=int(rng.integers(0, 10))).astype(np.uint16))
