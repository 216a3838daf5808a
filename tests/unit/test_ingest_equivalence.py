"""The shape-group ingest must be the per-event ingest, only faster: same batches byte for byte, same rejections.

:func:`ingest_per_event` (decode_batch, the declared-type check,
build_model_batches) is the reference: it is the code every rejection detail
comes from, and the shape-group path falls back to it for whatever it can't
vouch for. Compared: each model's ``ModelBatch.to_bytes()`` (rows, columns,
signal order, string table, versions, topics, progress), every rejection's
reason, detail and message, in order, and the per-topic counts.
"""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_corpus import CORPUS, RESERVED_FEATURES, SPEC_TOML, ingest_outcome, mixed_messages, reserved_name_messages
from stream_monitor.core.bulk import decode_columns
from stream_monitor.core.engine import _consumed, ingest, ingest_per_event
from stream_monitor.core.events import RawMessage
from stream_monitor.spec import load_spec

EQUIVALENCE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(SPEC_TOML)
    return load_spec(path)


def assert_same_as_per_event(messages: list[RawMessage], spec=None) -> None:
    assert ingest_outcome(ingest(messages, spec)) == ingest_outcome(ingest_per_event(messages, spec))


@pytest.mark.parametrize("name, make", CORPUS, ids=[name for name, _ in CORPUS])
@pytest.mark.parametrize("with_spec", [False, True], ids=["no spec", "spec"])
def test_corpus_ingests_as_per_event(name, make, with_spec, spec):
    assert_same_as_per_event(make(), spec if with_spec else None)


def test_clean_traffic_takes_the_shape_group_path():
    """Guards the speed: a regular batch must not quietly fall back to the per-event path."""
    decoded = decode_columns(mixed_messages(11, 2000, bent=0.0, hostile=0.0))
    assert decoded.events == [] and decoded.rejections == []
    assert sorted(len(parts) for parts in decoded.parts.values()) == [1, 1]


def test_one_bad_value_sends_only_its_event_to_the_per_event_path():
    messages = mixed_messages(12, 500, bent=0.0, hostile=0.0)
    doc = orjson.loads(messages[100].value)
    doc["features"][next(iter(doc["features"]))] = "oops"
    messages[100] = RawMessage(orjson.dumps(doc), "t", 0, 100)
    decoded = decode_columns(messages)
    assert [i for i, _ in decoded.events] == [100]
    assert_same_as_per_event(messages)


def test_features_called_like_reserved_signals_keep_columns_of_their_own():
    """A feature ``prediction`` is the column (prediction, data_drift), never the prediction's: on both paths."""
    messages = reserved_name_messages(15, 600, odd_share=0.0)
    first = orjson.loads(messages[0].value)
    for result in (ingest(messages), ingest_per_event(messages)):
        (batch,) = result.batches
        columns = set(batch.numeric_signals) | set(batch.categorical_signals)
        assert {(name, "data_drift") for name in RESERVED_FEATURES} <= columns
        assert {("prediction", "prediction_drift"), ("score:default", "prediction_drift"), ("label", "label_drift"),
                ("latency_ms", "latency_drift")} <= columns
        # a dead letter re-encodes each value where it came from
        row = orjson.loads(batch.row_json(0))
        assert row["features"] == first["features"]
        assert (row["prediction"], row["label"], row["latency_ms"]) == (first["prediction"], first["label"], first["latency_ms"])
        assert row["scores"] == {"default": first["scores"]["default"]}
    assert_same_as_per_event(messages)


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collection_is_left_as_found(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        ingest(mixed_messages(13, 50))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


# -- properties: small batches of few shapes, every value type in every slot ------------------------

def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` nine times in ten: batches of mostly valid events, where the shape groups form."""
    return st.integers(0, 9).flatmap(lambda roll: odd if roll == 0 else valid)


ABSENT = st.just("absent")
#: Features, score classes and segment keys; a feature may be called like a reserved signal.
NAMES = mostly(
    st.sampled_from(["a", "b", "c", "prediction", "label", "latency_ms", "score:x", "x", "feature:prediction"]),
    st.just("n" * 257),
)
VALUES = mostly(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["x", "y", "", "1.5", "true", "z" * 1024]),
    ),
    st.sampled_from([[1], {"a": 1}, "z" * 1025]),
)
NUMBERS = mostly(st.one_of(st.integers(0, 2**64 - 1), st.floats(0, 1e12)), VALUES)
FEATURES = mostly(st.dictionaries(NAMES, VALUES, max_size=4), st.sampled_from([None, [1], "absent"]))
SCORES = mostly(st.one_of(ABSENT, st.none(), st.dictionaries(NAMES, NUMBERS, max_size=3)), st.just([1]))
SEGMENT = mostly(
    st.one_of(ABSENT, st.none(), st.dictionaries(NAMES, st.one_of(st.sampled_from(["x", "y", "true"]), st.booleans(), st.integers(-(2**63), 2**64 - 1)), max_size=3)),
    st.one_of(st.just([1]), st.dictionaries(NAMES, VALUES, max_size=2)),
)
TIMESTAMPS = mostly(
    st.one_of(ABSENT, st.none(), st.floats(0, 1e11, exclude_max=True), st.sampled_from(["2026-01-31T12:00:00Z", "2026-01-31", 7])),
    st.one_of(VALUES, st.sampled_from(["nope", 1.7e12, 1e11, -1.0, "2026-01-31T12:00:00\x00Z"])),
)


@st.composite
def events(draw: st.DrawFn) -> dict:
    event = {
        "event_id": draw(mostly(st.sampled_from(["e1", "e2", "\u202e"]), st.sampled_from(["", 7, None, "e" * 257]))),
        "model": draw(mostly(st.sampled_from(["m1", "m2"]), st.sampled_from(["", 3, None, "m" * 257]))),
        "model_version": draw(mostly(st.sampled_from(["absent", "v1", "v2", None, 2, 2.5]), st.sampled_from([True, "v" * 257]))),
        "timestamp": draw(TIMESTAMPS),
        "features": draw(FEATURES),
        "prediction": draw(st.one_of(ABSENT, VALUES)),
        "scores": draw(SCORES),
        "label": draw(st.one_of(ABSENT, VALUES)),
        "latency_ms": draw(st.one_of(ABSENT, mostly(NUMBERS, st.just(-1)))),
        "segment": draw(SEGMENT),
    }
    return {key: value for key, value in event.items() if value != "absent"}


@st.composite
def batches(draw: st.DrawFn) -> list[RawMessage]:
    """A few event templates, repeated with some values redrawn: groups of one shape, and the odd one out."""
    templates = draw(st.lists(events(), min_size=1, max_size=4))
    out = []
    for i in range(draw(st.integers(1, 30))):
        event = dict(templates[draw(st.integers(0, len(templates) - 1))])
        if draw(st.booleans()) and type(event.get("features")) is dict:
            event["features"] = {name: draw(VALUES) for name in event["features"]}
        value = orjson.dumps(event) if draw(st.integers(0, 20)) else draw(st.sampled_from([b"", None, b"{", b"[]"]))
        out.append(RawMessage(value, f"t{i % 2}", i % 3, i, timestamp_ms=draw(st.sampled_from([None, 1_767_225_600_000]))))
    return out


@EQUIVALENCE
@given(batches())
def test_any_batch_ingests_as_per_event(messages):
    assert_same_as_per_event(messages)


@EQUIVALENCE
@given(batches())
def test_any_batch_ingests_as_per_event_with_declared_types(spec, messages):
    assert_same_as_per_event(messages, spec)


@EQUIVALENCE
@given(st.lists(st.tuples(st.sampled_from(["t", "u"]), st.integers(0, 5), st.integers(-3, 2**62)), max_size=40), st.booleans())
def test_progress_is_the_highest_offset_of_each_partition(records, one_topic):
    """Both paths share ``_consumed`` (so the equivalence tests can't see it): checked against the plain loop."""
    messages = [RawMessage(b"{}", "t" if one_topic else topic, partition, offset) for topic, partition, offset in records]
    expected: dict[tuple[str, int], int] = {}
    for m in messages:
        expected[(m.topic, m.partition)] = max(expected.get((m.topic, m.partition), -1), m.offset)
    consumed, progress = _consumed(messages)
    assert list(progress.items()) == list(expected.items())
    assert consumed == Counter(m.topic for m in messages)
