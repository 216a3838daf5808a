"""Metrics are applied from a BatchResult and served over real HTTP with /healthz."""

import urllib.error
import urllib.request

import orjson
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.core.engine import MonitorEngine
from stream_monitor.core.events import RawMessage
from stream_monitor.observability.metrics import Metrics, MetricsServer
from stream_monitor.spec import MonitorSpec


def samples(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_batch_counts_reach_the_endpoint_and_health_follows_readiness():
    events = [
        {"event_id": str(i), "model": "m", "features": {"x": float(i % 7)}, "latency_ms": 12.0, "timestamp": 1_767_225_600 + i}
        for i in range(300)
    ]
    messages = [RawMessage(orjson.dumps(e), "events", 0, i) for i, e in enumerate(events)]
    messages += [RawMessage(b"{bad", "events", 0, 300), RawMessage(b"[]", "other", 1, 0)]
    result = MonitorEngine(MonitorSpec.default()).process(messages)

    metrics = Metrics()
    ready = {"value": False}
    server = MetricsServer(metrics, "127.0.0.1", 0, lambda: ready["value"]).start()
    try:
        metrics.record_batch(result)
        got = samples(server.port)
        assert got[("stream_monitor_events_consumed_total", (("topic", "events"),))] == 301
        assert got[("stream_monitor_events_consumed_total", (("topic", "other"),))] == 1
        assert got[("stream_monitor_events_processed_total", (("model", "m"),))] == 300
        assert got[("stream_monitor_invalid_events_total", (("reason", "not_json"),))] == 1
        assert got[("stream_monitor_invalid_events_total", (("reason", "not_an_object"),))] == 1
        assert got[("stream_monitor_prediction_latency_seconds_count", (("model", "m"),))] == 300
        assert abs(got[("stream_monitor_prediction_latency_seconds_sum", (("model", "m"),))] - 3.6) < 1e-9
        assert got[("stream_monitor_last_event_timestamp_seconds", (("model", "m"),))] == 1_767_225_899
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
            raise AssertionError("expected 503 while not ready")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        ready["value"] = True
        assert urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status == 200
    finally:
        server.stop()


def test_batch_histogram_exposes_what_a_prometheus_histogram_observing_one_by_one_would():
    import re

    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from stream_monitor.observability.metrics import LATENCY_BUCKETS, BatchHistogram

    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("latency_seconds", "doc", ["model"], buckets=LATENCY_BUCKETS, registry=one_by_one)
    histogram = BatchHistogram("latency_seconds", "doc", ["model"], buckets=LATENCY_BUCKETS, registry=batched)
    rng = np.random.default_rng(3)
    for model in ("a", "b"):
        for _ in range(3):
            # Values on the bucket bounds, past the last one, negative, and plenty in between.
            values = np.concatenate([rng.exponential(0.05, 500), [0.001, 0.0025, 10.0, 11.0, -1.0]])
            for value in values:
                reference.labels(model).observe(float(value))
            histogram.observe_many((model,), values)

    def exposition(registry):
        text = generate_latest(registry).decode()
        text = re.sub(r"(_created\{[^}]*\}) \S+", r"\1 <time>", text)  # when each series began
        return re.sub(r"(_sum\{[^}]*\}) (\S+)", lambda m: f"{m[1]} {float(m[2]):.9f}", text)  # summation order

    assert exposition(batched) == exposition(one_by_one)
