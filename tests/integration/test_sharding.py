"""Two workers share the evaluation of one model, signal by signal, on a real broker.

A single worker evaluating the model whole (``--evaluation-shards 1``) and two
workers in one group evaluating it in four shards read the same events (one
input partition, so both see one order) and must publish the same alerts.
"""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from helpers.kafka import consume_all
from helpers.worker import WorkerProcess, all_shards_in_step, shard_progress
from stream_monitor.core.shards import signal_shard
from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.simulation.producer import produce_raw
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate

pytestmark = pytest.mark.integration

N = 16_000
SHARDS = 4
MODEL = "credit-risk"
DRIFTS = [
    Drift(feature="income", start=N // 2, segment=("region", "eu-west"), magnitude=1.0),
    Drift(feature="age", start=N // 2, magnitude=1.0),
    Drift(feature="channel", start=N // 2, kind="category_shift", magnitude=0.3, target="branch"),
]


class Deployment:
    def __init__(self, bootstrap: str, unique_name, payloads: list[tuple[bytes, bytes]], shards: int) -> None:
        self.bootstrap = bootstrap
        self.events = unique_name("predictions")
        self.alerts = unique_name("alerts")
        self.group = unique_name("group")
        self.dead_letters = unique_name("dead-letter")
        self.payloads = payloads
        self.args = ["--internal-partitions", str(SHARDS), "--evaluation-shards", str(shards)]
        ensure_topics(bootstrap, {self.events: 1})  # one partition: one order for both deployments
        self.workers: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        worker = WorkerProcess(self.bootstrap, [self.events], self.alerts, self.dead_letters, self.group, extra_args=self.args)
        self.workers.append(worker.start())
        return worker

    def produce(self) -> None:
        assert produce_raw(self.bootstrap, self.events, self.payloads) == len(self.payloads)

    def scrapes(self) -> list[dict]:
        return [w.scrape() for w in self.workers]

    def wait_applied(self, timeout: float = 180.0) -> list[dict]:
        """Until every shard of the model has applied every event; returns the last scrapes."""
        deadline = time.monotonic() + timeout
        scrapes: list[dict] = []
        while time.monotonic() < deadline:
            for worker in self.workers:
                worker.assert_running()
            scrapes = self.scrapes()
            progress = shard_progress(scrapes, self.workers[0].shards).get(MODEL, 0)
            if progress >= N and all_shards_in_step(scrapes, self.workers[0].shards):
                return scrapes
            time.sleep(0.3)
        logs = "\n".join(w.log_text()[-3000:] for w in self.workers)
        raise AssertionError(f"not every shard applied {N} events in {timeout}s: {shard_progress(scrapes, SHARDS)}\n{logs}")

    def stop(self) -> None:
        for worker in self.workers:
            assert worker.stop() == 0, worker.log_text()[-3000:]

    def alert_messages(self) -> list[dict]:
        return [orjson.loads(m.value) for m in consume_all(self.bootstrap, self.alerts, 10**9, timeout=8)]

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()


def held_shards(samples: dict) -> set[int]:
    return {
        int(dict(labels)["shard"])
        for (name, labels), _ in samples.items()
        if name == "stream_monitor_shard_events" and dict(labels)["model"] == MODEL
    }


def scored_features(samples: dict) -> set[str]:
    return {
        dict(labels)["feature"]
        for (name, labels), _ in samples.items()
        if name == "stream_monitor_drift_score" and dict(labels)["model"] == MODEL
    }


@pytest.fixture
def deployments(kafka_bootstrap, unique_name):
    made: list[Deployment] = []
    payloads = [(e["event_id"].encode(), orjson.dumps(e)) for e in generate(credit_risk_profile(), N, seed=71, drifts=DRIFTS)]

    def make(shards: int) -> Deployment:
        made.append(Deployment(kafka_bootstrap, unique_name, payloads, shards))
        return made[-1]

    yield make
    for deployment in made:
        deployment.kill()


def test_two_workers_each_evaluate_part_of_one_models_signals_and_publish_a_single_workers_alerts(deployments):
    assert {signal_shard(d.feature, SHARDS) for d in DRIFTS} == {0, 2, 3}  # the drifts span shards

    whole = deployments(shards=1)
    whole.start()
    whole.produce()
    whole.wait_applied()
    whole.stop()
    expected = whole.alert_messages()
    assert {a["feature"] for a in expected if a["kind"] == "data_drift"} >= {d.feature for d in DRIFTS}

    sharded = deployments(shards=SHARDS)
    first, second = sharded.start(), sharded.start()
    deadline = time.monotonic() + 60
    while not (first.healthz() == 200 and second.healthz() == 200) and time.monotonic() < deadline:
        time.sleep(0.3)
    sharded.produce()
    scrapes = sharded.wait_applied()

    # both workers evaluate the model, each a part of its signals
    shards_of = [held_shards(samples) for samples in scrapes]
    assert all(shards_of) and not shards_of[0] & shards_of[1], shards_of
    assert shards_of[0] | shards_of[1] == set(range(SHARDS))
    features_of = [scored_features(samples) for samples in scrapes]
    assert all(features_of) and not features_of[0] & features_of[1], features_of
    for features, shards in zip(features_of, shards_of):
        assert {signal_shard(f, SHARDS) for f in features} <= shards
    # the model's event count is reported once (by the holder of shard 0), not once per shard
    reported = [
        value for samples in scrapes for (name, labels), value in samples.items()
        if name == "stream_monitor_model_events" and dict(labels)["model"] == MODEL
    ]
    assert reported == [N]
    sharded.stop()

    got = sharded.alert_messages()
    assert Counter(a["alert_id"] for a in got) == Counter(a["alert_id"] for a in expected)  # same alerts, each once
