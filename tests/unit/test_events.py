import math

import orjson
import pytest

from stream_monitor.core.events import MAX_EVENT_BYTES, RawMessage, Reason, decode_batch
from stream_monitor.simulation.scenarios import MALFORMED_KINDS


def msg(value, offset=0, timestamp_ms=1_700_000_000_000):
    if isinstance(value, dict):
        value = orjson.dumps(value)
    return RawMessage(value=value, topic="t", partition=0, offset=offset, timestamp_ms=timestamp_ms)


VALID = {
    "event_id": "e1",
    "model": "credit-risk",
    "model_version": "3",
    "timestamp": "2026-01-31T12:00:00Z",
    "features": {"income": 52000, "channel": "web", "is_new": True, "age": None},
    "prediction": 0.12,
    "scores": {"default": 0.12, "repaid": 0.88},
    "label": 0,
    "latency_ms": 12.5,
    "segment": {"region": "eu-west", "tier": 2},
}


def test_valid_event_is_normalised():
    batch = decode_batch([msg(VALID)])
    assert batch.rejections == []
    (event,) = batch.events
    assert event.event_id == "e1" and event.model == "credit-risk" and event.model_version == "3"
    assert event.timestamp == 1769860800.0
    assert event.features == {"income": 52000.0, "channel": "web", "is_new": "true", "age": None}
    assert isinstance(event.features["income"], float)
    assert event.scores == {"default": 0.12, "repaid": 0.88}
    assert event.label == 0.0 and event.latency_ms == 12.5
    assert event.segment == {"region": "eu-west", "tier": "2"}


def test_timestamp_falls_back_to_kafka_then_nan():
    base = {"event_id": "e", "model": "m", "features": {}}
    assert decode_batch([msg(base)]).events[0].timestamp == 1_700_000_000.0
    assert math.isnan(decode_batch([msg(base, timestamp_ms=None)]).events[0].timestamp)
    assert decode_batch([msg({**base, "timestamp": 1_700_000_123.5})]).events[0].timestamp == 1_700_000_123.5


@pytest.mark.parametrize("payload, reason", MALFORMED_KINDS)
def test_each_malformed_kind_is_rejected_with_its_reason(payload, reason):
    batch = decode_batch([msg(payload)])
    assert batch.events == []
    (rejection,) = batch.rejections
    assert rejection.reason == reason
    assert rejection.message.value == payload
    assert rejection.detail  # says what is wrong


@pytest.mark.parametrize(
    "mutation, reason, hint",
    [
        ({"timestamp": 1_700_000_000_000}, Reason.INVALID_TIMESTAMP, "milliseconds"),
        ({"features": {"x": [1]}}, Reason.WRONG_TYPE, "features.x"),
        ({"scores": {"a": "high"}}, Reason.WRONG_TYPE, "scores.a"),
        ({"segment": {"region": {"a": 1}}}, Reason.WRONG_TYPE, "segment.region"),
        ({"latency_ms": -1}, Reason.WRONG_TYPE, "latency_ms"),
        ({"model": ""}, Reason.WRONG_TYPE, "model"),
        ({"features": {"x": "y" * 5000}}, Reason.WRONG_TYPE, "limit"),
    ],
)
def test_field_level_errors_name_the_field(mutation, reason, hint):
    batch = decode_batch([msg({**VALID, **mutation})])
    (rejection,) = batch.rejections
    assert rejection.reason == reason
    assert hint in rejection.detail


def test_oversized_is_rejected_before_parsing():
    big = b'{"event_id": "e", "model": "m", "features": {"x": "' + b"a" * MAX_EVENT_BYTES + b'"}}'
    (rejection,) = decode_batch([msg(big)]).rejections
    assert rejection.reason == Reason.OVERSIZED


def test_deep_nesting_and_garbage_do_not_raise():
    deep = b"[" * 100_000 + b"]" * 100_000
    garbage = bytes(range(256)) * 10
    batch = decode_batch([msg(deep, 0), msg(garbage, 1), msg(None, 2)])
    assert [r.reason for r in batch.rejections] == [Reason.NOT_JSON, Reason.NOT_JSON, Reason.EMPTY]


def test_every_message_lands_in_exactly_one_list():
    messages = [msg(VALID, i) if i % 3 else msg(b"nope", i) for i in range(30)]
    batch = decode_batch(messages)
    assert len(batch.events) == 20 and len(batch.rejections) == 10
    assert sorted([e.message.offset for e in batch.events] + [r.message.offset for r in batch.rejections]) == list(range(30))
