"""The synthetic stream is the ground truth of every drift test: it must be
deterministic, and the drift it injects must be exactly where and as large as
asked, and nowhere else."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from stream_monitor.simulation.synthetic import (
    CHUNK_SIZE,
    Drift,
    benchmark_profile,
    credit_risk_profile,
    generate,
)

SEED = 20260101
CHANGE = 5000
N = 10_000


@pytest.fixture(scope="module")
def profile():
    return credit_risk_profile()


@pytest.fixture(scope="module")
def baseline(profile):
    return list(generate(profile, N, SEED))


def _values(events, feature, region=None, lo=0, hi=None):
    hi = len(events) if hi is None else hi
    out = [
        e["features"][feature]
        for e in events[lo:hi]
        if region is None or e["segment"]["region"] == region
    ]
    return [v for v in out if v is not None]


def _share(events, feature, value, region=None, lo=0, hi=None):
    values = _values(events, feature, region, lo, hi)
    return sum(v == value for v in values) / len(values)


# -- determinism ------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_events(profile, baseline):
    again = list(generate(profile, N, SEED))
    assert [orjson.dumps(e) for e in again] == [orjson.dumps(e) for e in baseline]


def test_other_seed_gives_other_events(profile, baseline):
    other = list(generate(profile, 100, SEED + 1))
    assert [e["features"] for e in other] != [e["features"] for e in baseline[:100]]


@pytest.mark.parametrize("split", [1, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 17])
def test_split_generation_equals_one_shot(profile, split):
    drifts = [Drift("income", start=1500, segment=("region", "eu-west"), magnitude=1.0)]
    one_shot = list(generate(profile, 4000, SEED, drifts))
    first = list(generate(profile, split, SEED, drifts))
    rest = list(generate(profile, 4000 - split, SEED, drifts, start_index=split))
    assert [orjson.dumps(e) for e in first + rest] == [orjson.dumps(e) for e in one_shot]


def test_ids_and_timestamps(profile):
    events = list(generate(profile, 5, 3, start_index=10, start_time=1000.0, rate=50.0))
    assert [e["event_id"] for e in events] == [f"3-{i}" for i in range(10, 15)]
    assert [e["timestamp"] for e in events] == pytest.approx([1000.0 + i / 50.0 for i in range(10, 15)])


def test_drift_leaves_events_before_its_start_untouched(profile, baseline):
    drifted = list(generate(profile, N, SEED, [Drift("income", start=CHANGE + 123, magnitude=2.0)]))
    assert drifted[: CHANGE + 123] == baseline[: CHANGE + 123]
    assert drifted[CHANGE + 123 :] != baseline[CHANGE + 123 :]


# -- schema and shape -------------------------------------------------------------------------------


def test_events_follow_the_v1_schema(baseline):
    for event in baseline[:2000]:
        assert isinstance(event["event_id"], str) and event["model"] == "credit-risk"
        assert isinstance(event["model_version"], str) and isinstance(event["timestamp"], float)
        assert all(v is None or isinstance(v, (int, float, str, bool)) for v in event["features"].values())
        p = event["prediction"]
        assert 0.0 < p < 1.0 and event["scores"]["default"] == p
        assert event["scores"]["repaid"] == pytest.approx(1.0 - p)
        assert event.get("label", "default") in ("default", "repaid")
        assert event["latency_ms"] > 0
        assert set(event["segment"]) == {"region"}
    assert isinstance(baseline[0]["features"]["age"], int)
    assert isinstance(baseline[0]["features"]["open_accounts"], int)


def test_label_on_about_ten_percent_and_calibrated(baseline):
    labelled = [e for e in baseline if "label" in e]
    assert 0.08 < len(labelled) / len(baseline) < 0.12
    positive = np.mean([e["label"] == "default" for e in labelled])
    assert positive == pytest.approx(np.mean([e["prediction"] for e in labelled]), abs=0.04)


def test_region_shares_match_the_profile(profile, baseline):
    shares = profile.segments["region"]
    for region, expected in zip(shares.values, shares.probs):
        observed = sum(e["segment"]["region"] == region for e in baseline) / len(baseline)
        assert observed == pytest.approx(expected, abs=0.02), region


def test_json_size_of_credit_risk_events(baseline):
    sizes = [len(json.dumps(e, separators=(",", ":"))) for e in baseline[:1000]]
    assert 300 <= min(sizes) and max(sizes) <= 900


def test_benchmark_profile_shape():
    profile = benchmark_profile()
    events = list(generate(profile, 3000, 1))
    assert len(events[0]["features"]) == 23
    assert set(events[0]["segment"]) == {"s0", "s1"}
    values = {e["segment"]["s0"] for e in events}
    assert len(values) == 50
    counts = np.array([sum(e["segment"]["s1"] == v for e in events) for v in sorted(values)])
    assert counts.min() > 0.3 * counts.max()  # uniform-ish


# -- drift --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def income_shift(profile):
    drift = Drift("income", start=CHANGE, segment=("region", "eu-west"), kind="mean_shift", magnitude=1.0)
    return list(generate(profile, N, SEED, [drift]))


def test_mean_shift_moves_the_segment_mean_by_about_one_sd(income_shift):
    before = np.array(_values(income_shift, "income", "eu-west", hi=CHANGE))
    after = np.array(_values(income_shift, "income", "eu-west", lo=CHANGE))
    shift_in_sd = (after.mean() - before.mean()) / before.std()
    assert 0.75 < shift_in_sd < 1.25


def test_mean_shift_leaves_other_regions_and_features_alone(income_shift, baseline):
    for i in range(CHANGE, N):
        drifted, base = income_shift[i], baseline[i]
        if drifted["segment"]["region"] != "eu-west":
            assert drifted == base
        else:
            others = {k: v for k, v in drifted["features"].items() if k != "income"}
            assert others == {k: v for k, v in base["features"].items() if k != "income"}


def test_feature_drift_shows_up_as_prediction_drift_in_that_segment(income_shift, baseline):
    def mean_prediction(events):
        return np.mean([e["prediction"] for e in events[CHANGE:] if e["segment"]["region"] == "eu-west"])

    # Higher income -> lower default probability, in the drifted segment only.
    assert mean_prediction(income_shift) < mean_prediction(baseline) - 0.01


def test_category_shift_moves_the_share_by_magnitude(profile, baseline):
    drift = Drift("home_ownership", start=CHANGE, kind="category_shift", magnitude=0.2, target="rent")
    events = list(generate(profile, N, SEED, [drift]))
    before = _share(events, "home_ownership", "rent", hi=CHANGE)
    after = _share(events, "home_ownership", "rent", lo=CHANGE)
    assert after - before == pytest.approx(0.2, abs=0.04)
    assert before == pytest.approx(_share(baseline, "home_ownership", "rent", hi=CHANGE))
    # The other categories keep their relative proportions.
    ratio_before = _share(events, "home_ownership", "mortgage", hi=CHANGE) / _share(events, "home_ownership", "own", hi=CHANGE)
    ratio_after = _share(events, "home_ownership", "mortgage", lo=CHANGE) / _share(events, "home_ownership", "own", lo=CHANGE)
    assert ratio_after == pytest.approx(ratio_before, rel=0.25)


def test_new_category_appears_at_magnitude_share(profile):
    drift = Drift("channel", start=CHANGE, segment=("region", "us-east"), kind="new_category",
                  magnitude=0.15, target="voice_assistant")
    events = list(generate(profile, N, SEED, [drift]))
    assert _share(events, "channel", "voice_assistant", hi=CHANGE) == 0.0
    assert _share(events, "channel", "voice_assistant", "us-east", lo=CHANGE) == pytest.approx(0.15, abs=0.03)
    for region in ("eu-west", "apac", "latam"):
        assert _share(events, "channel", "voice_assistant", region) == 0.0


@pytest.mark.parametrize(
    "drift, message",
    [
        (Drift("nope", start=0), "unknown feature"),
        (Drift("income", start=0, kind="category_shift", magnitude=0.1, target="x"), "numeric"),
        (Drift("channel", start=0, kind="mean_shift"), "categorical"),
        (Drift("channel", start=0, kind="category_shift", magnitude=0.1, target="fax"), "new_category"),
        (Drift("channel", start=0, kind="new_category", magnitude=0.1, target="web"), "already"),
        (Drift("income", start=0, segment=("region", "mars")), "unknown value"),
        (Drift("income", start=0, segment=("country", "fr")), "unknown segment key"),
    ],
)
def test_invalid_drifts_are_rejected_up_front(profile, drift, message):
    with pytest.raises(ValueError, match=message):
        next(generate(profile, 1, 0, [drift]))


def test_drift_dataclass_validates_itself():
    with pytest.raises(ValueError):
        Drift("x", start=0, kind="explode")
    with pytest.raises(ValueError):
        Drift("x", start=0, kind="category_shift", magnitude=0.2)  # no target
    with pytest.raises(ValueError):
        Drift("x", start=0, kind="new_category", magnitude=1.5, target="y")
