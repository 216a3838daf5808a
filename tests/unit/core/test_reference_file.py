"""A reference file (e.g. a training sample) replaces the warm-up on live traffic."""

import orjson

from stream_monitor.core.engine import MonitorEngine
from stream_monitor.core.events import RawMessage
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate
from stream_monitor.spec import load_spec


def test_drift_from_the_first_live_event_is_caught_against_the_file(tmp_path):
    profile = credit_risk_profile()
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(orjson.dumps(e) for e in generate(profile, 6000, seed=1)))
    spec_path = tmp_path / "monitor.toml"
    spec_path.write_text('[models.credit-risk]\nreference_file = "reference.jsonl"\nsegment_keys = []\n')
    engine = MonitorEngine(load_spec(spec_path))
    engine.preload_references()
    monitor = engine.models["credit-risk"]
    assert monitor.streams[("income", "", "")].ready  # no warm-up on live traffic needed

    live = generate(profile, 3000, seed=2, drifts=[Drift(feature="age", start=0, kind="mean_shift", magnitude=1.0)])
    alerts = []
    for i, event in enumerate(live):
        alerts += engine.process([RawMessage(orjson.dumps(event), "t", 0, i)]).alerts
    age = [a for a in alerts if a.feature == "age" and a.segment == {}]
    assert age, "drift present from the first live event must be caught"
    assert age[0].reference["count"] == 1000 and min(a.source["offset"] for a in age) < 1000
    assert {a.feature for a in alerts if a.kind == "data_drift"} == {"age"}
