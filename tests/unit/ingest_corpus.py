"""Batches of raw messages that exercise every branch of ingest: shared by the equivalence tests.

Mostly realistic traffic (the simulation's generators, several models
interleaved) with a seeded share of events bent out of the common shape:
strings, nulls, bools, huge ints in numeric features, features added, dropped
or reordered, every optional field retyped, plus the hostile corpus. The
columnar fast path must give exactly what the per-event path gives for all of
it, so the mix leans on the places where the two could drift apart.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

import orjson

from helpers.hostile import hostile_corpus, spec_toml, weird_valid_events
from stream_monitor.core.events import RawMessage
from stream_monitor.simulation.scenarios import MALFORMED_KINDS
from stream_monitor.simulation.synthetic import benchmark_profile, credit_risk_profile, generate

#: Values that a numeric feature must not confuse with numbers, and numbers at the edges.
ODD_VALUES = (
    None, True, False, "12.5", "", "nan", "x" * 1024, "x" * 1025, 0, -0.0, 1, -(2**63), 2**64 - 1, 2**53 + 1,
    1.7976931348623157e308, 5e-324, [1], {"a": 1},
)
ODD_OPTIONAL = (None, True, False, "yes", "", 0, 1, 0.5, -1, 2**64 - 1, -1.5, [0.5], {"a": 1}, "x" * 1025)
ODD_TIMESTAMPS = (
    None, 0, 1, -1, 1.7e12, 99_999_999_999.0, 1e11, "2026-01-31T12:00:00Z", "2026-01-31", "2026-01-31 12:00:00+02:00",
    "yesterday", True, [1], "2026-01-31T12:00:00\x00Z",
)


def _bend(event: dict, rng: random.Random) -> dict:
    """One field of a valid event changed: still valid or not, either way the paths must agree."""
    features = event["features"]
    names = list(features)
    roll = rng.randrange(15)
    if roll == 0:
        features[rng.choice(names)] = rng.choice(ODD_VALUES)
    elif roll == 1:
        del features[rng.choice(names)]
    elif roll == 2:
        features[f"extra{rng.randrange(3)}"] = rng.choice((1.5, "e", None, 7))
    elif roll == 3:
        event["features"] = dict(rng.sample(list(features.items()), len(features)))
    elif roll == 4:
        event["prediction"] = rng.choice(ODD_OPTIONAL)
    elif roll == 5:
        event["scores"] = rng.choice(({}, None, {"a": 0.1, "b": 0.2, "c": 0.7}, {"a": True}, {"only": 1}, [1], 5,
                                      {f"k{i}": i / 40 for i in range(40)}))
        event["prediction"] = rng.choice((event.get("prediction"), "k3", None))  # scores are watched without a numeric prediction
    elif roll == 6:
        event["label"] = rng.choice(ODD_OPTIONAL)
    elif roll == 7:
        event["latency_ms"] = rng.choice(ODD_OPTIONAL)
    elif roll == 8:
        event["segment"] = rng.choice(({}, None, {"s0": 7}, {"s0": True}, {"s0": 1.5}, {"s0": None}, {"new": "v"}, "eu",
                                       {"s1": "a", "s0": "b"}, {"s0": "x" * 257}))
    elif roll == 9:
        event["timestamp"] = rng.choice(ODD_TIMESTAMPS)
    elif roll == 10:
        event["model_version"] = rng.choice((None, 3, 2.5, 2**64 - 1, "", "v" * 257, True, [1]))
    elif roll == 11:
        event["event_id"] = rng.choice(("", None, 5, "e" * 257, "\u202e\U0001f600"))
    elif roll == 12:
        for name in rng.sample(names, min(len(names), 3)):
            features[name] = None
    elif roll == 13:
        event.pop(rng.choice(("prediction", "scores", "label", "latency_ms", "segment", "timestamp", "model_version")), None)
    else:
        event["features"] = rng.choice(({}, None, [1, 2], {"n" * 257: 1.0}))
    return event


def _events(seed: int, n: int) -> Iterator[dict]:
    """Two models of the simulation, interleaved in runs of random length."""
    streams = [generate(benchmark_profile(), n, seed), generate(credit_risk_profile(), n, seed + 1)]
    rng = random.Random(seed)
    while streams:
        stream = rng.choice(streams)
        for _ in range(rng.randint(1, 40)):
            event = next(stream, None)
            if event is None:
                streams.remove(stream)
                break
            yield event


def mixed_messages(seed: int, n: int, bent: float = 0.05, hostile: float = 0.02) -> list[RawMessage]:
    """``n`` messages: simulated events, a ``bent`` share changed by :func:`_bend`, a ``hostile`` share of junk."""
    rng = random.Random(seed)
    junk = [h.value for h in hostile_corpus(200, seed, big=False)] + [raw for raw, _ in MALFORMED_KINDS]
    out: list[RawMessage] = []
    events = _events(seed, n)
    for i in range(n):
        roll = rng.random()
        if roll < hostile:
            value = rng.choice(junk)
        else:
            event = next(events)
            value = orjson.dumps(_bend(event, rng) if roll < hostile + bent else event)
        timestamp_ms = rng.choice((None, 1_767_225_600_000 + i, -5, 10**15)) if i % 7 == 0 else 1_767_225_600_000 + i
        out.append(RawMessage(value, topic=f"topic-{i % 3}", partition=i % 4, offset=1000 + i, timestamp_ms=timestamp_ms))
    return out


def numeric_edge_messages(seed: int, n: int, odd_share: float) -> list[RawMessage]:
    """Numeric columns of 0s and 1s where a bool, a string or a null may hide, plus huge ints and -0.0.

    The shape-group path converts a column of numbers in one C call that
    takes bools for 0 and 1 and then looks for them among those rows only:
    these batches are that search's edges.
    """
    rng = random.Random(seed)
    odd = (True, False, None, "1", "", 0, 1, 0.0, 1.0, -0.0, 2**64 - 1, -(2**63), 2**53 + 1)
    out = []
    for i in range(n):
        features = {"flag": rng.choice((0, 1)), "ratio": rng.choice((0.0, 1.0, -0.0, 0.5)), "big": rng.choice((2**64 - 1, -(2**63), 2**53 + 1, 3))}
        event = {"event_id": f"e{i}", "model": "edges", "timestamp": rng.choice((1_767_225_600 + i, 0, 1, 1.0)),
                 "features": features, "prediction": rng.choice((0, 1, 0.25)), "latency_ms": rng.choice((0, 1, 2.5))}
        if rng.random() < odd_share:
            field = rng.choice(("flag", "ratio", "big", "timestamp", "prediction", "latency_ms"))
            (features if field in features else event)[field] = rng.choice(odd)
        out.append(RawMessage(orjson.dumps(event), "edges", i % 2, i, timestamp_ms=1_767_225_600_000 + i))
    return out


#: Features named like the reserved signals (and like a renamed one), next to the signals themselves.
RESERVED_FEATURES = ("prediction", "label", "latency_ms", "score:a", "score:default", "feature:prediction")


def reserved_name_messages(seed: int, n: int, odd_share: float = 0.1) -> list[RawMessage]:
    """Events whose features are called ``prediction``, ``label``, ``score:a``, ...: the columns must stay apart.

    The reserved signals are there too, of the same or the other type, and
    a share of the values is changed to another type or dropped, so both
    paths type, order and reject the look-alikes the same way.
    """
    rng = random.Random(seed)
    out = []
    for i, event in enumerate(generate(credit_risk_profile(), n, seed)):
        event["model"] = "reserved"
        features = event["features"]
        for name in RESERVED_FEATURES:
            features[name] = round(rng.gauss(100.0, 1.0), 3) if name != "label" else rng.choice(("yes", "no"))
        if i % 3 == 0:  # a class label: the scores are watched too
            event["prediction"] = rng.choice(("default", "repaid"))
        event["label"] = rng.choice((0, 1))
        if rng.random() < odd_share:
            field = rng.choice(RESERVED_FEATURES + ("prediction*", "label*", "latency_ms*"))
            value = rng.choice(ODD_VALUES[:12])
            if field.endswith("*"):
                event[field[:-1]] = value
            else:
                features[field] = value
        if rng.random() < odd_share:
            event["features"] = dict(rng.sample(list(features.items()), len(features)))
        out.append(RawMessage(orjson.dumps(event), "reserved", i % 2, i, timestamp_ms=1_767_225_600_000 + i))
    return out


def weird_messages(seed: int, n: int) -> list[RawMessage]:
    return [RawMessage(orjson.dumps(e), "weird", 0, i) for i, e in enumerate(weird_valid_events(n, seed))]


def hostile_messages(seed: int, n: int) -> list[RawMessage]:
    return [RawMessage(h.value, "hostile", i % 2, i) for i, h in enumerate(hostile_corpus(n, seed, big=False))]


#: (name, messages) of every corpus batch; each is fed to ingest without and with a spec.
CORPUS: tuple[tuple[str, Callable[[], list[RawMessage]]], ...] = (
    ("clean", lambda: mixed_messages(1, 3000, bent=0.0, hostile=0.0)),
    ("bent", lambda: mixed_messages(2, 3000)),
    ("very bent", lambda: mixed_messages(3, 2000, bent=0.5, hostile=0.1)),
    ("all bent", lambda: mixed_messages(4, 1000, bent=1.0, hostile=0.0)),
    ("small", lambda: mixed_messages(5, 7)),
    ("one", lambda: mixed_messages(6, 1)),
    ("empty", lambda: []),
    ("weird", lambda: weird_messages(7, 500)),
    ("hostile", lambda: hostile_messages(8, 400)),
    ("hostile and weird", lambda: hostile_messages(9, 300) + weird_messages(9, 300) + mixed_messages(9, 500)),
    ("numeric edges", lambda: numeric_edge_messages(10, 1000, odd_share=0.02)),
    ("numeric edges, often odd", lambda: numeric_edge_messages(11, 300, odd_share=0.5)),
    ("features named like reserved signals", lambda: reserved_name_messages(12, 2000)),
    ("features named like reserved signals, often odd", lambda: reserved_name_messages(13, 300, odd_share=0.6)),
    ("features named like reserved signals, mixed", lambda: reserved_name_messages(14, 500) + mixed_messages(14, 500)),
)

#: Declares some benchmark and credit-risk features numeric (and one categorical feature numeric, so
#: every event of that model is a type mismatch), on top of the hostile spec.
SPEC_TOML = spec_toml().replace('channel = "categorical"', 'channel = "numeric"') + (
    '[models.benchmark.features]\nf00 = "numeric"\nf03 = "numeric"\nc1 = "categorical"\nextra1 = "numeric"\n'
    '[models.m1.features]\na = "numeric"\nb = "categorical"\n'
    # the features called like reserved signals, not the signals: a string prediction is no mismatch
    '[models.reserved.features]\nprediction = "numeric"\n"score:a" = "numeric"\nlatency_ms = "categorical"\n'
)


def ingest_outcome(result) -> tuple:
    """What an ``IngestResult`` is, as plain comparable data."""
    return (
        [(batch.model, batch.to_bytes()) for batch in result.batches],
        [(r.reason, r.detail, r.message) for r in result.rejections],
        sorted(result.consumed_by_topic.items()),
    )
