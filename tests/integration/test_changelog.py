"""Checkpoints written without waiting for the broker: a checkpoint is durable once complete, never before.

Another Changelog (as a new owner of the partition would) reads what a
restore would find. The marker that completes a checkpoint is written by
``poll`` (or ``wait``) once every chunk is acknowledged, so between ``begin``
and that, a reader still finds the previous checkpoint.
"""

from __future__ import annotations

import os
import struct
import time

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.kafka.changelog import CHUNK_BYTES, Changelog

pytestmark = pytest.mark.integration


@pytest.fixture
def changelogs(kafka_bootstrap, unique_name):
    topic = unique_name("state")
    ensure_topics(kafka_bootstrap, {topic: 2}, topic_configs={topic: {"cleanup.policy": "compact"}})
    config = {"bootstrap.servers": kafka_bootstrap}
    return Changelog(topic, config, config), Changelog(topic, config, config)


def state(tag: str, size: int = 3 * CHUNK_BYTES + 17) -> bytes:
    """A model's encoded state of several chunks, different for every tag."""
    return tag.encode() + os.urandom(size)


def restored(reader: Changelog, partition: int) -> tuple[int, dict[str, bytes]] | None:
    checkpoint = reader.read(partition, timeout=30)
    return None if checkpoint is None else (checkpoint.next_offset, checkpoint.models)


def test_a_checkpoint_counts_only_once_complete_and_a_lost_one_never(changelogs):
    writer, reader = changelogs
    first = {"m": state("first"), "n": state("n", 10)}
    writer.write(0, first, 5)
    assert restored(reader, 0) == (5, first)

    second = {"m": state("second")}
    writer.begin(0, second, 9)
    assert writer.pending() == [0]
    assert restored(reader, 0) == (5, first)  # chunks written, marker not yet
    writer.wait()
    assert writer.pending() == []
    assert restored(reader, 0) == (9, second)

    writer.begin(0, {"m": state("abandoned")}, 12)
    writer.abandon([0])  # the partition was lost meanwhile
    writer.wait()
    assert restored(reader, 0) == (9, second)

    # The next checkpoint reuses the abandoned one's id and slot, and completes.
    third = {"m": state("third")}
    writer.write(0, third, 20)
    assert restored(reader, 0) == (20, third)


def test_checkpoints_of_a_partition_complete_in_order_and_partitions_are_independent(changelogs):
    writer, reader = changelogs
    early, late, other = {"m": state("early")}, {"m": state("late")}, {"o": state("other")}
    writer.begin(0, early, 1)
    writer.begin(1, other, 4)
    writer.begin(0, late, 2)  # waits for the earlier checkpoint of partition 0 (same slots)
    writer.wait([0])
    assert restored(reader, 0) == (2, late)
    writer.wait()
    assert restored(reader, 1) == (4, other)
    assert writer.checkpoint_ids == {0: 2, 1: 1} and writer.pending() == []


def live_keys(bootstrap: str, topic: str, partition: int) -> dict[bytes, bytes]:
    """The partition's latest value per key, tombstoned keys left out: what compaction would keep."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-" + os.urandom(6).hex(), "enable.auto.commit": False})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        latest: dict[bytes, bytes] = {}
        position = -1
        deadline = time.monotonic() + 30
        while position < high - 1 and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.value() is None:
                    latest.pop(message.key(), None)
                else:
                    latest[message.key()] = message.value()
                position = message.offset()
        return latest
    finally:
        consumer.close()


@pytest.fixture
def owners(kafka_bootstrap, unique_name):
    """Three writers of one changelog topic (three workers over time) and the bootstrap."""
    topic = unique_name("state")
    ensure_topics(kafka_bootstrap, {topic: 1}, topic_configs={topic: {"cleanup.policy": "compact"}})
    config = {"bootstrap.servers": kafka_bootstrap}
    return topic, [Changelog(topic, config, config) for _ in range(4)]


def test_a_zombie_writing_after_the_new_owner_took_over_never_wins_over_its_checkpoints(owners, kafka_bootstrap):
    topic, (old, new, reader, _) = owners
    assert restored(old, 0) is None
    a1 = {"m": state("a1")}
    old.write(0, a1, 5)
    assert restored(new, 0) == (5, a1)  # the new owner takes over the partition

    a2 = {"m": state("a2")}
    old.write(0, a2, 8)  # the old owner does not know yet: a zombie
    assert restored(reader, 0) == (8, a2)  # whole, and the last word on the partition so far

    b1 = {"m": state("b1")}
    new.write(0, b1, 6)
    assert restored(reader, 0) == (6, b1)

    # Its first complete checkpoint deleted what the new owner found at its restore:
    # the old owner's first checkpoint (slot 1) and its marker. The zombie's later
    # chunks (slot 0) stay until the next owner's sweep.
    new._producer.flush(10)
    live = live_keys(kafka_bootstrap, topic, 0)
    assert new.spaces[0].startswith("2.") and old.spaces[0].startswith("1.")
    assert f"0/marker/{new.spaces[0]}".encode() in live
    assert f"0/marker/{old.spaces[0]}".encode() not in live
    assert not [k for k in live if k.startswith(f"0/{old.spaces[0]}/1/".encode())]
    assert len([k for k in live if k.startswith(f"0/{old.spaces[0]}/0/".encode())]) == 4

    old.write(0, {"m": state("a3")}, 11)  # the zombie again, with a checkpoint id above the new owner's
    assert old.checkpoint_ids[0] > new.checkpoint_ids[0]
    assert restored(reader, 0) == (6, b1)


def test_two_owners_writing_at_once_never_mix_their_chunks_and_the_later_owner_wins(owners):
    _topic, (first, second, reader, _) = owners
    assert restored(first, 0) is None and restored(second, 0) is None  # the second counts the first's claim
    mine = {"m": state("first", 4 * CHUNK_BYTES - 5)}  # 4 chunks
    theirs = {"m": state("second", 3 * CHUNK_BYTES - 5)}  # 3 chunks
    first.begin(0, mine, 5)
    second.begin(0, theirs, 9)  # same checkpoint id and slot; before owners, the same keys
    first.wait()
    assert restored(reader, 0) == (5, mine)
    second.wait()
    assert restored(reader, 0) == (9, theirs)
    first.write(0, {"m": state("first again")}, 6)  # more checkpoints of the earlier owner do not outrank it
    first.write(0, {"m": state("and again")}, 7)
    assert restored(reader, 0) == (9, theirs)


def test_a_worker_given_a_partition_back_writes_under_a_new_space_not_over_what_it_left(owners):
    _topic, (previous, worker, reader, _) = owners
    before = {"m": state("previous")}
    previous.write(0, before, 3)
    assert restored(worker, 0) == (3, before)
    worker.begin(0, {"m": state("left behind")}, 5)  # chunks sent, then the partition is lost
    worker._producer.flush(10)
    worker.abandon([0])
    assert restored(worker, 0) == (3, before)  # the partition comes back to the same worker

    good = {"m": state("good")}
    worker.write(0, good, 9)
    worker._producer.flush(10)  # the sweep of what it found at its second restore
    assert restored(reader, 0) == (9, good)


def test_a_changelog_written_before_owners_is_restored_then_swept(owners, kafka_bootstrap):
    topic, (_, _, owner, reader) = owners
    blob = state("legacy", 2 * CHUNK_BYTES - len("legacy"))  # exactly 2 chunks
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    header = struct.pack("<Q", 1)
    for index in range(2):  # checkpoint 1 in slot 1, as the format before owners wrote it
        producer.produce(topic, key=f"0/1/m/{index}".encode(), value=header + blob[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES], partition=0)
        producer.flush(10)
    marker = {"checkpoint_id": 1, "slot": 1, "next_offset": 7, "chunks": {"m": 2}}
    producer.produce(topic, key=b"0/marker", value=orjson.dumps(marker), partition=0)
    assert producer.flush(10) == 0

    assert restored(owner, 0) == (7, {"m": blob})
    assert owner.spaces[0].startswith("1.") and owner.checkpoint_ids[0] == 1
    after = {"m": state("after")}
    owner.write(0, after, 12)
    owner._producer.flush(10)  # the sweep's tombstones
    assert restored(reader, 0) == (12, after)
    live = live_keys(kafka_bootstrap, topic, 0)
    assert not {b"0/marker", b"0/1/m/0", b"0/1/m/1"} & set(live)
    assert f"0/marker/{owner.spaces[0]}".encode() in live
