"""Reading topics back in tests.

Counting consumed messages is the only reliable progress measure on the
embedded broker: Tansu's high watermark is wrong after multi-record batches,
so these helpers never look at watermarks or lag.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from confluent_kafka import Consumer, KafkaError

__all__ = ["ConsumedMessage", "consume_all", "TEST_CONSUMER_CONFIG"]

#: Consumer settings for tests. A group join on Tansu takes about half of
#: session.timeout.ms, so keep it short (6 s is also the Kafka minimum default
#: of group.min.session.timeout.ms).
TEST_CONSUMER_CONFIG: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
}


@dataclass(frozen=True)
class ConsumedMessage:
    """A plain copy of a consumed record (no librdkafka objects outliving the consumer)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int | None


def consume_all(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    *,
    config: Mapping[str, Any] | None = None,
) -> list[ConsumedMessage]:
    """Read ``topic`` from the beginning with a fresh consumer group.

    Returns as soon as ``expected`` messages are in (a few more may arrive in
    the same poll and are kept, so a test can detect duplicates or surplus),
    or when ``timeout`` seconds have passed, with whatever arrived: the
    caller asserts on the count. Partition EOF events are ignored; other
    consumer errors fail the test immediately.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-consume-all-{uuid.uuid4().hex[:12]}",
            **TEST_CONSUMER_CONFIG,
            **dict(config or {}),
        }
    )
    out: list[ConsumedMessage] = []
    deadline = time.monotonic() + timeout
    try:
        consumer.subscribe([topic])
        while len(out) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for msg in consumer.consume(num_messages=1000, timeout=min(0.5, remaining)):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        continue  # the topic may not have been created yet; keep waiting
                    raise AssertionError(f"consumer error while reading {topic!r}: {error}")
                _, timestamp = msg.timestamp()
                out.append(
                    ConsumedMessage(
                        topic=msg.topic(),
                        partition=msg.partition(),
                        offset=msg.offset(),
                        key=msg.key(),
                        value=msg.value(),
                        headers=list(msg.headers() or []),
                        timestamp_ms=timestamp if timestamp > 0 else None,
                    )
                )
    finally:
        consumer.close()
    return out
