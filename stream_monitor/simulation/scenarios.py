"""Ready-made scenarios for the demo, ``simulate`` and the tests.

Kept apart from the generator so the demo, the CLI and the tests agree on
what "the injected drift" is and on what broken input looks like.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Iterator, Sequence

import numpy as np

from stream_monitor.simulation.synthetic import Drift, ModelProfile, generate

DEMO_DRIFT_FEATURE = "debt_to_income"
DEMO_DRIFT_SEGMENT = ("region", "apac")


def demo_drift(start: int) -> Drift:
    """+1 standard deviation in one feature of one region: visible in that segment, diluted in the aggregate."""
    return Drift(feature=DEMO_DRIFT_FEATURE, start=start, segment=DEMO_DRIFT_SEGMENT, kind="mean_shift", magnitude=1.0)


def endless(profile: ModelProfile, n: int, seed: int, drifts: Sequence[Drift], rate: float, chunk: int = 10_000) -> Iterator[dict]:
    """``n`` events, or an unbounded stream when ``n`` is 0 (for ``simulate --events 0``)."""
    if n > 0:
        yield from generate(profile, n, seed, drifts, rate=rate)
        return
    for start in itertools.count(0, chunk):
        yield from generate(profile, chunk, seed, drifts, start_index=start, rate=rate)


#: Broken messages of every kind the decoder must reject, with the reason it must give.
MALFORMED_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"this is not json", "not_json"),
    (b'{"event_id": "x", "model": "m", "features": {', "not_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (b'{"model": "credit-risk", "features": {"income": 1.0}}', "missing_field"),
    (b'{"event_id": "bad-1", "features": {"income": 1.0}}', "missing_field"),
    (b'{"event_id": "bad-2", "model": "credit-risk"}', "missing_field"),
    (b'{"event_id": "bad-3", "model": "credit-risk", "features": [1, 2]}', "wrong_type"),
    (b'{"event_id": "bad-4", "model": "credit-risk", "features": {"income": {"nested": 1}}}', "wrong_type"),
    (b'{"event_id": 17, "model": "credit-risk", "features": {"income": 1.0}}', "wrong_type"),
    (b'{"event_id": "bad-5", "model": "credit-risk", "features": {"income": NaN}}', "non_finite_number"),
    (b'{"event_id": "bad-6", "model": "credit-risk", "features": {"income": 1e400}}', "non_finite_number"),
    (b'{"event_id": "bad-7", "model": "credit-risk", "features": {"income": 1.0}, "timestamp": "yesterday"}', "invalid_timestamp"),
    (b'{"event_id": "bad-8", "model": "credit-risk", "features": {"income": 1.0}, "latency_ms": "slow"}', "wrong_type"),
    (b"", "empty"),
)


def malformed_messages(n: int, seed: int) -> Iterable[tuple[bytes | None, bytes]]:
    """``n`` (key, value) pairs cycling through :data:`MALFORMED_KINDS` in a seeded order."""
    rng = np.random.default_rng(seed)
    order = rng.integers(0, len(MALFORMED_KINDS), size=n)
    return [(f"malformed-{i}".encode(), MALFORMED_KINDS[k][0]) for i, k in enumerate(order)]


def expected_reasons(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [MALFORMED_KINDS[k][1] for k in rng.integers(0, len(MALFORMED_KINDS), size=n)]
