"""The worker shell: two stages in one consumer group, everything else in the core.

*Ingest* reads the events topics: decode, validate, gather into one columnar
batch per model, publish the batches to the internal topic (keyed by model)
and the rejects to the dead-letter topic, then commit. It holds no state, so
any worker can ingest any partition and a crash just replays a few batches.

*Evaluate* reads the internal topic: every event of a model lands in one of
its partitions, in one order, so exactly one worker owns each model whatever
the number of workers or how the events were keyed. With evaluation shards
(``evaluation_shards`` > 1, stream_monitor.core.shards) the unit is one shard
of a model instead: ingest cuts each model batch by signal into one batch per
shard (every row, only the shard's signal columns), each shard has its own
internal partition and so its own owner, and several workers share one busy
model. It drops replayed rows
(by source offset), updates the detectors, publishes alerts, and checkpoints
its state with the offset it has reached to the changelog topic. On
assignment it restores the checkpoint and seeks to that offset; on revocation
it checkpoints and lets go; on loss it drops the state without writing.

Both stages publish and wait for the broker's acknowledgement before
committing (ingest) or checkpointing (evaluate): at-least-once delivery, with
deterministic alert ids and offset-based deduplication making the replays
harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from itertools import groupby
from dataclasses import dataclass
from typing import Callable

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_monitor.config import Settings, consumer_config, producer_config, redact
from stream_monitor.core.bulk import gc_paused
from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.engine import BatchResult, MonitorEngine, ingest
from stream_monitor.core.events import RawMessage
from stream_monitor.core.model import MAX_ROWS_PER_PASS
from stream_monitor.core.shards import (
    SHARD_HEADER,
    MonitorKey,
    checkpoint_name,
    decode_header,
    encode_header,
    key_model,
    key_shard,
    monitor_key,
    owns_signal,
    parse_checkpoint_name,
    shard_partition,
    split_batch,
)
from stream_monitor.core.state_codec import decode_state, encode_state
from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.kafka.changelog import Changelog
from stream_monitor.kafka.dead_letter import dead_letter
from stream_monitor.observability.metrics import Metrics, MetricsServer

log = logging.getLogger("stream_monitor.worker")

#: How long a stopping worker keeps trying to deliver a batch's records before
#: it gives up and exits without committing (the batch is replayed on restart).
STOP_GRACE_SECONDS = 10.0
#: How often the worker checks that the cluster answers, and how long it waits.
PROBE_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 2.0
#: Rows of internal records evaluated per turn of the loop (two full passes of
#: a monitor; one record, if bigger), and the backlog at which fetching them
#: pauses (see Worker._due_for_evaluation).
ROWS_PER_TURN = 2 * MAX_ROWS_PER_PASS
MAX_PENDING_RECORDS = 64
#: A turn waiting for input to fill a batch looks for internal records this often (see Worker._poll).
POLL_SLICE_SECONDS = 0.05
#: Internal records stay well under Kafka's default 1 MB message limit.
MAX_INTERNAL_RECORD_BYTES = 600_000


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None


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
                extra = {} if record.partition is None else {"partition": record.partition}
                self.producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers, on_delivery=on_delivery, **extra
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
        self._processing = False
        self.metrics_server: MetricsServer | None = None
        self.batches = 0
        #: Input messages whose offsets this worker committed (valid or dead-lettered).
        self.committed_messages = 0
        #: Internal partitions this worker evaluates: partition -> next offset to evaluate.
        self.owned: dict[int, int] = {}
        #: Monitors evaluated here (whole models or shards of them), by internal partition.
        self.models_of: dict[int, set[MonitorKey]] = {}
        self._last_checkpoint = time.monotonic()
        self._last_probe = 0.0
        #: When the broker last acknowledged something of ours (a publish, a commit, a checkpoint).
        self._last_contact = 0.0
        #: Per internal partition, what its latest checkpoint (written, in flight or just restored)
        #: holds; a checkpoint that would hold the same is not written again (see _fingerprint).
        self._checkpointed: dict[int, tuple] = {}
        #: Internal records consumed but not yet evaluated (with their rows), per internal partition, in arrival order.
        self._pending: dict[int, deque[tuple[Message, ModelBatch]]] = {}
        #: Internal partitions whose fetching is paused (their queue is deep).
        self._paused: set[int] = set()
        self.changelog: Changelog | None = None
        self._consumer: Consumer | None = None
        #: Partitions of each events topic, from the cluster's metadata: every
        #: model batch carries them to its resequencer (see core.resequencer).
        self.partition_counts: dict[str, int] = {}

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
        log.info("evaluation shards per model: %d (of %d internal partitions)", s.shards, s.internal_partitions)
        if s.create_topics:
            ensure_topics(
                s.bootstrap_servers,
                {
                    s.alerts_topic: 1,
                    s.dead_letter_topic: 1,
                    s.internal_topic: s.internal_partitions,
                    s.changelog_topic: s.internal_partitions,
                },
                config=s.kafka,
                topic_configs={s.changelog_topic: {"cleanup.policy": "compact"}},
            )
        self.metrics_server = MetricsServer(self.metrics, s.metrics_host, s.metrics_port, self.is_ready).start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", s.metrics_host, self.metrics_server.port)
        self._update_ready()

        producer = Producer({**producer_config(s), "error_cb": self._on_client_error})
        self.changelog = Changelog(s.changelog_topic, producer_config(s), consumer_config(s), on_wait=self._set_stalled)
        consumer = self._consumer = Consumer({**consumer_config(s), "error_cb": self._on_client_error})
        publisher = Publisher(producer, lambda: self.stopping, self._set_stalled)
        exit_code = 0
        try:
            consumer.subscribe(
                [*s.topics, s.internal_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            while not self.stopping:
                messages = self._poll(consumer)
                inputs, internal, highest = self._split(messages)
                for message in internal:
                    self._pending.setdefault(message.partition(), deque()).append((message, ModelBatch.from_bytes(message.value())))
                due = self._due_for_evaluation(consumer)
                if inputs or due or self.engine.buffered_rows():
                    self._process(inputs, highest, due, consumer, publisher)
                if time.monotonic() - self._last_checkpoint >= s.checkpoint_interval_seconds:
                    self._checkpoint(list(self.owned))
                if self.changelog.poll():  # checkpoints in flight: markers, acknowledgements
                    self._last_contact = time.monotonic()
                self._probe_broker(producer)
                self._update_ready()
            self._checkpoint(list(self.owned), wait=True)
            self.changelog.wait()
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

    def _poll(self, consumer: Consumer) -> list[Message]:
        """The messages of one turn of the loop.

        ``consume(n, timeout)`` returns once it holds ``n`` messages or the
        timeout has passed. Input is worth gathering into full batches (ingest
        costs less per event in bulk), so with nothing else to do a turn waits
        up to ``batch_timeout_seconds`` for one; but an internal record is a
        batch of rows already, and once one has arrived, waiting longer for
        input only leaves it unevaluated. So the wait is taken in short slices
        and ends with the first slice that brings an internal record. With
        internal records queued, the turn does not wait at all.
        """
        s = self.settings
        if self._pending_records():
            return consumer.consume(num_messages=s.batch_size, timeout=0.0)
        deadline = time.monotonic() + s.batch_timeout_seconds
        internal_topic = s.internal_topic
        messages: list[Message] = []
        while True:
            remaining = deadline - time.monotonic()
            more = consumer.consume(num_messages=s.batch_size - len(messages), timeout=max(0.0, min(POLL_SLICE_SECONDS, remaining)))
            messages += more
            if len(messages) >= s.batch_size or remaining <= POLL_SLICE_SECONDS or self.stopping:
                return messages
            if any(m.topic() == internal_topic for m in more):
                return messages

    def _split(self, messages: list[Message]) -> tuple[list[RawMessage], list[Message], dict[tuple[str, int], int]]:
        """Input messages (as the core's RawMessage), internal records, and the highest input offset per partition."""
        inputs: list[RawMessage] = []
        internal: list[Message] = []
        highest: dict[tuple[str, int], int] = {}
        internal_topic = self.settings.internal_topic
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
            topic = message.topic()
            if topic == internal_topic:
                internal.append(message)
                continue
            partition, offset = message.partition(), message.offset()
            ts_type, ts = message.timestamp()
            inputs.append(RawMessage(message.value(), topic, partition, offset, ts if ts_type != 0 else None, message.key()))
            if offset > highest.get((topic, partition), -1):
                highest[(topic, partition)] = offset
        return inputs, internal, highest

    def _due_for_evaluation(self, consumer: Consumer) -> list[list[tuple[Message, ModelBatch]]]:
        """Internal records to evaluate on this turn of the loop, in runs of consecutive records of one partition.

        One poll can return thousands of internal records (each up to a few
        thousand events); evaluating them all before polling again keeps the
        worker away from the group long enough to upset rebalances (the
        embedded broker loses partitions then). So at most ROWS_PER_TURN rows
        per turn (a single record may be more), the rest queued, and fetching
        from the internal topic paused while the queue is deep, so it cannot
        grow without bound.

        From each partition served, consecutive records are taken together:
        ``_process`` evaluates them as one batch. A pass over a monitor's
        streams (``MAX_ROWS_PER_PASS`` rows at most) has a fixed cost for
        every stream whatever its rows, so records evaluated one by one
        (ingest batches of 5,000 rows or, for a worker ingesting few source
        partitions, less) would cost more passes for the same rows: three
        records of 5,000 rows take two passes together, three alone.

        Queues, pauses and turns are per internal partition: records are
        taken from the partitions in turn, and a partition is paused when its
        own queue is deep. Fetches arrive a partition at a time; served in
        arrival order, the monitors of one partition (say, evaluation shards
        of a model, one per partition) would wait while another partition's
        backlog is evaluated, long enough for their resequencers to take the
        wait for silent sources and release rows out of order.
        """
        topic = self.settings.internal_topic
        limit = max(4, MAX_PENDING_RECORDS // max(1, len(self.owned)))
        pause = [q for q in self.owned if q not in self._paused and len(self._pending.get(q, ())) >= limit]
        resume = [q for q in self._paused if len(self._pending.get(q, ())) <= limit // 4]
        if pause:
            consumer.pause([TopicPartition(topic, q) for q in pause])
            self._paused.update(pause)
        if resume:
            consumer.resume([TopicPartition(topic, q) for q in resume if q in self.owned])
            self._paused.difference_update(resume)
        due: list[list[tuple[Message, ModelBatch]]] = []
        budget = ROWS_PER_TURN
        while self._pending:
            partition = next(iter(self._pending))  # the partition served longest ago
            queue = self._pending[partition]
            if due and len(queue[0][1]) > budget:
                break
            del self._pending[partition]
            run: list[tuple[Message, ModelBatch]] = []
            while queue and (not run or len(queue[0][1]) <= budget):
                budget -= len(queue[0][1])
                run.append(queue.popleft())
            due.append(run)
            if queue:
                self._pending[partition] = queue  # to the back of the turn
        return due

    def _pending_records(self) -> int:
        return sum(len(queue) for queue in self._pending.values())

    def _process(
        self,
        inputs: list[RawMessage],
        highest: dict[tuple[str, int], int],
        internal: list[list[tuple[Message, ModelBatch]]],
        consumer: Consumer,
        publisher: Publisher,
    ) -> None:
        started = time.perf_counter()
        s = self.settings
        records: list[OutRecord] = []
        result = BatchResult()
        if inputs:
            ingested = ingest(inputs, self.engine.spec, self.partition_counts)
            result.consumed_by_topic.update(ingested.consumed_by_topic)
            shards = s.shards
            for batch in ingested.batches:
                segment_features = self.engine.spec.model(batch.model).segment_keys if shards > 1 else ()
                for shard, shard_batch in enumerate(split_batch(batch, shards, segment_features)):
                    partition = shard_partition(batch.model, shard, s.internal_partitions)
                    # A record without the header is a whole model (S = 1, as before shards).
                    headers = [(SHARD_HEADER, encode_header((shard, shards)))] if shards > 1 else None
                    for part in _split_batch(shard_batch):
                        records.append(
                            OutRecord(s.internal_topic, batch.model.encode(), part.to_bytes(), headers, partition=partition)
                        )
            result.rejections.extend(ingested.rejections)
        for run in internal:
            partition = run[0][0].partition()
            if partition not in self.owned:
                continue  # revoked meanwhile; its new owner evaluates it
            # Consecutive records of one monitor are evaluated as one batch.
            for (model, shard), records_of_monitor in groupby(
                ((message, batch, decode_header(message.headers())) for message, batch in run),
                key=lambda item: (item[1].model, item[2]),
            ):
                records_of_monitor = list(records_of_monitor)
                self.models_of.setdefault(partition, set()).add(monitor_key(model, shard))
                batch = ModelBatch.concat([batch for _, batch, _ in records_of_monitor])
                self.engine.evaluate(batch, into=result, shard=shard)
                self.owned[partition] = records_of_monitor[-1][0].offset() + 1
        self.engine.flush(into=result)  # rows whose turn came with the passing of time
        alerted = self._partitions_of(result.alerts) if result.alerts else set()
        records += [OutRecord(s.alerts_topic, a.key, a.to_json()) for a in result.alerts]
        for rejection in result.rejections:
            letter = dead_letter(rejection)
            records.append(OutRecord(s.dead_letter_topic, letter.key, letter.value, letter.headers))
        publisher.publish(records)
        if inputs:
            self._commit(consumer, highest)
            self.committed_messages += len(inputs)
        if alerted:
            # Alerts are rare; checkpointing right after publishing them, and
            # waiting for it, means a restart or a lost partition does not
            # re-evaluate into the same alerts and publish them twice.
            self._checkpoint(sorted(alerted), reset_timer=False, wait=True)
        self.batches += 1
        self._processing = True
        self.metrics.record_batch(result)
        self.metrics.streams.set(self.engine.stream_count())
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._report_lag(consumer, highest)
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

    def _commit(self, consumer: Consumer, highest: dict[tuple[str, int], int]) -> None:
        """Commit the offsets after the highest ones ingested, per (topic, partition)."""
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
        for attempt in range(1, 6):
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                self._last_contact = time.monotonic()
                return
            except KafkaException as exc:
                log.warning("offset commit failed (attempt %d): %s", attempt, exc)
                if self.stopping and attempt >= 2:
                    break
                time.sleep(0.5 * attempt)
        log.error(
            "could not commit offsets %s; these events will be ingested again after a restart or rebalance "
            "(the evaluator drops the repeated rows)",
            [(tp.topic, tp.partition, tp.offset) for tp in offsets],
        )

    def _report_lag(self, consumer: Consumer, highest: dict[tuple[str, int], int]) -> None:
        lags = []
        for (topic, partition), offset in highest.items():
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                lags.append((topic, partition, max(0, high - offset - 1)))
        self.metrics.set_lag(lags)

    def _probe_broker(self, producer: Producer) -> None:
        """Ask the cluster for metadata now and then: readiness must fall during an outage.

        A broker that hangs (rather than closes connections) leaves librdkafka
        silent until its socket timeout, a minute by default, so the worker
        asks itself, with a short timeout, once PROBE_SECONDS have passed
        without the broker acknowledging anything of the worker's (a publish,
        a commit, a checkpoint): a busy worker hears from it all the time and
        never probes. The producer asks, not the consumer: a consumer's
        request waits behind its fetches, which the broker holds for up to
        ``fetch.wait.max.ms`` (500 ms) when there is nothing new to fetch. The
        producer already produces to the internal topic it asks about.
        """
        now = time.monotonic()
        if now - max(self._last_probe, self._last_contact) < PROBE_SECONDS:
            return
        self._last_probe = now
        try:
            producer.list_topics(self.settings.internal_topic, timeout=PROBE_TIMEOUT_SECONDS)
        except KafkaException as exc:
            if not self._broker_down:
                log.warning("the Kafka cluster does not answer (%s); not ready until it does", exc)
            self._broker_down = True
        else:
            if self._broker_down:
                log.info("the Kafka cluster answers again")
            self._broker_down = False

    def _partitions_of(self, alerts: list) -> set[int]:
        """The internal partitions whose monitors made these alerts."""
        partitions = set()
        for alert in alerts:
            for partition, keys in self.models_of.items():
                if any(key_model(key) == alert.model and owns_signal(key, alert.feature) for key in keys):
                    partitions.add(partition)
        return partitions

    # -- state ------------------------------------------------------------------

    def _checkpoint(self, partitions: list[int], reset_timer: bool = True, wait: bool = False) -> None:
        """Checkpoint the state of these internal partitions with the offsets they reached.

        The snapshot is taken and encoded here, with its offset; the broker's
        acknowledgements are collected on later turns of the loop
        (``Changelog.poll``), so evaluation goes on meanwhile. With ``wait``,
        returns only once every checkpoint of these partitions is complete
        (before handing them over, and at shutdown). A partition whose state
        did not change since its latest checkpoint is not written again.
        """
        if reset_timer:
            self._last_checkpoint = time.monotonic()
        if self.changelog is None:
            return
        for partition in partitions:
            if partition not in self.owned:
                continue
            fingerprint = self._fingerprint(partition)
            if self._checkpointed.get(partition) == fingerprint:
                continue
            # A snapshot is ~100,000 fresh containers, none of them in a cycle:
            # reference counting frees them; the cyclic collector would only walk
            # the whole heap, once or twice per checkpoint, for nothing.
            with gc_paused():
                models = {
                    checkpoint_name(key): encode_state(self.engine.models[key].to_state())
                    for key in sorted(self.models_of.get(partition, ()), key=checkpoint_name)
                    if key in self.engine.models
                }
            pending = self.changelog.begin(partition, models, self.owned[partition])
            self._checkpointed[partition] = fingerprint
            log.debug("checkpoint %d of internal partition %d at offset %d", pending.checkpoint_id, partition, self.owned[partition])
        if wait:
            self.changelog.wait(partitions)

    def _fingerprint(self, partition: int) -> tuple:
        """What a checkpoint of the partition would hold, in brief: equal fingerprints, equal states.

        A monitor's state changes only when it receives an internal record
        (the partition's offset moves) or its resequencer releases rows (rows
        leave the buffer; the applied ones count in ``events``).
        """
        keys = sorted(self.models_of.get(partition, ()), key=checkpoint_name)
        monitors = [(checkpoint_name(key), self.engine.models.get(key)) for key in keys]
        return self.owned[partition], tuple((name, m.events, len(m.resequencer)) for name, m in monitors if m is not None)

    def _restore(self, partition: int) -> int:
        """Load the partition's latest checkpoint; returns the offset to resume from."""
        assert self.changelog is not None
        checkpoint = self.changelog.read(partition)
        self.models_of[partition] = set()
        # Unless models are dropped below, the state is what the changelog holds (nothing, without a
        # checkpoint): it need not be written again until it changes. Set once the offset is known.
        self._checkpointed[partition] = ()
        if checkpoint is None:
            log.info("internal partition %d: no checkpoint, evaluating from the beginning", partition)
            return OFFSET_BEGINNING
        restored = 0
        for name, blob in checkpoint.models.items():
            state = decode_state(blob)
            key = parse_checkpoint_name(name, state["name"])
            model, shard = key_model(key), key_shard(key)
            if (shard or (0, 1))[1] != self.settings.shards:
                # Signals were divided differently: this state is not what the
                # shards of this configuration evaluate. Dropped (and left out of
                # the next checkpoint); the model's monitors start afresh.
                log.warning(
                    "internal partition %d: dropping the checkpointed state of %s, evaluated with %d evaluation "
                    "shard(s); this worker uses %d (changing evaluation_shards restarts the model's detector state)",
                    partition,
                    name,
                    (shard or (0, 1))[1],
                    self.settings.shards,
                )
                continue
            restored += 1
            monitor = self.engine.new_monitor(model, shard)
            monitor.restore(state, wall_time=time.time())
            self.engine.models[key] = monitor
            self.models_of[partition].add(key)
            self.metrics.restored(model, shard, monitor.events)
        if restored < len(checkpoint.models):
            self._checkpointed.pop(partition, None)  # the changelog holds more than the worker now does
        log.info(
            "internal partition %d: restored checkpoint %d (%d models), resuming at offset %d",
            partition,
            checkpoint.checkpoint_id,
            restored,
            checkpoint.next_offset,
        )
        return checkpoint.next_offset

    def _release(self, partition: int) -> None:
        self._pending.pop(partition, None)
        self._checkpointed.pop(partition, None)
        self._paused.discard(partition)
        for key in self.models_of.pop(partition, set()):
            monitor = self.engine.models.pop(key, None)
            model = key_model(key)
            still_here = self.engine.holds(model)
            self.metrics.forget_monitor(
                model,
                key_shard(key),
                features=list(monitor.signals) if monitor is not None else [],
                drifting=self.engine.drifting_counts(model) if still_here else None,
            )
        self.owned.pop(partition, None)

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
        """Publisher and changelog: True while records wait for the broker, False once it acknowledged them."""
        self._stalled = stalled
        if not stalled:
            self._broker_down = False
            self._last_contact = time.monotonic()
        self._update_ready()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._broker_down = False
        # A topic that gains partitions is rebalanced, so counts read here stay current.
        self._read_partition_counts(consumer, {tp.topic for tp in partitions if tp.topic != self.settings.internal_topic})
        assignment = []
        for tp in partitions:
            if tp.topic == self.settings.internal_topic:
                offset = self._restore(tp.partition)
                self.owned[tp.partition] = offset if offset >= 0 else 0
                if tp.partition in self._checkpointed:
                    self._checkpointed[tp.partition] = self._fingerprint(tp.partition)
                assignment.append(TopicPartition(tp.topic, tp.partition, offset))
            else:
                assignment.append(tp)
        consumer.incremental_assign(assignment)
        internal = [tp for tp in assignment if tp.topic == self.settings.internal_topic]
        if internal:
            # librdkafka keeps a partition's pause flag when the partition is
            # lost and assigned again: a new one starts with an empty queue, so
            # fetching it must not stay paused.
            consumer.resume(internal)
        self._processing = True
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))
        self._update_ready()

    def _read_partition_counts(self, consumer: Consumer, topics: set[str]) -> None:
        for topic in sorted(topics):
            try:
                described = consumer.list_topics(topic, timeout=PROBE_TIMEOUT_SECONDS).topics.get(topic)
            except KafkaException as exc:
                described, reason = None, str(exc)
            else:
                reason = str(described.error) if described is not None and described.error is not None else "no metadata"
            if described is not None and described.error is None and described.partitions:
                self.partition_counts[topic] = len(described.partitions)
            elif topic not in self.partition_counts:
                log.warning(
                    "could not read how many partitions %s has (%s): its events are put in event-time order across "
                    "the partitions seen so far, and at start-up one partition's backlog may be evaluated before "
                    "the others'. Check that the topic exists and the cluster answers; the count is read again at "
                    "the next rebalance",
                    topic,
                    reason,
                )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        internal = [tp.partition for tp in partitions if tp.topic == self.settings.internal_topic]
        if internal:
            self._checkpoint(internal, wait=True)  # complete before the new owner restores it
        for partition in internal:
            self._release(partition)
        self.metrics.forget_partitions((tp.topic, tp.partition) for tp in partitions)
        log.info("revoked %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        internal = [tp.partition for tp in partitions if tp.topic == self.settings.internal_topic]
        if self.changelog is not None:
            # A checkpoint still in flight must not be completed now: its marker
            # could land after the new owner's checkpoints.
            self.changelog.abandon(internal)
        for partition in internal:
            self._release(partition)
        self.metrics.forget_partitions((tp.topic, tp.partition) for tp in partitions)
        log.warning(
            "lost %s (session expired): state dropped without a checkpoint; the new owner resumes from the last one",
            sorted((tp.topic, tp.partition) for tp in partitions),
        )


def _split_batch(batch: ModelBatch) -> list[ModelBatch]:
    """Cut a model batch into records that fit the broker's message size limit."""
    n = len(batch)
    row_bytes = 8 * batch.numeric.shape[1] + 4 * (batch.categorical.shape[1] + batch.segments.shape[1]) + 40
    row_bytes += max(len(e) for e in batch.event_ids) if n else 0
    rows_per_record = max(1, MAX_INTERNAL_RECORD_BYTES // row_bytes)
    if n <= rows_per_record:
        return [batch]
    return [batch.take(np.arange(start, min(n, start + rows_per_record))) for start in range(0, n, rows_per_record)]
