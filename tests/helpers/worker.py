"""Run ``stream-monitor run`` as a real process, scrape it, signal it.

Service tests drive the worker the way an operator does: a separate process
started from the console entry point, observed through ``/metrics`` over HTTP
and stopped with a signal. Progress is counted from the worker's own
counters, never from broker watermarks (the embedded broker's are wrong after
multi-record batches).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping

from prometheus_client.parser import text_string_to_metric_families

TEST_KAFKA = ["--kafka", "session.timeout.ms=6000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerProcess:
    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        alerts_topic: str,
        dead_letter_topic: str,
        group_id: str,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.args = [
            sys.executable, "-m", "stream_monitor", "run",
            "--bootstrap-servers", bootstrap,
            *[arg for t in topics for arg in ("--topic", t)],
            "--alerts-topic", alerts_topic,
            "--dead-letter-topic", dead_letter_topic,
            "--group-id", group_id,
            "--metrics-port", str(self.port),
            *TEST_KAFKA,
            *(extra_args or []),
        ]
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), self.env.get("PYTHONPATH", "")])
        self.log_path = Path(tempfile.mkstemp(prefix="stream-monitor-worker-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Samples of /metrics as {(name, sorted labels): value}; empty if not up yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return {}
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def total(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        return sum(
            value
            for (sample, sample_labels), value in self.scrape().items()
            if sample == name and set(labels.items()) <= set(sample_labels)
        )

    def healthz(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_for(self, name: str, at_least: float, timeout: float = 90.0, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            self.assert_running()
            value = self.total(name, **labels)
            if value >= at_least:
                return value
            time.sleep(0.3)
        raise AssertionError(f"{name}{labels} reached {value}, not {at_least}, in {timeout}s; log:\n{self.log_text()[-4000:]}")

    @property
    def shards(self) -> int:
        """Evaluation shards per model this worker runs with (its flags, env and the defaults)."""
        return evaluation_shards(self.args, self.env)

    def shards_in_step(self) -> bool:
        """Whether every evaluation shard of every model has applied as many events as shard 0.

        Events processed are counted by shard 0 of each model; the other shards
        evaluate the same events (each its own signals) and may trail it.
        """
        return all_shards_in_step([self.scrape()], self.shards)

    def wait_for_verdicts(self, total: int, timeout: float = 120.0) -> None:
        """Until every produced message is evaluated (by every shard) or dead-lettered.

        Events pass ingest, then the internal topic, then evaluation, so
        "consumed" alone does not mean "processed".
        """
        deadline = time.monotonic() + timeout
        done = 0.0
        while time.monotonic() < deadline:
            self.assert_running()
            done = self.total("stream_monitor_events_processed_total") + self.total("stream_monitor_invalid_events_total")
            if done >= total and self.shards_in_step():
                return
            time.sleep(0.3)
        raise AssertionError(f"{done} of {total} messages reached a verdict in {timeout}s; log:\n{self.log_text()[-4000:]}")

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}; log:\n{self.log_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            self._log.close()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def evaluation_shards(args: list[str], env: Mapping[str, str]) -> int:
    """Evaluation shards per model of ``stream-monitor run`` with these arguments and environment."""
    from stream_monitor.config import Settings

    def setting(flag: str, variable: str, name: str) -> int:
        if flag in args:
            return int(args[args.index(flag) + 1])
        if env.get(variable):
            return int(env[variable])
        return int(Settings.model_fields[name].default)

    shards = setting("--evaluation-shards", "STREAM_MONITOR_EVALUATION_SHARDS", "evaluation_shards")
    partitions = setting("--internal-partitions", "STREAM_MONITOR_INTERNAL_PARTITIONS", "internal_partitions")
    return min(shards, partitions)


def shard_progress(scrapes: list[dict], shards: int) -> dict[str, int]:
    """Per model, events applied by its slowest evaluation shard, over several workers' scrapes.

    A shard missing from every scrape (not evaluated anywhere yet) counts 0.
    """
    per_shard: dict[tuple[str, str], float] = {}
    for samples in scrapes:
        for (name, labels), value in samples.items():
            if name == "stream_monitor_shard_events":
                key = (dict(labels)["model"], dict(labels)["shard"])
                per_shard[key] = max(per_shard.get(key, 0.0), value)
    models = {model for model, _ in per_shard}
    return {model: int(min(per_shard.get((model, str(k)), 0.0) for k in range(shards))) for model in models}


def all_shards_in_step(scrapes: list[dict], shards: int) -> bool:
    """Every model's slowest shard has applied as many events as its shard 0."""
    progress = shard_progress(scrapes, shards)
    for model, slowest in progress.items():
        first = max(
            (v for samples in scrapes for (name, labels), v in samples.items()
             if name == "stream_monitor_model_events" and dict(labels).get("model") == model),
            default=0.0,
        )
        if slowest < first:
            return False
    return True
