"""The worker's own bookkeeping, without a broker: when it checkpoints, when it probes the cluster,
and how it hands internal records to the engine.

The Kafka clients are stand-ins that record what the worker asks of them;
the service itself is tested end to end in tests/integration.
"""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream_monitor.config import load_settings
from stream_monitor.core.engine import MonitorEngine, ingest
from stream_monitor.core.events import RawMessage
from stream_monitor.core.state_codec import encode_state
from stream_monitor.kafka import worker as worker_module
from stream_monitor.kafka.worker import Worker
from stream_monitor.spec import MonitorSpec

PARTITION = 3


class FakeChangelog:
    def __init__(self) -> None:
        self.begun: list[tuple[int, list[str], int]] = []
        self.waited: list[list[int] | None] = []
        self.abandoned: list[int] = []

    def begin(self, partition, models, next_offset):
        self.begun.append((partition, sorted(models), next_offset))
        return type("Pending", (), {"checkpoint_id": len(self.begun)})()

    def wait(self, partitions=None):
        self.waited.append(partitions)

    def poll(self):
        return []

    def abandon(self, partitions):
        self.abandoned.extend(partitions)


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.probes = 0

    def list_topics(self, topic=None, timeout=None):
        self.probes += 1
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))


def messages(start: int, n: int, source_partitions: int = 1) -> list[RawMessage]:
    out = []
    for i in range(start, start + n):
        event = {"event_id": str(i), "model": "m", "features": {"x": float(i % 7)}, "timestamp": 1_767_225_600 + i}
        out.append(RawMessage(orjson.dumps(event), "events", i % source_partitions, i // source_partitions))
    return out


@pytest.fixture
def worker() -> Worker:
    w = Worker(load_settings({"group_id": "g"}, environ={}), MonitorEngine(MonitorSpec.default()))
    w.changelog = FakeChangelog()  # type: ignore[assignment]
    w.owned[PARTITION] = 0
    w.models_of[PARTITION] = set()
    return w


def evaluate(worker: Worker, batch: list[RawMessage]) -> None:
    """What Worker._process does with one internal record of the partition."""
    for model_batch in ingest(batch).batches:
        worker.models_of[PARTITION].add(model_batch.model)
        worker.engine.evaluate(model_batch)
    worker.owned[PARTITION] += 1


def test_a_partition_is_checkpointed_again_only_once_its_state_changed(worker):
    changelog = worker.changelog
    worker._checkpoint([PARTITION])
    assert changelog.begun == [(PARTITION, [], 0)]  # nothing evaluated yet: an empty checkpoint, once
    worker._checkpoint([PARTITION])
    assert len(changelog.begun) == 1

    evaluate(worker, messages(0, 500))
    worker._checkpoint([PARTITION])
    worker._checkpoint([PARTITION])
    assert changelog.begun[1:] == [(PARTITION, ["m"], 1)]

    evaluate(worker, messages(500, 500))
    worker._checkpoint([PARTITION])
    assert changelog.begun[2:] == [(PARTITION, ["m"], 2)]


def test_rows_released_by_the_resequencer_count_as_a_change(worker):
    # Two source partitions, then newer rows of the first only: they wait in
    # the resequencer until the second catches up or the time passes.
    evaluate(worker, messages(0, 400, source_partitions=2))
    evaluate(worker, messages(400, 400, source_partitions=2)[::2])
    monitor = worker.engine.models["m"]
    worker._checkpoint([PARTITION])
    before = len(worker.changelog.begun)
    assert len(monitor.resequencer) > 0
    worker.engine.flush(force=True)  # same offset, but the rows are applied now
    worker._checkpoint([PARTITION])
    assert len(worker.changelog.begun) == before + 1


def test_a_restored_partition_is_not_written_back_until_it_changes(worker):
    # What _on_assign records after _restore put the changelog's state in place.
    evaluate(worker, messages(0, 500))
    worker._checkpointed[PARTITION] = worker._fingerprint(PARTITION)
    worker._checkpoint([PARTITION])
    assert worker.changelog.begun == []


def test_revocation_waits_for_the_checkpoint_and_loss_abandons_it(worker):
    internal = worker.settings.internal_topic
    evaluate(worker, messages(0, 500))
    worker._on_revoke(None, [TopicPartition(internal, PARTITION)])
    assert worker.changelog.begun == [(PARTITION, ["m"], 1)] and worker.changelog.waited == [[PARTITION]]
    assert PARTITION not in worker.owned and "m" not in worker.engine.models

    worker.owned[7] = 0
    worker.models_of[7] = set()
    worker._on_lost(None, [TopicPartition(internal, 7)])
    assert worker.changelog.abandoned == [7] and 7 not in worker.owned


def test_the_cluster_is_probed_only_when_it_has_not_answered_lately(worker, monkeypatch):
    clock = {"now": 1000.0}
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock["now"])
    producer = FakeProducer()
    worker._probe_broker(producer)
    assert producer.probes == 1  # never heard from it: ask

    clock["now"] += 1.0
    worker._probe_broker(producer)
    assert producer.probes == 1  # asked a second ago

    for _ in range(10):  # busy: the broker acknowledges a publish every half second
        clock["now"] += 0.5
        worker._set_stalled(False)
        worker._probe_broker(producer)
    assert producer.probes == 1

    clock["now"] += worker_module.PROBE_SECONDS
    worker._probe_broker(producer)
    assert producer.probes == 2  # silent for PROBE_SECONDS: ask again


def test_readiness_falls_when_the_probe_gets_no_answer(worker):
    worker._processing = True
    assert worker.is_ready()
    worker._last_contact = time.monotonic() - 2 * worker_module.PROBE_SECONDS
    worker._probe_broker(FakeProducer(fail=True))
    assert not worker.is_ready()
    worker._last_probe = 0.0
    worker._probe_broker(FakeProducer())
    assert worker.is_ready()


class FakeRecord:
    """An internal record as confluent_kafka hands it over (the parts the worker reads)."""

    def __init__(self, partition: int, offset: int, shard=None) -> None:
        self._partition, self._offset = partition, offset
        self._headers = None if shard is None else [(worker_module.SHARD_HEADER, worker_module.encode_header(shard))]

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def headers(self):
        return self._headers


class FakeConsumer:
    def pause(self, partitions):
        pass

    def resume(self, partitions):
        pass


def queue(worker: Worker, partition: int, sizes: list[int], start: int = 0) -> None:
    """Internal records of model "m" with these many rows, queued as the run loop queues them."""
    worker.owned.setdefault(partition, 0)
    offset = start
    for index, size in enumerate(sizes):
        (batch,) = ingest(messages(offset, size)).batches
        worker._pending.setdefault(partition, worker_module.deque()).append((FakeRecord(partition, index), batch))
        offset += size


def test_consecutive_records_of_a_partition_are_taken_together(worker):
    assert worker_module.ROWS_PER_TURN == 16_384
    queue(worker, 1, [6000, 6000, 6000])
    queue(worker, 2, [5000, 3000])
    queue(worker, 3, [20_000])
    runs = lambda turn: [[(r.partition(), r.offset(), len(b)) for r, b in run] for run in turn]  # noqa: E731
    # Partition 1: two records (a third would not fit the turn); partition 2's
    # first record would not fit what is left either: it waits for the next turn.
    assert runs(worker._due_for_evaluation(FakeConsumer())) == [[(1, 0, 6000), (1, 1, 6000)]]
    assert runs(worker._due_for_evaluation(FakeConsumer())) == [[(2, 0, 5000), (2, 1, 3000)]]
    assert runs(worker._due_for_evaluation(FakeConsumer())) == [[(3, 0, 20_000)]]  # bigger than a turn: alone
    assert runs(worker._due_for_evaluation(FakeConsumer())) == [[(1, 2, 6000)]]
    assert worker._due_for_evaluation(FakeConsumer()) == []


def test_records_evaluated_together_leave_the_state_of_records_evaluated_one_by_one(worker):
    class Publisher:
        def publish(self, records):
            pass

    separate = Worker(load_settings({"group_id": "g"}, environ={}), MonitorEngine(MonitorSpec.default()))
    for w in (worker, separate):
        queue(w, 1, [2000, 1500, 2500, 1000, 3000])
    while separate._pending:
        (message, batch) = separate._pending[1].popleft()
        if not separate._pending[1]:
            del separate._pending[1]
        separate._process([], {}, [[(message, batch)]], FakeConsumer(), Publisher())
    while worker._pending:
        worker._process([], {}, worker._due_for_evaluation(FakeConsumer()), FakeConsumer(), Publisher())
    assert worker.owned[1] == separate.owned[1] == 5
    assert worker.engine.models["m"].events == separate.engine.models["m"].events == 10_000
    assert encode_state(worker.engine.models["m"].to_state()) == encode_state(separate.engine.models["m"].to_state())


class Scripted:
    """A consumer whose consume() hands out prepared slices and records the timeouts asked for."""

    def __init__(self, slices) -> None:
        self.slices, self.timeouts = list(slices), []

    def consume(self, num_messages, timeout):
        self.timeouts.append(timeout)
        if self.slices:
            return self.slices.pop(0)
        time.sleep(timeout)  # nothing arrives: a real consumer waits out the timeout
        return []


class Topic:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self):
        return self._topic


def test_a_turn_waiting_for_input_stops_waiting_once_an_internal_record_arrives(worker):
    internal = worker.settings.internal_topic
    consumer = Scripted([[Topic("events")] * 1000, [], [Topic("events")] * 10 + [Topic(internal)], [Topic("events")] * 4000])
    got = worker._poll(consumer)
    assert len(got) == 1011 and len(consumer.timeouts) == 3  # not waiting out batch_timeout_seconds for 5,000
    assert all(0 < t <= worker_module.POLL_SLICE_SECONDS for t in consumer.timeouts)

    consumer = Scripted([[Topic("events")] * 5000])
    assert len(worker._poll(consumer)) == 5000 and len(consumer.timeouts) == 1  # a full batch at once

    consumer = Scripted([])  # nothing at all: the turn waits batch_timeout_seconds, a slice at a time
    assert worker._poll(consumer) == []
    assert sum(consumer.timeouts) == pytest.approx(worker.settings.batch_timeout_seconds, abs=worker_module.POLL_SLICE_SECONDS)

    queue(worker, 1, [100])  # records waiting: no waiting at all
    consumer = Scripted([[Topic("events")] * 10])
    worker._poll(consumer)
    assert consumer.timeouts == [0.0]
