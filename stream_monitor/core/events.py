"""Event schema v1: decoding and validating raw prediction messages.

The decoder is the service's first line of defence: whatever upstream emits,
it either yields a well-typed :class:`Event` or a :class:`Rejection` that
carries the original message and a machine-readable reason. It never raises
for bad input, so one broken producer can't stop the monitor watching every
other model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import orjson

SCHEMA_VERSION = 1

#: Messages larger than this are rejected before parsing (JSON of a prediction
#: event is a few KB at most; a 10 MB message is a bug upstream, not an event).
MAX_EVENT_BYTES = 1_048_576
MAX_ID_CHARS = 256
MAX_STRING_VALUE_CHARS = 1024
MAX_FEATURES = 1000
#: Epoch seconds beyond this are almost surely milliseconds sent by mistake.
MAX_EPOCH_SECONDS = 1e11


class Reason:
    """Why a message was rejected: a fixed set, so metric labels stay bounded."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    NON_FINITE_NUMBER = "non_finite_number"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    FEATURE_TYPE_MISMATCH = "feature_type_mismatch"
    TOO_MANY_MODELS = "too_many_models"

    ALL = (
        EMPTY,
        OVERSIZED,
        NOT_JSON,
        NON_FINITE_NUMBER,
        NOT_AN_OBJECT,
        MISSING_FIELD,
        WRONG_TYPE,
        INVALID_TIMESTAMP,
        FEATURE_TYPE_MISMATCH,
        TOO_MANY_MODELS,
    )


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed Kafka record, as the core sees it (no client objects)."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: bytes | None = None


FeatureValue = float | str | None


@dataclass(slots=True)
class Event:
    """A valid v1 prediction event.

    Feature values are normalised on the way in: numbers become ``float``,
    booleans become ``"true"``/``"false"`` (categorical), ``null`` stays
    ``None`` (missing).
    """

    event_id: str
    model: str
    model_version: str | None
    timestamp: float
    features: dict[str, FeatureValue]
    prediction: FeatureValue = None
    scores: dict[str, float] | None = None
    label: FeatureValue = None
    latency_ms: float | None = None
    segment: dict[str, str] = field(default_factory=dict)
    message: RawMessage | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that could not be monitored, and why (for the dead-letter topic)."""

    message: RawMessage
    reason: str
    detail: str


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class DecodedBatch:
    events: list[Event]
    rejections: list[Rejection]


def decode_batch(messages: Sequence[RawMessage], max_event_bytes: int = MAX_EVENT_BYTES) -> DecodedBatch:
    """Decode a batch; every message ends up in exactly one of the two lists."""
    events: list[Event] = []
    rejections: list[Rejection] = []
    for message in messages:
        try:
            events.append(decode_event(message, max_event_bytes))
        except _Invalid as invalid:
            rejections.append(Rejection(message, invalid.reason, invalid.detail))
    return DecodedBatch(events, rejections)


def decode_event(message: RawMessage, max_event_bytes: int = MAX_EVENT_BYTES) -> Event:
    raw = message.value
    if not raw:
        raise _Invalid(Reason.EMPTY, "message has no value; producers must send one JSON event per message")
    if len(raw) > max_event_bytes:
        raise _Invalid(
            Reason.OVERSIZED,
            f"message is {len(raw)} bytes, over the {max_event_bytes}-byte limit; "
            "send one prediction per message (raise max_event_bytes only if events really are this large)",
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "infinity" in text.lower():
            raise _Invalid(Reason.NON_FINITE_NUMBER, f"a number is out of the float64 range ({text}); send finite numbers") from None
        if b"NaN" in raw or b"Infinity" in raw:
            raise _Invalid(
                Reason.NON_FINITE_NUMBER, f"NaN and Infinity are not valid JSON ({text}); send null for a missing value"
            ) from None
        raise _Invalid(Reason.NOT_JSON, f"not valid JSON ({text}); NaN and Infinity are not JSON, send null instead") from None
    if not isinstance(doc, dict):
        raise _Invalid(Reason.NOT_AN_OBJECT, f"top-level JSON is a {type(doc).__name__}; each message must be one JSON object")

    event_id = _required_id(doc, "event_id")
    model = _required_id(doc, "model")
    model_version = _optional_id(doc, "model_version")

    features = doc.get("features")
    if features is None:
        raise _Invalid(Reason.MISSING_FIELD, "field 'features' is required (an object of name -> number | string | bool | null)")
    if not isinstance(features, dict):
        raise _Invalid(Reason.WRONG_TYPE, f"'features' must be an object, got {type(features).__name__}")
    if len(features) > MAX_FEATURES:
        raise _Invalid(Reason.WRONG_TYPE, f"'features' has {len(features)} entries, over the limit of {MAX_FEATURES}")
    clean_features = {name: _feature_value(f"features.{name}", value) for name, value in features.items()}

    prediction = _feature_value("prediction", doc.get("prediction"))

    scores = doc.get("scores")
    if scores is not None:
        if not isinstance(scores, dict):
            raise _Invalid(Reason.WRONG_TYPE, f"'scores' must be an object of class -> probability, got {type(scores).__name__}")
        scores = {str(cls): _number(f"scores.{cls}", value) for cls, value in scores.items()}

    latency = doc.get("latency_ms")
    if latency is not None:
        latency = _number("latency_ms", latency)
        if latency < 0:
            raise _Invalid(Reason.WRONG_TYPE, f"'latency_ms' must be >= 0, got {latency}")

    segment = doc.get("segment")
    clean_segment: dict[str, str] = {}
    if segment is not None:
        if not isinstance(segment, dict):
            raise _Invalid(Reason.WRONG_TYPE, f"'segment' must be an object of key -> string, got {type(segment).__name__}")
        for key, value in segment.items():
            clean_segment[key] = _segment_value(f"segment.{key}", value)

    return Event(
        event_id=event_id,
        model=model,
        model_version=model_version,
        timestamp=_timestamp(doc.get("timestamp"), message.timestamp_ms),
        features=clean_features,
        prediction=prediction,
        scores=scores,
        label=_feature_value("label", doc.get("label")),
        latency_ms=latency,
        segment=clean_segment,
        message=message,
    )


def _required_id(doc: dict, name: str) -> str:
    value = doc.get(name)
    if value is None:
        raise _Invalid(Reason.MISSING_FIELD, f"field '{name}' is required (a non-empty string)")
    if not isinstance(value, str) or not value:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a non-empty string, got {_describe(value)}")
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' is {len(value)} characters, over the limit of {MAX_ID_CHARS}")
    return value


def _optional_id(doc: dict, name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a string, got {_describe(value)}")
    value = str(value)
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' is {len(value)} characters, over the limit of {MAX_ID_CHARS}")
    return value


def _feature_value(name: str, value: object) -> FeatureValue:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(name, value)
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_CHARS:
            raise _Invalid(Reason.WRONG_TYPE, f"'{name}' is a {len(value)}-character string, over the limit of {MAX_STRING_VALUE_CHARS}")
        return value
    raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a number, string, bool or null, got {_describe(value)}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(Reason.NON_FINITE_NUMBER, f"'{name}' is too large for a float64") from None
    if not math.isfinite(number):
        raise _Invalid(Reason.NON_FINITE_NUMBER, f"'{name}' is not finite; send null for a missing value")
    return number


def _segment_value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > MAX_ID_CHARS:
            raise _Invalid(Reason.WRONG_TYPE, f"'{name}' is {len(value)} characters, over the limit of {MAX_ID_CHARS}")
        return value
    if isinstance(value, int):
        return str(value)
    raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a string, got {_describe(value)}")


def _timestamp(value: object, kafka_timestamp_ms: int | None) -> float:
    """Event time in epoch seconds: the event's own, else the Kafka record's, else NaN."""
    if value is None:
        if kafka_timestamp_ms is not None and kafka_timestamp_ms > 0:
            return kafka_timestamp_ms / 1000.0
        return math.nan
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(Reason.INVALID_TIMESTAMP, f"'timestamp' {value[:64]!r} is not RFC 3339 (e.g. 2026-01-31T12:00:00Z)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(Reason.INVALID_TIMESTAMP, f"'timestamp' must be an RFC 3339 string or epoch seconds, got {_describe(value)}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds < MAX_EPOCH_SECONDS):
        raise _Invalid(
            Reason.INVALID_TIMESTAMP,
            f"'timestamp' {value} is not plausible epoch seconds (milliseconds? divide by 1000)",
        )
    return seconds


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
