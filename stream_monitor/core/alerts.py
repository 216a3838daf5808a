"""Alert schema v1: what the monitor publishes when a stream drifts.

Alerts are consumed by machines (paging, retraining, rollbacks), so two
properties matter more than prose: the ``alert_id`` is deterministic (a
replayed detection after a crash has the same id, so consumers can drop
duplicates), and the payload says *which* feature and population moved and by
how much (reference vs current summaries), so the fix can be targeted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

ALERT_SCHEMA_VERSION = 1


class Kind:
    DATA_DRIFT = "data_drift"
    PREDICTION_DRIFT = "prediction_drift"
    LABEL_DRIFT = "label_drift"
    LATENCY_DRIFT = "latency_drift"


class Severity:
    WARNING = "warning"
    CRITICAL = "critical"

    RANK = {WARNING: 1, CRITICAL: 2}


def alert_id(model: str, feature: str, segment: dict[str, str], occurrence: str) -> str:
    """Same detection of the same stream -> same id.

    ``feature`` is the stream's signal name (:mod:`stream_monitor.core.signals`):
    a feature's own name, ``feature:<name>`` for a feature called like a
    reserved signal, or ``prediction``, ``score:<class>``, ``label``, ``latency_ms``.
    ``occurrence`` names the detection within the stream's history
    (``severity:n``, see ``ModelMonitor``), not a wall-clock time or an exact
    event position, so a replay after a crash, or a run that saw the
    partitions interleaved differently, publishes the same id for the same
    drift and consumers can drop the duplicate.
    """
    segment_text = ",".join(f"{k}={v}" for k, v in sorted(segment.items()))
    text = "\x1f".join((model, feature, segment_text, occurrence))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def iso_time(epoch_seconds: float | None) -> str | None:
    if epoch_seconds is None or not math.isfinite(epoch_seconds):
        return None
    try:
        return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None  # outside datetime's range: say nothing rather than fail an alert


@dataclass(slots=True)
class Alert:
    alert_id: str
    kind: str
    severity: str
    model: str
    model_version: str | None
    feature: str
    segment: dict[str, str]
    detector: str
    statistic: float
    threshold: float
    p_value: float | None
    window: dict[str, Any]
    reference: dict[str, Any]
    current: dict[str, Any]
    detected_at: str
    source: dict[str, Any]
    #: Every test evaluated at the time, not only the one that fired.
    tests: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """Kafka key: one stream's alerts stay in order on one partition."""
        segment_text = ",".join(f"{k}={v}" for k, v in sorted(self.segment.items())) or "all"
        return f"{self.model}|{self.feature}|{segment_text}".encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "model": self.model,
            "model_version": self.model_version,
            "feature": self.feature,
            "segment": self.segment,
            "detector": self.detector,
            "statistic": _finite(self.statistic),
            "threshold": self.threshold,
            "p_value": _finite(self.p_value),
            "window": self.window,
            "reference": _rounded(self.reference),
            "current": _rounded(self.current),
            "tests": self.tests,
            "detected_at": self.detected_at,
            "source": self.source,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def _rounded(summary: Any) -> Any:
    """Summaries are for people and dashboards: 6 significant digits, no float noise."""
    if isinstance(summary, float):
        return float(f"{summary:.6g}") if math.isfinite(summary) else None
    if isinstance(summary, dict):
        return {key: _rounded(value) for key, value in summary.items()}
    return summary


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
