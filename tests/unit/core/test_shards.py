"""Evaluation shards: a model batch cut by signal, evaluated shard by shard, gives the whole model's verdicts."""

import zlib
from collections import Counter

import numpy as np
import orjson
import pytest

from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.engine import BatchResult, MonitorEngine, ingest
from stream_monitor.core.events import RawMessage, Reason
from stream_monitor.core.shards import (
    ShardMonitor,
    checkpoint_name,
    decode_header,
    encode_header,
    parse_checkpoint_name,
    shard_partition,
    signal_shard,
    split_batch,
)
from stream_monitor.core.state_codec import encode_state
from stream_monitor.observability.metrics import Metrics
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate
from stream_monitor.spec import MonitorSpec, load_spec


def messages(events, partitions=1):
    return [
        RawMessage(orjson.dumps(e), topic="predictions", partition=i % partitions, offset=i // partitions)
        for i, e in enumerate(events)
    ]


def decoded_segments(batch: ModelBatch) -> dict[str, list]:
    return {
        key: [batch.strings[c] if c >= 0 else None for c in batch.segments[:, j].tolist()]
        for j, key in enumerate(batch.segment_keys)
    }


def decoded_categorical(batch: ModelBatch, j: int) -> list:
    return [batch.strings[c] if c >= 0 else None for c in batch.categorical[:, j].tolist()]


def mixed_events(n=400, seed=1):
    """Every kind of signal: numeric and categorical features, prediction, class scores, label, latency."""
    events = list(generate(credit_risk_profile(), n, seed=seed))
    for i, event in enumerate(events):
        event["features"]["tier"] = ["gold", "silver", "bronze"][i % 3]  # a feature that is also a segment key
        if i % 4 == 0:
            event["label"] = "default" if i % 8 else "repaid"
        if i % 5 == 0:
            event["features"]["income"] = None
        if i % 7 == 0:
            del event["latency_ms"]
    events[10]["prediction"] = "default"  # a class label: scores become signals
    events[10]["scores"] = {"default": 0.7, "repaid": 0.2, "unknown": 0.1}
    return events


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_each_shard_gets_exactly_its_signal_columns_and_every_row(shards):
    (batch,) = ingest(messages(mixed_events(), partitions=3)).batches
    parts = split_batch(batch, shards, segment_features=["tier"])
    assert len(parts) == shards

    seen_numeric, seen_categorical = [], []
    for k, part in enumerate(parts):
        # exactly the signals hashed to this shard, in the batch's order
        assert part.numeric_signals == [s for s in batch.numeric_signals if signal_shard(s[0], shards) == k]
        assert part.categorical_signals == [s for s in batch.categorical_signals if signal_shard(s[0], shards) == k]
        for j, signal in enumerate(part.numeric_signals):
            np.testing.assert_array_equal(part.numeric[:, j], batch.numeric[:, batch.numeric_signals.index(signal)])
        for j, signal in enumerate(part.categorical_signals):
            assert decoded_categorical(part, j) == decoded_categorical(batch, batch.categorical_signals.index(signal))
        seen_numeric += part.numeric_signals
        seen_categorical += part.categorical_signals

        # every row, with everything every shard needs
        assert part.event_ids == batch.event_ids and part.model == batch.model
        for name in ("topic_index", "partition", "offset", "timestamp"):
            np.testing.assert_array_equal(getattr(part, name), getattr(batch, name))
        assert [part.versions[c] for c in part.version_code] == [batch.versions[c] for c in batch.version_code]
        assert [part.topics[c] for c in part.topic_index] == [batch.topics[c] for c in batch.topic_index]
        assert part.progress == batch.progress
        # the event's segments, plus the spec's segment-key feature as a segment column, in every shard
        expected_segments = {**decoded_segments(batch), "tier": decoded_categorical(batch, batch.categorical_signals.index(("tier", "data_drift")))}
        assert decoded_segments(part) == expected_segments
        # string table trimmed to what the shard references
        used = set(part.categorical[part.categorical >= 0].tolist()) | set(part.segments[part.segments >= 0].tolist())
        assert used == set(range(len(part.strings)))
        # it crosses the internal topic
        again = ModelBatch.from_bytes(part.to_bytes())
        assert again.numeric_signals == part.numeric_signals and again.event_ids == part.event_ids

    # every signal column in exactly one shard
    assert sorted(seen_numeric) == sorted(batch.numeric_signals)
    assert sorted(seen_categorical) == sorted(batch.categorical_signals)
    assert split_batch(batch, 1, ["tier"]) == [batch]


def test_a_shard_without_signals_still_gets_every_row_and_advances_dedup():
    events = [{"event_id": str(i), "model": "m", "features": {"x": float(i % 5)}, "timestamp": 1_767_225_600 + i} for i in range(300)]
    (batch,) = ingest(messages(events, partitions=2)).batches
    shards = 4
    owner = signal_shard("x", shards)
    parts = split_batch(batch, shards)
    empty = [k for k in range(shards) if k != owner]
    assert all(parts[k].numeric.shape == (300, 0) for k in empty)

    engine = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    whole = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    whole.evaluate(batch)
    result = BatchResult()
    for k, part in enumerate(parts):
        engine.evaluate(part, into=result, shard=(k, shards))
    engine.flush(into=result, force=True)
    assert result.processed_by_model == Counter({"m": 300})  # counted once, by shard 0
    for k in range(shards):
        monitor = engine.models[("m", k, shards)]
        assert monitor.applied == whole.models["m"].applied  # high-water marks advanced in every shard
        assert monitor.resequencer.sources.keys() == whole.models["m"].resequencer.sources.keys()
    # a replay is dropped by every shard, counted once
    later = max(empty)
    assert later > 0
    replay = engine.evaluate(parts[later], shard=(later, shards))
    assert replay.replayed == 0 and engine.models[("m", later, shards)].events == 300  # counted by shard 0 only ...
    replay = engine.evaluate(parts[0], shard=(0, shards))
    assert replay.replayed == 300 and not replay.processed_by_model  # ... which drops all of it


def run_sharded(msgs, shards, batch=1000, spec=None):
    """Ingest, split, cross the wire format and evaluate, as the workers do; one BatchResult for the whole run."""
    spec = spec or MonitorSpec.default()
    engine = MonitorEngine(spec, clock=lambda: 0.0)
    result = BatchResult()
    for start in range(0, len(msgs), batch):
        ingested = ingest(msgs[start : start + batch], spec)
        for model_batch in ingested.batches:
            segment_features = spec.model(model_batch.model).segment_keys
            for k, part in enumerate(split_batch(model_batch, shards, segment_features)):
                engine.evaluate(ModelBatch.from_bytes(part.to_bytes()), into=result, shard=(k, shards) if shards > 1 else None)
    engine.flush(into=result, force=True)
    return engine, result


def test_shards_give_the_whole_models_alerts_streams_and_segments():
    drifts = [
        Drift(feature="income", start=9_000, segment=("region", "eu-west"), magnitude=1.0),
        Drift(feature="age", start=9_000, magnitude=1.0),
        Drift(feature="channel", start=9_000, kind="category_shift", magnitude=0.3, target="branch"),
    ]
    msgs = messages(generate(credit_risk_profile(), 16_000, seed=5, drifts=drifts), partitions=3)
    whole, whole_result = run_sharded(msgs, 1)
    sharded, shard_result = run_sharded(msgs, 3)
    whole_alerts, shard_alerts = whole_result.alerts, shard_result.alerts
    whole_processed, shard_processed = whole_result.processed_by_model, shard_result.processed_by_model

    assert whole_alerts and sorted(a.alert_id for a in shard_alerts) == sorted(a.alert_id for a in whole_alerts)
    assert {a.feature for a in whole_alerts} >= {"income", "age", "channel"}
    assert {signal_shard(f, 3) for f in ("income", "age", "channel")} == {0, 1}  # the drifts span shards
    assert shard_processed == whole_processed == Counter({"credit-risk": 16_000})  # counted once

    model = whole.models["credit-risk"]
    monitors = {k: sharded.models[("credit-risk", k, 3)] for k in range(3)}
    assert len(sharded.models) == 3
    for k, monitor in monitors.items():
        assert isinstance(monitor, ShardMonitor) and monitor.events == model.events == 16_000
        # the same segments discovered in every shard, exactly as by the whole model
        assert {key: slots.to_state() for key, slots in monitor.slots.items()} == {
            key: slots.to_state() for key, slots in model.slots.items()
        }
        assert monitor.applied == model.applied
        # each stream of the shard is the whole model's stream of that signal, bit for bit
        assert monitor.streams and all(signal_shard(key[0], 3) == k for key in monitor.streams)
        for key, stream in monitor.streams.items():
            assert encode_state(stream.to_state()) == encode_state(model.streams[key].to_state()), key
    assert sorted(key for m in monitors.values() for key in m.streams) == sorted(model.streams)
    assert sum(sharded.drifting_counts("credit-risk").values()) == sum(model.drifting_counts().values()) > 0


def test_segment_key_features_segment_every_shard_as_the_whole_model_does(tmp_path):
    spec_path = tmp_path / "monitor.toml"
    spec_path.write_text('[models.credit-risk]\nsegment_keys = ["employment_type"]\n')
    spec = load_spec(spec_path)
    events = list(generate(credit_risk_profile(), 6_000, seed=6))
    for event in events:
        del event["segment"]  # only the feature segments
    msgs = messages(events)
    whole, _ = run_sharded(msgs, 1, spec=spec)
    sharded, _ = run_sharded(msgs, 4, spec=spec)
    model = whole.models["credit-risk"]
    assert set(model.slots) == {"employment_type"} and model.slots["employment_type"].admitted
    assert sorted(key for m in sharded.models.values() for key in m.streams) == sorted(model.streams)
    for monitor in sharded.models.values():
        assert monitor.slots["employment_type"].to_state() == model.slots["employment_type"].to_state()
    owner = signal_shard("employment_type", 4)
    assert ("employment_type", "", "") in sharded.models[("credit-risk", owner, 4)].streams


def test_a_value_of_the_wrong_type_is_rejected_by_its_shard_alone():
    events = [
        {"event_id": str(i), "model": "m", "timestamp": 1_767_225_600 + i,
         "features": {"x": float(i), "w": float(i % 3), "z": f"c{i % 4}"}}
        for i in range(200)
    ]
    events[150]["features"]["x"] = "oops"  # x was inferred numeric from its first value
    shards = 2
    assert signal_shard("x", shards) != signal_shard("w", shards)
    engine, result = run_sharded(messages(events), shards, batch=100)

    (rejection,) = result.rejections  # one dead letter, from the shard owning x
    assert rejection.reason == Reason.FEATURE_TYPE_MISMATCH and "'x'" in rejection.detail
    assert orjson.loads(rejection.message.value)["event_id"] == "150" and rejection.message.offset == 150
    # every shard still applied every row (the same counts, the same segments and
    # high-water marks); only the bad value is missing from x's stream
    monitors = [engine.models[("m", k, shards)] for k in range(shards)]
    assert {m.events for m in monitors} == {200} and result.processed_by_model == Counter({"m": 200})
    assert len({encode_state(m.applied) for m in monitors}) == 1
    owner, other = monitors[signal_shard("x", shards)], monitors[signal_shard("w", shards)]
    assert len(owner.streams[("x", "", "")].to_state()["warmup"]) == 199
    assert len(other.streams[("w", "", "")].to_state()["warmup"]) == 200

    # the whole model (S = 1) drops the row instead, as it always did
    whole, whole_result = run_sharded(messages(events), 1, batch=100)
    assert [r.message.offset for r in whole_result.rejections] == [150]
    assert whole.models["m"].events == 199
    assert encode_state(whole.models["m"].streams[("x", "", "")].to_state()) == encode_state(owner.streams[("x", "", "")].to_state())


def test_the_model_limit_counts_models_not_shards():
    engine = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0, max_models=2)
    batches = {}
    for name in ("a", "b", "c"):
        events = [{"event_id": f"{name}{i}", "model": name, "features": {"x": 1.0, "y": "k", "w": 2.0}} for i in range(10)]
        (batches[name],) = ingest(messages(events)).batches
    for name in ("a", "b"):
        for k, part in enumerate(split_batch(batches[name], 3)):
            assert not engine.evaluate(part, shard=(k, 3)).rejections
    assert len(engine.models) == 6
    parts = split_batch(batches["c"], 3)
    first = engine.evaluate(parts[0], shard=(0, 3))
    assert len(first.rejections) == 10 and {r.reason for r in first.rejections} == {Reason.TOO_MANY_MODELS}
    other = engine.evaluate(parts[1], shard=(1, 3))
    assert not other.rejections and other.untracked_by_model == Counter({"c": 10})  # dead-lettered once, by shard 0


def test_reference_file_fills_only_the_shards_own_streams(tmp_path):
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(orjson.dumps(e) for e in generate(credit_risk_profile(), 3000, seed=1)))
    spec_path = tmp_path / "monitor.toml"
    spec_path.write_text('[models.credit-risk]\nreference_file = "reference.jsonl"\nsegment_keys = []\n')
    engine = MonitorEngine(load_spec(spec_path))
    whole = engine.new_monitor("credit-risk")
    parts = [engine.new_monitor("credit-risk", (k, 3)) for k in range(3)]
    assert sorted(key for p in parts for key in p.streams) == sorted(whole.streams)
    for k, part in enumerate(parts):
        assert all(signal_shard(key[0], 3) == k for key in part.streams)
        assert all(stream.ready == whole.streams[key].ready for key, stream in part.streams.items())
    assert parts[signal_shard("income", 3)].streams[("income", "", "")].ready


def test_routing_and_names():
    assert shard_partition("credit-risk", 0, 8) == zlib.crc32(b"credit-risk") % 8  # S = 1 keeps its partition
    assert len({shard_partition("credit-risk", k, 8) for k in range(8)}) == 8  # shards never share one
    assert decode_header([("other", b"x"), ("stream-monitor.shard", encode_header((2, 4)))]) == (2, 4)
    assert decode_header(None) is None and decode_header([]) is None
    for key in ["m", ("m", 1, 4), ("a#0/2", 0, 2), "a#0/2", ("", 3, 4)]:
        model = key if isinstance(key, str) else key[0]
        assert parse_checkpoint_name(checkpoint_name(key), model) == key
    with pytest.raises(ValueError):
        parse_checkpoint_name("other#1/2", "m")


def test_metrics_of_a_sharded_model_are_counted_once_and_leave_with_their_shard():
    drifts = [Drift(feature=f, start=8_000, magnitude=1.5) for f in ("income", "age", "loan_amount")]
    msgs = messages(generate(credit_risk_profile(), 12_000, seed=8, drifts=drifts))
    engine, result = run_sharded(msgs, 2)
    metrics = Metrics()
    metrics.record_batch(result)

    def value(name, **labels):
        return metrics.registry.get_sample_value(name, labels)

    assert value("stream_monitor_events_processed_total", model="credit-risk") == 12_000  # shard 0 only
    assert value("stream_monitor_model_events", model="credit-risk") == 12_000
    for k in range(2):
        assert value("stream_monitor_shard_events", model="credit-risk", shard=str(k)) == 12_000
    drifting = engine.drifting_counts("credit-risk")
    by_shard = [engine.models[("credit-risk", k, 2)].drifting_counts() for k in range(2)]
    assert all(sum(c.values()) for c in by_shard) and drifting == by_shard[0] + by_shard[1]
    for severity in ("warning", "critical"):
        assert value("stream_monitor_drifting_streams", model="credit-risk", severity=severity) == drifting[severity]
    scored = {f for (m, f, _s) in result.drift_scores}
    assert {signal_shard(f, 2) for f in scored} == {0, 1}

    # shard 1 moves to another worker: its series go, shard 0's stay, the drifting count is shard 0's
    moved = engine.models.pop(("credit-risk", 1, 2))
    metrics.forget_monitor("credit-risk", (1, 2), list(moved.signals), engine.drifting_counts("credit-risk"))
    assert value("stream_monitor_shard_events", model="credit-risk", shard="1") is None
    assert value("stream_monitor_model_events", model="credit-risk") == 12_000
    for (model, feature, statistic), score in result.drift_scores.items():
        expected = None if feature in moved.signals else score
        assert value("stream_monitor_drift_score", model=model, feature=feature, statistic=statistic) == expected
    for severity in ("warning", "critical"):
        assert value("stream_monitor_drifting_streams", model="credit-risk", severity=severity) == by_shard[0][severity]

    # and the last one: nothing of the model's state is left, counters stay
    kept = engine.models.pop(("credit-risk", 0, 2))
    metrics.forget_monitor("credit-risk", (0, 2), list(kept.signals), None)
    assert value("stream_monitor_model_events", model="credit-risk") is None
    assert value("stream_monitor_shard_events", model="credit-risk", shard="0") is None
    assert value("stream_monitor_drifting_streams", model="credit-risk", severity="critical") is None
    assert not [k for k in result.drift_scores if value("stream_monitor_drift_score", model=k[0], feature=k[1], statistic=k[2]) is not None]
    assert value("stream_monitor_events_processed_total", model="credit-risk") == 12_000


def test_a_signal_is_typed_by_its_first_value_not_by_a_first_batch_without_one():
    # A shard, or a resequencer release, can start with rows where a numeric
    # feature is missing; that must not make the feature categorical.
    events = [{"event_id": str(i), "model": "m", "features": {"income": None if i < 3 else float(i), "age": 3.0}} for i in range(10)]
    (batch,) = ingest(messages(events)).batches
    engine = MonitorEngine(MonitorSpec.default(), clock=lambda: 0.0)
    engine.evaluate(batch.take(np.arange(3)))
    assert "income" not in engine.models["m"].signals
    engine.evaluate(batch.take(np.arange(3, 10)))
    assert engine.models["m"].signals["income"].value_type == "numeric"


def test_sharding_is_opt_in_and_capped_at_the_internal_partitions():
    from stream_monitor.config import load_settings

    assert load_settings({}).shards == 1  # an upgrade keeps its unsharded checkpoints
    assert load_settings({"evaluation_shards": 4}).shards == 4
    assert load_settings({"evaluation_shards": 16, "internal_partitions": 8}).shards == 8
    assert load_settings({"evaluation_shards": 1}).shards == 1
