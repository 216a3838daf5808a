"""The resequencer: a model's rows leave in event-time order whatever order its partitions arrive in.

The events of these tests go round-robin into 4 partitions, with rising event
times. A worker starting on a backlog reads them partition by partition; a
worker keeping up reads them interleaved. Both must release the same rows in
the same order, and so leave the same detector state and the same alerts.
"""

from __future__ import annotations

import orjson
import pytest

from stream_monitor.core.engine import MonitorEngine, ingest
from stream_monitor.core.events import RawMessage
from stream_monitor.core.resequencer import Resequencer
from stream_monitor.core.state_codec import encode_state
from stream_monitor.simulation.synthetic import Drift, credit_risk_profile, generate
from stream_monitor.spec import MonitorSpec

TOPIC = "predictions"
PARTITIONS = 4
IDLE = 10.0
#: Partition counts as ingest sends them.
COUNTS = {TOPIC: PARTITIONS}


def partitioned(events) -> list[RawMessage]:
    """Event i in partition i % 4, at offset i // 4: each partition in event-time order."""
    return [
        RawMessage(orjson.dumps(e), topic=TOPIC, partition=i % PARTITIONS, offset=i // PARTITIONS)
        for i, e in enumerate(events)
    ]


def backlog_order(messages: list[RawMessage]) -> list[RawMessage]:
    """As a worker starting on a backlog reads them: one partition's records, then the next's."""
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def batches(messages: list[RawMessage], size: int, counts: dict[str, int] | None = COUNTS):
    for start in range(0, len(messages), size):
        yield from ingest(messages[start : start + size], None, counts).batches


def released_ids(resequencer: Resequencer, model_batches, wall_time: float = 0.0) -> list[str]:
    out = []
    for batch in model_batches:
        ready = resequencer.add(batch, wall_time)
        out += ready.event_ids if ready is not None else []
    ready = resequencer.release(wall_time, force=True)
    return out + (ready.event_ids if ready is not None else [])


@pytest.fixture(scope="module")
def events():
    return list(generate(credit_risk_profile(), 2_000, seed=5))


def test_a_backlog_read_partition_by_partition_leaves_in_event_time_order(events):
    arrived = backlog_order(partitioned(events))
    assert [m.partition for m in arrived[:500]] == [0] * 500  # the first batches hold one partition only

    released = released_ids(Resequencer(IDLE), batches(arrived, 250))

    assert released == [e["event_id"] for e in events]


def test_nothing_leaves_before_every_partition_was_heard_from_or_fell_idle(events):
    resequencer = Resequencer(IDLE)
    three = [m for m in partitioned(events) if m.partition < 3]  # partition 3 sends nothing
    for k, batch in enumerate(batches(three, 300)):
        # Partition 3 is known from the first batch on; the others keep sending.
        assert resequencer.add(batch, wall_time=0.0 if k == 0 else IDLE - 1) is None
    assert resequencer.release(IDLE - 0.1) is None
    assert len(resequencer) == len(three)

    ready = resequencer.release(IDLE + 0.1)  # partition 3 is idle now: the others no longer wait for it

    # Released up to the least of the three partitions' latest times: all but the rows after it.
    latest = {p: max(orjson.loads(m.value)["timestamp"] for m in three if m.partition == p) for p in range(3)}
    expected = [e["event_id"] for i, e in enumerate(events) if i % PARTITIONS < 3 and e["timestamp"] <= min(latest.values())]
    assert ready is not None and ready.event_ids == expected
    assert len(resequencer) == len(three) - len(expected)


def test_a_restored_resequencer_still_waits_for_the_partitions_not_heard_from(events):
    resequencer = Resequencer(IDLE)
    first = [m for m in partitioned(events) if m.partition == 0]
    for batch in batches(first[:100], 100):
        assert resequencer.add(batch, wall_time=0.0) is None

    restored = Resequencer(IDLE)
    restored.restore(resequencer.to_state(), wall_time=50.0)  # sources count as just seen

    assert sorted(restored.sources) == [(TOPIC, p) for p in range(PARTITIONS)]
    assert restored.release(50.0 + IDLE - 0.1) is None
    ready = restored.release(50.0 + IDLE + 0.1)
    assert ready is not None and ready.event_ids == [orjson.loads(m.value)["event_id"] for m in first[:100]]


def test_a_topic_that_gains_partitions_is_waited_for_on_all_of_them(events):
    messages = partitioned(events[:40])
    resequencer = Resequencer(IDLE)
    for batch in batches(messages[:8], 8, {TOPIC: 2}):
        resequencer.add(batch, 0.0)
    for batch in batches(messages[8:16], 8, {TOPIC: PARTITIONS + 2}):
        resequencer.add(batch, 0.0)
    assert sorted(resequencer.sources) == [(TOPIC, p) for p in range(PARTITIONS + 2)]
    assert resequencer.release(1.0) is None  # partitions 4 and 5 are not heard from yet


def test_without_partition_counts_every_row_still_leaves(events):
    """A record from an ingest that sent no counts (an older version): order across partitions is
    not promised, but no row is held for good or dropped."""
    arrived = backlog_order(partitioned(events))
    released = released_ids(Resequencer(IDLE), batches(arrived, 250, counts=None))
    assert sorted(released) == sorted(e["event_id"] for e in events)


def test_one_worker_keeping_up_and_one_starting_on_a_backlog_reach_the_same_state_and_alerts():
    n = 12_000
    drifts = [Drift(feature="debt_to_income", start=n // 2, magnitude=1.0)]
    messages = partitioned(generate(credit_risk_profile(), n, seed=17, drifts=drifts))

    def run(arrived: list[RawMessage], size: int):
        engine = MonitorEngine(MonitorSpec.default(), clock=lambda: 1_767_300_000.0, reorder_idle_seconds=IDLE)
        alerts = []
        for batch in batches(arrived, size):
            alerts += engine.evaluate(batch).alerts
        alerts += engine.flush(force=True).alerts
        by_stream = {}  # alerts keep their order within a stream (one Kafka key); across streams a batch has none
        for alert in alerts:
            by_stream.setdefault(alert.key, []).append(alert.alert_id)
        return by_stream, encode_state(engine.models["credit-risk"].to_state())

    keeping_up_alerts, keeping_up_state = run(messages, 500)
    backlog_alerts, backlog_state = run(backlog_order(messages), 700)

    assert b"credit-risk|debt_to_income|all" in keeping_up_alerts, "the drift must be detected"
    assert backlog_alerts == keeping_up_alerts
    assert backlog_state == keeping_up_state


def test_a_silent_partition_holds_back_no_more_than_max_rows(events):
    resequencer = Resequencer(IDLE, max_rows=1_000)
    three = [m for m in partitioned(events) if m.partition < 3]  # partition 3 heard of, silent
    out = []
    for batch in batches(three[:1_200], 300):
        ready = resequencer.add(batch, wall_time=0.0)
        out += ready.event_ids if ready is not None else []
    assert len(resequencer) == 1_000
    assert out == [orjson.loads(m.value)["event_id"] for m in three[:200]]  # the oldest, in order
    assert resequencer.release(0.0) is None  # the watermark is stuck: nothing more leaves
