"""Throughput benchmark: one table, one run, the same generated events throughout.

    python -m benchmarks.throughput               # full run, prints the table, updates docs/benchmarks/throughput.md
    python -m benchmarks.throughput --profile     # the same, plus cProfile of the core engine (top 25, cumulative)
    python -m benchmarks.throughput --quick       # small smoke run, prints only (unless --output is given)

Events come from ``generate(benchmark_profile(), n, SEED)``: 20 numeric and 3
categorical features, 2 segment keys with 50 values each, one model
("benchmark"), serialised once with orjson. The engine watches 26 signals of
it (the features, the prediction, the label and the latency) in the aggregate
and in every segment value: 2,678 streams. What is measured:

(a)  the ceiling: ``orjson.loads`` of each message and the 20 numeric feature
     values of a batch into one numpy array; minimal code, no validation;
     batches of 5,000; median of 3 passes.
(a') the ingest stage alone (``stream_monitor.core.engine.ingest``: decode,
     validate, gather into a ``ModelBatch``), for the breakdown of (b).
(b)  ``MonitorEngine(MonitorSpec.default()).process(batch)`` on pre-built
     ``RawMessage`` batches of 5,000 (ingest + evaluate + forced flush). A
     warm-up of ``warmup`` events first fills the references of every stream
     of every data feature (a segment value gets ~1/62 of the traffic, so
     ~62,500 events fill its 1,000-value references); the steady-state pass
     that follows is the number.
(b4) (b) as the (d) workers evaluate: every model batch cut by
     ``split_batch`` into ``E2E_SHARDS`` shard batches (signals divided,
     every row in each), each evaluated by its own monitor; same warm-up and
     slice. The engine figure a (d) worker can be held to (``--skip shards``
     leaves it out).
(c)  a naive per-event loop: ``orjson.loads``, then for every numeric feature
     and every stream the event belongs to (the aggregate and one per
     segment key: 60 streams), ``river.drift.ADWIN().update(x)`` and
     ``river.drift.PageHinkley().update(x)``: 120 update calls per event;
     detectors created lazily; timed on a subset after a short warm-up.
(d)  end to end through a real broker: ``stream-monitor run`` as one process,
     then as two processes in one consumer group, each time with a fresh group
     and a fresh 4-partition input topic. The first ``warmup + e2e_lead``
     events are in the topic before the workers start; a feeder thread
     produces the rest (up to ``warmup + measured + e2e_lead + pad``) in chunks
     of 5,000, never more than ``e2e_lead`` ahead of the events applied. Given the whole
     backlog at once, a worker ingests all of it first (ingest is several
     times cheaper than evaluation and nothing holds it back) and then only
     evaluates, so a window measured then would leave ingest out; fed this
     way, ingest and evaluation move at the same pace, as for a worker that
     keeps up with its traffic, and as in (b). The benchmark polls each
     worker's ``/healthz`` and ``/metrics`` every 0.25 s. Progress is
     the gauge ``stream_monitor_shard_events`` (events applied to the state of
     one evaluation shard of the model; every shard applies every event, each
     to its own signals): the least over the model's shards, each read from
     the worker that reports it (the highest, while a moved shard is briefly
     reported by two; a shard nobody reports yet counts 0). The workers run
     with ``--evaluation-shards 4`` (the service's default is 1), so two
     workers share the one model; with one shard the measure is
     ``stream_monitor_model_events``.
     Progress moves in steps (the resequencer releases rows once every source
     partition has passed them: several thousand events at a time here). A step is
     timed half-way between the poll that first shows it and the one before
     (each poll's time is the middle of its HTTP requests), so within half a
     poll interval. The headline is the steady-state rate: events applied
     between the first step at or past ``warmup`` and the first step at or past
     ``warmup + measured``, divided by the time between those two steps; the
     same regime, and the same events, as (b). The window holds several steps
     and, at the usual rates, one or more checkpoints (every 10 s), so a run's
     figure does not hang on where a step or a checkpoint happens to fall.
     Alongside: the workers' CPU seconds in that window (``/proc/<pid>/stat``,
     all threads), as events per worker CPU second, which other load on the
     machine disturbs much less than the wall-clock rate, the broker's, and
     the events the workers ingested meanwhile (about as many as applied).
     Also shown: the rate from the first event applied (startup and group
     join excluded) and the wall time from process start. The ``e2e_lead``
     events after the measured ones keep ingest going to the end of the
     window, and the ``pad`` ones every source partition moving, so the
     resequencer never waits the 10 s idle timeout for the measured tail.
(e)  state: ``len(encode_state(monitor.to_state())) / len(monitor.streams)``
     of the (b) engine after its run; and, in a child process (so the RSS is
     that of the state, not of this process's events), the RSS while holding
     ~2,000 streams (one model of the same profile with 38 values per segment
     key, filled live by ``ModelMonitor.observe`` with enough events to fill
     the references of its data-feature streams) and ~100,000 streams (that
     model plus deep copies of it, settings shared as in one engine; restoring
     from checkpoints would be the worker's way, but takes ~1 s per model, so
     it is timed once and reported instead). Reported: RSS above the child's
     baseline (input batch loaded, imports and caches warmed by a throwaway
     monitor) and the child's peak RSS (VmHWM).

Progress goes to stderr; the report (markdown) to stdout. A full run writes
the report between the markers of docs/benchmarks/throughput.md (the rest of
that file is hand-written analysis and is kept).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import importlib.util
import io
import json
import os
import platform
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import orjson

from stream_monitor.core.columns import ModelBatch, build_model_batches
from stream_monitor.core.engine import MonitorEngine, ingest
from stream_monitor.core.events import RawMessage, decode_batch
from stream_monitor.core.segments import OTHER
from stream_monitor.core.state_codec import decode_state, encode_state
from stream_monitor.simulation.synthetic import benchmark_profile, generate
from stream_monitor.spec import MonitorSpec

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks" / "throughput.md"
BEGIN = "<!-- BEGIN generated by benchmarks/throughput.py: do not edit by hand -->"
END = "<!-- END generated by benchmarks/throughput.py -->"

SEED = 20260131
RSS_SEED = 20260132
MODEL = "benchmark"
TOPIC = "predictions"
PARTITIONS = 4
NUMERIC = [f"f{i:02d}" for i in range(20)]
DATA_FEATURES = {*NUMERIC, "c0", "c1", "c2"}
POLL_SECONDS = 0.25

# Acceptance targets of the issue.
TARGET_B_OVER_A = 0.8
TARGET_D_OVER_A = 0.6
TARGET_D_RATE = 60_000.0
TARGET_SCALE = 1.6
TARGET_B_OVER_C = 10.0
TARGET_STATE_BYTES = 16 * 1024
TARGET_RSS_100K = 2 * 1024**3
TARGET_RUNTIME = 300.0
#: Evaluation shards of the (d) workers (opt-in in the service): two workers share the model.
E2E_SHARDS = 4


@dataclass(frozen=True)
class Plan:
    name: str
    batch: int = 5000
    #: (b): events that fill the references, then the steady-state pass.
    warmup: int = 70_000
    measured: int = 120_000
    #: (b) under cProfile, after the measured pass (only with --profile).
    profiled: int = 20_000
    #: (c): detectors warmed on this many events, then timed on the next ones.
    naive_warmup: int = 10_000
    naive: int = 10_000
    #: (d): events produced after warmup + measured + e2e_lead (see the module docstring).
    pad: int = 5_000
    e2e_workers: tuple[int, ...] = (1, 2)
    #: (d): events produced ahead of the events applied (see Feeder).
    e2e_lead: int = 30_000
    e2e_timeout: float = 150.0
    #: (e): segment values per key of the RSS model, events fed to it, stream targets.
    rss_segment_values: int = 38
    rss_events: int = 55_000
    rss_targets: tuple[int, ...] = (2_000, 100_000)
    ceiling_repeats: int = 3


FULL = Plan("full")
QUICK = Plan(
    "quick",
    warmup=10_000,
    measured=10_000,
    profiled=5_000,
    naive_warmup=500,
    naive=1_000,
    pad=5_000,
    e2e_lead=10_000,
    e2e_timeout=90.0,
    rss_segment_values=5,
    rss_events=8_000,
    rss_targets=(2_000,),
    ceiling_repeats=1,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- events


def make_messages(n: int, seed: int = SEED, profile: Any = None) -> list[RawMessage]:
    """``n`` generated events as Kafka-like messages: 4 partitions, round robin."""
    profile = profile or benchmark_profile()
    dumps = orjson.dumps
    out = []
    for i, event in enumerate(generate(profile, n, seed)):
        out.append(
            RawMessage(dumps(event), topic=TOPIC, partition=i % PARTITIONS, offset=i // PARTITIONS, key=event["event_id"].encode())
        )
    return out


def batches_of(messages: list[RawMessage], size: int) -> list[list[RawMessage]]:
    return [messages[i : i + size] for i in range(0, len(messages), size)]


# --------------------------------------------------------------------------- (a) ceiling


def ceiling_pass(batches: list[list[RawMessage]]) -> float:
    """Decode every message and gather the numeric features of each batch into one array."""
    loads = orjson.loads
    names = NUMERIC
    started = time.perf_counter()
    for batch in batches:
        features = [loads(m.value)["features"] for m in batch]
        matrix = np.array([[f.get(name) for name in names] for f in features], dtype=np.float64)
        assert matrix.shape == (len(batch), len(names))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- (b4) shards


def sharded_engine_pass(spec: MonitorSpec, shards: int, warm: list[list[RawMessage]], measured: list[list[RawMessage]]) -> tuple[float, int]:
    """(b) with the model's signals divided among ``shards`` monitors, as a worker with
    ``--evaluation-shards`` evaluates them: seconds of the measured pass, and its alerts."""
    from stream_monitor.core.shards import split_batch

    engine = MonitorEngine(spec)

    def process(batch: list[RawMessage]) -> int:
        alerts = 0
        for model_batch in ingest(batch, spec).batches:
            segment_features = spec.model(model_batch.model).segment_keys
            for shard, part in enumerate(split_batch(model_batch, shards, segment_features)):
                alerts += len(engine.evaluate(part, shard=(shard, shards)).alerts)
        return alerts + len(engine.flush(force=True).alerts)

    for batch in warm:
        process(batch)
    gc.collect()
    started = time.perf_counter()
    alerts = sum(process(batch) for batch in measured)
    return time.perf_counter() - started, alerts


# --------------------------------------------------------------------------- (c) naive


def naive_loop(messages: list[RawMessage], detectors: dict) -> None:
    from river.drift import ADWIN, PageHinkley

    loads = orjson.loads
    for message in messages:
        event = loads(message.value)
        features = event["features"]
        streams = [("", ""), *event.get("segment", {}).items()]
        for name in NUMERIC:
            x = features.get(name)
            if x is None:
                continue
            for segment in streams:
                pair = detectors.get((name, segment))
                if pair is None:
                    pair = detectors[(name, segment)] = (ADWIN(), PageHinkley())
                pair[0].update(x)
                pair[1].update(x)


# --------------------------------------------------------------------------- (d) end to end

_SHARD_EVENTS = re.compile(r'^stream_monitor_shard_events\{model="([^"]*)",shard="(\d+)"\} (\S+)$', re.M)
_CONSUMED = re.compile(r'^stream_monitor_events_consumed_total\{topic="[^"]*"\} (\S+)$', re.M)


def _worker_shards() -> int:
    """Evaluation shards per model of the (d) workers (``E2E_SHARDS``, capped as the service caps it)."""
    from stream_monitor.config import load_settings

    return load_settings({"evaluation_shards": E2E_SHARDS}).shards


def _load_worker_helper() -> Any:
    """tests/helpers/worker.py (starts ``stream-monitor run`` as a process), loaded by path."""
    path = REPO / "tests" / "helpers" / "worker.py"
    spec = importlib.util.spec_from_file_location("_throughput_worker_helper", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (its threads and reaped children included); NaN if unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    except (OSError, ValueError, IndexError):
        return float("nan")


@dataclass(frozen=True)
class Step:
    """The model's progress moving forward: ``applied`` events, reached at ``at`` seconds after the start.

    Progress is polled: the step happened between the poll that first shows it
    and the one before; ``at`` is the middle of the two reads (each read is the
    middle of its HTTP request), so it is off by at most half a poll interval.
    ``cpu`` is the workers' and ``broker_cpu`` the broker's CPU seconds since
    the start, and ``ingested`` the messages the workers had ingested,
    interpolated the same way.
    """

    at: float
    applied: int
    cpu: float
    broker_cpu: float
    ingested: float


def progress_steps(samples: list[tuple[float, int, float, float, float]]) -> list[Step]:
    """The steps of a series of polls ``(read time, applied, workers' CPU s, broker CPU s, ingested)``.

    The first poll that shows a new value is a step; the value it shows was
    reached between the previous read and this one.
    """
    steps = []
    for previous, current in zip(samples, samples[1:]):
        if current[1] > previous[1]:
            at, _, cpu, broker_cpu, ingested = ((a + b) / 2 for a, b in zip(previous, current))
            steps.append(Step(at=at, applied=current[1], cpu=cpu, broker_cpu=broker_cpu, ingested=ingested))
    return steps


@dataclass
class E2EResult:
    workers: int
    target: int
    warmup: int
    startup_healthz: float = float("nan")  # process start -> every worker's /healthz answers
    startup_first_event: float = float("nan")  # process start -> first event applied to state
    startup_assigned: float = float("nan")  # process start -> first partition assignment logged
    steady_events: int = 0
    steady_seconds: float = float("nan")
    #: CPU seconds of the workers (all of them) and of the broker during the steady window.
    steady_cpu: float = float("nan")
    steady_broker_cpu: float = float("nan")
    #: Input messages the workers ingested during the steady window (ingest runs ahead of evaluation).
    steady_ingested: float = float("nan")
    #: CPU seconds of the benchmark's feeder thread over the whole run (it shares the machine).
    feeder_cpu: float = float("nan")
    #: Steps of progress in the steady window, and the poll interval actually achieved there.
    steady_steps: int = 0
    poll_interval: float = float("nan")
    after_first_events: int = 0
    after_first_seconds: float = float("nan")
    wall_seconds: float = float("nan")  # process start -> target reached
    reached: int = 0
    timed_out: bool = False
    #: Which worker held each shard of the model (one digit per shard), in order of polls.
    owners: list[str] = field(default_factory=list)
    shards: int = 1
    note: str = ""

    @property
    def steady_rate(self) -> float:
        return self.steady_events / self.steady_seconds if self.steady_seconds > 0 else float("nan")

    @property
    def steady_cpu_rate(self) -> float:
        """Events applied per CPU second of the workers, in the steady window."""
        return self.steady_events / self.steady_cpu if self.steady_cpu > 0 else float("nan")

    @property
    def after_first_rate(self) -> float:
        return self.after_first_events / self.after_first_seconds if self.after_first_seconds > 0 else float("nan")

    @property
    def wall_rate(self) -> float:
        return self.target / self.wall_seconds if self.wall_seconds > 0 else float("nan")


class Feeder(threading.Thread):
    """Produces the events to the input topic, never more than ``lead`` ahead of the events applied.

    Ingest is several times cheaper than evaluation: given a backlog, a worker
    ingests everything first and then only evaluates, and a window measured
    then leaves ingest out. Kept at most ``lead`` events ahead, ingest and
    evaluation move at the same pace, as they do for a worker that keeps up
    with its traffic, and as in (b), where every event is ingested and
    evaluated. One producer, configured as ``produce_raw``'s (idempotent,
    lz4, ``linger.ms=10``); ``cpu`` is this thread's CPU time.
    """

    def __init__(self, bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]], lead: int, chunk: int) -> None:
        from confluent_kafka import Producer

        super().__init__(name="feeder", daemon=True)
        self.topic, self.payloads = topic, payloads
        self.lead, self.chunk = lead, chunk
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 10, "compression.type": "lz4"}
        )
        self._failed: list[str] = []
        #: Events applied, as last polled (set by the polling loop).
        self.applied = 0
        self.produced = 0
        self.cpu = 0.0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def produce_until(self, count: int) -> None:
        """Produce events up to ``count`` (in chunks), each chunk acknowledged before the next."""
        while self.produced < min(count, len(self.payloads)):
            end = min(count, len(self.payloads), self.produced + self.chunk)
            for key, value in self.payloads[self.produced : end]:
                while True:
                    try:
                        self._producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                        break
                    except BufferError:
                        self._producer.poll(0.1)
            while self._producer.flush(1.0) > 0:
                pass
            if self._failed:
                raise RuntimeError(f"{len(self._failed)} events were not delivered to {self.topic}: {self._failed[0]}")
            self.produced = end

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failed.append(str(error))

    def run(self) -> None:
        started = time.thread_time()
        try:
            while self.produced < len(self.payloads) and not self._halt.is_set():
                if self.produced < self.applied + self.lead:
                    self.produce_until(self.produced + self.chunk)
                else:
                    self._halt.wait(0.02)
        except BaseException as exc:  # reported by the polling loop
            self.error = exc
        finally:
            self.cpu = time.thread_time() - started

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=30)


def run_e2e(
    bootstrap: str,
    payloads: list[tuple[bytes, bytes]],
    workers: int,
    warmup: int,
    target: int,
    timeout: float,
    lead: int,
    broker_pid: int | None = None,
) -> E2EResult:
    """One (d) run: a fresh input topic, ``warmup + lead`` events in it before the workers start, the rest fed paced."""
    from stream_monitor.kafka.admin import ensure_topics

    helper = _load_worker_helper()
    tag = uuid.uuid4().hex[:8]
    group = f"bench-throughput-{workers}w-{tag}"
    topic = f"bench-predictions-{tag}"
    ensure_topics(bootstrap, {topic: PARTITIONS})
    feeder = Feeder(bootstrap, topic, payloads, lead, chunk=5_000)
    feeder.produce_until(warmup + lead)
    procs = [
        helper.WorkerProcess(
            bootstrap, [topic], f"bench-alerts-{tag}", f"bench-dead-letter-{tag}", group, extra_args=["--evaluation-shards", str(E2E_SHARDS)]
        )
        for _ in range(workers)
    ]
    result = E2EResult(workers=workers, target=target, warmup=warmup, shards=_worker_shards())
    logs_before_stop: list[str] = []
    samples: list[tuple[float, int, float, float, float]] = []  # (read time since start, applied, workers' CPU s, broker CPU s, ingested)
    healthy_at: dict[int, float] = {}
    started_wall = time.time()
    started = time.monotonic()
    broker_cpu0 = _cpu_seconds(broker_pid)
    for proc in procs:
        proc.start()
    feeder.start()
    try:
        deadline = started + timeout
        while time.monotonic() < deadline:
            for proc in procs:
                proc.assert_running()
            if feeder.error is not None:
                raise RuntimeError(f"producing the events failed: {feeder.error}")
            now = time.monotonic() - started
            shard_best: dict[int, tuple[int, int]] = {}  # shard -> (events, worker)
            ingested = 0.0
            read_times = []
            for index, proc in enumerate(procs):
                if index not in healthy_at:
                    if _get(f"http://127.0.0.1:{proc.port}/healthz") is not None:
                        healthy_at[index] = time.monotonic() - started
                    continue
                before = time.monotonic()
                answer = _get(f"http://127.0.0.1:{proc.port}/metrics")
                read_times.append((before + time.monotonic()) / 2 - started)
                if answer is None:
                    continue
                ingested += sum(float(v) for v in _CONSUMED.findall(answer[1]))
                for model, shard, value in _SHARD_EVENTS.findall(answer[1]):
                    if model == MODEL and int(float(value)) > shard_best.get(int(shard), (-1, -1))[0]:
                        shard_best[int(shard)] = (int(float(value)), index)
            if read_times:
                # The model is as far as its slowest shard; a shard no worker reports yet has applied nothing.
                best = min(shard_best.get(k, (0, -1))[0] for k in range(result.shards))
                cpu = sum(_cpu_seconds(proc.process.pid) for proc in procs if proc.process is not None)
                samples.append((sum(read_times) / len(read_times), best, cpu, _cpu_seconds(broker_pid) - broker_cpu0, ingested))
                feeder.applied = best
                if len(shard_best) == result.shards:
                    owner = "".join(str(shard_best[k][1]) for k in range(result.shards))
                    if not result.owners or result.owners[-1] != owner:
                        result.owners.append(owner)
                if best >= target:
                    break
            logs_before_stop = [proc.log_text() for proc in procs]
            time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started - now)))
        else:
            result.timed_out = True
    finally:
        feeder.stop()
        result.feeder_cpu = feeder.cpu
        for proc in procs:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.stop(timeout=30.0)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs = [proc.log_text() for proc in procs]
        for proc in procs:
            proc.log_path.unlink(missing_ok=True)
    if len(healthy_at) == workers:
        result.startup_healthz = max(healthy_at.values())
    steps = progress_steps(samples)
    if not steps:
        result.note = "no event was applied; worker log tail:\n" + logs[0][-2000:]
        return result
    first, last = steps[0], steps[-1]
    result.reached = last.applied
    result.startup_first_event = first.at
    result.after_first_events = last.applied - first.applied
    result.after_first_seconds = last.at - first.at
    if not result.timed_out:
        result.wall_seconds = last.at
    at_warmup = next((s for s in steps if s.applied >= warmup), None)
    if at_warmup is not None and last.applied > at_warmup.applied:
        result.steady_events = last.applied - at_warmup.applied
        result.steady_seconds = last.at - at_warmup.at
        result.steady_cpu = last.cpu - at_warmup.cpu
        result.steady_broker_cpu = last.broker_cpu - at_warmup.broker_cpu
        result.steady_ingested = last.ingested - at_warmup.ingested
        result.steady_steps = sum(1 for s in steps if at_warmup.at < s.at <= last.at)
        window = [s for s in samples if at_warmup.at <= s[0] <= last.at]
        if len(window) > 1:
            result.poll_interval = (window[-1][0] - window[0][0]) / (len(window) - 1)
    assigned_at = [_log_time(line) for text in logs_before_stop for line in text.splitlines() if " assigned [" in line]
    if assigned_at:
        result.startup_assigned = min(assigned_at) - started_wall
    # Assignments and revocations logged while the events were being processed
    # (the revocation at shutdown is not counted).
    assigned = sum(len(re.findall(r" assigned \[", text)) for text in logs_before_stop)
    revoked = sum(len(re.findall(r" revoked \[", text)) for text in logs_before_stop)
    result.note = f"{assigned} partition assignment(s) and {revoked} revocation(s) logged before the target was reached"
    return result


def _log_time(line: str) -> float:
    """Epoch seconds of a worker log line (``2026-01-31 12:00:00,123 INFO ...``, local time)."""
    stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(line[20:23]) / 1000.0


def e2e_section(plan: Plan, messages: list[RawMessage]) -> tuple[list[E2EResult], dict[str, Any]]:
    info: dict[str, Any] = {}
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if external:
        bootstrap = external
        info["broker"] = f"KAFKA_BOOTSTRAP_SERVERS={external}"
    else:
        from stream_monitor.embedded.broker import EmbeddedBroker

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
        info["broker"] = "embedded Tansu broker started by the benchmark"
    results = []
    try:
        payloads = [(m.key, m.value) for m in messages]
        info["produced"] = len(payloads)
        target = plan.warmup + plan.measured
        broker_pid = broker.pid if broker is not None else None
        for workers in plan.e2e_workers:
            log(f"(d) {workers} worker(s): until {target:,} events are applied to state")
            result = run_e2e(bootstrap, payloads, workers, plan.warmup, target, plan.e2e_timeout, plan.e2e_lead, broker_pid)
            log(
                f"(d) {workers} worker(s): steady {result.steady_rate:,.0f} events/s "
                f"({result.steady_cpu_rate:,.0f} per worker CPU second, {result.steady_steps} step(s)), "
                f"first event applied after {result.startup_first_event:.1f} s{' (TIMED OUT)' if result.timed_out else ''}"
            )
            results.append(result)
    finally:
        if broker is not None:
            broker.stop()
    return results, info


# --------------------------------------------------------------------------- (e) RSS


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def rss_child(batch_file: str, targets: list[int]) -> None:
    """Runs in a fresh process: hold ~targets streams, report RSS as JSON on stdout."""
    batch = ModelBatch.from_bytes(Path(batch_file).read_bytes())
    engine = MonitorEngine(MonitorSpec.default())
    # A throwaway monitor fed a few rows first: lazy imports, the calibration
    # cache and the like belong to the baseline, not to the streams.
    scratch = engine.new_monitor("scratch")
    scratch.observe(batch.take(np.arange(min(len(batch), 500))), time.time())
    del scratch
    gc.collect()
    base_kb = _status_kb("VmRSS")
    report: dict[str, Any] = {"baseline_rss_kb": base_kb, "batch_rows": len(batch), "points": []}

    started = time.perf_counter()
    live = engine.monitor_for("rss-0")
    assert live is not None
    live.observe(batch, time.time())
    report["live_seconds"] = time.perf_counter() - started
    report["live_streams"] = len(live.streams)
    report["live_ready"] = sum(1 for s in live.streams.values() if s.ready)
    del batch
    gc.collect()

    def point(kind: str) -> None:
        gc.collect()
        streams = engine.stream_count()
        rss_kb = _status_kb("VmRSS")
        report["points"].append(
            {
                "streams": streams,
                "models": len(engine.models),
                "kind": kind,
                "rss_kb": rss_kb,
                "hwm_kb": _status_kb("VmHWM"),
                "state_rss_bytes_per_stream": (rss_kb - base_kb) * 1024 / streams,
            }
        )

    point("live")
    # The cost of taking the model over from its checkpoint, as a worker does
    # after a rebalance (timed once, not kept).
    blob = encode_state(live.to_state())
    report["checkpoint_bytes_per_stream"] = len(blob) / len(live.streams)
    started = time.perf_counter()
    restored = engine.new_monitor("restored")
    restored.restore(decode_state(blob), wall_time=time.time())
    report["restore_seconds"] = time.perf_counter() - started
    assert len(restored.streams) == len(live.streams)
    del blob, restored
    gc.collect()
    # Larger counts: deep copies of the live monitor. Settings and calibration
    # stay shared, as they are between the monitors of one engine.
    shared = {id(live.detection): live.detection, id(live.detection.calibration): live.detection.calibration}
    copies = 0
    for target in targets:
        if engine.stream_count() >= target:
            continue  # the live model alone holds this many
        while engine.stream_count() < target:
            clone = copy.deepcopy(live, dict(shared))
            clone.name = f"rss-{len(engine.models)}"
            engine.models[clone.name] = clone
            copies += 1
        point("live + deep copies")
    report["copies"] = copies
    print(json.dumps(report))


def rss_section(plan: Plan) -> dict[str, Any]:
    profile = benchmark_profile(segment_values=plan.rss_segment_values)
    messages = make_messages(plan.rss_events, seed=RSS_SEED, profile=profile)
    batches = build_model_batches(decode_batch(messages).events)
    assert len(batches) == 1
    with tempfile.NamedTemporaryFile(prefix="throughput-rss-", suffix=".batch", delete=False) as handle:
        handle.write(batches[0].to_bytes())
        path = handle.name
    del messages, batches
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        args = [sys.executable, "-m", "benchmarks.throughput", "--rss-child", path]
        args += [arg for t in plan.rss_targets for arg in ("--rss-target", str(t))]
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"RSS child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(path)
    report["segment_values"] = plan.rss_segment_values
    report["events"] = plan.rss_events
    return report


# --------------------------------------------------------------------------- run


@dataclass
class Results:
    plan: Plan
    machine: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    e2e: list[E2EResult] = field(default_factory=list)
    e2e_info: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, Any] | None = None
    profile_text: str = ""
    runtime: float = 0.0


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    revision = "unknown"
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "stream_monitor"], capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0:
            changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
            revision = f"commit {head.stdout.strip()}" + (
                f", with uncommitted changes to {', '.join(changed)}" if changed else ", no uncommitted changes to stream_monitor/"
            )
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "revision": revision,
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "load_start": os.getloadavg(),
    }


def _cpu_snapshot() -> tuple[float, float, float]:
    """(wall time, busy CPU seconds of the whole machine, CPU seconds of this process and its reaped children)."""
    busy = float("nan")
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system


def _fmt_rate(rate: float) -> str:
    return "n/a" if rate != rate else f"{rate:,.0f}"


def run(plan: Plan, profile: bool, skip: set[str]) -> Results:
    results = Results(plan, machine=machine_info())
    total = plan.warmup + plan.measured + (plan.profiled if profile else 0)
    e2e_total = plan.warmup + plan.measured + plan.e2e_lead + plan.pad
    n = max(total, e2e_total if "e2e" not in skip else 0)
    log(f"generating {n:,} events (seed {SEED})")
    started = time.perf_counter()
    messages = make_messages(n)
    log(f"generated and serialised in {time.perf_counter() - started:.1f} s; {np.mean([len(m.value) for m in messages[:1000]]):.0f} bytes per event")
    warm = batches_of(messages[: plan.warmup], plan.batch)
    measured = batches_of(messages[plan.warmup : plan.warmup + plan.measured], plan.batch)
    profiled = batches_of(messages[plan.warmup + plan.measured : total], plan.batch)
    spec = MonitorSpec.default()

    # (a) ceiling, (a') ingest stage, on the measured slice
    times = [ceiling_pass(measured) for _ in range(plan.ceiling_repeats)]
    rate_a = plan.measured / median(times)
    results.rates["a"] = rate_a
    results.rows.append(("(a)", "ceiling: orjson.loads + 20 numeric values into one numpy array per batch", f"{plan.measured:,}", f"{median(times):.2f}", _fmt_rate(rate_a), f"median of {plan.ceiling_repeats} passes" if plan.ceiling_repeats > 1 else "1 pass"))
    log(f"(a) ceiling {rate_a:,.0f} events/s")
    gc.collect()
    started = time.perf_counter()
    for batch in measured:
        ingest(batch, spec)
    seconds = time.perf_counter() - started
    results.rates["a'"] = plan.measured / seconds
    results.rows.append(("(a')", "ingest stage only: `ingest()`: parse, validate, build the columnar model batches", f"{plan.measured:,}", f"{seconds:.2f}", _fmt_rate(plan.measured / seconds), "same slice; the stateless first stage of (b)"))
    log(f"(a') ingest {plan.measured / seconds:,.0f} events/s")

    # (b) core engine
    engine = MonitorEngine(spec)
    gc.collect()
    started = time.perf_counter()
    for batch in warm:
        engine.process(batch)
    warm_seconds = time.perf_counter() - started
    monitor = engine.models[MODEL]
    streams = monitor.streams
    ready = sum(1 for s in streams.values() if s.ready)
    data_keys = [k for k in streams if k[0] in DATA_FEATURES and k[2] != OTHER]
    data_ready = sum(1 for k in data_keys if streams[k].ready)
    data_total = len(data_keys)
    results.engine.update(streams=len(streams), ready=ready, data_ready=data_ready, data_total=data_total)
    log(f"(b) warm-up {plan.warmup / warm_seconds:,.0f} events/s; {ready:,} of {len(streams):,} streams ready")
    alerts = 0
    gc.collect()
    started = time.perf_counter()
    for batch in measured:
        alerts += len(engine.process(batch).alerts)
    seconds = time.perf_counter() - started
    rate_b = plan.measured / seconds
    results.rates["b"] = rate_b
    results.rates["b_warm"] = plan.warmup / warm_seconds
    results.engine["alerts"] = alerts
    results.rows.append(("(b)", "core engine in-process: `MonitorEngine.process`, steady state", f"{plan.measured:,}", f"{seconds:.2f}", _fmt_rate(rate_b), f"after a {plan.warmup:,}-event warm-up; {len(streams):,} streams, {ready:,} with full references; {alerts} alert(s) in the pass"))
    results.rows.append(("(b0)", "core engine during the warm-up (references filling)", f"{plan.warmup:,}", f"{warm_seconds:.2f}", _fmt_rate(plan.warmup / warm_seconds), "first events of the model: streams created, references filled"))
    log(f"(b) steady {rate_b:,.0f} events/s")

    # (b4) the engine as the (d) workers run it: every model batch cut into shard batches
    shards = _worker_shards()
    if shards > 1 and "shards" not in skip:
        seconds, alerts = sharded_engine_pass(spec, shards, warm, measured)
        results.rates["b_shards"] = plan.measured / seconds
        results.rows.append((f"(b{shards})", f"core engine with {shards} evaluation shards, as the (d) workers run it: `ingest`, `split_batch`, `evaluate` of each shard batch", f"{plan.measured:,}", f"{seconds:.2f}", _fmt_rate(plan.measured / seconds), f"same warm-up and slice as (b); {alerts} alert(s) in the pass; every shard repeats the per-row work (resequencing, segments)"))
        log(f"(b{shards}) steady {plan.measured / seconds:,.0f} events/s")

    if profile and profiled:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for batch in profiled:
            engine.process(batch)
        profiler.disable()
        seconds = time.perf_counter() - started
        count = sum(len(b) for b in profiled)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        out.write("\n--- top 15 by own time (tottime) ---\n")
        stats.sort_stats("tottime").print_stats(15)
        text = out.getvalue().replace(str(REPO) + "/", "")
        text = re.sub(r"\S*/site-packages/", "", text)
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        results.profile_text = f"cProfile of (b): {count:,} further events ({seconds:.1f} s under the profiler)\n\n{text}"
        log(f"(profile) {count:,} events in {seconds:.1f} s under cProfile")

    # (e) state bytes per stream of the (b) model
    blob = encode_state(monitor.to_state())
    results.engine["state_bytes"] = len(blob)
    results.engine["state_bytes_per_stream"] = len(blob) / len(streams)
    del blob

    # (c) naive river loop
    if "naive" not in skip:
        detectors: dict = {}
        naive_msgs = messages[: plan.naive_warmup + plan.naive]
        naive_loop(naive_msgs[: plan.naive_warmup], detectors)
        gc.collect()
        started = time.perf_counter()
        naive_loop(naive_msgs[plan.naive_warmup :], detectors)
        seconds = time.perf_counter() - started
        rate_c = plan.naive / seconds
        results.rates["c"] = rate_c
        results.rows.append(("(c)", "naive per-event loop: river ADWIN + PageHinkley per stream, one update per value", f"{plan.naive:,}", f"{seconds:.2f}", _fmt_rate(rate_c), f"events {plan.naive_warmup:,}..{plan.naive_warmup + plan.naive - 1:,} (detectors warmed on the first {plan.naive_warmup:,}); 60 streams and 120 update calls per event; {len(detectors):,} detector pairs"))
        log(f"(c) naive {rate_c:,.0f} events/s")
    del engine, monitor, streams
    gc.collect()

    # (d) end to end
    if "e2e" not in skip:
        results.e2e, results.e2e_info = e2e_section(plan, messages[:e2e_total])
        for r in results.e2e:
            results.rates[f"d{r.workers}"] = r.steady_rate
            label = f"(d{r.workers})"
            what = f"end to end, {r.workers} worker process{'es in one group' if r.workers > 1 else ''}"
            flag = " TIMED OUT" if r.timed_out else ""
            results.rates[f"d{r.workers}_cpu"] = r.steady_cpu_rate
            results.rows.append((label, f"{what}: steady state (events {r.warmup:,}..{r.target:,} applied)", f"{r.steady_events:,}", f"{r.steady_seconds:.2f}", _fmt_rate(r.steady_rate), f"same regime as (b); {r.steady_steps} step(s) of progress; {_fmt_rate(r.steady_cpu_rate)} events per worker CPU second (workers {r.steady_cpu:.1f} CPU s, broker {r.steady_broker_cpu:.1f} CPU s); {r.steady_ingested:,.0f} events ingested meanwhile{flag}"))
            results.rows.append((label, f"{what}: from the first event applied", f"{r.after_first_events:,}", f"{r.after_first_seconds:.2f}", _fmt_rate(r.after_first_rate), f"startup: /healthz after {r.startup_healthz:.1f} s, first partition assignment logged after {r.startup_assigned:.1f} s, first event applied after {r.startup_first_event:.1f} s{flag}"))
            results.rows.append((label, f"{what}: wall time from process start", f"{r.target:,}", f"{r.wall_seconds:.2f}", _fmt_rate(r.wall_rate), "includes interpreter start, group join, references filling"))
    del messages, warm, measured, profiled
    gc.collect()

    # (e) RSS
    if "rss" not in skip:
        log(f"(e) RSS child: {plan.rss_events:,} events, {plan.rss_segment_values} values per segment key, targets {plan.rss_targets}")
        results.rss = rss_section(plan)
        log(f"(e) RSS done: {[p['streams'] for p in results.rss['points']]}")
    return results


# --------------------------------------------------------------------------- report


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def ratios(results: Results) -> list[tuple[str, str, str, str]]:
    r = results.rates
    rows = []

    def ratio(num: str, den: str) -> float | None:
        if num in r and den in r and r[den] == r[den] and r[num] == r[num] and r[den] > 0:
            return r[num] / r[den]
        return None

    def add(name: str, value: float | None, target: str, ok: bool | None, fmt: str = "{:.3f}") -> None:
        judged = "no pass/fail" if ok is None and value is not None else verdict(ok if value is not None else None)
        rows.append((name, "n/a" if value is None else fmt.format(value), target, judged))

    v = ratio("b", "a")
    add("(b)/(a) engine / ceiling", v, f">= {TARGET_B_OVER_A}", v is not None and v >= TARGET_B_OVER_A)
    v = ratio("d1", "a")
    add("(d)/(a) one worker, steady / ceiling", v, f">= {TARGET_D_OVER_A}", v is not None and v >= TARGET_D_OVER_A)
    v = r.get("d1")
    add("(d) one worker, events/s (steady)", v if v == v else None, f">= {TARGET_D_RATE:,.0f}", v is not None and v >= TARGET_D_RATE, "{:,.0f}")
    v = ratio("d1", "b")
    add("(d)/(b) one worker, steady / engine", v, "as close to 1 as possible", None)
    v = ratio("d1", "b_shards")
    add(f"(d)/(b{_worker_shards()}) one worker, steady / engine with the workers' shards", v, "as close to 1 as possible", None)
    v = ratio("d2", "d1")
    add("2 workers / 1 worker (steady)", v, f">= {TARGET_SCALE}", v is not None and v >= TARGET_SCALE)
    v = ratio("b", "c")
    add("(b)/(c) engine / naive river loop", v, f">= {TARGET_B_OVER_C:g}", v is not None and v >= TARGET_B_OVER_C)
    v = results.engine.get("state_bytes_per_stream")
    add("state bytes per stream (checkpoint of the (b) model)", v, f"<= {TARGET_STATE_BYTES:,} (16 KiB)", v is not None and v <= TARGET_STATE_BYTES, "{:,.0f}")
    big = None
    if results.rss:
        points = [p for p in results.rss["points"] if p["streams"] >= 100_000]
        big = points[-1]["hwm_kb"] * 1024 if points else None
    add("peak RSS holding 100,000 streams (child process)", None if big is None else big / 1024**2, f"< {TARGET_RSS_100K / 1024**2:,.0f} MiB (2 GiB)", big is not None and big < TARGET_RSS_100K, "{:,.0f} MiB")
    add("benchmark runtime", results.runtime, f"< {TARGET_RUNTIME:.0f} s", results.runtime < TARGET_RUNTIME, "{:.0f} s")
    return rows


def report(results: Results, command: str) -> str:
    m = results.machine
    p = results.plan
    lines = [
        f"Command: `{command}` ({p.name} plan). Runtime: {results.runtime:.0f} s.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}; load average at start "
        f"{m['load_start'][0]:.2f} / {m['load_start'][1]:.2f} / {m['load_start'][2]:.2f}, at end "
        f"{m['load_end'][0]:.2f} / {m['load_end'][1]:.2f} / {m['load_end'][2]:.2f} (1 / 5 / 15 min).",
        "",
        f"Code: {m['revision']}.",
        "",
        f"CPU used by other processes during the run: {m['other_cpu_seconds']:.1f} CPU-seconds, "
        f"{m['other_cpu_share']:.1%} of the machine's {m['nproc']} CPUs over the run "
        "(machine busy time from /proc/stat minus this process and its children).",
        "",
        *(
            [
                f"**Warning: other processes used {m['other_cpu_share']:.0%} of the CPUs during this run: "
                "the rates are lower than on an idle machine.**",
                "",
            ]
            if m["other_cpu_share"] > 0.05
            else []
        ),
        f"Events: `generate(benchmark_profile(), n, seed={SEED})`, one model, 20 numeric + 3 categorical features, "
        f"2 segment keys x 50 values; batches of {p.batch:,}; (b) warm-up = events 0..{p.warmup - 1:,}, "
        f"measured = events {p.warmup:,}..{p.warmup + p.measured - 1:,} (the slice (a) and (a') also use).",
        "",
        "| | measurement | events | seconds | events/s | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} | {f} |" for a, b, c, d, e, f in results.rows]
    eng = results.engine
    if "state_bytes_per_stream" in eng:
        lines.append(
            f"| (e) | state bytes per stream: `encode_state(monitor.to_state())` of the (b) model | | | | "
            f"{eng['state_bytes_per_stream']:,.0f} B/stream ({eng['state_bytes'] / 1e6:.1f} MB for {eng['streams']:,} streams, "
            f"{eng['ready']:,} with full references) |"
        )
    rss = results.rss
    if rss:
        for point in rss["points"]:
            lines.append(
                f"| (e) | RSS holding {point['streams']:,} streams ({point['models']} model{'s' if point['models'] > 1 else ''}, {point['kind']}) | | | | "
                f"peak RSS {point['hwm_kb'] / 1024:,.0f} MiB; RSS {point['rss_kb'] / 1024:,.0f} MiB, "
                f"{point['state_rss_bytes_per_stream']:,.0f} B/stream above the {rss['baseline_rss_kb'] / 1024:,.0f} MiB baseline |"
            )
    lines += [
        "",
        "| ratio / target | value | target | verdict |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ratios(results)]
    lines.append("")
    if eng:
        lines.append(
            f"(b) detail: after the warm-up {eng['ready']:,} of {eng['streams']:,} streams had full references; "
            f"{eng['data_ready']:,} of the {eng['data_total']:,} data-feature streams outside `__other__`. "
            "The rest are label streams (10% of events carry a label) and the `__other__` pools of the two "
            "segment keys (a few events during segment discovery)."
        )
    if results.e2e:
        info = results.e2e_info
        lines.append(
            f"(d) detail: {info['broker']}; for each run a fresh {PARTITIONS}-partition topic, with the first "
            f"{p.warmup + p.e2e_lead:,} events produced before the workers start and the rest of the {info['produced']:,} "
            f"fed in chunks of 5,000, at most {p.e2e_lead:,} ahead of the events applied; worker defaults (batch size 5,000, 8 internal "
            f"partitions, checkpoint every 10 s) plus `--evaluation-shards {E2E_SHARDS}` and `session.timeout.ms=6000` (tests/helpers/worker.py); "
            f"/metrics polled every {POLL_SECONDS} s (achieved in the steady windows: "
            f"{', '.join('n/a' if r.poll_interval != r.poll_interval else f'{r.poll_interval:.3f} s' for r in results.e2e)}); the steady window runs from the first step of "
            "progress at or past the warm-up to the first at or past the target, each timed half-way between the poll "
            "that shows it and the one before. "
            + " ".join(
                f"{r.workers} worker(s): {r.shards} evaluation shard(s) of the model, held by worker(s) "
                f"{r.owners} (one digit per shard, in order of polls), "
                f"{r.reached:,} events applied when stopped; the feeder used {r.feeder_cpu:.1f} CPU s over the run; {r.note}."
                for r in results.e2e
            )
        )
    if rss:
        lines.append(
            f"(e) detail: child process; model of the same profile with {rss['segment_values']} values per segment key, "
            f"fed {rss['events']:,} events in one `ModelMonitor.observe` call ({rss['live_seconds']:.1f} s): "
            f"{rss['live_streams']:,} streams, {rss['live_ready']:,} with full references (the others: label and "
            f"`__other__` streams); its checkpoint is {rss['checkpoint_bytes_per_stream']:,.0f} B/stream. "
            + (f"Larger counts: {rss['copies']} deep copies of that monitor (settings shared, as in one engine). " if rss.get("copies") else "")
            + f"Restoring the model from its checkpoint (`decode_state` + `ModelMonitor.restore`, what a worker does "
            f"when it takes a partition over) took {rss['restore_seconds']:.2f} s. "
            + f"Baseline = RSS after loading the {rss['batch_rows']:,}-row input batch and feeding 500 rows to a "
            "throwaway monitor (imports, calibration cache), before the measured monitors."
        )
    if results.profile_text:
        lines += ["", "```", results.profile_text, "```"]
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    block = f"{BEGIN}\n{text}\n{END}"
    if path.exists():
        current = path.read_text(encoding="utf-8")
        if BEGIN in current and END in current:
            head, rest = current.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            path.write_text(head + block + tail, encoding="utf-8")
            return
        path.write_text(current.rstrip() + "\n\n" + block + "\n", encoding="utf-8")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Throughput benchmark\n\n## Results\n\n{block}\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput benchmark (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="small smoke run; prints the report unless --output is given")
    parser.add_argument("--profile", action="store_true", help="also run (b) under cProfile and print the top 25 functions")
    parser.add_argument("--output", type=Path, help=f"markdown file to update (full run default: {DOC})")
    parser.add_argument("--no-write", action="store_true", help="print only, even on a full run")
    parser.add_argument("--skip", action="append", choices=["naive", "shards", "e2e", "rss"], default=[], help="leave out a part (repeatable)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--rss-target", type=int, action="append", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.rss_target or [0])
        return 0
    plan = QUICK if args.quick else FULL
    before = _cpu_snapshot()
    started = time.perf_counter()
    results = run(plan, args.profile, set(args.skip))
    results.runtime = time.perf_counter() - started
    after = _cpu_snapshot()
    results.machine["load_end"] = os.getloadavg()
    # CPU time the rest of the machine used meanwhile: a run that shared the
    # CPUs with something else says so, rather than reporting lower rates silently.
    others = (after[1] - before[1]) - (after[2] - before[2])
    results.machine["other_cpu_seconds"] = others
    results.machine["other_cpu_share"] = others / ((after[0] - before[0]) * (os.cpu_count() or 1))
    command = "python -m benchmarks.throughput" + (" --quick" if args.quick else "") + (" --profile" if args.profile else "")
    command += "".join(f" --skip {s}" for s in args.skip)
    text = report(results, command)
    print(text)
    output = None if args.no_write else (args.output or (None if args.quick else DOC))
    if output is not None:
        write_doc(output, text)
        log(f"updated {output}")
    log(f"total {results.runtime:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
