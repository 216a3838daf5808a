"""`stream-monitor demo`, run the way a newcomer runs it: the console script, as a process."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def demo_command() -> list[str]:
    script = Path(sys.executable).parent / "stream-monitor"
    if script.exists():
        return [str(script), "demo"]
    return [sys.executable, "-m", "stream_monitor", "demo"]


def test_demo_exits_zero_and_prints_the_injected_drift():
    args = demo_command()
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        args += ["--bootstrap-servers", os.environ["KAFKA_BOOTSTRAP_SERVERS"]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"ALERT \w+ +data_drift: credit-risk / debt_to_income / region=apac", out), out
    assert "messages processed: 48025 of 48025; dead-lettered with reasons: 25" in out
    assert "The injected drift in 'debt_to_income' for region=apac was detected." in out
    assert "processed," in out  # progress lines while it runs
