"""Nothing lost, nothing counted twice: crashes, scale-out and a broker outage, on a real broker.

Each test compares a disturbed run with an undisturbed run of the same events:
the detector state both leave in the changelog, and the alert ids both publish.
Progress is read from ``stream_monitor_shard_events``, the number of events
applied to the *state* of each evaluation shard of a model, which survives
restarts (per-process counters would count re-evaluated records again): a
model is as far as its slowest shard. The workers run with the default
number of evaluation shards (1: one evaluator per model); sharded
evaluation is tested in test_sharding.py.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer

from helpers.kafka import consume_all
from helpers.worker import WorkerProcess, shard_progress
from stream_monitor.config import load_settings
from stream_monitor.core.state_codec import decode_state, encode_state
from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.kafka.changelog import Changelog
from stream_monitor.simulation.producer import produce_raw
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERNAL_PARTITIONS = 4
# Small polls keep ingest and evaluation in step, so kills land mid-evaluation.
# A rebalance leaves the source partitions that move unread for a while (about
# 9 s on the embedded broker, close to the 10 s default): the resequencer must
# not take them for idle then, or rows would leave out of event-time order.
FAST = [
    "--internal-partitions", str(INTERNAL_PARTITIONS), "--checkpoint-interval", "2", "--batch-size", "1000",
    "--reorder-idle-seconds", "30",
]


class Run:
    """One monitored deployment: its topics, group and worker processes."""

    def __init__(self, bootstrap: str, unique_name, partitions: int, payloads: list[tuple[bytes, bytes]] = ()) -> None:
        self.bootstrap = bootstrap
        self.events = unique_name("predictions")
        self.alerts = unique_name("alerts")
        self.dead_letters = unique_name("dead-letter")
        self.group = unique_name("group")
        ensure_topics(bootstrap, {self.events: partitions})
        self.produced = 0
        if payloads:
            self.produce(payloads)
        self.workers: list[WorkerProcess] = []

    def produce(self, payloads: list[tuple[bytes, bytes]]) -> None:
        self.produced += produce_raw(self.bootstrap, self.events, payloads)

    def start(self) -> WorkerProcess:
        worker = WorkerProcess(self.bootstrap, [self.events], self.alerts, self.dead_letters, self.group, extra_args=FAST)
        self.workers.append(worker.start())
        return worker

    def model_events(self) -> float:
        """Events applied, summed over models, each model counted at its slowest evaluation shard."""
        running = [w for w in self.workers if w.process and w.process.poll() is None]
        if not running:
            return 0.0
        return float(sum(shard_progress([w.scrape() for w in running], running[0].shards).values()))

    def wait_applied(self, at_least: int, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.model_events() >= at_least:
                return
            time.sleep(0.2)
        logs = "\n".join(w.log_text()[-2000:] for w in self.workers)
        raise AssertionError(f"{self.model_events()} of {at_least} events applied in {timeout}s\n{logs}")

    def final_state(self) -> dict[str, dict]:
        """Every monitor's state from the changelog (after the workers stopped), by checkpoint
        name: ``model#shard/shards`` for each evaluation shard of a model."""
        settings = load_settings({"bootstrap_servers": self.bootstrap, "group_id": self.group})
        changelog = Changelog(settings.changelog_topic, {"bootstrap.servers": self.bootstrap}, {"bootstrap.servers": self.bootstrap})
        models = {}
        for partition in range(INTERNAL_PARTITIONS):
            checkpoint = changelog.read(partition)
            if checkpoint is not None:
                models.update({name: decode_state(blob) for name, blob in checkpoint.models.items()})
        return models

    def alert_messages(self) -> list[dict]:
        return [orjson.loads(m.value) for m in consume_all(self.bootstrap, self.alerts, 10**9, timeout=8)]

    def alert_ids(self) -> list[str]:
        return [alert["alert_id"] for alert in self.alert_messages()]

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.process and worker.process.poll() is None:
                assert worker.stop() == 0, worker.log_text()[-3000:]

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()


def detector_state(model_state: dict) -> bytes:
    """What must match an undisturbed run: everything but the per-source bookkeeping
    (it names each run's own topic), once the resequencer has released every row."""
    assert model_state["resequencer"]["buffer"] is None
    return encode_state({k: v for k, v in model_state.items() if k not in ("applied", "resequencer")})


def stream_counts(model_state: dict) -> dict[tuple, int]:
    """Values each stream has taken in: its reference plus everything since."""
    return {tuple(key): stream["seen"] + _reference_count(stream) for key, stream in model_state["streams"]}


def _reference_count(stream: dict) -> int:
    if "reference_total" in stream:  # categorical
        return stream["reference_total"]
    if stream["reference"] is not None:  # numeric, reference frozen
        return len(stream["reference"]["sorted"])
    return len(stream["warmup"])


def describe(alerts: list[dict]) -> list[str]:
    """Readable identity of each alert, for assertion messages."""
    return sorted(
        f"{a['model']}/{a['feature']}/{a['segment'] or 'all'} {a['severity']} {a['detector']}" for a in alerts
    )


def payloads(events) -> list[tuple[bytes, bytes]]:
    return [(e["event_id"].encode(), orjson.dumps(e)) for e in events]


@pytest.fixture
def runs(kafka_bootstrap, unique_name):
    made: list[Run] = []

    def make(partitions: int, events=()) -> Run:
        run = Run(kafka_bootstrap, unique_name, partitions, events)
        made.append(run)
        return run

    yield make
    for run in made:
        run.kill_all()


def test_sigkill_at_three_points_leaves_the_state_and_alerts_of_an_uninterrupted_run(runs):
    total = 100_000
    drift = Drift(feature="income", start=60_000, segment=("region", "eu-west"), magnitude=1.0)
    events = payloads(generate(credit_risk_profile(), total, seed=41, drifts=[drift]))

    # One input partition: Kafka defines no order across partitions, so only a
    # single partition gives two runs the same sequence to compare exactly.
    reference = runs(1, events)
    reference.start()
    reference.wait_applied(total)
    reference.stop_all()
    expected_states = reference.final_state()
    assert {s["name"] for s in expected_states.values()} == {"credit-risk"}
    expected_alerts = reference.alert_ids()
    assert expected_alerts, "the injected drift must alert"

    crashed = runs(1, events)
    rng = np.random.default_rng(7)
    kill_points = sorted(rng.integers(10_000, 90_000, size=3))
    worker = crashed.start()
    for point in kill_points:
        crashed.wait_applied(int(point))
        worker.stop(signal.SIGKILL)
        worker = crashed.start()
    crashed.wait_applied(total)
    crashed.stop_all()
    states = crashed.final_state()
    for restarted in crashed.workers[1:]:  # each restart resumed from a checkpoint holding the model
        assert "(1 models), resuming at offset" in restarted.log_text()

    assert states.keys() == expected_states.keys()  # one state per evaluation shard
    for name, state in states.items():
        expected_state = expected_states[name]
        assert state["events"] == total == expected_state["events"], name
        assert stream_counts(state) == stream_counts(expected_state), name  # nothing counted twice, nothing skipped
        assert detector_state(state) == detector_state(expected_state), name  # windows, references, detectors identical
    assert set(crashed.alert_ids()) == set(expected_alerts)


def test_second_worker_mid_stream_gives_one_alert_per_drift_and_a_single_workers_verdicts(runs):
    profile = credit_risk_profile()
    n = 40_000
    # Kafka orders nothing across partitions, and one worker and two interleave
    # them differently; the resequencers put both back in event-time order, so
    # every verdict, marginal ones included, must be the same. The injected
    # drift is unambiguous (+1 sd, all traffic) and late (4,000 drifted events,
    # under the 5,000-event cooldown: no reminders).
    drifts = [Drift(feature="debt_to_income", start=n - 4_000, magnitude=1.0)]
    a = list(generate(profile, n, seed=51, drifts=drifts))
    b = list(generate(profile, n, seed=52, drifts=drifts))
    for event in b:
        event["model"] = "fraud"  # a second model, owned through another internal partition
    mixed = payloads(e for pair in zip(a, b) for e in pair)  # keyed by event id: any partition
    first_half, second_half = mixed[:n], mixed[n:]

    single = runs(4, mixed)
    single.start()
    single.wait_applied(2 * n)
    single.stop_all()
    expected_alerts = single.alert_messages()
    expected = Counter(a["alert_id"] for a in expected_alerts)

    scaled = runs(4, first_half)
    # No static membership here: on the embedded broker, a member joining a
    # cooperative group with group.instance.id set can be left without the
    # partitions the others revoked (Apache Kafka has no such problem).
    worker_a = scaled.start()
    scaled.wait_applied(n // 2)
    worker_b = scaled.start()
    deadline = time.monotonic() + 60
    while "assigned" not in worker_b.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "assigned" in worker_b.log_text(), "the second worker must join the group mid-stream"
    scaled.produce(second_half)  # the drift is all in here: evaluated after the rebalance
    scaled.wait_applied(2 * n)
    scaled.stop_all()
    got_alerts = scaled.alert_messages()
    got = Counter(a["alert_id"] for a in got_alerts)

    assert "revoked" in worker_a.log_text()  # the first worker handed partitions over
    want, have = describe(expected_alerts), describe(got_alerts)
    missing = sorted((Counter(want) - Counter(have)).elements())
    extra = sorted((Counter(have) - Counter(want)).elements())
    assert expected and not missing and not extra, (
        f"missing {missing}, extra {extra}, most copies of one id: {max(got.values())} (single run {max(expected.values())})"
    )  # a single worker's verdicts
    assert set(got) == set(expected)
    assert max(got.values()) == 1 and max(expected.values()) == 1  # one alert per detection, not one per worker
    drifted = {(a["model"], a["feature"], tuple(a["segment"].items())) for a in got_alerts if a["kind"] == "data_drift"}
    assert drifted == {(model, "debt_to_income", segment) for model in ("credit-risk", "fraud") for segment in
                       [(), *((("region", r),) for r in ("eu-west", "us-east", "apac", "latam"))]}


def test_broker_outage_of_30_seconds_loses_nothing_and_duplicates_no_alert(own_broker, unique_name):
    total = 60_000
    drift = Drift(feature="income", start=40_000, segment=("region", "eu-west"), magnitude=1.0)
    run = Run(own_broker.bootstrap_servers, unique_name, 4, payloads(generate(credit_risk_profile(), total, seed=61, drifts=[drift])))
    try:
        worker = run.start()
        run.wait_applied(15_000)
        assert worker.healthz() == 200
        own_broker.pause()
        try:
            deadline = time.monotonic() + 20
            while worker.healthz() != 503 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert worker.healthz() == 503, "not-ready during the outage"
            time.sleep(max(0.0, 30 - (20 - (deadline - time.monotonic()))))
            worker.assert_running()
        finally:
            own_broker.resume()
        deadline = time.monotonic() + 60
        while worker.healthz() != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert worker.healthz() == 200, "ready again after the outage"
        run.wait_applied(total)
        run.stop_all()
        states = run.final_state()
        assert states and {s["name"] for s in states.values()} == {"credit-risk"}
        assert all(state["events"] == total for state in states.values())  # zero lost, zero counted twice
        ids = run.alert_ids()
        assert ids and len(ids) == len(set(ids))  # zero duplicate alert ids
    finally:
        run.kill_all()
