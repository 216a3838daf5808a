import math

import orjson

from stream_monitor.core.alerts import Alert, alert_id


def make(**overrides):
    fields = dict(
        alert_id="x", kind="data_drift", severity="warning", model="m", model_version=None, feature="f",
        segment={"region": "eu"}, detector="ks", statistic=0.3, threshold=1e-6, p_value=math.nan,
        window={"events": 500}, reference={"mean": 0.30000000000000004}, current={"mean": 1 / 3},
        detected_at="2026-01-01T00:00:00Z", source={"topic": "t", "partition": 0, "offset": 1},
    )
    fields.update(overrides)
    return Alert(**fields)


def test_alert_id_is_deterministic_and_depends_on_every_part():
    base = alert_id("m", "f", {"a": "1", "b": "2"}, "critical:1")
    assert base == alert_id("m", "f", {"b": "2", "a": "1"}, "critical:1")
    variants = {
        alert_id("m2", "f", {"a": "1", "b": "2"}, "critical:1"),
        alert_id("m", "g", {"a": "1", "b": "2"}, "critical:1"),
        alert_id("m", "f", {"a": "1"}, "critical:1"),
        alert_id("m", "f", {"a": "1", "b": "2"}, "warning:1"),
        alert_id("m", "f", {"a": "1", "b": "2"}, "warning:2"),
        alert_id("m", "f", {"a": "1", "b": "2"}, "critical:2"),
    }
    assert base not in variants and len(variants) == 6


def test_json_is_strict_and_summaries_are_rounded():
    doc = orjson.loads(make().to_json())
    assert doc["schema_version"] == 1
    assert doc["p_value"] is None  # NaN is not JSON
    assert doc["reference"]["mean"] == 0.3 and doc["current"]["mean"] == 0.333333


def test_key_keeps_one_streams_alerts_together():
    assert make().key == b"m|f|region=eu"
    assert make(segment={}).key == b"m|f|all"
