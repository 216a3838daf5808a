"""TwoSidedCusum: the closed form against the textbook loop, and its run lengths."""

import numpy as np
import pytest

from stream_monitor.stats.cusum import TwoSidedCusum, update_many


def naive_alarms(z, k, h):
    """Per-value reference implementation: (alarm index, direction) list and final sums."""
    upper = lower = 0.0
    alarms = []
    reset = False
    for i, x in enumerate(z):
        if reset:
            upper = lower = 0.0
            reset = False
        upper = max(0.0, upper + x - k)
        lower = max(0.0, lower - x - k)
        if upper > h or lower > h:
            alarms.append((i, "up" if upper >= lower else "down"))
            reset = True
    return alarms, upper, lower


def run_batched(detector, z, chunk_sizes):
    """Feed z in the given chunk sizes, re-feeding the remainder after each alarm."""
    alarms = []
    position = 0
    for size in chunk_sizes:
        chunk = z[position : position + size]
        offset = 0
        while offset < chunk.size:
            consumed = detector.update(chunk[offset:])
            assert consumed >= 1
            offset += consumed
            if detector.drift_detected:
                alarms.append((position + offset - 1, detector.direction))
        position += size
    assert position >= z.size
    return alarms


def drifting_scores(seed, n=20_000):
    """N(0,1) with mean shifts up and down, so both sides alarm repeatedly."""
    rng = np.random.default_rng(seed)
    means = np.repeat(rng.choice([-1.5, 0.0, 0.0, 1.5], size=n // 500), 500)
    return rng.normal(size=n) + means


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k,h", [(0.5, 5.0), (0.25, 8.0), (0.0, 3.0)])
def test_whole_batch_matches_naive_loop(seed, k, h):
    z = drifting_scores(seed)
    expected_alarms, expected_upper, expected_lower = naive_alarms(z, k, h)
    assert len({d for _, d in expected_alarms}) == 2  # both sides exercised
    detector = TwoSidedCusum(k, h)
    alarms = run_batched(detector, z, [z.size])
    assert alarms == expected_alarms
    assert detector.upper == pytest.approx(expected_upper, abs=1e-9)
    assert detector.lower == pytest.approx(expected_lower, abs=1e-9)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_alarm_positions_do_not_depend_on_batching(seed):
    z = drifting_scores(seed)
    reference = TwoSidedCusum(0.5, 5.0)
    reference_alarms = run_batched(reference, z, [z.size])
    rng = np.random.default_rng(seed + 100)
    sizes = rng.integers(1, 700, size=z.size)  # more than enough; the tail is empty
    detector = TwoSidedCusum(0.5, 5.0)
    alarms = run_batched(detector, z, [int(s) for s in sizes])
    assert alarms == reference_alarms and len(alarms) > 10
    assert detector.drift_detected == reference.drift_detected
    # Different chunkings round the cumulative sums differently: equal to ~1e-12.
    assert detector.upper == pytest.approx(reference.upper, abs=1e-9)
    assert detector.lower == pytest.approx(reference.lower, abs=1e-9)


def test_state_round_trip_continues_identically():
    z = drifting_scores(7)
    original = TwoSidedCusum(0.5, 5.0)
    run_batched(original, z[:9_000], [9_000])
    restored = TwoSidedCusum.from_state(original.to_state())
    assert restored.to_state() == original.to_state()
    assert run_batched(restored, z[9_000:], [11_000]) == run_batched(original, z[9_000:], [11_000])
    assert restored.to_state() == original.to_state()


def test_state_holds_only_plain_values():
    detector = TwoSidedCusum(0.5, 4.0)
    detector.update(np.full(20, 3.0))
    state = detector.to_state()
    assert detector.drift_detected and state["direction"] == "up"
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in state.values())


def test_alarm_flag_lasts_until_the_next_update_then_resets():
    detector = TwoSidedCusum(0.5, 4.0)
    assert detector.update(np.full(10, -2.0)) == 3  # lower: 1.5, 3.0, 4.5 > 4
    assert detector.drift_detected and detector.direction == "down"
    assert detector.lower == pytest.approx(4.5) and detector.statistic == pytest.approx(4.5)
    assert detector.update(np.array([])) == 0 and detector.drift_detected  # empty: no change
    assert detector.update(np.array([0.0])) == 1
    assert not detector.drift_detected and detector.direction is None
    assert detector.upper == 0.0 and detector.lower == 0.0


def test_in_control_average_run_length():
    # Two-sided k=0.5, h=5 on N(0,1): ARL0 ~ 465 (Montgomery's table; each
    # one-sided chart alone is ~930 by Siegmund's approximation).
    z = np.random.default_rng(2024).normal(size=1_500_000)
    detector = TwoSidedCusum(0.5, 5.0)
    alarms = run_batched(detector, z, [100_000] * 15)
    run_lengths = np.diff([-1] + [i for i, _ in alarms])
    assert run_lengths.size > 2_500
    assert 430 < run_lengths.mean() < 500


def test_one_sd_shift_is_detected_quickly():
    rng = np.random.default_rng(99)
    delays = []
    for _ in range(300):
        detector = TwoSidedCusum(0.5, 5.0)
        z = rng.normal(1.0, 1.0, size=200)
        consumed = detector.update(z)
        assert detector.drift_detected and detector.direction == "up"
        delays.append(consumed)
    assert np.median(delays) < 15  # ARL1 for a 1-sd shift at h=5 is ~10.4


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        TwoSidedCusum(-0.1, 5.0)
    with pytest.raises(ValueError):
        TwoSidedCusum(0.5, 0.0)


def test_sums_are_identical_to_the_last_bit_however_the_stream_is_cut():
    # A restarted worker cuts a stream into batches at other places than an
    # uninterrupted one; its checkpointed sums must still be the same bits.
    rng = np.random.default_rng(77)
    z = rng.normal(0.3, 1.0, 30_000)
    whole = TwoSidedCusum(0.5, 8.0)
    alarms_whole = _alarm_positions(whole, [z])
    for seed in range(5):
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, z.size), size=40, replace=False))
        cut = TwoSidedCusum(0.5, 8.0)
        assert _alarm_positions(cut, np.split(z, cuts)) == alarms_whole
        assert (cut.upper, cut.lower) == (whole.upper, whole.lower)
    assert len(alarms_whole) > 10
    # A sum that never resets (no allowance, a slow upward drift) keeps every
    # rounding it ever made: the sharpest check.
    drifting = rng.normal(0.05, 1.0, 30_000)
    long_whole = TwoSidedCusum(0.0, 1e9)
    long_whole.update(drifting)
    long_cut = TwoSidedCusum(0.0, 1e9)
    for piece in np.split(drifting, np.arange(997, drifting.size, 997)):
        long_cut.update(piece)
    assert long_cut.upper == long_whole.upper > 1000.0


def _alarm_positions(detector, pieces):
    positions, offset = [], 0
    for piece in pieces:
        i = 0
        while i < piece.size:
            i += detector.update(piece[i:])
            if detector.drift_detected:
                positions.append(offset + i - 1)
        offset += piece.size
    return positions


def test_update_many_reaches_the_sums_of_one_update_per_detector_or_leaves_the_detector_alone():
    """Concatenated feeding is the same as feeding each detector its own values; an alarm is left to ``update``."""
    rng = np.random.default_rng(17)
    alarmed_seen = quiet_seen = 0
    for trial in range(200):
        detectors = [TwoSidedCusum(0.5, 4.0 if trial % 2 else 14.0) for _ in range(int(rng.integers(1, 25)))]
        for detector in detectors:  # some start mid-alarm, some with sums built up
            detector.update(rng.normal(rng.choice([0.0, 0.0, 1.5]), 1.0, size=int(rng.integers(1, 60))))
        counts = rng.integers(1, 150, size=len(detectors))
        z = rng.normal(rng.choice([0.0, 0.4]), 1.0, size=int(counts.sum()))
        before = [detector.to_state() for detector in detectors]
        alone = [TwoSidedCusum.from_state(state) for state in before]
        alarmed = update_many(detectors, z, counts)
        for i, start in enumerate(np.cumsum(counts) - counts):
            piece = z[start : start + counts[i]]
            consumed = alone[i].update(piece)
            if alarmed[i]:
                alarmed_seen += 1
                assert alone[i].drift_detected
                assert detectors[i].to_state() == before[i]
            else:
                quiet_seen += 1
                assert consumed == piece.size and not alone[i].drift_detected
                assert detectors[i].to_state() == alone[i].to_state()
    assert alarmed_seen > 50 and quiet_seen > 500


def test_update_many_needs_one_k_and_h():
    with pytest.raises(ValueError, match="same k and h"):
        update_many([TwoSidedCusum(0.5, 4.0), TwoSidedCusum(0.25, 4.0)], np.zeros(2), np.array([1, 1]))
