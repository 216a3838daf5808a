"""Columnar batches cross the internal topic exactly; checkpoints restore monitors exactly."""

import numpy as np
import orjson

from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.engine import MonitorEngine, ingest
from stream_monitor.core.events import RawMessage
from stream_monitor.core.state_codec import decode_state, encode_state
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate
from stream_monitor.spec import MonitorSpec


def messages(events, partitions=1):
    return [
        RawMessage(orjson.dumps(e), topic="predictions", partition=i % partitions, offset=i // partitions)
        for i, e in enumerate(events)
    ]


def assert_batches_equal(a: ModelBatch, b: ModelBatch):
    for field in ModelBatch.__slots__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        else:
            assert x == y, field


def test_model_batch_wire_round_trip():
    events = list(generate(credit_risk_profile(), 500, seed=1))
    events[3]["features"]["income"] = None
    events[4]["features"]["channel"] = 7  # a number where strings are usual
    (batch,) = ingest(messages(events, partitions=3)).batches
    assert len(batch) == 500
    assert_batches_equal(batch, ModelBatch.from_bytes(batch.to_bytes()))
    assert batch.progress == {("predictions", 0): 166, ("predictions", 1): 166, ("predictions", 2): 165}
    row = orjson.loads(batch.row_json(0))
    assert row["event_id"] == events[0]["event_id"] and row["features"]["age"] == events[0]["features"]["age"]


def test_replayed_rows_are_applied_once():
    msgs = messages(generate(credit_risk_profile(), 6000, seed=2), partitions=2)
    once = MonitorEngine(MonitorSpec.default())
    for start in range(0, 6000, 1000):
        once.process(msgs[start : start + 1000])
    twice = MonitorEngine(MonitorSpec.default())
    twice.process(msgs[:3000])
    replay = twice.process(msgs[2000:4000])  # a crashed ingest re-sends 2000..2999
    assert replay.replayed == 1000 and sum(replay.processed_by_model.values()) == 1000
    twice.process(msgs[4000:])
    assert encode_state(once.models["credit-risk"].to_state()) == encode_state(twice.models["credit-risk"].to_state())


def test_a_replay_inside_one_batch_is_applied_once():
    # Internal records evaluated together: the original rows and an ingest
    # replay of some of them (and of more) in one batch, as the worker may
    # put consecutive records of a monitor together.
    msgs = messages(generate(credit_risk_profile(), 6000, seed=2), partitions=2)
    once = MonitorEngine(MonitorSpec.default())
    for start in range(0, 6000, 1000):
        once.process(msgs[start : start + 1000])
    together = MonitorEngine(MonitorSpec.default())
    together.process(msgs[:1000])
    parts = [ingest(part).batches[0] for part in (msgs[1000:3000], msgs[2000:4000])]  # 2000..2999 twice
    result = together.evaluate(ModelBatch.concat(parts))
    assert result.replayed == 1000
    together.flush(force=True)
    together.process(msgs[4000:])
    assert encode_state(once.models["credit-risk"].to_state()) == encode_state(together.models["credit-risk"].to_state())


def test_checkpoint_restores_a_monitor_that_continues_identically():
    drift = Drift(feature="income", start=12_000, segment=("region", "eu-west"), magnitude=1.0)
    msgs = messages(generate(credit_risk_profile(), 20_000, seed=3, drifts=[drift]))
    uninterrupted = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    alerts_a = []
    for start in range(0, 20_000, 2000):
        alerts_a += uninterrupted.process(msgs[start : start + 2000]).alerts

    first = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    alerts_b = []
    for start in range(0, 10_000, 2000):
        alerts_b += first.process(msgs[start : start + 2000]).alerts
    checkpoint = encode_state(first.models["credit-risk"].to_state())

    restored = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    monitor = restored.monitor_for("credit-risk")
    monitor.restore(decode_state(checkpoint))
    for start in range(10_000, 20_000, 2000):
        alerts_b += restored.process(msgs[start : start + 2000]).alerts

    assert alerts_a and [a.alert_id for a in alerts_a] == [a.alert_id for a in alerts_b]
    assert encode_state(uninterrupted.models["credit-risk"].to_state()) == encode_state(monitor.to_state())


def test_state_codec_keeps_dtypes_nan_and_bytes():
    state = {"a": np.arange(5, dtype=np.int32), "b": [float("nan"), float("inf"), 1.5], "c": b"\x00\x01", "d": {(1, 2): "x"}}
    back = decode_state(encode_state(state))
    assert back["a"].dtype == np.int32 and back["a"].tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(back["b"][0]) and back["b"][1] == float("inf") and back["c"] == b"\x00\x01"
    assert back["d"] == {(1, 2): "x"}


def test_state_codec_round_trips_awkward_nodes_exactly():
    state = {
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10)[::3],
        "empty": np.zeros((0, 4), dtype=np.float32),
        "zero_d": np.array(2.5),
        "numpy_scalars": [np.float64(1.25), np.float32(0.5), np.int64(7), np.bool_(True)],
        "non_finite": {"nan": float("nan"), "inf": float("-inf"), "in_tuple": (float("inf"), 1.0), "numpy": np.float64("nan")},
        "marker_like_key": {"__nd__": 1},
        "tuple_keys": {("a", 1): None},
        "buffers": [bytearray(b"\x00\xff"), memoryview(b"ab")],
        "plain": {"s": "x", "i": 3, "b": False, "n": None, "f": -0.0},
    }
    back = decode_state(encode_state(state))
    assert back["fortran"].shape == (2, 3) and back["fortran"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert back["strided"].tolist() == [0, 3, 6, 9]
    assert back["empty"].shape == (0, 4) and back["empty"].dtype == np.float32
    assert back["zero_d"].shape == () and float(back["zero_d"]) == 2.5
    assert back["numpy_scalars"] == [1.25, 0.5, 7, True]
    non_finite = back["non_finite"]
    assert np.isnan(non_finite["nan"]) and non_finite["inf"] == float("-inf") and np.isnan(non_finite["numpy"])
    assert non_finite["in_tuple"] == [float("inf"), 1.0]
    assert back["marker_like_key"] == {"__nd__": 1} and back["tuple_keys"] == {("a", 1): None}
    assert back["buffers"] == [b"\x00\xff", b"ab"]
    assert back["plain"] == state["plain"] and str(back["plain"]["f"]) == "-0.0"
    assert encode_state(back) == encode_state(decode_state(encode_state(back)))  # a fixed point: deterministic bytes


def test_the_checkpoint_does_not_depend_on_where_the_batches_were_cut():
    # Streams cross into drift, and alert, in one batch or across two depending
    # on the cuts; a restarted worker, or one that takes several queued records
    # together, cuts elsewhere. The checkpoint must be the same bytes.
    drifts = [
        Drift(feature="income", start=12_000, magnitude=2.0),
        Drift(feature="debt_to_income", start=14_000, segment=("region", "apac"), magnitude=2.0),
    ]
    msgs = messages(generate(credit_risk_profile(), 24_000, seed=9, drifts=drifts))
    records = [ingest(msgs[start : start + 500]).batches[0] for start in range(0, len(msgs), 500)]

    def checkpoint(group_sizes) -> tuple[bytes, set[str]]:
        engine = MonitorEngine(MonitorSpec.default())
        alerts, start = set(), 0
        for size in group_sizes:
            alerts |= {a.alert_id for a in engine.evaluate(ModelBatch.concat(records[start : start + size])).alerts}
            start += size
        assert start == len(records)
        return encode_state(engine.models["credit-risk"].to_state()), alerts

    one_by_one, alerts = checkpoint([1] * len(records))
    assert len(alerts) > 10
    rng = np.random.default_rng(1)
    sizes, left = [], len(records)
    while left:
        sizes.append(int(min(left, rng.integers(1, 12))))
        left -= sizes[-1]
    assert checkpoint(sizes) == (one_by_one, alerts)
