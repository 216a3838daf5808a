"""Detection quality on small fixed-seed scenarios: the benchmark's properties, not its timings.

The full benchmark (``python -m benchmarks.detection``) measures the same
properties on 10 million stream-events per stationary scenario and 200 seeds
per drift; this keeps a fast, deterministic version of each claim in the
default suite, plus the stream-level contracts (batch invariance, checkpoints,
bounded memory) the detectors must keep.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import detection as bench
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.streams import CategoricalStream, NumericStream

SETTINGS = DetectionSettings()
REFERENCE = SETTINGS.reference_size
CHANGE = REFERENCE + bench.PRE_CHANGE


def first_delay(alarms: list[int], horizon: int = bench.HORIZON) -> int | None:
    return bench._first_after(alarms, CHANGE, horizon)


def drift(name: str, kind: str, magnitude: float, seed: int, categorical: bool = False) -> np.ndarray:
    rng = bench._seed(name, seed)
    n = CHANGE + bench.HORIZON
    if categorical:
        return bench.categorical_drift(kind, magnitude, rng, n, CHANGE)
    return bench.numeric_drift(kind, magnitude, rng, n, CHANGE)


# --------------------------------------------------------------------------- false alarms


STATIONARY = ["gaussian", "lognormal", "student_t3", "integer", "low_variance", "tiny_scale", "periodic"]


@pytest.fixture(scope="module")
def stationary_alarms() -> dict[str, tuple[int, int]]:
    """scenario -> (our alarms, monitored stream-events) on 6 streams x 21,000 events each."""
    out = {}
    for kind in STATIONARY:
        alarms = events = 0
        for seed in range(6):
            values = bench.stationary_numeric(kind, bench._seed(f"quality-{kind}", seed), REFERENCE + 20_000)
            alarms += len(bench.ours_alarms(values))
            events += values.size - REFERENCE
        out[kind] = (alarms, events)
    codes_alarms = codes_events = 0
    for seed in range(6):
        codes = bench.categorical_codes(bench._zipf_shares(), bench._seed("quality-zipf", seed), REFERENCE + 20_000)
        codes_alarms += len(bench.ours_alarms(codes, categorical=True, categories=40))
        codes_events += codes.size - REFERENCE
    out["categorical_zipf"] = (codes_alarms, codes_events)
    return out


def test_stationary_features_of_every_shape_stay_quiet(stationary_alarms):
    # 960,000 monitored stream-events; the default budget (1 per 1,000,000)
    # allows about one false alarm in expectation, and the detectors use less
    # than half of it. With these seeds: one CUSUM alarm on a Gaussian stream.
    events = sum(e for _, e in stationary_alarms.values())
    assert events == 8 * 6 * 20_000
    assert sum(a for a, _ in stationary_alarms.values()) <= 2
    # Heavy tails, ties and tiny spreads do not add false alarms.
    for kind in ("lognormal", "student_t3", "integer", "low_variance", "tiny_scale", "periodic", "categorical_zipf"):
        assert stationary_alarms[kind][0] == 0, kind


def test_river_defaults_cry_wolf_on_the_same_streams(stationary_alarms):
    values = bench.stationary_numeric("gaussian", bench._seed("quality-gaussian", 0), REFERENCE + 20_000)
    page_hinkley = len(bench.peer_alarms("PageHinkley", values, 0))
    kswin = len(bench.peer_alarms("KSWIN", values[:3000], 0))
    # PageHinkley ~3 per 1,000 events, KSWIN ~1 per 1,000: orders of magnitude
    # above our rate (0 here, at most ~1 per 1,000,000 by calibration).
    assert page_hinkley >= 20
    assert kswin >= 1


def test_many_streams_stay_within_the_family_promise():
    # 300 streams x 2,000 monitored events: the calibration promises at most
    # 0.6 expected false alarms for the family.
    alarms = 0
    for seed in range(300):
        values = bench._seed("quality-family", seed).normal(0.0, 1.0, REFERENCE + 2000)
        alarms += len(bench.ours_alarms(values))
    assert alarms <= 1


# --------------------------------------------------------------------------- detection


def test_one_sd_shift_is_caught_within_a_few_dozen_events_like_the_fastest_peer():
    ours, kswin = [], []
    for seed in range(20):
        values = drift("mean_1", "mean", 1.0, seed)
        ours.append(first_delay(bench.ours_alarms(values)))
        alarms = bench.peer_alarms("KSWIN", values, seed, start=CHANGE - bench.KSWIN_LEAD, stop_after=CHANGE)
        kswin.append(first_delay(alarms))
    assert None not in ours and None not in kswin
    assert np.median(ours) <= 40
    assert np.median(ours) <= 1.5 * np.median(kswin)


def test_quarter_sd_shift_is_caught_within_ten_thousand_events():
    delays = [first_delay(bench.ours_alarms(drift("mean_0.25", "mean", 0.25, seed))) for seed in range(20)]
    assert None not in delays and max(delays) <= 10_000


def test_doubled_variance_is_caught():
    delays = [first_delay(bench.ours_alarms(drift("variance_2", "variance", 2.0, seed))) for seed in range(10)]
    assert None not in delays and max(delays) <= 2000


def test_ten_point_categorical_shift_is_caught():
    delays = [
        first_delay(bench.ours_alarms(drift("category_10", "shift", 0.10, seed, categorical=True), categorical=True, categories=5))
        for seed in range(20)
    ]
    assert None not in delays


def test_new_category_is_caught_at_two_percent():
    delays = [
        first_delay(bench.ours_alarms(drift("new_category_2", "new", 0.02, seed, categorical=True), categorical=True, categories=5))
        for seed in range(10)
    ]
    assert None not in delays and max(delays) <= 2000


def test_drift_in_a_small_segment_is_caught_in_its_stream_not_in_the_aggregate():
    for seed in range(3):
        aggregate, segment, _ = bench.segment_values(bench._seed("quality-segment", seed), CHANGE + 5000, CHANGE)
        assert (first_delay(bench.ours_alarms(segment)) or 10**9) <= 100
        # 5% of the traffic moving 1 sd moves the aggregate 0.05 sd: within its noise.
        assert bench.ours_alarms(aggregate) == []


# --------------------------------------------------------------------------- stream contracts


def _feed(stream, values: np.ndarray, sizes: list[int]) -> list[tuple[str, int]]:
    timestamps = np.arange(values.size, dtype=np.float64)
    out, start = [], 0
    for size in sizes:
        chunk = slice(start, min(start + size, values.size))
        out += [(d.detector, start + d.position) for d in stream.update(values[chunk], timestamps[chunk])]
        start += size
        if start >= values.size:
            break
    return out


@pytest.mark.parametrize("categorical", [False, True], ids=["numeric", "categorical"])
def test_alarms_and_state_do_not_depend_on_batching_and_survive_a_checkpoint(categorical):
    if categorical:
        values = drift("category_20", "shift", 0.20, 1, categorical=True)
        make = lambda: CategoricalStream(SETTINGS, bench._codebook(5))  # noqa: E731
    else:
        # A mean shift, then a variance change: several detectors fire.
        values = drift("mean_1", "mean", 1.0, 1)
        values[CHANGE + 5000 :] *= 2.0
        make = lambda: NumericStream(SETTINGS)  # noqa: E731
    whole = _feed(make(), values, [values.size])
    assert len(whole) >= 2
    rng = np.random.default_rng(5)
    sizes = [int(s) for s in rng.integers(1, 900, size=values.size)]
    assert _feed(make(), values, sizes) == whole
    # Checkpoint mid-stream (mid-block), restore, continue: the same alarms.
    stream = make()
    cut = CHANGE + 137
    first = _feed(stream, values[:cut], [cut])
    state = stream.to_state()
    if categorical:
        restored = CategoricalStream.from_state(SETTINGS, bench._codebook(5), state)
    else:
        restored = NumericStream.from_state(SETTINGS, state)
    rest = [(d, p + cut) for d, p in _feed(restored, values[cut:], [values.size - cut])]
    assert first + rest == whole


def test_block_sums_are_exact_under_any_batching_and_across_a_checkpoint():
    """The long-window sums are summed per whole block, so they match to the last bit."""
    values = drift("mean_1", "mean", 1.0, 1)[: CHANGE + 3000]
    timestamps = np.arange(values.size, dtype=np.float64)

    def sums(stream) -> list:
        state = stream.to_state()
        return [state["block_sums"]["values"].tolist(), state["block_squares"]["values"].tolist()]

    whole = NumericStream(SETTINGS)
    whole.update(values, timestamps)
    pieces = NumericStream(SETTINGS)
    _feed(pieces, values, [int(s) for s in np.random.default_rng(7).integers(1, 400, size=values.size)])
    assert sums(pieces) == sums(whole)
    cut = CHANGE + 1137  # mid-block: the open block's scores are rebuilt from the window
    first = NumericStream(SETTINGS)
    first.update(values[:cut], timestamps[:cut])
    restored = NumericStream.from_state(SETTINGS, first.to_state())
    restored.update(values[cut:], timestamps[cut:])
    assert sums(restored) == sums(whole)


def _array_bytes(state) -> int:
    if isinstance(state, np.ndarray):
        return state.nbytes
    if isinstance(state, dict):
        return sum(_array_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_array_bytes(v) for v in state)
    return 8


def test_stream_state_stays_within_16_kb():
    numeric = NumericStream(SETTINGS)
    values = bench._seed("quality-memory", 0).normal(size=REFERENCE + 5000)
    numeric.update(values, np.arange(values.size, dtype=np.float64))
    categorical = CategoricalStream(SETTINGS, bench._codebook(40))
    codes = bench.categorical_codes(bench._zipf_shares(), bench._seed("quality-memory", 1), REFERENCE + 5000)
    categorical.update(codes, np.arange(codes.size, dtype=np.float64))
    assert _array_bytes(numeric.to_state()) <= 16 * 1024
    assert _array_bytes(categorical.to_state()) <= 16 * 1024
