"""Checkpoints written without waiting for the broker: a checkpoint is durable once complete, never before.

Another Changelog (as a new owner of the partition would) reads what a
restore would find. The marker that completes a checkpoint is written by
``poll`` (or ``wait``) once every chunk is acknowledged, so between ``begin``
and that, a reader still finds the previous checkpoint.
"""

from __future__ import annotations

import os

import pytest

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
