"""`stream-monitor simulate` produces the demo's synthetic stream to any cluster."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from helpers.kafka import consume_all

pytestmark = pytest.mark.integration


def test_simulate_produces_the_requested_events_with_the_drift(kafka_bootstrap, unique_name):
    topic = unique_name("simulated")
    done = subprocess.run(
        [sys.executable, "-m", "stream_monitor", "simulate", "--bootstrap-servers", kafka_bootstrap,
         "--topic", topic, "--events", "4000", "--partitions", "2", "--drift-at", "2000", "--seed", "5"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "produced 4000 events" in done.stdout
    events = [orjson.loads(m.value) for m in consume_all(kafka_bootstrap, topic, 4000, timeout=30)]
    assert len(events) == 4000 and len({e["event_id"] for e in events}) == 4000
    apac = sorted((e for e in events if e["segment"]["region"] == "apac"), key=lambda e: int(e["event_id"].split("-")[1]))
    before = np.mean([e["features"]["debt_to_income"] for e in apac if int(e["event_id"].split("-")[1]) < 2000])
    after = np.mean([e["features"]["debt_to_income"] for e in apac if int(e["event_id"].split("-")[1]) >= 2000])
    assert after - before > 0.1  # +1 sd of a Beta(2, 5) is ~0.16
