"""The embedded broker and the Kafka plumbing the other integration tests build on."""

from __future__ import annotations

import os
import socket
import time

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from helpers.kafka import consume_all

from stream_monitor.embedded.broker import EmbeddedBroker, EmbeddedBrokerError
from stream_monitor.kafka.admin import KafkaSetupError, ensure_topics
from stream_monitor.simulation.producer import ProduceError, produce_events, produce_raw
from stream_monitor.simulation.synthetic import credit_risk_profile, generate

pytestmark = pytest.mark.integration

needs_embedded = pytest.mark.skipif(
    bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
    reason="KAFKA_BOOTSTRAP_SERVERS is set: the embedded broker is not used",
)


def _partition_counts(bootstrap: str) -> dict[str, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


@needs_embedded
def test_start_and_stop():
    broker = EmbeddedBroker()
    with broker:
        assert broker.running and broker.pid is not None
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1"
        # The broker advertises exactly the address we bootstrap from.
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=5)
        assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [broker.bootstrap_servers]
        log_dir = broker.log_path.parent
        assert log_dir.exists()
    assert not broker.running and broker.pid is None
    broker.stop()  # idempotent
    assert not log_dir.exists()  # its own temp dir is cleaned up
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()


@needs_embedded
def test_a_taken_port_is_reported(own_broker):
    with pytest.raises(EmbeddedBrokerError, match="already in use"):
        EmbeddedBroker(port=own_broker.port).start()


def test_ten_thousand_events_round_trip(kafka_bootstrap, unique_name):
    topic = unique_name("events")
    assert ensure_topics(kafka_bootstrap, {topic: 4}) == [topic]
    events = list(generate(credit_risk_profile(), 10_000, seed=42))
    progress: list[int] = []

    started = time.monotonic()
    assert produce_events(kafka_bootstrap, topic, events, on_progress=progress.append) == 10_000
    produced_in = time.monotonic() - started
    assert progress[-1] == 10_000 and progress[:3] == [1000, 2000, 3000]

    messages = consume_all(kafka_bootstrap, topic, expected=10_000, timeout=60)
    ids = [orjson.loads(m.value)["event_id"] for m in messages]
    assert len(ids) == 10_000, f"read {len(ids)} of 10000 (produce took {produced_in:.1f} s)"
    assert set(ids) == {e["event_id"] for e in events}
    assert {m.partition for m in messages} == {0, 1, 2, 3}
    # Keyed by event_id, and a message's bytes decode to the event we sent.
    by_id = {e["event_id"]: e for e in events}
    for m in messages[:100]:
        event = orjson.loads(m.value)
        assert m.key == event["event_id"].encode()
        assert event == by_id[event["event_id"]]


def test_ensure_topics_is_idempotent(kafka_bootstrap, unique_name):
    a, b = unique_name("alerts"), unique_name("dead-letters")
    assert sorted(ensure_topics(kafka_bootstrap, {a: 2})) == [a]
    assert ensure_topics(kafka_bootstrap, {a: 2, b: 3}, topic_configs={b: {"retention.ms": "3600000"}}) == [b]
    assert ensure_topics(kafka_bootstrap, {a: 2, b: 3}) == []
    counts = _partition_counts(kafka_bootstrap)
    assert counts[a] == 2 and counts[b] == 3


def test_ensure_topics_names_the_topic_when_the_cluster_is_unreachable(unique_name):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    topic = unique_name("unreachable")
    with pytest.raises(KafkaSetupError, match=topic) as info:
        ensure_topics(dead, {topic: 1}, timeout=2)
    assert "reachable" in str(info.value)


def test_produce_raw_keeps_bytes_as_they_are(kafka_bootstrap, unique_name):
    topic = unique_name("raw")
    ensure_topics(kafka_bootstrap, {topic: 1})
    payloads = [b"not json", (b"k", b'{"event_id": 1}'), (None, b"\xff\xfe"), None]
    assert produce_raw(kafka_bootstrap, topic, payloads) == 4
    messages = consume_all(kafka_bootstrap, topic, expected=4, timeout=30)
    assert [(m.key, m.value) for m in messages] == [
        (None, b"not json"), (b"k", b'{"event_id": 1}'), (None, b"\xff\xfe"), (None, None)
    ]


def test_pause_stalls_producers_and_resume_lets_them_through(own_broker, unique_name):
    topic = unique_name("outage")
    ensure_topics(own_broker.bootstrap_servers, {topic: 1})
    events = list(generate(credit_risk_profile(), 20, seed=1))
    short = {"message.timeout.ms": 1500}

    own_broker.pause()
    started = time.monotonic()
    with pytest.raises(ProduceError, match="could not be delivered"):
        produce_events(own_broker.bootstrap_servers, topic, events[:10], config=short)
    assert time.monotonic() - started < 10

    own_broker.resume()
    assert produce_events(own_broker.bootstrap_servers, topic, events[10:], config=short) == 10
    messages = consume_all(own_broker.bootstrap_servers, topic, expected=10, timeout=15)
    ids = {orjson.loads(m.value)["event_id"] for m in messages}
    # "Timed out" is not "not written": a request that reached the frozen
    # broker's socket may still be stored after SIGCONT. Only the second batch is certain.
    assert {e["event_id"] for e in events[10:]} <= ids <= {e["event_id"] for e in events}


def test_rate_limit_paces_the_stream(kafka_bootstrap, unique_name):
    topic = unique_name("paced")
    ensure_topics(kafka_bootstrap, {topic: 1})
    started = time.monotonic()
    produce_events(kafka_bootstrap, topic, generate(credit_risk_profile(), 400, seed=3), rate=400)
    elapsed = time.monotonic() - started
    assert 0.85 < elapsed < 3.0
