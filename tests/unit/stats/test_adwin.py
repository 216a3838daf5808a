"""BlockAdwin: block means into river's ADWIN, batch-invariant and checkpointable."""

import numpy as np
import pytest

from stream_monitor.stats.adwin import BlockAdwin


def run_batched(detector, values, chunk_sizes):
    """Feed values in the given chunk sizes, re-feeding the remainder after each alarm."""
    alarms = []
    position = 0
    for size in chunk_sizes:
        chunk = values[position : position + size]
        offset = 0
        while offset < chunk.size:
            consumed = detector.update(chunk[offset:])
            assert consumed >= 1
            offset += consumed
            if detector.drift_detected:
                alarms.append(position + offset - 1)
        position += size
    assert position >= values.size
    return alarms


def shifting_stream(seed, segment=6_000, means=(0.0, 1.0, 0.0, -1.0, 0.0)):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(mean, 1.0, size=segment) for mean in means])


def test_detects_a_one_sd_shift_soon_after_it_happens():
    rng = np.random.default_rng(12)
    values = np.concatenate([rng.normal(0.0, 1.0, 10_000), rng.normal(1.0, 1.0, 10_000)])
    detector = BlockAdwin(delta=1e-5, block_size=32)
    alarms = run_batched(detector, values, [values.size])
    assert alarms, "the shift was missed"
    assert 10_000 <= alarms[0] < 10_000 + 2_500
    assert (alarms[0] + 1) % 32 == 0  # alarms land on block ends
    eager = BlockAdwin(delta=1e-5, block_size=32, clock=1)
    eager_alarms = run_batched(eager, values, [values.size])
    assert 10_000 <= eager_alarms[0] < alarms[0]  # checking every block finds it sooner


def test_quiet_on_stationary_data():
    values = np.random.default_rng(5).normal(size=200_000)
    for block_size, clock in ((1, 32), (32, 32), (32, 1)):
        detector = BlockAdwin(delta=1e-5, block_size=block_size, clock=clock)
        assert detector.update(values) == values.size
        assert not detector.drift_detected
        assert detector.width > 100_000  # the window kept growing: no silent resets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alarm_positions_do_not_depend_on_batching(seed):
    values = shifting_stream(seed)
    whole = BlockAdwin(delta=1e-3, block_size=25)
    expected = run_batched(whole, values, [values.size])
    assert len(expected) >= 3
    rng = np.random.default_rng(seed + 50)
    chunked = BlockAdwin(delta=1e-3, block_size=25)
    alarms = run_batched(chunked, values, [int(s) for s in rng.integers(1, 180, size=values.size)])
    assert alarms == expected
    assert chunked.pending == whole.pending
    assert chunked.estimation == whole.estimation and chunked.width == whole.width


def test_partial_blocks_carry_over():
    detector = BlockAdwin(delta=1e-5, block_size=10)
    assert detector.update(np.ones(7)) == 7 and detector.pending == 7 and detector.width == 0
    assert detector.update(np.ones(5)) == 5 and detector.pending == 2 and detector.width == 10
    assert detector.estimation == 1.0


def test_state_round_trip_continues_identically():
    values = shifting_stream(8)
    original = BlockAdwin(delta=1e-3, block_size=25, clock=4)
    run_batched(original, values[:13_013], [13_013])
    state = original.to_state()
    assert set(state) == {"delta", "block_size", "clock", "adwin", "pending", "drift_detected"}
    assert isinstance(state["adwin"], bytes) and isinstance(state["pending"], np.ndarray)
    restored = BlockAdwin.from_state(state)
    rest = values[13_013:]
    alarms = run_batched(original, rest, [rest.size])
    assert alarms and run_batched(restored, rest, [rest.size]) == alarms
    assert restored.estimation == original.estimation and restored.width == original.width


def test_round_trip_right_after_an_alarm():
    values = shifting_stream(9)
    original = BlockAdwin(delta=1e-3, block_size=25)
    consumed = 0
    while not original.drift_detected:
        consumed += original.update(values[consumed:])
    restored = BlockAdwin.from_state(original.to_state())
    assert restored.drift_detected
    rest = values[consumed:]
    assert run_batched(restored, rest, [rest.size]) == run_batched(original, rest, [rest.size])


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        BlockAdwin(delta=0.0, block_size=10)
    with pytest.raises(ValueError):
        BlockAdwin(delta=1e-3, block_size=0)
    with pytest.raises(ValueError):
        BlockAdwin(delta=1e-3, block_size=8, clock=0)
