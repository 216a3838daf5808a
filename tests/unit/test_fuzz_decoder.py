"""Hostile input at the decoder and the engine, no broker: property tests with hypothesis.

Whatever the bytes, :func:`decode_batch` must not raise, must put every message
in exactly one of events/rejections, must reject with a reason of the fixed set
and a short detail that says what to do, and must accept only events whose
fields satisfy schema v1 (checked against an independent parse of the same
bytes). The engine behind it must not lose a message either: consumed ==
processed + rejected.

Hypothesis runs derandomized (a fixed seed per test, no example database), so
CI sees the same examples on every run; the deterministic corpus of
``helpers.hostile`` (the one the integration test sends to the worker) is
checked here too, message by message, against the reasons it expects.
"""

from __future__ import annotations

import math
import re
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from helpers.hostile import Hostile, big_messages, hostile_corpus, spec_toml, weird_valid_events
from stream_monitor.core.engine import MonitorEngine
from stream_monitor.core.events import (
    MAX_EPOCH_SECONDS,
    MAX_EVENT_BYTES,
    MAX_FEATURES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_SCORES,
    MAX_SEGMENT_ENTRIES,
    MAX_STRING_VALUE_CHARS,
    Event,
    RawMessage,
    Reason,
    decode_batch,
)
from stream_monitor.kafka.dead_letter import MAX_DEAD_LETTER_BYTES, dead_letter
from stream_monitor.spec import MonitorSpec, load_spec

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

#: A detail is a header and a log line: short (it may quote a model and a feature name, 256 characters
#: each at most), and it says what to do.
MAX_DETAIL_CHARS = 1024
ACTION = re.compile(r"\b(must|send|fix|encode|nest|declare|check)\b")
#: Kafka's default message.max.bytes (1 MB) minus room for the record overhead.
KAFKA_DEFAULT_MAX_RECORD = 1_000_000 - 1024


# -- raw JSON with tokens a JSON library would never write -----------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text inserted verbatim: NaN, 1e400, a lone surrogate escape, invalid UTF-8, deep nesting."""

    text: bytes


def to_json(value: object) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return b"{" + b",".join(to_json(k) + b":" + to_json(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(to_json(v) for v in value) + b"]"
    return orjson.dumps(value)


def _is_string_token(raw: Raw) -> bool:
    return raw.text.startswith(b'"')


RAW_TOKENS = st.sampled_from(
    [
        Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity"), Raw(b"1e400"), Raw(b"-1e400"), Raw(b"1e309"),
        Raw(b"9" * 400), Raw(b"-" + b"1" * 400), Raw(b"1" + b"0" * 320 + b".0"), Raw(b"18446744073709551616"),
        Raw(b"-9223372036854775809"), Raw(b"1e-400"), Raw(b"-0"), Raw(b"0.1e-99999"),
        Raw(rb'"\ud800"'), Raw(rb'"\udfff"'), Raw(rb'"a\udc00b"'), Raw(rb'"\ud83d\ude00"'), Raw(rb'"\u0000"'),
        Raw(b'"\xff"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\xc0\xaf"'), Raw(b'"caf\xe9"'),
        Raw(b"nan"), Raw(b"undefined"), Raw(b"'single'"), Raw(b"01"), Raw(b"+1"), Raw(b".5"), Raw(b"1."),
    ]
)
NESTING = st.integers(1, 3000).flatmap(
    lambda d: st.sampled_from([Raw(b"[" * d + b"]" * d), Raw(b'{"a":' * d + b"0" + b"}" * d)])
)
#: Text with what breaks naive code: controls, bidi marks, joiners, astral characters, long runs.
EDGE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=10).map(lambda s: s + "\u0000\u202e\u200d\ufeff\uffff"),
    st.sampled_from(["", "\u0000", "\u202e", "\U0001f600", "\U0001f469\u200d\U0001f467", "\U0010ffff", "e\u0301", "\u2028"]),
    st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.sampled_from([255, 256, 257, 1024, 1025, 5000])),
)
NUMBERS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 2**53 + 1, 1e11, 1.7e12]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, EDGE_TEXT)
JSON_VALUES = st.recursive(
    st.one_of(SCALARS, RAW_TOKENS, NESTING),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.one_of(EDGE_TEXT, RAW_TOKENS.filter(_is_string_token)), children, max_size=5)
    ),
    max_leaves=20,
)


# -- valid events and their mutations ------------------------------------------------------------

NAMES = st.text(min_size=1, max_size=20) | st.sampled_from(["income", "\u202eevil", "\u0000", "\U0001f600", "n" * MAX_NAME_CHARS])
FEATURE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.just("v" * MAX_STRING_VALUE_CHARS),
)
IDS = st.text(min_size=1, max_size=40) | st.just("i" * MAX_ID_CHARS)
TIMESTAMPS = st.one_of(
    st.floats(0, MAX_EPOCH_SECONDS, exclude_max=True),
    st.integers(0, int(MAX_EPOCH_SECONDS) - 1),
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(5000, 1, 1),
        timezones=st.none() | st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))),
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-01-31T12:00:00Z", "2026-01-31t12:00:00.123456789z", "2026-01-31 12:00", "2026-01-31"]),
)
OPTIONAL = {
    "model_version": st.one_of(IDS, st.integers(0, 10**6), st.floats(0, 100)),
    "timestamp": TIMESTAMPS,
    "prediction": FEATURE_VALUES,
    "scores": st.dictionaries(NAMES, st.floats(0, 1), max_size=4),
    "label": FEATURE_VALUES,
    "latency_ms": st.floats(0, 1e6) | st.integers(0, 10**9),
    "segment": st.dictionaries(NAMES, st.text(max_size=20) | st.booleans() | st.integers(-(2**63), 2**64 - 1), max_size=3),
}
VALID_EVENTS = st.fixed_dictionaries(
    {"event_id": IDS, "model": IDS, "features": st.dictionaries(NAMES, FEATURE_VALUES, max_size=8)},
    optional=OPTIONAL,
)

#: A wrong value per field, and the reasons the event may then get.
WRONG = {
    "event_id": (st.one_of(NUMBERS, st.booleans(), st.just(""), st.just([]), st.just({})), {Reason.WRONG_TYPE}),
    "model": (st.one_of(NUMBERS, st.booleans(), st.just(""), st.just(["m"])), {Reason.WRONG_TYPE}),
    "model_version": (st.one_of(st.booleans(), st.just([1]), st.just({"v": 1})), {Reason.WRONG_TYPE}),
    "timestamp": (
        st.one_of(st.booleans(), st.just([]), st.just("yesterday"), st.just("2026-01-31T12:00:00\u0000Z"),
                  st.floats(max_value=-1e-9, allow_infinity=False) | st.floats(min_value=MAX_EPOCH_SECONDS, allow_infinity=False), st.just("0001-01-01T00:00:00+23:59")),
        {Reason.INVALID_TIMESTAMP},
    ),
    "features": (st.one_of(NUMBERS, st.booleans(), EDGE_TEXT, st.lists(SCALARS, max_size=3)), {Reason.WRONG_TYPE}),
    "prediction": (st.one_of(st.lists(SCALARS, max_size=3), st.dictionaries(EDGE_TEXT, SCALARS, max_size=2)), {Reason.WRONG_TYPE}),
    "scores": (st.one_of(NUMBERS, EDGE_TEXT, st.lists(NUMBERS, max_size=3), st.just({"a": "high"})), {Reason.WRONG_TYPE}),
    "label": (st.one_of(st.lists(SCALARS, max_size=3), st.just({"y": 1})), {Reason.WRONG_TYPE}),
    "latency_ms": (st.one_of(EDGE_TEXT, st.booleans(), st.floats(max_value=-5e-324, allow_infinity=False), st.just([1])), {Reason.WRONG_TYPE}),
    "segment": (st.one_of(NUMBERS, EDGE_TEXT, st.lists(SCALARS, max_size=2), st.just({"k": 1.5}), st.just({"k": None})), {Reason.WRONG_TYPE}),
}
REQUIRED = ("event_id", "model", "features")


@st.composite
def mutated_events(draw) -> tuple[bytes, set[str] | None]:
    """A valid event with one field dropped, retyped or replaced; the reasons it may get (None: may stay valid)."""
    event = draw(VALID_EVENTS)
    how = draw(st.sampled_from(["drop", "retype", "replace", "raw"]))
    name = draw(st.sampled_from(sorted(WRONG)))
    if how == "drop":
        event.pop(name, None)
        return to_json(event), ({Reason.MISSING_FIELD} if name in REQUIRED else None)
    if how == "retype" and name in event:
        value = event[name]
        event[name] = draw(st.sampled_from([[value], {"value": value}, str(value), None, True]))
        return to_json(event), None  # str() of a string, or null for an optional field, is still valid
    if how == "raw":
        event[name] = draw(st.one_of(RAW_TOKENS, NESTING, JSON_VALUES))
        return to_json(event), None
    strategy, reasons = WRONG[name]
    event[name] = draw(strategy)
    return to_json(event), reasons


# -- the invariants ------------------------------------------------------------------------------


def message(value: bytes | None, offset: int = 0, timestamp_ms: int | None = 1_767_225_600_000) -> RawMessage:
    return RawMessage(value=value, topic="fuzz", partition=0, offset=offset, timestamp_ms=timestamp_ms)


def decode_checked(messages: list[RawMessage]):
    """decode_batch, plus every invariant of its output."""
    batch = decode_batch(messages)
    seen = [id(e.message) for e in batch.events] + [id(r.message) for r in batch.rejections]
    assert sorted(seen) == sorted(id(m) for m in messages), "every message in exactly one list"
    for rejection in batch.rejections:
        check_rejection(rejection.reason, rejection.detail)
        assert dead_letter_size(rejection) <= KAFKA_DEFAULT_MAX_RECORD
    for event in batch.events:
        check_event(event)
    return batch


def check_rejection(reason: str, detail: str) -> None:
    assert reason in Reason.ALL
    assert isinstance(detail, str) and detail.strip()
    assert len(detail) <= MAX_DETAIL_CHARS, detail[:200]
    assert ACTION.search(detail), f"detail does not say what to do: {detail}"


def dead_letter_size(rejection) -> int:
    letter = dead_letter(rejection)
    return len(letter.key or b"") + len(letter.value) + sum(len(k) + len(v) for k, v in letter.headers)


def check_event(event: Event) -> None:
    """The accepted event satisfies schema v1 and agrees with an independent parse of its bytes."""
    doc = orjson.loads(event.message.value)
    assert type(doc) is dict and len(event.message.value) <= MAX_EVENT_BYTES
    assert type(event.event_id) is str and 0 < len(event.event_id) <= MAX_ID_CHARS and event.event_id == doc["event_id"]
    assert type(event.model) is str and 0 < len(event.model) <= MAX_ID_CHARS and event.model == doc["model"]
    assert event.model_version is None or (type(event.model_version) is str and len(event.model_version) <= MAX_ID_CHARS)
    assert type(event.timestamp) is float
    assert math.isnan(event.timestamp) or 0 <= event.timestamp < MAX_EPOCH_SECONDS
    assert type(event.features) is dict and len(event.features) <= MAX_FEATURES
    assert event.features.keys() == doc["features"].keys()
    for name, value in event.features.items():
        assert type(name) is str and len(name) <= MAX_NAME_CHARS
        check_value(value, doc["features"][name])
    check_value(event.prediction, doc.get("prediction"))
    check_value(event.label, doc.get("label"))
    if event.scores is None:
        assert doc.get("scores") is None
    else:
        assert len(event.scores) <= MAX_SCORES
        for cls, score in event.scores.items():
            assert type(cls) is str and len(cls) <= MAX_NAME_CHARS
            assert type(score) is float and math.isfinite(score) and score == float(doc["scores"][cls])
    if event.latency_ms is not None:
        assert type(event.latency_ms) is float and math.isfinite(event.latency_ms) and event.latency_ms >= 0
    assert len(event.segment) <= MAX_SEGMENT_ENTRIES
    for key, value in event.segment.items():
        assert type(key) is str and len(key) <= MAX_NAME_CHARS
        assert type(value) is str and len(value) <= MAX_ID_CHARS


def check_value(value: object, original: object) -> None:
    """Feature values, prediction and label: float (finite), str (bounded) or None, equal to the original."""
    assert value is None or type(value) in (float, str)
    if original is None:
        assert value is None
    elif type(original) is bool:
        assert value == ("true" if original else "false")
    elif type(original) in (int, float):
        assert type(value) is float and math.isfinite(value) and value == float(original)
    else:
        assert type(value) is str and value == original and len(value) <= MAX_STRING_VALUE_CHARS


# -- properties ----------------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.binary(max_size=600), min_size=1, max_size=20))
def test_arbitrary_bytes(values):
    batch = decode_checked([message(v, i) for i, v in enumerate(values)])
    assert len(batch.events) == 0  # random bytes are not events


@settings(FUZZ, max_examples=150)
@given(st.lists(JSON_VALUES, min_size=1, max_size=4))
def test_arbitrary_json_documents(docs):
    decode_checked([message(to_json(d), i) for i, d in enumerate(docs)])


@FUZZ
@given(VALID_EVENTS, st.sampled_from(sorted(WRONG)), JSON_VALUES)
def test_arbitrary_json_in_every_field(event, field, value):
    """Any JSON value (deep, huge, NaN, surrogates, ...) in any field of an otherwise valid event."""
    event[field] = value
    decode_checked([message(to_json(event))])


@FUZZ
@given(VALID_EVENTS, NAMES, JSON_VALUES)
def test_arbitrary_json_as_a_feature_score_or_segment_value(event, name, value):
    for parent in ("features", "scores", "segment"):
        doc = {**event, parent: {**(event.get(parent) or {}), name: value}}
        decode_checked([message(to_json(doc))])


@FUZZ
@given(VALID_EVENTS)
def test_valid_events_are_accepted(event):
    batch = decode_checked([message(orjson.dumps(event))])
    assert batch.rejections == [], batch.rejections[0].detail if batch.rejections else ""
    assert len(batch.events) == 1


@FUZZ
@given(mutated_events())
def test_mutated_events(mutated):
    raw, reasons = mutated
    batch = decode_checked([message(raw)])
    if reasons is not None:
        assert [r.reason for r in batch.rejections] in ([reason] for reason in reasons), (
            raw[:300], [(r.reason, r.detail) for r in batch.rejections]
        )


@settings(FUZZ, max_examples=100)
@given(VALID_EVENTS, st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)))
def test_untrusted_kafka_timestamps(event, timestamp_ms):
    """The record timestamp is set by the producer: garbage there makes the event time unknown, never a crash."""
    event.pop("timestamp", None)
    (decoded,) = decode_checked([message(orjson.dumps(event), timestamp_ms=timestamp_ms)]).events
    if timestamp_ms is not None and 0 < timestamp_ms < MAX_EPOCH_SECONDS * 1000:
        assert decoded.timestamp == timestamp_ms / 1000
    else:
        assert math.isnan(decoded.timestamp)


@settings(FUZZ, max_examples=50)
@given(st.sampled_from(["features", "scores", "segment"]), st.text(min_size=MAX_NAME_CHARS + 1, max_size=MAX_NAME_CHARS + 3))
def test_overlong_names_are_rejected(parent, name):
    event = {"event_id": "e", "model": "m", "features": {}, parent: {name: [1] if parent == "features" else 0.5}}
    (rejection,) = decode_checked([message(orjson.dumps(event))]).rejections
    assert rejection.reason == Reason.WRONG_TYPE and f"'{parent}'" in rejection.detail


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"features": {"k" * 1_000_000: [1]}}, Reason.WRONG_TYPE),
        ({"features": {"k" * 1_000_000: 1.0}}, Reason.WRONG_TYPE),
        ({"features": {"x": [[[[[[[[[[0]]]]]]]]]] * 20_000}}, Reason.WRONG_TYPE),
        ({"event_id": "\u202e" * 300_000}, Reason.WRONG_TYPE),
        ({"timestamp": "2026-01-31T12:00:00Z" * 40_000}, Reason.INVALID_TIMESTAMP),
    ],
)
def test_details_stay_short_whatever_the_input_size(value, reason):
    event = {"event_id": "e", "model": "m", "features": {}, **value}
    (rejection,) = decode_checked([message(orjson.dumps(event))]).rejections
    assert rejection.reason == reason


@pytest.mark.parametrize("depth", [900, 1000, 1020, 1024, 1025, 5000, 100_000])
@pytest.mark.parametrize("where", ["top", "event_id", "features", "feature", "scores", "segment", "timestamp", "label"])
def test_deep_nesting_anywhere(depth, where):
    """Nesting right up to the parser's limit (1024) must not hit Python's recursion limit either."""
    nested = Raw(b"[" * depth + b"]" * depth)
    if where == "top":
        doc: object = nested
    else:
        event: dict = {"event_id": "e", "model": "m", "features": {}}
        if where in ("feature", "scores", "segment"):
            event[{"feature": "features"}.get(where, where)] = {"k": nested}
        else:
            event[where] = nested
        doc = event
    (rejection,) = decode_checked([message(to_json(doc))]).rejections
    assert rejection.reason in (Reason.NOT_JSON, Reason.NOT_AN_OBJECT, Reason.WRONG_TYPE, Reason.INVALID_TIMESTAMP)


def test_non_finite_literals_are_told_apart_from_other_broken_json():
    cases = {
        b'{"x": NaN}': Reason.NON_FINITE_NUMBER,
        b'{"x": -Infinity}': Reason.NON_FINITE_NUMBER,
        b'{"x": [1, Infinity]}': Reason.NON_FINITE_NUMBER,
        b'{"x": 1e400}': Reason.NON_FINITE_NUMBER,
        b'{"x": ' + b"9" * 400 + b"}": Reason.NON_FINITE_NUMBER,
        # "NaN" inside a string of broken JSON is not a NaN literal
        b'{"model": "NaN-detector", "x": }': Reason.NOT_JSON,
        b'{"note": "Infinity and beyond"': Reason.NOT_JSON,
    }
    batch = decode_checked([message(raw, i) for i, raw in enumerate(cases)])
    assert [r.reason for r in batch.rejections] == list(cases.values())


def test_ten_megabyte_messages():
    """10 MiB: rejected as oversized before parsing; with the limit raised, parsed and rejected without harm."""
    ten = 10 * (1 << 20)
    random_bytes = bytes(range(256)) * (ten // 256)
    head = b'{"event_id": "big", "model": "m", "features": {"x": "'
    json_doc = head + b"a" * (ten - len(head) - 3) + b'"}}'
    batch = decode_checked([message(random_bytes, 0), message(json_doc, 1)])
    assert [r.reason for r in batch.rejections] == [Reason.OVERSIZED, Reason.OVERSIZED]
    for rejection in batch.rejections:
        letter = dead_letter(rejection)
        headers = dict(letter.headers)
        assert len(letter.value) == MAX_DEAD_LETTER_BYTES and headers["stream-monitor.truncated"] == b"true"
        assert headers["stream-monitor.original.size"] == str(ten).encode()
    raised = decode_batch([message(json_doc)], max_event_bytes=16 << 20)
    assert [r.reason for r in raised.rejections] == [Reason.WRONG_TYPE]


@pytest.mark.parametrize(
    "shape",
    [b"[]", b'{"":{}}'],
    ids=["empty-arrays", "nested-objects"],
)
def test_memory_of_a_max_size_message_is_bounded(shape):
    """The worst 1 MiB documents (a huge array of tiny containers) cost tens of MB while parsed, then nothing.

    Measured: about 33 and 44 MiB at the peak for these two shapes (the worst found: an array of
    small nested arrays costs 43 MiB; strings, numbers and flat objects cost less), and the decoder
    holds one such message at a time.
    """
    count = (MAX_EVENT_BYTES - 2) // (len(shape) + 1)
    raw = b"[" + b",".join([shape] * count) + b"]"
    tracemalloc.start()
    try:
        batch = decode_batch([message(raw)])
        _, peak = tracemalloc.get_traced_memory()
        del batch
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MAX_EVENT_BYTES, f"{peak / 2**20:.0f} MiB to decode {len(raw)} bytes"
    assert current < MAX_EVENT_BYTES


# -- the deterministic corpus, and the engine behind the decoder -----------------------------------


@pytest.fixture(scope="module")
def declared_spec(tmp_path_factory) -> MonitorSpec:
    path = tmp_path_factory.mktemp("spec") / "monitor.toml"
    path.write_text(spec_toml())
    return load_spec(path)


def test_the_hostile_corpus_is_rejected_with_the_expected_reasons(declared_spec):
    """The corpus the integration test sends to the worker, checked message by message without a broker."""
    corpus: list[Hostile] = hostile_corpus(10_000, seed=11, big=False) + big_messages(seed=11, ten_mb=1)
    messages = [message(h.value, i) for i, h in enumerate(corpus)]
    decoded = decode_checked(messages)
    engine = MonitorEngine(declared_spec)
    result = engine.process(messages)
    assert sum(result.processed_by_model.values()) == 0
    assert len(result.rejections) == len(corpus)
    for rejection in result.rejections:
        hostile = corpus[rejection.message.offset]
        assert rejection.reason in hostile.reasons, (hostile.kind, rejection.reason, rejection.detail, (hostile.value or b"")[:200])
        check_rejection(rejection.reason, rejection.detail)
    # decoded events are exactly the ones only the engine can reject (strings in declared-numeric features)
    assert {corpus[e.message.offset].reasons for e in decoded.events} <= {frozenset({Reason.FEATURE_TYPE_MISMATCH})}


VALID_MIX = st.lists(
    st.one_of(
        VALID_EVENTS.map(orjson.dumps),
        st.builds(lambda m, e: orjson.dumps({**e, "model": m}), st.sampled_from(["a", "b", "\u202e\U0001f600"]), VALID_EVENTS),
        mutated_events().map(lambda m: m[0]),
        # one feature and the label of one model, as a number, a string or absent: type conflicts across events
        st.builds(
            lambda x, y: orjson.dumps({"event_id": "c", "model": "a", "features": {} if x is None else {"x": x}, "label": y}),
            st.none() | st.floats(0, 1) | st.text(max_size=2),
            st.none() | st.integers(0, 1) | st.sampled_from(["yes", "no"]),
        ),
        JSON_VALUES.map(to_json),
        st.binary(max_size=200),
        st.none(),
    ),
    min_size=1,
    max_size=40,
)


#: Found by test_engine_loses_nothing: ModelMonitor._columns (core/model.py) looks a numeric signal up in
#: the batch's numeric columns, but a batch whose only values of that signal were strings (rejected as
#: feature_type_mismatch) has none, so it raises KeyError, which would crash the worker on every replay.


@settings(FUZZ, max_examples=100, phases=[Phase.explicit, Phase.generate])  # shrinking engine inputs takes minutes
@given(st.lists(VALID_MIX, min_size=1, max_size=4))
def test_engine_loses_nothing(batches):
    """consumed == processed + rejected for every batch, whatever the mix; no exception.

    """
    engine = MonitorEngine(MonitorSpec.default())
    offset = 0
    for values in batches:
        messages = [message(v, offset + i) for i, v in enumerate(values)]
        offset += len(messages)
        result = engine.process(messages)
        consumed = sum(result.consumed_by_topic.values())
        processed = sum(result.processed_by_model.values())
        assert consumed == len(messages) == processed + len(result.rejections)
        assert len({id(r.message) for r in result.rejections}) == len(result.rejections)
        for rejection in result.rejections:
            check_rejection(rejection.reason, rejection.detail)


def test_engine_type_mismatch_in_a_batch_without_numbers():
    """A string in a numeric feature, in a batch where no other event has that feature: one rejection."""
    engine = MonitorEngine(MonitorSpec.default())
    engine.process([message(orjson.dumps({"event_id": "1", "model": "m", "features": {"a": 1.0}}), 0)])
    result = engine.process(
        [
            message(orjson.dumps({"event_id": "2", "model": "m", "features": {"a": "x"}}), 1),
            message(orjson.dumps({"event_id": "3", "model": "m", "features": {}}), 2),
        ]
    )
    assert [r.reason for r in result.rejections] == [Reason.FEATURE_TYPE_MISMATCH]
    assert sum(result.processed_by_model.values()) == 1


def test_engine_rejections_keep_the_original_message(declared_spec):
    raw = b'{"event_id": "e1", "model": "credit-risk", "timestamp": 1767225600.5, "features": {"income": "12.5"}}'
    original = RawMessage(raw, "t", 3, 42, 1_767_225_600_000, key=b"the-key")
    (rejection,) = MonitorEngine(declared_spec).process([original]).rejections
    assert rejection.reason == Reason.FEATURE_TYPE_MISMATCH
    assert (rejection.message.value, rejection.message.key) == (raw, b"the-key")
    assert (rejection.message.topic, rejection.message.partition, rejection.message.offset) == ("t", 3, 42)


def test_engine_processes_weird_but_valid_events_among_hostile_ones(declared_spec):
    """Unicode names, extreme finite numbers, 1000+ events so the detectors leave their reference phase."""
    weird = [orjson.dumps(e) for e in weird_valid_events(2_500, seed=3)]
    corpus = hostile_corpus(2_500, seed=4, big=False)
    values = [v for pair in zip(weird, (h.value for h in corpus)) for v in pair]
    engine = MonitorEngine(declared_spec)
    processed = rejected = 0
    for start in range(0, len(values), 1000):
        result = engine.process([message(v, start + i) for i, v in enumerate(values[start : start + 1000])])
        processed += sum(result.processed_by_model.values())
        rejected += len(result.rejections)
        for alert in result.alerts:
            orjson.loads(alert.to_json())  # alerts about weird streams still serialize
    assert (processed, rejected) == (len(weird), len(corpus))


def test_a_dead_letter_fits_a_default_kafka_record_even_with_a_huge_key():
    rejection = decode_batch([RawMessage(b"nope", "t", 0, 0, key=b"k" * 2_000_000)]).rejections[0]
    assert dead_letter_size(rejection) <= KAFKA_DEFAULT_MAX_RECORD
