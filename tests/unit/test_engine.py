"""The pure engine on synthetic traffic: no broker, exact expectations on fixed seeds."""

from collections import Counter

import numpy as np
import orjson
import pytest

from stream_monitor.core.engine import MonitorEngine
from stream_monitor.core.events import RawMessage, Reason
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate
from stream_monitor.spec import MonitorSpec

N = 20_000


def messages(events, topic="predictions"):
    return [
        RawMessage(orjson.dumps(e), topic=topic, partition=0, offset=i, timestamp_ms=None)
        for i, e in enumerate(events)
    ]


def run(msgs, batch=1000, engine=None):
    engine = engine or MonitorEngine(MonitorSpec.default(), clock=lambda: 1_767_300_000.0)
    alerts, rejections = [], []
    for start in range(0, len(msgs), batch):
        result = engine.process(msgs[start : start + batch])
        alerts += result.alerts
        rejections += result.rejections
    return engine, alerts, rejections


def segment_of(alert):
    return tuple(sorted(alert.segment.items()))


@pytest.fixture(scope="module")
def stationary():
    return messages(generate(credit_risk_profile(), N, seed=11))


@pytest.fixture(scope="module")
def income_shift():
    drift = Drift(feature="income", start=N // 2, segment=("region", "eu-west"), kind="mean_shift", magnitude=1.0)
    return messages(generate(credit_risk_profile(), N, seed=11, drifts=[drift]))


def test_stationary_stream_raises_no_alert(stationary):
    engine, alerts, rejections = run(stationary)
    assert rejections == []
    assert alerts == []
    # 12 signals (9 features, prediction, label, latency; the scores restate the numeric
    # prediction) x (all + 4 regions)
    assert engine.stream_count() == 12 * 5


def test_mean_shift_in_one_segment_alerts_exactly_that_feature_and_segment(income_shift):
    _, alerts, _ = run(income_shift)
    data = [a for a in alerts if a.kind == "data_drift"]
    assert {a.feature for a in data} == {"income"}
    assert {segment_of(a) for a in data} <= {(("region", "eu-west"),), ()}
    assert any(segment_of(a) == (("region", "eu-west"),) for a in data)
    # prediction drift, if any, follows the feature into the same population only
    for a in alerts:
        assert segment_of(a) in {(("region", "eu-west"),), ()}, a.feature
    # nothing fires before the change reaches the stream
    assert min(a.source["offset"] for a in alerts) >= N // 2
    critical = [a for a in data if a.severity == "critical" and a.segment == {"region": "eu-west"}]
    assert critical, "a 1-sd shift must be confirmed as critical by the window tests"
    alert = critical[0]
    assert alert.current["mean"] > alert.reference["mean"] * 1.3
    assert alert.tests["ks"]["p_value"] < 1e-6


def test_categorical_proportion_shift_is_detected():
    drift = Drift(feature="channel", start=N // 2, kind="category_shift", magnitude=0.2, target="branch")
    _, alerts, _ = run(messages(generate(credit_risk_profile(), N, seed=5, drifts=[drift])))
    channel = [a for a in alerts if a.feature == "channel"]
    assert channel and {a.detector for a in channel} <= {"chi_square", "psi"}
    aggregate = [a for a in channel if a.segment == {}]
    assert aggregate
    assert aggregate[0].current["top_shares"]["branch"] > aggregate[0].reference["top_shares"]["branch"] + 0.1
    assert {a.feature for a in alerts if a.kind == "data_drift"} == {"channel"}


def test_new_category_is_detected():
    drift = Drift(feature="employment_type", start=N // 2, kind="new_category", magnitude=0.1, target="gig_worker")
    _, alerts, _ = run(messages(generate(credit_risk_profile(), N, seed=6, drifts=[drift])))
    new = [a for a in alerts if a.detector == "new_category" and a.segment == {}]
    assert new and new[0].feature == "employment_type"
    assert "gig_worker" in new[0].current["top_shares"]


def test_alert_ids_do_not_depend_on_batching(income_shift):
    ids = [sorted(a.alert_id for a in run(income_shift, batch=b)[1]) for b in (1000, 337, N)]
    assert ids[0] and ids[0] == ids[1] == ids[2]


def test_alert_payload_points_at_the_triggering_event(income_shift):
    _, alerts, _ = run(income_shift)
    alert = alerts[0].to_dict()
    for field in ("alert_id", "schema_version", "kind", "severity", "model", "model_version", "feature", "segment",
                  "detector", "statistic", "threshold", "p_value", "window", "reference", "current", "detected_at", "source"):
        assert field in alert
    assert alert["model_version"] == "2.3.0"
    offset = alert["source"]["offset"]
    event = orjson.loads(income_shift[offset].value)
    assert alert["source"]["event_id"] == event["event_id"]
    assert alert["window"]["events"] > 0 and alert["window"]["first_event_at"] <= alert["window"]["last_event_at"]


def test_cooldown_keeps_a_persistent_drift_to_a_few_alerts(income_shift):
    _, alerts, _ = run(income_shift)
    per_stream = {}
    for a in alerts:
        per_stream.setdefault((a.feature, segment_of(a)), []).append(a.severity)
    # eu-west sees ~4,000 drifted events, less than the 5,000-event cooldown:
    # at most a warning, then its escalation to critical
    for (feature, segment), severities in per_stream.items():
        if segment:
            assert severities in (["warning"], ["critical"], ["warning", "critical"]), (feature, severities)
    # the aggregate sees 10,000 drifted events: one reminder at most, never a downgrade
    assert per_stream[("income", ())] in (["warning", "critical"], ["warning", "critical", "critical"])


def test_segment_values_are_capped_and_pooled():
    spec = MonitorSpec.default()
    engine = MonitorEngine(spec)
    settings = spec.model("m").detection
    rng = np.random.default_rng(0)
    # 60 heavy users (~160 events each) among 10,000 one-off users
    users = [f"heavy{(i // 2) % 60}" if i % 2 else f"once{i}" for i in range(20_000)]
    events = [
        {"event_id": str(i), "model": "m", "features": {"x": float(rng.normal())}, "segment": {"user": u}}
        for i, u in enumerate(users)
    ]
    engine.process(messages(events))
    monitor = engine.models["m"]
    segments = {key[2] for key in monitor.streams if key[1] == "user"}
    assert len(segments) == settings.max_segment_values + 1
    assert "__other__" in segments
    assert all(s.startswith("heavy") for s in segments - {"__other__"})


def test_numeric_feature_receiving_a_string_is_dead_lettered():
    events = [{"event_id": str(i), "model": "m", "features": {"x": 1.0 * i}} for i in range(10)]
    events.append({"event_id": "bad", "model": "m", "features": {"x": "oops"}})
    _, alerts, rejections = run(messages(events))
    (rejection,) = rejections
    assert rejection.reason == Reason.FEATURE_TYPE_MISMATCH
    assert "'x'" in rejection.detail and "categorical" in rejection.detail


def test_models_beyond_the_cap_are_rejected_not_dropped():
    engine = MonitorEngine(MonitorSpec.default(), max_models=2)
    events = [{"event_id": str(i), "model": f"m{i % 3}", "features": {"x": 1.0}} for i in range(9)]
    result = engine.process(messages(events))
    assert sorted(result.processed_by_model.values()) == [3, 3]
    assert len(result.rejections) == 3 and {r.reason for r in result.rejections} == {Reason.TOO_MANY_MODELS}


def test_stationary_heavy_tailed_and_discrete_features_stay_quiet():
    rng = np.random.default_rng(3)
    n = 30_000
    columns = {
        "lognormal": rng.lognormal(0, 1.2, n),
        "student_t3": rng.standard_t(3, n),
        "counts": rng.poisson(2.0, n).astype(float),
        "nearly_constant": np.where(rng.random(n) < 0.99, 5.0, 6.0),
    }
    events = [
        {"event_id": str(i), "model": "m", "features": {k: float(v[i]) for k, v in columns.items()}} for i in range(n)
    ]
    _, alerts, _ = run(messages(events), batch=2000)
    assert alerts == []


def test_detection_settings_come_from_the_spec():
    assert isinstance(MonitorSpec.default().model("anything").detection, DetectionSettings)
