"""Advancing a signal's streams together gives each stream what advancing it alone gives."""

import dataclasses

import numpy as np
import pytest

from stream_monitor.core.evaluations import NumericEvaluations
from stream_monitor.core.numeric_batch import advance_streams
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.state_codec import encode_state
from stream_monitor.core.streams import NumericStream

SETTINGS = DetectionSettings()


def _stream_values(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary, shifted (CUSUM alarms, then window tests), or tied values."""
    values = rng.normal(size=size)
    if kind == 1:
        values[size // 3 :] += 1.5
    elif kind == 2:
        values = np.round(rng.exponential(2.0, size=size))
    elif kind == 3:
        values[size // 2 :] *= 3.0
    return values


def _detections(found) -> list[dict]:
    return [dataclasses.asdict(d) for d in found]


@pytest.mark.parametrize("odd_reference", [False, True], ids=["one_size", "restored_other_size"])
def test_streams_advanced_together_match_streams_updated_alone(odd_reference):
    rng = np.random.default_rng(23)
    count = 12
    series = [_stream_values(i % 4, int(rng.integers(3_000, 9_000)), rng) for i in range(count)]
    clocks = [np.arange(s.size, dtype=np.float64) * 0.5 + i for i, s in enumerate(series)]
    together = [NumericStream(SETTINGS) for _ in range(count)]
    alone = [NumericStream(SETTINGS) for _ in range(count)]
    # One stream was checkpointed when the reference size was another: its
    # reference (and score table) differ in size, and the bulk path must fall
    # back to advancing streams one by one, with the same result.
    if odd_reference:
        older = NumericStream(DetectionSettings(reference_size=400))
        older.update(rng.normal(size=600), np.arange(600, dtype=np.float64))
        together[0] = NumericStream.from_state(SETTINGS, older.to_state())
        alone[0] = NumericStream.from_state(SETTINGS, older.to_state())
        assert together[0].reference is not None and together[0].reference.size == 400
    positions = [0] * count
    batches = 0
    found_together: list[list[dict]] = [[] for _ in range(count)]
    found_alone: list[list[dict]] = [[] for _ in range(count)]
    while any(p < s.size for p, s in zip(positions, series)):
        evaluations = NumericEvaluations(SETTINGS)
        members, values, times, cuts = [], [], [], []
        for i in range(count):
            take = int(rng.integers(0, 700))
            if take == 0 or positions[i] >= series[i].size:
                continue
            cut = slice(positions[i], positions[i] + take)
            positions[i] = min(series[i].size, positions[i] + take)
            members.append(i)
            values.append(series[i][cut])
            times.append(clocks[i][cut])
            cuts.append(cut)
        advance_streams([together[i] for i in members], values, times, evaluations)
        for i, v, t in zip(members, values, times):
            found_together[i] += _detections(together[i].resolve(evaluations))
            found_alone[i] += _detections(alone[i].update(v, t))
        batches += 1
    assert batches > 10
    assert sum(len(f) for f in found_alone) >= 6  # alarms and window verdicts happened
    assert found_together == found_alone
    for a, b in zip(together, alone):
        assert encode_state(a.to_state()) == encode_state(b.to_state())


@pytest.mark.parametrize("before,after", [(500, 1000), (1000, 500)])
def test_a_stream_restored_under_another_window_size_tests_whole_windows_of_the_new_size(before, after):
    """The settings may change between a checkpoint and its restore; the window must follow them."""
    rng = np.random.default_rng(before)
    values = rng.normal(size=6_000)
    times = np.arange(values.size, dtype=np.float64)
    old = NumericStream(DetectionSettings(window_size=before))
    old.update(values[:3_000], times[:3_000])
    settings = DetectionSettings(window_size=after)
    stream = NumericStream.from_state(settings, old.to_state())
    evaluations = NumericEvaluations(settings)
    stream.advance(values[3_000:], times[3_000:], evaluations)
    results = evaluations.run()
    assert evaluations.rows > 0 and results.windows.shape[1] == after
    # Every filed window is the `after` values that end at its block's last value.
    ends = [p + 1 for p, _, _ in stream._steps]
    seen = np.concatenate((values[:3_000][-min(before, after) :], values[3_000:]))
    for row, end in enumerate(ends):
        stop = min(before, after) + end
        np.testing.assert_array_equal(results.windows[row], seen[stop - after : stop])
    assert stream.resolve(evaluations) == []  # stationary values: no false alarm
