"""Event schema v1: decoding and validating raw prediction messages.

The decoder is the service's first line of defence: whatever upstream emits,
it either yields a well-typed :class:`Event` or a :class:`Rejection` that
carries the original message and a machine-readable reason. It never raises
for bad input, so one broken producer can't stop the monitor watching every
other model.
"""

from __future__ import annotations

import math
import re
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
#: Longest feature name, class name (``scores``) or segment key: names become
#: signal names, metric labels and alert fields, so they stay short.
MAX_NAME_CHARS = MAX_ID_CHARS
MAX_FEATURES = 1000
#: Entries of ``scores`` and of ``segment`` (the monitor watches at most 32
#: classes and 8 segment keys per model; far more is a producer bug).
MAX_SCORES = MAX_FEATURES
MAX_SEGMENT_ENTRIES = 100
#: Epoch seconds beyond this are almost surely milliseconds sent by mistake.
MAX_EPOCH_SECONDS = 1e11
#: RFC 3339 date-times (``T``, ``t`` or a space between date and time; ``Z`` or
#: an offset, or no zone for UTC) and plain dates; ASCII digits only. Checked
#: before ``datetime.fromisoformat``, which in Python 3.11 takes any character
#: as a separator ("2026-01-31T12:00:00\x00Z" parses).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)
#: Longest field name or value quoted in a rejection's detail: details travel
#: as dead-letter headers and log lines, so hostile input must not inflate them.
MAX_QUOTED_CHARS = 60


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
    """One message to an :class:`Event`; raises ``_Invalid`` (reason + detail) for anything else.

    Only ``_Invalid`` escapes, whatever the bytes: every limit is checked
    before the value it bounds is used, and details quote input only in
    bounded, escaped form (see :func:`_quote`).
    """
    return event_from_document(parse_message(message, max_event_bytes), message)


def parse_message(message: RawMessage, max_event_bytes: int = MAX_EVENT_BYTES) -> object:
    """The message's JSON document (any JSON value); raises ``_Invalid`` if it has none."""
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _not_json(exc) from None


def event_from_document(doc: object, message: RawMessage) -> Event:
    """The rest of :func:`decode_event`, for a document already parsed by :func:`parse_message`."""
    if type(doc) is not dict:
        raise _Invalid(
            Reason.NOT_AN_OBJECT, f"top-level JSON is a {_json_type(doc)}; each message must be one JSON object (an event)"
        )

    event_id = _required_id(doc, "event_id")
    model = _required_id(doc, "model")
    model_version = _optional_id(doc, "model_version")

    features = doc.get("features")
    if features is None:
        raise _Invalid(
            Reason.MISSING_FIELD,
            "field 'features' is missing or null; every event must have it (an object of name -> number | string | bool | null)",
        )
    _check_object(features, "features", "name -> value", MAX_FEATURES, "entries", "send only the model's inputs")
    # The hot loop of the service: one iteration per feature of every event,
    # so the common cases (float, int, str, None) are dispatched inline.
    clean_features: dict[str, FeatureValue] = {}
    for name, value in features.items():
        if len(name) > MAX_NAME_CHARS:
            raise _long_name("features", name)
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # NaN or +-Infinity (orjson never makes them; other callers might)
                raise _Invalid(Reason.NON_FINITE_NUMBER, f"{_field('features', name)} is not finite; send null for a missing value")
        elif kind is str:
            if len(value) > MAX_STRING_VALUE_CHARS:
                raise _long_string(_field("features", name), value)
        elif kind is int:
            value = float(value)  # orjson ints fit in 64 bits, so always in float range
        elif value is not None:
            value = _feature_value(_field("features", name), value)
        clean_features[name] = value

    prediction = _feature_value("'prediction'", doc.get("prediction"))

    scores = doc.get("scores")
    if scores is not None:
        _check_object(scores, "scores", "class -> probability", MAX_SCORES, "classes", "send the scores of the top classes only")
        clean_scores: dict[str, float] = {}
        for cls, value in scores.items():
            if len(cls) > MAX_NAME_CHARS:
                raise _long_name("scores", cls)
            clean_scores[cls] = _number(_field("scores", cls), value)
        scores = clean_scores

    latency = doc.get("latency_ms")
    if latency is not None:
        latency = _number("'latency_ms'", latency)
        if latency < 0:
            raise _Invalid(Reason.WRONG_TYPE, f"'latency_ms' must be >= 0, got {latency!r}; send the prediction's duration in milliseconds")

    segment = doc.get("segment")
    clean_segment: dict[str, str] = {}
    if segment is not None:
        _check_object(segment, "segment", "key -> string", MAX_SEGMENT_ENTRIES, "keys", "send only the keys of the populations to watch")
        for key, value in segment.items():
            if len(key) > MAX_NAME_CHARS:
                raise _long_name("segment", key)
            clean_segment[key] = _segment_value(_field("segment", key), value)

    return Event(
        event_id=event_id,
        model=model,
        model_version=model_version,
        timestamp=_timestamp(doc.get("timestamp"), message.timestamp_ms),
        features=clean_features,
        prediction=prediction,
        scores=scores,
        label=_feature_value("'label'", doc.get("label")),
        latency_ms=latency,
        segment=clean_segment,
        message=message,
    )


#: Literals some JSON writers emit for non-finite floats (Python's json, Jackson, ...).
_NON_FINITE_LITERALS = ("NaN", "Infinity", "-Infinity", "+Infinity")


def _not_json(exc: orjson.JSONDecodeError) -> _Invalid:
    """The rejection for a parse error, with a hint that fits the error."""
    text = _quote(str(exc), 200)
    if "infinity" in text.lower():  # orjson: "number is infinity when parsed as double"
        return _Invalid(Reason.NON_FINITE_NUMBER, f"a number is out of the float64 range ({text}); send finite numbers")
    doc, pos = getattr(exc, "doc", None), getattr(exc, "pos", None)
    if isinstance(doc, str) and isinstance(pos, int) and 0 <= pos < len(doc):
        # The error points at the token; '-Infinity' fails one character in.
        at = doc[max(0, pos - 1) : pos + 9]
        if any(literal in at for literal in _NON_FINITE_LITERALS):
            return _Invalid(
                Reason.NON_FINITE_NUMBER,
                f"NaN and Infinity are not valid JSON ({text}); send null for a missing value",
            )
    if "UTF-8" in text or "surrogate" in text:
        hint = "encode the message as UTF-8; lone surrogates (\\ud800-\\udfff) are not valid text"
    elif "depth" in text:
        hint = "an event is a flat object; nest no deeper than its features/scores/segment objects"
    elif "BOM" in text:
        hint = "send UTF-8 without a byte order mark"
    else:
        hint = "each message must be one complete UTF-8 JSON object; NaN and Infinity are not JSON, send null instead"
    return _Invalid(Reason.NOT_JSON, f"not valid JSON ({text}); {hint}")


def _required_id(doc: dict, name: str) -> str:
    value = doc.get(name)
    if value is None:
        raise _Invalid(Reason.MISSING_FIELD, f"field '{name}' is missing or null; every event must have it (a non-empty string)")
    if type(value) is not str or not value:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a non-empty string, got {_describe(value)}")
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(
            Reason.WRONG_TYPE,
            f"'{name}' is {len(value)} characters, over the limit of {MAX_ID_CHARS}; send a shorter {name}",
        )
    return value


def _optional_id(doc: dict, name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    kind = type(value)
    if kind is not str:
        if kind is not int and kind is not float:
            raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be a string, got {_describe(value)}")
        value = str(value)  # orjson ints have at most 20 digits
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(
            Reason.WRONG_TYPE,
            f"'{name}' is {len(value)} characters, over the limit of {MAX_ID_CHARS}; send a shorter {name}",
        )
    return value


def _feature_value(field: str, value: object) -> FeatureValue:
    """A feature, the prediction or the label; ``field`` is already quoted for details."""
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int:
        return _number(field, value)
    if kind is str:
        if len(value) > MAX_STRING_VALUE_CHARS:
            raise _long_string(field, value)
        return value
    if kind is bool:
        return "true" if value else "false"
    raise _Invalid(Reason.WRONG_TYPE, f"{field} must be a number, string, bool or null, got {_describe(value)}")


def _number(field: str, value: object) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
        raise _Invalid(Reason.WRONG_TYPE, f"{field} must be a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(Reason.NON_FINITE_NUMBER, f"{field} is too large for a float64; send finite numbers") from None
    if not math.isfinite(number):
        raise _Invalid(Reason.NON_FINITE_NUMBER, f"{field} is not finite; send null for a missing value")
    return number


def _segment_value(field: str, value: object) -> str:
    kind = type(value)
    if kind is str:
        if len(value) > MAX_ID_CHARS:
            raise _Invalid(
                Reason.WRONG_TYPE,
                f"{field} is {len(value)} characters, over the limit of {MAX_ID_CHARS}; "
                "send a short population name",
            )
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)  # orjson ints have at most 20 digits
    raise _Invalid(Reason.WRONG_TYPE, f"{field} must be a string, got {_describe(value)}")


def _timestamp(value: object, kafka_timestamp_ms: int | None) -> float:
    """Event time in epoch seconds: the event's own, else the Kafka record's, else NaN.

    Both must be plausible epoch seconds (0 to :data:`MAX_EPOCH_SECONDS`):
    alerts render event times as dates, and a year-0 or year-10000 time does
    not have one. A bad event timestamp rejects the event; a bad record
    timestamp (set by the producer, so just as untrusted) only makes the
    event time unknown.
    """
    if value is None:
        if kafka_timestamp_ms is not None and 0 < kafka_timestamp_ms < MAX_EPOCH_SECONDS * 1000.0:
            return kafka_timestamp_ms / 1000.0
        return math.nan
    kind = type(value)
    if kind is str:
        try:
            if _RFC3339.fullmatch(value) is None:
                raise ValueError(value)
            parsed = datetime.fromisoformat(value.upper())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            seconds = parsed.timestamp()
        except (ValueError, OverflowError, OSError):
            raise _Invalid(
                Reason.INVALID_TIMESTAMP,
                f"'timestamp' \"{_quote(value)}\" is not RFC 3339; send e.g. 2026-01-31T12:00:00Z, or epoch seconds",
            ) from None
        if not 0 <= seconds < MAX_EPOCH_SECONDS:
            raise _Invalid(
                Reason.INVALID_TIMESTAMP,
                f"'timestamp' \"{_quote(value)}\" is outside 1970 to 5138; send the time the prediction was made",
            )
        return seconds
    if kind is not float and kind is not int:
        raise _Invalid(
            Reason.INVALID_TIMESTAMP,
            f"'timestamp' must be an RFC 3339 string or epoch seconds, got {_describe(value)}",
        )
    seconds = float(value)  # orjson ints fit a float
    if not (math.isfinite(seconds) and 0 <= seconds < MAX_EPOCH_SECONDS):
        raise _Invalid(
            Reason.INVALID_TIMESTAMP,
            f"'timestamp' {value!r} is not plausible epoch seconds; send seconds since 1970 (milliseconds? divide by 1000)",
        )
    return seconds


# -- details: bounded, escaped quotes of hostile input ---------------------------------------------


def _quote(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with control and format characters escaped."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = cut.encode("unicode_escape").decode("ascii")
    if len(text) <= limit and len(cut) <= limit:
        return cut
    return f"{cut[:limit]}... ({len(text)} characters)"


def _field(parent: str, name: str) -> str:
    """How a detail names a field, e.g. ``'features.income'``."""
    return f"'{parent}.{_quote(name)}'"


def _check_object(value: object, name: str, content: str, limit: int, entries: str, hint: str) -> None:
    """The checks every object field of an event shares: it is an object, and not an unbounded one."""
    if type(value) is not dict:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' must be an object of {content}, got {_describe(value)}")
    if len(value) > limit:
        raise _Invalid(Reason.WRONG_TYPE, f"'{name}' has {len(value)} {entries}, over the limit of {limit}; {hint}")


def _long_name(parent: str, name: str) -> _Invalid:
    return _Invalid(
        Reason.WRONG_TYPE,
        f"a name in '{parent}' is {len(name)} characters ({_quote(name)}), over the limit of {MAX_NAME_CHARS}; "
        "send short names",
    )


def _long_string(field: str, value: str) -> _Invalid:
    return _Invalid(
        Reason.WRONG_TYPE,
        f"{field} is a {len(value)}-character string, over the limit of {MAX_STRING_VALUE_CHARS}; "
        "send a category, not free text",
    )


def _json_type(value: object) -> str:
    kind = type(value)
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _describe(value: object) -> str:
    """A short description of a JSON value: its type and a bounded preview.

    Never ``repr`` of a container: a 1000-deep nested array makes ``repr``
    raise RecursionError, and a 1 MB array makes it slow for a 40-character
    preview.
    """
    kind = _json_type(value)
    if kind == "array":
        return f"an array of {len(value)} items"
    if kind == "object":
        return f"an object of {len(value)} keys"
    if kind == "string":
        return f"string \"{_quote(value, 40)}\""
    if kind == "number":
        return f"number {value!r}"
    if kind == "boolean":
        return f"boolean {'true' if value else 'false'}"
    return "null"
