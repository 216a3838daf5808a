"""The worker shell: consumer group in, engine in the middle, alerts and dead letters out.

At-least-once, in this order for every batch: consume, process, publish the
batch's alerts and dead letters, wait until the broker has acknowledged every
one of them, and only then commit the batch's offsets. A crash anywhere before
the commit replays the batch; nothing consumed is ever skipped. Kafka I/O
lives here and only here; every decision is the engine's.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_monitor.config import Settings, consumer_config, producer_config, redact
from stream_monitor.core.engine import BatchResult, MonitorEngine
from stream_monitor.core.events import RawMessage
from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.kafka.dead_letter import dead_letter
from stream_monitor.observability.metrics import Metrics, MetricsServer

log = logging.getLogger("stream_monitor.worker")

#: How long a stopping worker keeps trying to deliver a batch's alerts before
#: it gives up and exits without committing (the batch is replayed on restart).
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class DeliveryStalled(Exception):
    """Alerts could not be delivered before the worker had to stop."""


class Publisher:
    """Produces records and returns only once the broker acknowledged all of them."""

    def __init__(self, producer: Producer, should_stop: Callable[[], bool], on_stall: Callable[[bool], None]) -> None:
        self.producer = producer
        self.should_stop = should_stop
        self.on_stall = on_stall

    def publish(self, records: list[OutRecord]) -> None:
        pending = records
        attempt = 0
        stop_seen_at: float | None = None
        while pending:
            failed: list[tuple[OutRecord, str]] = []
            for record in pending:
                self._produce(record, failed)
            while self.producer.flush(1.0) > 0:
                self.on_stall(True)
                stop_seen_at = self._check_stop(stop_seen_at)
            if not failed:
                self.on_stall(False)
                return
            attempt += 1
            self.on_stall(True)
            log.warning(
                "%d of %d records were not acknowledged (attempt %d, first error: %s); retrying. "
                "Check that the alerts and dead-letter topics exist and the broker is reachable.",
                len(failed),
                len(pending),
                attempt,
                failed[0][1],
            )
            stop_seen_at = self._check_stop(stop_seen_at)
            time.sleep(min(5.0, 0.2 * 2**attempt))
            pending = [record for record, _ in failed]

    def _check_stop(self, stop_seen_at: float | None) -> float | None:
        if self.should_stop():
            now = time.monotonic()
            stop_seen_at = stop_seen_at or now
            if now - stop_seen_at > STOP_GRACE_SECONDS:
                raise DeliveryStalled("alerts were not acknowledged before shutdown; offsets left uncommitted")
        return stop_seen_at

    def _produce(self, record: OutRecord, failed: list[tuple[OutRecord, str]]) -> None:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append((record, err.str()))

        while True:
            try:
                self.producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.1)


class Worker:
    def __init__(
        self,
        settings: Settings,
        engine: MonitorEngine,
        *,
        metrics: Metrics | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.on_batch = on_batch
        self._stop = threading.Event()
        self._broker_down = False
        self._stalled = False
        self._assigned: set[tuple[str, int]] = set()
        self._processing = False
        self.metrics_server: MetricsServer | None = None
        self.batches = 0
        #: Messages whose offsets this worker committed (valid or dead-lettered).
        self.committed_messages = 0

    # -- lifecycle --------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_ready(self) -> bool:
        return self._processing and not self._broker_down and not self._stalled

    def _update_ready(self) -> None:
        self.metrics.ready.set(1 if self.is_ready() else 0)

    def run(self) -> int:
        """Consume until asked to stop; returns the process exit code."""
        s = self.settings
        log.info(
            "starting: bootstrap=%s topics=%s alerts=%s dead_letter=%s group=%s kafka=%s",
            s.bootstrap_servers,
            ",".join(s.topics),
            s.alerts_topic,
            s.dead_letter_topic,
            s.group_id,
            redact(s.kafka),
        )
        if s.create_topics:
            ensure_topics(s.bootstrap_servers, {s.alerts_topic: 1, s.dead_letter_topic: 1}, config=s.kafka)
        self.metrics_server = MetricsServer(self.metrics, s.metrics_host, s.metrics_port, self.is_ready).start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", s.metrics_host, self.metrics_server.port)
        self._update_ready()

        consumer = Consumer({**consumer_config(s), "error_cb": self._on_client_error})
        producer = Producer({**producer_config(s), "error_cb": self._on_client_error})
        publisher = Publisher(producer, lambda: self.stopping, self._set_stalled)
        exit_code = 0
        try:
            consumer.subscribe(list(s.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
            while not self.stopping:
                messages = consumer.consume(num_messages=s.batch_size, timeout=s.batch_timeout_seconds)
                batch = self._raw_messages(messages)
                if batch:
                    self._process(batch, consumer, publisher)
                self._update_ready()
        except DeliveryStalled as exc:
            log.error("%s", exc)
            exit_code = 1
        finally:
            self._processing = False
            self._update_ready()
            try:
                consumer.close()
            except KafkaException as exc:
                log.warning("closing the consumer failed: %s", exc)
            producer.flush(5.0)
            if self.metrics_server is not None:
                self.metrics_server.stop()
        log.info("stopped: %d messages processed and committed in %d batches", self.committed_messages, self.batches)
        return exit_code

    # -- one batch --------------------------------------------------------------

    def _raw_messages(self, messages: list[Message]) -> list[RawMessage]:
        batch = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    log.warning("%s: create the topic or fix --topic / STREAM_MONITOR_TOPICS", error.str())
                else:
                    log.warning("consume error: %s", error.str())
                if error.fatal():
                    raise KafkaException(error)
                continue
            ts_type, ts = message.timestamp()
            batch.append(
                RawMessage(
                    value=message.value(),
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    timestamp_ms=ts if ts_type != 0 else None,
                    key=message.key(),
                )
            )
        return batch

    def _process(self, batch: list[RawMessage], consumer: Consumer, publisher: Publisher) -> None:
        started = time.perf_counter()
        result = self.engine.process(batch)
        records = [OutRecord(self.settings.alerts_topic, a.key, a.to_json()) for a in result.alerts]
        for rejection in result.rejections:
            letter = dead_letter(rejection)
            records.append(OutRecord(self.settings.dead_letter_topic, letter.key, letter.value, letter.headers))
        publisher.publish(records)
        self._commit(consumer, batch)
        self.batches += 1
        self.committed_messages += len(batch)
        self._processing = True
        self.metrics.record_batch(result)
        self.metrics.streams.set(self.engine.stream_count())
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._report_lag(consumer, batch)
        for alert in result.alerts:
            segment = ",".join(f"{k}={v}" for k, v in alert.segment.items()) or "all"
            log.info(
                "alert %s %s %s model=%s feature=%s segment=%s detector=%s statistic=%.4g",
                alert.alert_id[:12],
                alert.severity,
                alert.kind,
                alert.model,
                alert.feature,
                segment,
                alert.detector,
                alert.statistic,
            )
        if self.on_batch is not None:
            self.on_batch(result)

    def _commit(self, consumer: Consumer, batch: list[RawMessage]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic, message.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), message.offset + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        for attempt in range(1, 6):
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                log.warning("offset commit failed (attempt %d): %s", attempt, exc)
                if self.stopping and attempt >= 2:
                    break
                time.sleep(0.5 * attempt)
        log.error(
            "could not commit offsets %s; these events will be processed again after a restart or rebalance",
            [(tp.topic, tp.partition, tp.offset) for tp in offsets],
        )

    def _report_lag(self, consumer: Consumer, batch: list[RawMessage]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for message in batch:
            latest[(message.topic, message.partition)] = max(latest.get((message.topic, message.partition), -1), message.offset)
        lags = []
        for (topic, partition), offset in latest.items():
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                lags.append((topic, partition, max(0, high - offset - 1)))
        self.metrics.set_lag(lags)

    # -- callbacks --------------------------------------------------------------

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if not self._broker_down:
                log.warning("lost the Kafka connection (%s); retrying", error.str())
            self._broker_down = True
        else:
            log.warning("kafka client error: %s", error.str())
        self._update_ready()

    def _set_stalled(self, stalled: bool) -> None:
        self._stalled = stalled
        if not stalled:
            self._broker_down = False
        self._update_ready()

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._broker_down = False
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._processing = True
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))
        self._update_ready()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= revoked
        self.metrics.forget_partitions(revoked)
        log.info("revoked %s", sorted(revoked))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= lost
        self.metrics.forget_partitions(lost)
        log.warning("lost %s (session expired); their uncommitted events will be replayed by the new owner", sorted(lost))
