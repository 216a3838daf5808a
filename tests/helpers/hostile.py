"""Hostile input for the decoder and the worker: a deterministic corpus of messages that must be dead-lettered.

:func:`hostile_corpus` returns messages that are all invalid, each with the
reasons it may be rejected for (exactly one for every kind but random bytes
and text, which may happen to be a JSON number or an object without fields). The mix
covers what a broken or malicious producer can send: random bytes, truncated
JSON, deep nesting, NaN/Infinity literals, numbers beyond float64, unicode
edge cases (invalid UTF-8, escaped lone surrogates, and NUL, bidi controls,
emoji and the like inside events that are invalid for another reason), wrong
types in every field, missing fields, tombstones, oversized messages and
messages just under the size limit that are expensive to parse.

:func:`weird_valid_events` are the opposite: valid events full of the same
edge cases (unicode names, extreme finite numbers), which must be processed,
not rejected, and must not break the engine either.

Everything is generated with :class:`random.Random` from a seed: the same seed
and size give the same corpus, byte for byte, on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

import orjson

from stream_monitor.core.events import (
    MAX_EVENT_BYTES,
    MAX_FEATURES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_SCORES,
    MAX_SEGMENT_ENTRIES,
    MAX_STRING_VALUE_CHARS,
    Reason,
)

__all__ = [
    "Hostile",
    "HOSTILE_MODEL",
    "NUMERIC_FEATURES",
    "CATEGORICAL_FEATURES",
    "UNICODE_EDGES",
    "big_messages",
    "hostile_corpus",
    "weird_valid_events",
    "spec_toml",
    "proc_status_kib",
]

#: The model the hostile events claim to be (declared in :func:`spec_toml`, so a
#: string in a numeric feature is a type mismatch whatever the arrival order).
HOSTILE_MODEL = "credit-risk"
NUMERIC_FEATURES = ("income", "age", "debt_to_income", "credit_utilization", "open_accounts", "loan_amount")
CATEGORICAL_FEATURES = ("employment_type", "home_ownership", "channel")

#: Valid text that trips naive code: NUL and other controls, bidi overrides,
#: zero-width joiners, a BOM inside a string, noncharacters, the last code
#: point, combining marks, astral-plane characters, line separators.
UNICODE_EDGES = (
    "\u0000",
    "a\u0000b",
    "\u202eevil\u202c",
    "\u200f\u200e",
    "\u200d",
    "\U0001f600",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\ufeff",
    "\uffff\ufffe",
    "\U0010ffff",
    "e\u0301\u0301\u0301",
    "\u0085\u2028\u2029",
    "\U0001d54f",
    "\x7f\x1b[31m",
    "\t\n\r",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\ufdfd",
    "",
)
#: Byte sequences that are not UTF-8: a stray continuation byte, 0xff, an
#: overlong '/', an encoded surrogate, a code point past U+10FFFF, a cut
#: three-byte sequence, Latin-1 text.
INVALID_UTF8 = (b"\x80", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"caf\xe9")
#: JSON escapes of lone surrogates (valid JSON syntax, not valid text).
LONE_SURROGATES = (rb"\ud800", rb"\udfff", rb"\udc00\ud800", rb"\ud83d", rb"x\ud800y", rb"\ud800\u0041")
#: orjson parses at most this many nested arrays/objects.
JSON_MAX_DEPTH = 1024

#: Random bytes or JSON-ish text: almost always not JSON, but "7" is a number and "{}" an object without fields.
ANY_PARSE_FAILURE = frozenset({Reason.NOT_JSON, Reason.NOT_AN_OBJECT, Reason.NON_FINITE_NUMBER, Reason.MISSING_FIELD})


@dataclass(frozen=True, slots=True)
class Hostile:
    kind: str
    value: bytes | None
    #: Reasons the message may be rejected with (usually exactly one).
    reasons: frozenset[str]


def spec_toml() -> str:
    """A monitor spec declaring the hostile model's feature types."""
    lines = [f'[models.{HOSTILE_MODEL}.features]']
    lines += [f'{name} = "numeric"' for name in NUMERIC_FEATURES]
    lines += [f'{name} = "categorical"' for name in CATEGORICAL_FEATURES]
    return "\n".join(lines) + "\n"


def base_event(i: int, rng: random.Random) -> dict:
    """A valid event of the hostile model (which each generator then breaks)."""
    features: dict[str, object] = {name: round(rng.uniform(0, 100), 3) for name in NUMERIC_FEATURES}
    features.update({name: rng.choice(("a", "b", "c")) for name in CATEGORICAL_FEATURES})
    return {
        "event_id": f"hostile-{i}",
        "model": HOSTILE_MODEL,
        "model_version": "1.0.0",
        "timestamp": 1767225600.0 + i,
        "features": features,
        "prediction": round(rng.random(), 4),
        "scores": {"default": 0.25, "repaid": 0.75},
        "latency_ms": 12.5,
        "segment": {"region": "eu-west"},
    }


def _dumps(doc: object) -> bytes:
    return orjson.dumps(doc)


def _splice(event: dict, path: tuple[str, ...], raw: bytes) -> bytes:
    """The event's JSON with the value at ``path`` replaced by raw (possibly invalid) JSON text."""
    marker = "\u2063MARK\u2063"
    doc = orjson.loads(orjson.dumps(event))
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = marker
    return _dumps(doc).replace(orjson.dumps(marker), raw, 1)


def _one(reason: str) -> frozenset[str]:
    return frozenset({reason})


#: Fields an event's value can be put in, with the reason a wrong-typed value gets there.
_NUMERIC_SLOTS = (("features", "income"), ("prediction",), ("scores", "default"), ("latency_ms",), ("timestamp",))


def _nested(depth: int, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# -- generators: each returns one hostile message -----------------------------------------------


def gen_random_bytes(i: int, rng: random.Random) -> Hostile:
    n = rng.choice((1, 2, 3, 8, 64, 512, 4096))
    value = rng.randbytes(n)
    if value.strip(b" \t\r\n") == b"":
        value = b"\x00" + value
    return Hostile("random_bytes", value, ANY_PARSE_FAILURE)


def gen_random_text(i: int, rng: random.Random) -> Hostile:
    alphabet = '{}[]",:0123456789.eE+-tfnrulasNIy \\'
    value = "".join(rng.choices(alphabet, k=rng.randint(1, 200))).encode()
    if value.strip() == b"":
        value = b"{" + value
    return Hostile("random_text", value, ANY_PARSE_FAILURE)


def gen_truncated(i: int, rng: random.Random) -> Hostile:
    raw = _dumps(base_event(i, rng))
    return Hostile("truncated_json", raw[: rng.randint(1, len(raw) - 1)], _one(Reason.NOT_JSON))


def gen_trailing_garbage(i: int, rng: random.Random) -> Hostile:
    raw = _dumps(base_event(i, rng)) + rng.choice((b"x", b"}", b",{}", b"\x00", b"{}"))
    return Hostile("trailing_garbage", raw, _one(Reason.NOT_JSON))


def gen_deep_nesting(i: int, rng: random.Random) -> Hostile:
    where = rng.choice(("top", "feature", "event_id", "segment", "scores"))
    too_deep = rng.random() < 0.5
    if too_deep:
        depth = 100_000 if rng.random() < 0.002 else rng.randint(JSON_MAX_DEPTH + 10, 3 * JSON_MAX_DEPTH)
    else:
        depth = rng.randint(2, JSON_MAX_DEPTH - 10)
    nested = _nested(depth, rng)
    if where == "top":
        if too_deep:
            reason = Reason.NOT_JSON
        else:
            reason = Reason.NOT_AN_OBJECT if nested.startswith(b"[") else Reason.MISSING_FIELD
        return Hostile("deep_nesting", nested, _one(reason))
    path = {"feature": ("features", "income"), "event_id": ("event_id",), "segment": ("segment", "region"), "scores": ("scores", "default")}[where]
    reason = Reason.NOT_JSON if too_deep else Reason.WRONG_TYPE
    return Hostile("deep_nesting", _splice(base_event(i, rng), path, nested), _one(reason))


def gen_non_finite(i: int, rng: random.Random) -> Hostile:
    literal = rng.choice((b"NaN", b"Infinity", b"-Infinity"))
    path = rng.choice(_NUMERIC_SLOTS + (("features", "age"), ("label",)))
    return Hostile("non_finite", _splice(base_event(i, rng), path, literal), _one(Reason.NON_FINITE_NUMBER))


def gen_huge_number(i: int, rng: random.Random) -> Hostile:
    choice = rng.randrange(4)
    if choice == 0:
        literal = rng.choice((b"1e400", b"-1e400", b"1e309", b"-2e308", b"1.8e308", b"123e999999999"))
    elif choice == 1:
        literal = rng.choice((b"", b"-")) + b"9" * rng.randint(310, 2000)  # a 400-digit integer
    elif choice == 2:
        literal = b"1" + b"0" * rng.randint(309, 400) + b".5"
    else:
        literal = b"0." + b"0" * 10 + b"1e" + str(rng.randint(320, 10_000)).encode()  # 0.00000000001e400
    path = rng.choice(_NUMERIC_SLOTS + (("model_version",), ("segment", "region")))
    return Hostile("huge_number", _splice(base_event(i, rng), path, literal), _one(Reason.NON_FINITE_NUMBER))


def gen_big_finite_misplaced(i: int, rng: random.Random) -> Hostile:
    """Huge but finite numbers where they are not plausible: the timestamp, a negative latency."""
    event = base_event(i, rng)
    choice = rng.randrange(4)
    if choice == 0:
        event["timestamp"] = rng.choice((1e308, -1e308, 18446744073709551615, 1.7e12, -1, 1e11))
        return Hostile("big_finite_misplaced", _dumps(event), _one(Reason.INVALID_TIMESTAMP))
    if choice == 1:
        event["latency_ms"] = rng.choice((-1e308, -1, -5e-324))
        return Hostile("big_finite_misplaced", _dumps(event), _one(Reason.WRONG_TYPE))
    if choice == 2:
        event["timestamp"] = rng.choice(
            ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z", "5200-01-01T00:00:00Z")
        )
        return Hostile("big_finite_misplaced", _dumps(event), _one(Reason.INVALID_TIMESTAMP))
    event["timestamp"] = rng.choice(("yesterday", "2026-13-01T00:00:00Z", "2026-01-31T12:00:00+24:00", "", "\u0000", "2026-01-31\u202eT12:00Z"))
    return Hostile("big_finite_misplaced", _dumps(event), _one(Reason.INVALID_TIMESTAMP))


def gen_invalid_utf8(i: int, rng: random.Random) -> Hostile:
    event = base_event(i, rng)
    bad = rng.choice(INVALID_UTF8)
    path = rng.choice((("event_id",), ("model",), ("features", "channel"), ("segment", "region")))
    raw = _splice(event, path, b'"' + b"ok" + bad + b'"')
    if rng.random() < 0.2:  # or in a key, or outside any string
        raw = rng.choice((raw.replace(b'"income"', b'"inc' + bad + b'ome"', 1), bad + _dumps(event)))
    return Hostile("invalid_utf8", raw, _one(Reason.NOT_JSON))


def gen_lone_surrogate(i: int, rng: random.Random) -> Hostile:
    event = base_event(i, rng)
    escape = rng.choice(LONE_SURROGATES)
    if rng.random() < 0.3:
        raw = _dumps(event).replace(b'"income"', b'"' + escape + b'"', 1)  # in a key
    else:
        path = rng.choice((("event_id",), ("model",), ("features", "channel"), ("segment", "region"), ("label",)))
        raw = _splice(event, path, b'"' + escape + b'"')
    return Hostile("lone_surrogate", raw, _one(Reason.NOT_JSON))


def gen_encoding(i: int, rng: random.Random) -> Hostile:
    """Valid JSON text in the wrong encoding, or with a BOM."""
    text = _dumps(base_event(i, rng)).decode()
    value = rng.choice((b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16"), text.encode("utf-32-le")))
    return Hostile("encoding", value, _one(Reason.NOT_JSON))


def gen_unicode_invalid_event(i: int, rng: random.Random) -> Hostile:
    """Valid unicode everywhere, in an event invalid for another reason."""
    event = base_event(i, rng)
    edge = rng.choice(UNICODE_EDGES) or "\u200b"
    event["features"][rng.choice(CATEGORICAL_FEATURES)] = edge
    event["segment"]["region"] = edge
    event["model_version"] = edge
    choice = rng.randrange(6)
    if choice == 0:
        event["event_id"] = edge * (MAX_ID_CHARS // len(edge) + 1)
        return Hostile("unicode", _dumps(event), _one(Reason.WRONG_TYPE))
    if choice == 1:
        del event["model"]
        event["event_id"] = edge
        return Hostile("unicode", _dumps(event), _one(Reason.MISSING_FIELD))
    if choice == 2:
        event["features"][rng.choice(NUMERIC_FEATURES)] = edge  # declared numeric
        return Hostile("unicode", _dumps(event), _one(Reason.FEATURE_TYPE_MISMATCH))
    if choice == 3:
        event["features"][edge * (MAX_NAME_CHARS // len(edge) + 1)] = 1.0
        return Hostile("unicode", _dumps(event), _one(Reason.WRONG_TYPE))
    if choice == 4:
        event["timestamp"] = f"2026-01-31T12:00:00{edge}Z"
        return Hostile("unicode", _dumps(event), _one(Reason.INVALID_TIMESTAMP))
    event["latency_ms"] = edge
    return Hostile("unicode", _dumps(event), _one(Reason.WRONG_TYPE))


#: field -> (wrong values, reason). ``None`` in a required field means "missing".
WRONG_TYPES: dict[tuple[str, ...], tuple[tuple[object, ...], str]] = {
    ("event_id",): ((17, 1.5, True, False, [], ["e1"], {}, {"id": "e1"}, ""), Reason.WRONG_TYPE),
    ("model",): ((3, -0.0, True, [], ["credit-risk"], {}, ""), Reason.WRONG_TYPE),
    ("model_version",): ((True, [], [1, 2], {}, {"v": 1}), Reason.WRONG_TYPE),
    ("timestamp",): ((True, False, [], [2026], {}, {"s": 1}, "yesterday", -1, 1e12, "2026-02-30T00:00:00Z"), Reason.INVALID_TIMESTAMP),
    ("features",): (([], [1, 2], "income=1", 1, 0.5, True, False), Reason.WRONG_TYPE),
    ("features", "income"): (([], [1.0], {}, {"nested": 1}), Reason.WRONG_TYPE),
    ("features", "channel"): (([], {"a": "b"}, [None]), Reason.WRONG_TYPE),
    ("prediction",): (([], [0.1], {}, {"p": 0.1}), Reason.WRONG_TYPE),
    ("scores",): (([], [0.1, 0.9], "high", 1, True), Reason.WRONG_TYPE),
    ("scores", "default"): (("high", "0.25", True, None, [], {}), Reason.WRONG_TYPE),
    ("label",): (([], [1], {}, {"y": 1}), Reason.WRONG_TYPE),
    ("latency_ms",): (("slow", "12", True, [], {}, -1, -0.001), Reason.WRONG_TYPE),
    ("segment",): (([], ["eu"], "eu-west", 1, True), Reason.WRONG_TYPE),
    ("segment", "region"): ((1.5, [], {}, None, ["eu"]), Reason.WRONG_TYPE),
}
_WRONG_TYPE_SLOTS = tuple(WRONG_TYPES)


def gen_wrong_type(i: int, rng: random.Random) -> Hostile:
    event = base_event(i, rng)
    path = rng.choice(_WRONG_TYPE_SLOTS)
    values, reason = WRONG_TYPES[path]
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = rng.choice(values)
    return Hostile("wrong_type", _dumps(event), _one(reason))


def gen_missing(i: int, rng: random.Random) -> Hostile:
    event = base_event(i, rng)
    for name in rng.sample(("event_id", "model", "features"), rng.randint(1, 3)):
        if rng.random() < 0.5:
            del event[name]
        else:
            event[name] = None
    return Hostile("missing_field", _dumps(event), _one(Reason.MISSING_FIELD))


def gen_not_object(i: int, rng: random.Random) -> Hostile:
    value = rng.choice(
        (b"[1, 2, 3]", b'"just a string"', b"42", b"-0.5e3", b"true", b"false", b"null", b"[]", b'["event_id", "model"]',
         b"[" + _dumps(base_event(i, rng)) + b"]", b' "\\u0000" ', b"1e308")
    )
    return Hostile("not_an_object", value, _one(Reason.NOT_AN_OBJECT))


def gen_empty(i: int, rng: random.Random) -> Hostile:
    return Hostile("empty", rng.choice((b"", None)), _one(Reason.EMPTY))


def gen_limits(i: int, rng: random.Random) -> Hostile:
    """Each size limit of the schema, one past it."""
    event = base_event(i, rng)
    choice = rng.randrange(7)
    if choice == 0:
        event["features"] = {f"f{k}": float(k) for k in range(MAX_FEATURES + 1)}
    elif choice == 1:
        event["scores"] = {f"c{k}": 0.001 for k in range(MAX_SCORES + 1)}
    elif choice == 2:
        event["segment"] = {f"s{k}": "v" for k in range(MAX_SEGMENT_ENTRIES + 1)}
    elif choice == 3:
        event["features"]["channel"] = "x" * (MAX_STRING_VALUE_CHARS + 1)
    elif choice == 4:
        event[rng.choice(("event_id", "model", "model_version"))] = "m" * (MAX_ID_CHARS + 1)
    elif choice == 5:
        event[rng.choice(("features", "scores", "segment"))]["k" * (MAX_NAME_CHARS + 1)] = "a" if rng.random() < 0.3 else 0.5
    else:
        event["segment"]["region"] = "r" * (MAX_ID_CHARS + 1)
    return Hostile("limits", _dumps(event), _one(Reason.WRONG_TYPE))


def gen_duplicate_keys(i: int, rng: random.Random) -> Hostile:
    """Duplicate keys (the last one wins in JSON parsers): a valid field shadowed by a broken one."""
    raw = _dumps(base_event(i, rng))
    return Hostile("duplicate_keys", raw[:-1] + b', "features": [1, 2, 3]}', _one(Reason.WRONG_TYPE))


def gen_mutated(i: int, rng: random.Random) -> Hostile:
    """A valid event with one field dropped, retyped or replaced (the mutations that make it invalid)."""
    event = base_event(i, rng)
    mutation = rng.randrange(3)
    if mutation == 0:
        name = rng.choice(("event_id", "model", "features"))
        del event[name]
        return Hostile("mutated", _dumps(event), _one(Reason.MISSING_FIELD))
    if mutation == 1:  # retype: the same value, as another JSON type
        name = rng.choice(("event_id", "model", "features", "scores", "segment"))
        value = event[name]
        event[name] = [value] if rng.random() < 0.5 else ({"value": value} if not isinstance(value, dict) else list(value))
        return Hostile("mutated", _dumps(event), _one(Reason.WRONG_TYPE))
    name = rng.choice(NUMERIC_FEATURES)
    event["features"][name] = str(event["features"][name])  # "12.5" for a declared numeric feature
    return Hostile("mutated", _dumps(event), _one(Reason.FEATURE_TYPE_MISMATCH))


GENERATORS: tuple[tuple[Callable[[int, random.Random], Hostile], int], ...] = (
    (gen_random_bytes, 12),
    (gen_random_text, 6),
    (gen_truncated, 10),
    (gen_trailing_garbage, 3),
    (gen_deep_nesting, 4),
    (gen_non_finite, 8),
    (gen_huge_number, 8),
    (gen_big_finite_misplaced, 5),
    (gen_invalid_utf8, 6),
    (gen_lone_surrogate, 6),
    (gen_encoding, 2),
    (gen_unicode_invalid_event, 8),
    (gen_wrong_type, 12),
    (gen_missing, 4),
    (gen_not_object, 3),
    (gen_empty, 2),
    (gen_limits, 1),
    (gen_duplicate_keys, 1),
    (gen_mutated, 8),
)

MiB = 1 << 20


def big_messages(seed: int, *, ten_mb: int = 3, oversized: int = 6, near_limit: int = 12) -> list[Hostile]:
    """The expensive ones: 10 MiB messages, messages just over the 1 MiB limit, and
    messages just under it that are costly to parse (a huge string, a huge array,
    80,000 keys, a million-character feature name)."""
    rng = random.Random(seed)
    out: list[Hostile] = []
    for k in range(ten_mb):
        if k % 2 == 0:
            filler = rng.randbytes(10 * MiB)
        else:  # 10 MiB of structurally valid JSON
            head = b'{"event_id": "big", "model": "credit-risk", "features": {"x": "'
            filler = head + b"a" * (10 * MiB - len(head) - 3) + b'"}}'
        out.append(Hostile("ten_mb", filler, _one(Reason.OVERSIZED)))
    for k in range(oversized):
        size = MAX_EVENT_BYTES + 1 + rng.choice((0, 1, 1000, MiB // 2, MiB))
        out.append(Hostile("oversized", (b'{"pad": "' + b"p" * size)[:size - 2] + b'"}', _one(Reason.OVERSIZED)))
    near = MAX_EVENT_BYTES - 64
    for k in range(near_limit):
        event = base_event(10_000_000 + k, rng)
        choice = k % 4
        if choice == 0:
            event["features"]["channel"] = "s" * (near - 1000)
            raw = _dumps(event)
        elif choice == 1:
            raw = _splice(event, ("features", "income"), b"[" + b"1," * (near // 2 - 300) + b"1]")
        elif choice == 2:
            raw = _splice(event, ("features",), b"{" + b",".join(b'"k%d":1' % n for n in range(80_000)) + b"}")
        else:
            event["features"]["n" * (near - 400)] = 1.0
            raw = _dumps(event)
        assert len(raw) <= MAX_EVENT_BYTES, len(raw)
        out.append(Hostile("near_limit", raw, _one(Reason.WRONG_TYPE)))
    return out


def hostile_corpus(n: int, seed: int = 0, *, big: bool = True) -> list[Hostile]:
    """``n`` hostile messages (the big ones included when ``big``), in a seeded order."""
    rng = random.Random(seed)
    specials = big_messages(seed) if big else []
    generators = [g for g, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    out = [rng.choices(generators, weights)[0](i, rng) for i in range(n - len(specials))]
    for special in specials:
        out.insert(rng.randrange(len(out) + 1), special)
    return out


def weird_valid_events(n: int, seed: int = 0, model: str = "weird-but-valid-\u202e\U0001f600") -> Iterator[dict]:
    """Valid events at the edges of the schema: unicode everywhere, extreme finite numbers.

    Each feature keeps one type (numbers stay numbers), so none is a type mismatch.
    """
    rng = random.Random(seed)
    edges = [e for e in UNICODE_EDGES if e]
    numeric_names = [f"num-{e}" for e in edges[:6]] + ["n" * MAX_NAME_CHARS]
    categorical_names = [f"cat-{e}" for e in edges[6:12]]
    extremes = (1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0, 0.0, 1e-300, 9007199254740993, 18446744073709551615)
    for i in range(n):
        features: dict[str, object] = {}
        for name in numeric_names:
            roll = rng.random()
            features[name] = None if roll < 0.05 else (rng.choice(extremes) if roll < 0.3 else rng.gauss(0, 1e6))
        for name in categorical_names:
            features[name] = rng.choice(edges) * rng.randint(1, 3) if rng.random() < 0.9 else None
        features["long"] = "L" * MAX_STRING_VALUE_CHARS
        yield {
            "event_id": rng.choice(edges) + f"-{i}",
            "model": model,
            "model_version": rng.choice(edges),
            "timestamp": rng.choice((0, 1, 99_999_999_999.0, "1970-01-01T00:00:00Z", "5138-11-16T09:46:39Z", 1767225600 + i)),
            "features": features,
            "prediction": rng.choice(edges[:4]),
            "scores": {e: rng.random() for e in edges[:3]},
            "label": rng.choice((True, False, None, edges[0])),
            "latency_ms": rng.choice((0, 5e-324, 1.7e308, 12.5)),
            "segment": {"\u202eregion": rng.choice(edges[:5]), "tier": rng.randint(-(2**63), 2**64 - 1)},
        }


# -- watching a process's memory ------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``: resident now, ``VmHWM``: peak resident), None if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None
