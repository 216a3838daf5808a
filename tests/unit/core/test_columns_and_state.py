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
