"""A feature called like a reserved signal (``prediction``, ``label``, ``latency_ms``, ``score:<class>``) is a
signal of its own: its own streams, alerts, alert ids, checkpoint entries and metric series. Every other
feature keeps the name, stream keys and alert ids it always had."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.core.alerts import Kind, alert_id
from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.engine import BatchResult, MonitorEngine, ingest
from stream_monitor.core.events import RawMessage, Reason
from stream_monitor.core.model import Signal
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.shards import owns_signal, signal_shard, split_batch
from stream_monitor.core.signals import feature_signal, is_reserved, signal_name
from stream_monitor.core.state_codec import decode_state, encode_state
from stream_monitor.spec import MonitorSpec, load_spec

#: Small windows: a few thousand events make a reference, windows and detections.
SETTINGS = DetectionSettings(reference_size=200, window_size=100, evaluate_every=50)
RESERVED_KIND = {
    "prediction": Kind.PREDICTION_DRIFT,
    "score:a": Kind.PREDICTION_DRIFT,
    "label": Kind.LABEL_DRIFT,
    "latency_ms": Kind.LATENCY_DRIFT,
}
N = 3000
SHIFT_AT = 1500


def messages(events, partitions=1):
    return [
        RawMessage(orjson.dumps(e), topic="predictions", partition=i % partitions, offset=i // partitions)
        for i, e in enumerate(events)
    ]


def look_alike_events(name: str, n: int = N, feature_shift: float = 0.0, signal_shift: float = 0.0, seed: int = 1):
    """Events of model ``m`` with a feature called ``name`` next to the reserved signal ``name``.

    The feature is N(100, 1) in every event, the reserved signal about 0.3
    (sd 0.05) in two events of three: the two never overlap, and each stream's
    count says whose values it holds. The shifts move the feature (in its sd)
    or the signal (in its own sd) from event ``SHIFT_AT`` on.
    """
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        after = i >= SHIFT_AT
        event = {
            "event_id": str(i),
            "model": "m",
            "timestamp": 1_767_225_600 + i,
            "features": {name: float(rng.normal(100.0 + (feature_shift if after else 0.0), 1.0)), "x": float(rng.normal())},
        }
        if i % 3:
            value = float(np.clip(rng.normal(0.3 + (signal_shift * 0.05 if after else 0.0), 0.05), 0.0, 1.0))
            if name == "score:a":
                event["prediction"] = "a"  # a class label: the scores are watched
                event["scores"] = {"a": value, "b": 1.0 - value}
            else:
                event[name] = value
        events.append(event)
    return events


def process(msgs, spec=None, batch=1000):
    """The engine, and the alerts, rejections and latest drift scores of processing ``msgs`` in batches."""
    engine = MonitorEngine(spec or MonitorSpec(defaults=SETTINGS), clock=lambda: 1_767_300_000.0)
    alerts, rejections, scores = [], [], {}
    for start in range(0, len(msgs), batch):
        result = engine.process(msgs[start : start + batch])
        alerts += result.alerts
        rejections += result.rejections
        scores.update(result.drift_scores)
    return engine, alerts, rejections, scores


def values_in(stream) -> int:
    """Values a numeric stream has taken: its reference, then every value since."""
    assert stream.ready
    return stream.reference.size + stream.seen


@pytest.mark.parametrize("name", ["prediction", "label", "latency_ms", "score:a"])
def test_a_feature_called_like_a_reserved_signal_gets_streams_of_its_own(name):
    engine, alerts, rejections, scores = process(messages(look_alike_events(name)))
    assert rejections == [] and alerts == []
    monitor = engine.models["m"]
    feature = f"feature:{name}"
    assert monitor.signals[feature] == Signal(feature, Kind.DATA_DRIFT, "numeric")
    assert monitor.signals[name] == Signal(name, RESERVED_KIND[name], "numeric")
    assert monitor.signals["x"] == Signal("x", Kind.DATA_DRIFT, "numeric")
    # exact counts: the feature is in every event, the signal in two of three
    assert values_in(monitor.streams[(feature, "", "")]) == N
    assert values_in(monitor.streams[(name, "", "")]) == N - N // 3
    assert values_in(monitor.streams[("x", "", "")]) == N
    # and the values are each one's own: the feature's about 100, the signal's within [0, 1]
    assert monitor.streams[(feature, "", "")].reference.summary()["min"] > 90
    assert monitor.streams[(name, "", "")].reference.summary()["max"] <= 1.0
    # metric series apart too
    assert {f for (_, f, _) in scores} >= {feature, name}


@pytest.mark.parametrize("name", ["prediction", "label", "latency_ms", "score:a"])
def test_drift_of_the_feature_alerts_on_the_feature_only(name):
    _, alerts, rejections, _ = process(messages(look_alike_events(name, feature_shift=5.0)))
    assert rejections == [] and alerts
    feature = f"feature:{name}"
    assert {(a.feature, a.kind) for a in alerts} == {(feature, Kind.DATA_DRIFT)}
    assert min(a.source["offset"] for a in alerts) >= SHIFT_AT
    for a in alerts:
        assert a.key == f"m|{feature}|all".encode()  # the Kafka key of the feature's own stream
    # alert ids of the feature's stream: the first warning and the first critical, by their occurrence
    first = {a.severity: a.alert_id for a in reversed(alerts)}
    for severity, got in first.items():
        assert got == alert_id("m", feature, {}, f"{severity}:1")
        assert got != alert_id("m", name, {}, f"{severity}:1")


@pytest.mark.parametrize("name", ["prediction", "label", "latency_ms", "score:a"])
def test_drift_of_the_reserved_signal_alerts_on_the_signal_only(name):
    _, alerts, rejections, _ = process(messages(look_alike_events(name, signal_shift=5.0)))
    assert rejections == [] and alerts
    assert {(a.feature, a.kind) for a in alerts} == {(name, RESERVED_KIND[name])}
    first = {a.severity: a.alert_id for a in reversed(alerts)}
    for severity, got in first.items():
        assert got == alert_id("m", name, {}, f"{severity}:1")  # the id it always had


def test_a_renamed_feature_does_not_collide_with_a_feature_of_that_name():
    """``feature:prediction`` is the feature ``prediction``'s name: a feature already called so moves aside too."""
    events = look_alike_events("prediction", n=900)
    for i, event in enumerate(events):
        event["features"]["feature:prediction"] = f"c{i % 3}"  # categorical
        event["features"]["feature:feature:label"] = -5.0
    engine, alerts, rejections, _ = process(messages(events))
    assert rejections == [] and alerts == []
    signals = engine.models["m"].signals
    assert set(signals) == {
        "x", "feature:prediction", "feature:feature:prediction", "feature:feature:feature:label", "prediction"
    }
    assert signals["feature:prediction"].value_type == "numeric"
    assert signals["feature:feature:prediction"].value_type == "categorical"


NAME_PARTS = st.sampled_from(["feature:", "score:", "prediction", "label", "latency_ms", "x", ":", "feature", " "])


@settings(derandomize=True, database=None, max_examples=500)
@given(st.lists(NAME_PARTS, max_size=4).map("".join), st.lists(NAME_PARTS, max_size=4).map("".join))
def test_signal_names_are_one_to_one_and_never_reserved(a, b):
    assert not is_reserved(feature_signal(a))
    assert (feature_signal(a) == feature_signal(b)) == (a == b)
    stripped = a
    while stripped.startswith("feature:"):
        stripped = stripped[len("feature:") :]
    assert (feature_signal(a) == a) == (not is_reserved(stripped))
    assert signal_name(a, Kind.DATA_DRIFT) == feature_signal(a)
    assert signal_name(a, Kind.PREDICTION_DRIFT) == a  # the reserved signals keep their names


def test_ordinary_features_keep_their_names_stream_keys_and_alert_ids():
    """Names near the reserved ones but not equal stay as they are; so do their alert ids (consumers de-duplicate by id)."""
    # the alert id of a stream, pinned: it must never change
    assert alert_id("credit-risk", "income", {"region": "eu-west"}, "critical:1") == "30aba0523795c8ac031b1209a65f67e6"
    assert alert_id("m", "x", {}, "warning:1") == "3fb10a9d9fe8c9b616a9557bc934d4d8"
    names = ["x", "Prediction", "predictions", "prediction ", "labels", "latency", "score", "scores:a", "feature:x",
             "feature:", "feature:score", "prediction:x", "feature"]
    rng = np.random.default_rng(3)
    events = [
        {"event_id": str(i), "model": "m", "timestamp": 1_767_225_600 + i, "segment": {"region": "eu" if i % 2 else "us"},
         "features": {name: float(rng.normal(5.0 if (name == "feature:x" and i >= SHIFT_AT) else 0.0)) for name in names}}
        for i in range(N)
    ]
    engine, alerts, rejections, _ = process(messages(events))
    monitor = engine.models["m"]
    assert list(monitor.signals) == names
    assert {key for key in monitor.streams} == {(n, *segment) for n in names for segment in [("", ""), ("region", "eu"), ("region", "us")]}
    assert alerts and {a.feature for a in alerts} == {"feature:x"}
    count: Counter = Counter()
    for a in alerts:
        segment = tuple(a.segment.items())[0] if a.segment else ("", "")
        count[(*segment, a.severity)] += 1
        assert a.alert_id == alert_id("m", "feature:x", a.segment, f"{a.severity}:{count[(*segment, a.severity)]}")


@pytest.mark.parametrize("name", ["prediction", "score:a"])
def test_shards_route_the_feature_by_its_signal_name(name):
    """A shard owns the feature by the name its alerts carry; sharded and whole runs give the same alerts."""
    msgs = messages(look_alike_events(name, feature_shift=5.0), partitions=2)
    spec = MonitorSpec(defaults=SETTINGS)
    whole, _, _, _ = process(msgs, spec)
    shards = 4
    assert signal_shard(f"feature:{name}", shards) != signal_shard(name, shards)
    engine = MonitorEngine(spec, clock=lambda: 1_767_300_000.0)
    result = BatchResult()
    for start in range(0, len(msgs), 1000):
        for model_batch in ingest(msgs[start : start + 1000], spec).batches:
            for k, part in enumerate(split_batch(model_batch, shards)):
                assert all(signal_shard(f"feature:{n}" if n == name and kind == Kind.DATA_DRIFT else n, shards) == k
                           for n, kind in part.numeric_signals)
                engine.evaluate(ModelBatch.from_bytes(part.to_bytes()), into=result, shard=(k, shards))
    engine.flush(into=result, force=True)
    feature = f"feature:{name}"
    assert result.alerts and {a.feature for a in result.alerts} == {feature}
    owner = ("m", signal_shard(feature, shards), shards)
    assert all(owns_signal(owner, a.feature) for a in result.alerts)
    assert (feature, "", "") in engine.models[owner].streams
    assert encode_state(engine.models[owner].streams[(feature, "", "")].to_state()) == encode_state(
        whole.models["m"].streams[(feature, "", "")].to_state()
    )


def write_spec(tmp_path: Path, text: str):
    path = tmp_path / "monitor.toml"
    path.write_text(text)
    return load_spec(path)


def test_spec_declarations_by_name_mean_the_feature_not_the_reserved_signal(tmp_path):
    """``[models.m.features] prediction = ...`` and ``segment_keys = ["prediction"]`` are about the feature."""
    spec = write_spec(
        tmp_path,
        '[defaults]\nreference_size = 200\nwindow_size = 100\nevaluate_every = 50\n'
        '[models.m]\nsegment_keys = ["prediction"]\n'
        '[models.m.features]\nprediction = "categorical"\n',
    )
    rng = np.random.default_rng(5)
    events = [
        {"event_id": str(i), "model": "m", "timestamp": 1_767_225_600 + i,
         "features": {"prediction": "hi" if i % 2 else "lo", "x": float(rng.normal())},
         "prediction": float(rng.uniform())}  # numeric: not made categorical by the declaration
        for i in range(1200)
    ]
    engine, alerts, rejections, _ = process(messages(events), spec)
    assert rejections == [] and alerts == []
    monitor = engine.models["m"]
    assert monitor.signals["feature:prediction"] == Signal("feature:prediction", Kind.DATA_DRIFT, "categorical")
    assert monitor.signals["prediction"] == Signal("prediction", Kind.PREDICTION_DRIFT, "numeric")
    # segmented by the feature's two values, not by the prediction's thousand
    assert set(monitor.slots) == {"prediction"}
    assert {key[1:] for key in monitor.streams} == {("", ""), ("prediction", "hi"), ("prediction", "lo")}
    admitted_after = spec.model("m").detection.segment_min_events - 1  # events of a value before its streams exist
    assert values_in(monitor.streams[("prediction", "", "")]) == 1200
    assert values_in(monitor.streams[("prediction", "prediction", "hi")]) == 600 - admitted_after
    assert values_in(monitor.streams[("x", "prediction", "lo")]) == 600 - admitted_after

    # declared numeric: a string in the feature is a mismatch, a string prediction is not
    spec = write_spec(tmp_path, '[models.m.features]\nprediction = "numeric"\n')
    bad = [
        {"event_id": "0", "model": "m", "features": {"prediction": "oops"}, "prediction": 0.5},
        {"event_id": "1", "model": "m", "features": {"prediction": 1.5}, "prediction": "yes"},
    ]
    result = MonitorEngine(spec).process(messages(bad))
    (rejection,) = result.rejections
    assert rejection.reason == Reason.FEATURE_TYPE_MISMATCH and rejection.message.offset == 0
    assert "feature 'prediction' (monitored as 'feature:prediction')" in rejection.detail
    assert "declare the feature categorical" in rejection.detail


def test_type_mismatches_name_the_feature_or_the_signal():
    events = [{"event_id": str(i), "model": "m", "features": {"prediction": 1.0}, "prediction": 0.5} for i in range(4)]
    events[2]["features"]["prediction"] = "oops"
    events[3]["prediction"] = "yes"
    result = MonitorEngine(MonitorSpec.default()).process(messages(events))
    feature, signal = result.rejections
    assert feature.message.offset == 2 and signal.message.offset == 3
    assert feature.detail.startswith("feature 'prediction' (monitored as 'feature:prediction') of model 'm' is numeric")
    assert signal.detail.startswith("'prediction' of model 'm' is numeric (inferred from its first value)")
    assert "monitor spec" not in signal.detail and "same type" in signal.detail  # the spec can't declare the prediction
    # the dead letter re-encodes each value where it came from
    assert orjson.loads(signal.message.value)["features"] == {"prediction": 1.0}
    assert orjson.loads(signal.message.value)["prediction"] == "yes"


def test_checkpoints_keep_the_feature_apart():
    msgs = messages(look_alike_events("prediction", feature_shift=5.0))
    spec = MonitorSpec(defaults=SETTINGS)
    straight, straight_alerts, _, _ = process(msgs, spec)
    first, alerts, _, _ = process(msgs[:2000], spec)
    state = decode_state(encode_state(first.models["m"].to_state()))
    assert ["feature:prediction", Kind.DATA_DRIFT, "numeric"] in state["signals"]
    assert ["prediction", Kind.PREDICTION_DRIFT, "numeric"] in state["signals"]
    restored = MonitorEngine(spec, clock=lambda: 1_767_300_000.0)
    restored.monitor_for("m").restore(state)
    for start in range(2000, N, 1000):
        alerts += restored.process(msgs[start : start + 1000]).alerts
    assert [a.alert_id for a in alerts] == [a.alert_id for a in straight_alerts]
    assert encode_state(restored.models["m"].to_state()) == encode_state(straight.models["m"].to_state())


def test_a_checkpoint_that_mixed_a_feature_into_a_reserved_signal_restarts_that_signal():
    """Earlier versions filed a feature ``prediction`` under the prediction's name, typed by whichever came first:
    such a signal starts a new reference on restore, and its alert counts carry on (alert ids never repeat)."""
    events = [{"event_id": str(i), "model": "m", "timestamp": 1_767_225_600 + i,
               "features": {"prediction": float(i % 7), "x": float(i % 5)}} for i in range(600)]
    engine, _, _, _ = process(messages(events))
    state = decode_state(encode_state(engine.models["m"].to_state()))
    # what the old code wrote: the feature under the reserved name
    rename = {"feature:prediction": "prediction"}
    state["signals"] = [[rename.get(n, n), k, t] for n, k, t in state["signals"]]
    state["streams"] = [[[rename.get(key[0], key[0]), *key[1:]], s] for key, s in state["streams"]]
    state["alert_counts"] = [[["prediction", "", ""], {"warning": 2}], [["x", "", ""], {"warning": 1}]]
    state["drifting"] = [[["prediction", "", ""], "warning"]]
    monitor = MonitorEngine(MonitorSpec(defaults=SETTINGS)).monitor_for("m")
    monitor.restore(state)
    assert set(monitor.signals) == {"x"} and set(monitor.streams) == {("x", "", "")}
    assert monitor.drifting == {}
    assert monitor.alert_counts == {("prediction", "", ""): {"warning": 2}, ("x", "", ""): {"warning": 1}}
