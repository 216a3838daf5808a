"""Writing synthetic (or deliberately broken) events to Kafka.

Used by the demo (a steady stream at a chosen rate) and by the tests (as
fast as possible, or raw bytes that are not valid events). Delivery is
confirmed: both functions return only after every message was acknowledged,
and raise :class:`ProduceError` if any was not.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Mapping

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

__all__ = ["ProduceError", "produce_events", "produce_raw"]

log = logging.getLogger(__name__)

#: Serve delivery callbacks at least this often (in messages), even at full speed.
_POLL_EVERY = 500
#: Report progress this often (in messages).
_PROGRESS_EVERY = 1000


class ProduceError(RuntimeError):
    """Some messages were not delivered; the message says how many and what to check."""


def _default_key(event: dict) -> bytes | None:
    event_id = event.get("event_id")
    return str(event_id).encode() if event_id is not None else None


class _Sender:
    """An idempotent producer plus delivery accounting, shared by both entry points."""

    def __init__(self, bootstrap_servers: str, topic: str, config: Mapping[str, Any] | None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None
        self.fatal: KafkaError | None = None
        base: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            # No duplicates or reordering on retries: a test counting events,
            # or a detector's window, must see each event exactly once.
            "enable.idempotence": True,
            "linger.ms": 10,
            "compression.type": "lz4",
            "error_cb": self._on_error,
            "logger": log,
        }
        user = dict(config or {})
        try:
            self.producer = Producer({**base, **user})
        except KafkaException:
            if "compression.type" in user:
                raise
            # A librdkafka build without lz4: send uncompressed rather than fail.
            base["compression.type"] = "none"
            self.producer = Producer({**base, **user})

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
            log.error("fatal producer error: %s", error)
        else:
            # Transient (broker down, reconnecting): librdkafka retries on its own.
            log.debug("producer error (will retry): %s", error)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error

    def send(self, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                # Local queue full: wait for deliveries to drain it.
                self.producer.poll(0.1)
                self._check_fatal()
        self.sent += 1
        if self.sent % _POLL_EVERY == 0:
            self.producer.poll(0)
            self._check_fatal()

    def _check_fatal(self) -> None:
        if self.fatal is not None:
            raise ProduceError(
                f"the producer for topic {self.topic!r} hit a fatal error after {self.sent} messages: {self.fatal}. "
                f"Check the broker at {self.bootstrap_servers} and the producer settings (idempotence needs "
                "IDEMPOTENT_WRITE permission on older clusters)."
            )

    def finish(self) -> int:
        """Flush, then return the delivered count or raise if anything failed."""
        # Bounded flush steps keep Ctrl-C responsive; message.timeout.ms bounds the total.
        while self.producer.flush(1.0) > 0:
            self._check_fatal()
        self._check_fatal()
        if self.failed:
            raise ProduceError(
                f"{self.failed} of {self.sent} messages could not be delivered to topic {self.topic!r} "
                f"(first error: {self.first_error}). Check that the brokers at {self.bootstrap_servers} are "
                "reachable and up, that the topic exists (or auto-creation is enabled), and that this client "
                "may write to it (ACLs, SASL/SSL settings)."
            )
        return self.delivered


def produce_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[dict],
    *,
    config: Mapping[str, Any] | None = None,
    rate: float | None = None,
    key: Callable[[dict], bytes | None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send events as JSON and wait until all are acknowledged; return how many were.

    :param config: extra librdkafka producer settings (SASL, ``message.timeout.ms``, ...), applied last.
    :param rate: events per second; ``None`` sends as fast as possible. The
        pacing sleeps once per ~50 ms worth of events, not per event, so high
        rates stay accurate.
    :param key: message key of an event; default its ``event_id``, which
        spreads events over partitions like request-id keyed traffic.
    :param on_progress: called with the number of events handed to the
        producer so far, every 1000 events and once at the end (after the
        flush) with the number delivered.
    :raises ProduceError: a message was not delivered (broker down longer
        than ``message.timeout.ms``, missing topic, ACLs ...).
    """
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be positive (or None for unthrottled), got {rate}")
    key_of = key or _default_key
    sender = _Sender(bootstrap_servers, topic, config)
    dumps = orjson.dumps
    batch = max(1, int(rate / 20)) if rate else 0  # events per pacing step (~50 ms)
    started = time.monotonic()
    for event in events:
        sender.send(key_of(event), dumps(event, option=orjson.OPT_SERIALIZE_NUMPY))
        count = sender.sent
        if on_progress is not None and count % _PROGRESS_EVERY == 0:
            on_progress(count)
        if batch and count % batch == 0:
            _pace(sender.producer, started + count / rate)  # type: ignore[operator]
    delivered = sender.finish()
    if on_progress is not None:
        on_progress(delivered)
    return delivered


def _pace(producer: Producer, until: float) -> None:
    """Sleep until ``until`` (monotonic), serving delivery callbacks meanwhile."""
    while (wait := until - time.monotonic()) > 0:
        producer.poll(wait)


def produce_raw(
    bootstrap_servers: str,
    topic: str,
    payloads: Iterable[bytes | None | tuple[bytes | None, bytes | None]],
    config: Mapping[str, Any] | None = None,
) -> int:
    """Send raw values (or ``(key, value)`` pairs) as they are, e.g. malformed JSON.

    A ``None`` value produces a tombstone (a record without value), which the
    monitor must also survive. Returns the number delivered; raises
    :class:`ProduceError` like :func:`produce_events`.
    """
    sender = _Sender(bootstrap_servers, topic, config)
    for payload in payloads:
        if isinstance(payload, tuple):
            key, value = payload
        else:
            key, value = None, payload
        sender.send(key, value)
    return sender.finish()
