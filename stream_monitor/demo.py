"""``stream-monitor demo``: the whole pipeline on one machine in about a minute.

A synthetic credit-risk model streams predictions into Kafka (an embedded
broker unless ``--bootstrap-servers`` is given); part-way through, one
feature drifts in one region. The real worker consumes the stream, and the
demo prints each alert as it is published, then checks that the injected
drift was caught where it was injected.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Iterator

from stream_monitor.config import load_settings
from stream_monitor.core.alerts import Alert
from stream_monitor.core.engine import BatchResult, MonitorEngine
from stream_monitor.kafka.admin import ensure_topics
from stream_monitor.kafka.worker import Worker
from stream_monitor.simulation.producer import produce_events, produce_raw
from stream_monitor.simulation.scenarios import DEMO_DRIFT_FEATURE, DEMO_DRIFT_SEGMENT, demo_drift, malformed_messages
from stream_monitor.simulation.synthetic import credit_risk_profile, generate
from stream_monitor.spec import MonitorSpec

MALFORMED = 25


def _out(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _cluster(bootstrap_servers: str | None) -> Iterator[str]:
    if bootstrap_servers:
        _out(f"Using the Kafka cluster at {bootstrap_servers}")
        yield bootstrap_servers
        return
    from stream_monitor.embedded.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        _out(f"Started an embedded Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}")
        yield broker.bootstrap_servers


def format_alert(alert: Alert) -> str:
    segment = ", ".join(f"{k}={v}" for k, v in alert.segment.items()) or "all traffic"
    lines = [f"  ALERT {alert.severity.upper():8s} {alert.kind}: {alert.model} / {alert.feature} / {segment}"]
    if alert.p_value is not None:
        lines.append(f"      {alert.detector}: statistic {alert.statistic:.3g}, p-value {alert.p_value:.2g} < {alert.threshold:g}")
    else:
        lines.append(f"      {alert.detector}: statistic {alert.statistic:.4g} (threshold {alert.threshold:g})")
    ref, cur = alert.reference, alert.current
    if "mean" in ref and "mean" in cur:
        lines.append(
            f"      reference mean {ref['mean']:.4g} median {ref['p50']:.4g} | current mean {cur['mean']:.4g} median {cur['p50']:.4g}"
        )
    elif "top_shares" in ref:
        lines.append(f"      reference {ref['top_shares']} | current {cur['top_shares']}")
    lines.append(f"      window of {alert.window['events']} events, triggered at {alert.source['topic']}[{alert.source['partition']}]@{alert.source['offset']}")
    return "\n".join(lines)


def run_demo(bootstrap_servers: str | None = None, events: int = 48_000, rate: float = 4_000.0, seed: int = 7) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    drift = demo_drift(events // 2)
    run_id = uuid.uuid4().hex[:8]
    topic = f"stream-monitor-demo.{run_id}.predictions"
    _out("stream-monitor demo")
    _out(f"  model 'credit-risk', {events} events at {rate:.0f}/s, {MALFORMED} malformed messages mixed in")
    _out(f"  injected: +1 standard deviation in '{DEMO_DRIFT_FEATURE}' for {DEMO_DRIFT_SEGMENT[0]}={DEMO_DRIFT_SEGMENT[1]} from event {drift.start}")
    _out()
    started = time.monotonic()
    with _cluster(bootstrap_servers) as bootstrap:
        ensure_topics(bootstrap, {topic: 4})
        settings = load_settings(
            {
                "bootstrap_servers": bootstrap,
                "topics": [topic],
                "alerts_topic": f"stream-monitor-demo.{run_id}.alerts",
                "dead_letter_topic": f"stream-monitor-demo.{run_id}.dead-letter",
                "group_id": f"stream-monitor-demo-{run_id}",
                "metrics_port": 0,
                "metrics_host": "127.0.0.1",
                "kafka": {"session.timeout.ms": "6000"},
            }
        )
        alerts: list[Alert] = []
        counts: Counter = Counter()
        total = events + MALFORMED

        applied: dict[int, int] = {}  # evaluation shard -> events applied to its state

        def on_batch(result: BatchResult) -> None:
            # evaluated events plus rejects: everything that reached a verdict
            counts["consumed"] += sum(result.processed_by_model.values()) + len(result.rejections)
            counts["invalid"] += len(result.rejections)
            for alert in result.alerts:
                alerts.append(alert)
                _out(format_alert(alert))
            for (_model, shard), events in result.shard_events.items():
                applied[shard] = events
            # every shard of the model has evaluated every event (shard 0 counts "consumed")
            slowest = min(applied.get(shard, 0) for shard in range(settings.shards))
            if counts["consumed"] >= total and slowest + counts["invalid"] >= total:
                worker.request_stop()

        worker = Worker(settings, MonitorEngine(MonitorSpec.default()), on_batch=on_batch)
        runner = threading.Thread(target=lambda: counts.update(exit_code=worker.run()), name="worker", daemon=True)
        runner.start()

        def produce() -> None:
            half = events // 2
            profile = credit_risk_profile()
            produce_events(bootstrap, topic, generate(profile, half, seed, [drift]), rate=rate)
            produce_raw(bootstrap, topic, malformed_messages(MALFORMED, seed))
            produce_events(bootstrap, topic, generate(profile, events - half, seed, [drift], start_index=half), rate=rate)

        producer = threading.Thread(target=produce, name="producer", daemon=True)
        producer.start()
        deadline = time.monotonic() + max(120.0, 3 * events / rate)
        last_report = 0.0
        while runner.is_alive() and time.monotonic() < deadline:
            runner.join(0.25)
            if time.monotonic() - last_report >= 2.0:
                last_report = time.monotonic()
                _out(f"  ... {counts['consumed']:>6}/{total} messages processed, {len(alerts)} alerts, {counts['invalid']} dead letters")
        if runner.is_alive():
            worker.request_stop()
            runner.join(15)
            _out(f"The worker did not process all {total} messages in time; is the broker healthy?")
            return 1

    elapsed = time.monotonic() - started
    return _summary(alerts, counts, total, elapsed)


def _summary(alerts: list[Alert], counts: Counter, total: int, elapsed: float) -> int:
    _out()
    _out(f"Summary after {elapsed:.1f} s")
    _out(f"  messages processed: {counts['consumed']} of {total}; dead-lettered with reasons: {counts['invalid']}")
    by_kind = Counter((a.kind, a.severity) for a in alerts)
    _out(f"  alerts: {len(alerts)} " + ", ".join(f"{k}/{s}: {n}" for (k, s), n in sorted(by_kind.items())))
    streams = sorted({(a.feature, ",".join(f"{k}={v}" for k, v in a.segment.items()) or "all") for a in alerts})
    for feature, segment in streams:
        _out(f"    - {feature} @ {segment}")
    key, value = DEMO_DRIFT_SEGMENT
    caught = any(a.feature == DEMO_DRIFT_FEATURE and a.segment == {key: value} for a in alerts)
    if caught:
        _out(f"  The injected drift in '{DEMO_DRIFT_FEATURE}' for {key}={value} was detected.")
    else:
        _out(f"  The injected drift in '{DEMO_DRIFT_FEATURE}' for {key}={value} was NOT detected.")
    if counts.get("exit_code", 0) != 0:
        _out("  The worker exited with an error; see the log above.")
        return 1
    return 0 if caught else 1
