"""Prometheus metrics and the health endpoint, served on one port.

Names follow prometheus-client conventions: one ``stream_monitor_`` prefix,
base units (seconds), ``_total`` counters. Labels are bounded on purpose:
model, feature, statistic, severity, reason, topic and partition. Segment
values never become labels (their cardinality is the user's traffic); the
segment detail lives in the alerts.
"""

from __future__ import annotations

import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from socketserver import ThreadingMixIn
from collections import Counter as Counts
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from stream_monitor.core.alerts import Severity
from stream_monitor.core.engine import BatchResult

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "stream_monitor_events_consumed", "Messages consumed from the events topics, valid or not.", ["topic"], registry=r
        )
        self.events_processed = Counter(
            "stream_monitor_events_processed", "Valid prediction events processed.", ["model"], registry=r
        )
        self.invalid_events = Counter(
            "stream_monitor_invalid_events",
            "Messages routed to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.untracked_values = Counter(
            "stream_monitor_untracked_values",
            "Values not monitored because a model exceeded the caps on signals or segment keys.",
            ["model"],
            registry=r,
        )
        self.alerts = Counter(
            "stream_monitor_alerts", "Drift alerts published.", ["model", "kind", "severity"], registry=r
        )
        self.drift_score = Gauge(
            "stream_monitor_drift_score",
            "Latest window-test statistic of the whole-model aggregate stream.",
            ["model", "feature", "statistic"],
            registry=r,
        )
        self.drifting_streams = Gauge(
            "stream_monitor_drifting_streams",
            "Streams (feature x segment) whose latest verdict is drift.",
            ["model", "severity"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "stream_monitor_batch_processing_seconds",
            "Time to process one consumed batch, publishing and committing included.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.last_event_timestamp = Gauge(
            "stream_monitor_last_event_timestamp_seconds",
            "Event time of the latest processed event (epoch seconds).",
            ["model"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "stream_monitor_consumer_lag_messages",
            "Messages between the partition's high watermark and the next offset to consume.",
            ["topic", "partition"],
            registry=r,
        )
        self.prediction_latency = BatchHistogram(
            "stream_monitor_prediction_latency_seconds",
            "Model prediction latency reported in events (latency_ms).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "stream_monitor_ready", "1 while connected to Kafka and processing, 0 otherwise.", registry=r
        )
        self.model_events = Gauge(
            "stream_monitor_model_events",
            "Events applied to a model's detector state since it began (restored with the state; "
            "of a sharded model, reported by the worker evaluating its shard 0).",
            ["model"],
            registry=r,
        )
        self.shard_events = Gauge(
            "stream_monitor_shard_events",
            "Events applied to one evaluation shard of a model since it began (restored with the state; "
            "shard 0 of a model evaluated whole). The model is as far as its slowest shard.",
            ["model", "shard"],
            registry=r,
        )
        self.streams = Gauge("stream_monitor_streams", "Streams (model x feature x segment) held in memory.", registry=r)

    def record_batch(self, result: BatchResult) -> None:
        for topic, count in result.consumed_by_topic.items():
            self.events_consumed.labels(topic).inc(count)
        for model, count in result.processed_by_model.items():
            self.events_processed.labels(model).inc(count)
        for reason, count in result.invalid_by_reason.items():
            self.invalid_events.labels(reason).inc(count)
        for model, count in result.untracked_by_model.items():
            self.untracked_values.labels(model).inc(count)
        for alert in result.alerts:
            self.alerts.labels(alert.model, alert.kind, alert.severity).inc()
        for (model, feature, statistic), value in result.drift_scores.items():
            self.drift_score.labels(model, feature, statistic).set(value)
        for model, counts in result.drifting_streams.items():
            for severity in (Severity.WARNING, Severity.CRITICAL):
                self.drifting_streams.labels(model, severity).set(counts.get(severity, 0))
        for model, count in result.model_events.items():
            self.model_events.labels(model).set(count)
        for (model, shard), count in result.shard_events.items():
            self.shard_events.labels(model, str(shard)).set(count)
        for model, seconds in result.last_event_time.items():
            self.last_event_timestamp.labels(model).set(seconds)
        for model, latencies in result.latencies.items():
            self.prediction_latency.observe_many((model,), latencies)

    def set_lag(self, lags: Iterable[tuple[str, int, int]]) -> None:
        for topic, partition, lag in lags:
            self.consumer_lag.labels(topic, str(partition)).set(lag)

    def restored(self, model: str, shard: tuple[int, int] | None, events: int) -> None:
        """Report the event counts of a monitor (whole model or shard) restored from a checkpoint."""
        if shard is None or shard[0] == 0:
            self.model_events.labels(model).set(events)
        self.shard_events.labels(model, str(0 if shard is None else shard[0])).set(events)

    def forget_monitor(
        self,
        model: str,
        shard: tuple[int, int] | None,
        features: list[str] | None,
        drifting: Counts | None,
    ) -> None:
        """Drop the series of a monitor another worker now owns (it reports them).

        ``shard`` None is a whole model. ``features`` are the monitor's signals
        (their drift scores go; None: every feature of the model).
        ``drifting`` is what the monitors of the model still held here count
        (None when none is left: the model's gauges go).
        """
        index = 0 if shard is None else shard[0]
        _remove(self.shard_events, model, str(index))
        if index == 0:
            _remove(self.model_events, model)
        dropped = None if features is None else set(features)
        for labels in _drift_score_series(self.drift_score):
            if labels[0] == model and (dropped is None or labels[1] in dropped):
                _remove(self.drift_score, *labels)
        if drifting is None:
            for severity in (Severity.WARNING, Severity.CRITICAL):
                _remove(self.drifting_streams, model, severity)
            _remove(self.last_event_timestamp, model)
        else:
            for severity in (Severity.WARNING, Severity.CRITICAL):
                self.drifting_streams.labels(model, severity).set(drifting.get(severity, 0))

    def forget_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop lag series of partitions this worker no longer owns (someone else reports them)."""
        for topic, partition in partitions:
            try:
                self.consumer_lag.remove(topic, str(partition))
            except KeyError:
                pass


class BatchHistogram:
    """A labelled Prometheus histogram that takes a whole array of observations in one call.

    Exposed exactly as ``prometheus_client.Histogram`` exposes one (``_bucket``
    per ``le``, ``_count``, ``_sum``, ``_created``), but a batch's latencies
    (one per event) are binned with numpy, not observed one Python call each.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._bounds = np.array(sorted({float(b) for b in buckets} | {float("inf")}))
        self._le = [floatToGoString(b) for b in self._bounds]
        #: label values -> [observations per bucket (not cumulative), sum, created]
        self._series: dict[tuple[str, ...], list[Any]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, labels: tuple[str, ...], values: np.ndarray) -> None:
        """Observe every value (as ``Histogram.observe`` would, one by one; NaN falls in no bucket)."""
        values = np.asarray(values, dtype=np.float64)
        bins = np.searchsorted(self._bounds, values[~np.isnan(values)], side="left")  # first bucket with value <= le
        counts = np.bincount(bins, minlength=len(self._bounds))
        total = float(values.sum())
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [np.zeros(len(self._bounds), dtype=np.int64), 0.0, time.time()]
            series[0] += counts
            series[1] += total

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = [(labels, np.cumsum(counts).tolist(), total, created) for labels, (counts, total, created) in self._series.items()]
        for labels, cumulative, total, created in series:
            family.add_metric(list(labels), [(le, float(c)) for le, c in zip(self._le, cumulative)], total)
            family.add_sample(self.name + "_created", dict(zip(self.labelnames, labels)), created)
        yield family


def _remove(metric: Any, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


def _drift_score_series(metric: Gauge) -> list[tuple[str, str, str]]:
    """(model, feature, statistic) of every drift-score series held."""
    return [
        (sample.labels["model"], sample.labels["feature"], sample.labels["statistic"])
        for family in metric.collect()
        for sample in family.samples
    ]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """``/metrics`` for Prometheus and ``/healthz`` for orchestrators' readiness probes."""

    def __init__(self, metrics: Metrics, host: str, port: int, is_ready: Callable[[], bool]) -> None:
        metrics_app = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok = is_ready()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ready\n" if ok else b"not ready: not connected to Kafka or not processing\n"]
            return metrics_app(environ, start_response)

        self._server = make_server(host, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
