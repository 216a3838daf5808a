"""``stream-monitor``: run the monitor, run the demo, or simulate a model's traffic."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any, Sequence

from stream_monitor import __version__


def _kafka_pairs(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--kafka expects key=value (a librdkafka setting), got {item!r}")
        pairs[key.strip()] = value
    return pairs


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="consume prediction events and publish drift alerts (the service)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers [env STREAM_MONITOR_BOOTSTRAP_SERVERS]")
    p.add_argument("--topic", action="append", dest="topics", help="events topic, repeatable [env STREAM_MONITOR_TOPICS, comma separated]")
    p.add_argument("--alerts-topic", help="topic alerts are published to [env STREAM_MONITOR_ALERTS_TOPIC]")
    p.add_argument("--dead-letter-topic", help="topic invalid messages go to [env STREAM_MONITOR_DEAD_LETTER_TOPIC]")
    p.add_argument("--group-id", help="consumer group id [env STREAM_MONITOR_GROUP_ID]")
    p.add_argument("--group-instance-id", help="static membership id for rolling deploys [env STREAM_MONITOR_GROUP_INSTANCE_ID]")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz, 0 = any free port [env STREAM_MONITOR_METRICS_PORT]")
    p.add_argument("--spec", help="monitor spec TOML file [env STREAM_MONITOR_SPEC]")
    p.add_argument("--batch-size", type=int, help="max messages per batch [env STREAM_MONITOR_BATCH_SIZE]")
    p.add_argument("--internal-partitions", type=int, help="partitions of the internal topics [env STREAM_MONITOR_INTERNAL_PARTITIONS]")
    p.add_argument(
        "--evaluation-shards", type=int,
        help="internal partitions one model's signals are divided among (workers sharing a busy model) "
        "[env STREAM_MONITOR_EVALUATION_SHARDS]",
    )
    p.add_argument(
        "--checkpoint-interval", type=float, dest="checkpoint_interval_seconds",
        help="seconds between state checkpoints [env STREAM_MONITOR_CHECKPOINT_INTERVAL_SECONDS]",
    )
    p.add_argument(
        "--reorder-idle-seconds", type=float,
        help="a source partition silent this long stops holding back event-time ordering "
        "[env STREAM_MONITOR_REORDER_IDLE_SECONDS]",
    )
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable [env STREAM_MONITOR_KAFKA__KEY]")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING [env STREAM_MONITOR_LOG_LEVEL]")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a synthetic model with an injected drift")
    p.add_argument("--bootstrap-servers", help="use this Kafka cluster instead of the embedded broker")
    p.add_argument("--events", type=int, default=48_000, help="events to simulate (default 48000)")
    p.add_argument("--rate", type=float, default=4_000.0, help="events per second produced (default 4000)")
    p.add_argument("--seed", type=int, default=7)


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="produce the demo's synthetic prediction stream to a Kafka cluster")
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--topic", default="predictions")
    p.add_argument("--events", type=int, default=100_000, help="events to produce; 0 = run until stopped")
    p.add_argument("--rate", type=float, default=0.0, help="events per second; 0 = as fast as possible")
    p.add_argument("--partitions", type=int, default=4, help="partitions if the topic has to be created")
    p.add_argument("--drift-at", type=int, default=None, help="inject the demo drift from this event on")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-monitor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stream-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_demo(sub)
    _add_simulate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "demo":
        from stream_monitor.demo import run_demo

        return run_demo(bootstrap_servers=args.bootstrap_servers, events=args.events, rate=args.rate, seed=args.seed)
    if args.command == "simulate":
        return _simulate(args)
    return 2


def _fail(message: str) -> int:
    print(f"stream-monitor: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from stream_monitor.config import ConfigError, load_settings
    from stream_monitor.core.engine import MonitorEngine
    from stream_monitor.kafka.admin import KafkaSetupError
    from stream_monitor.kafka.worker import Worker
    from stream_monitor.spec import MonitorSpec, SpecError, load_spec

    cli: dict[str, Any] = {
        "bootstrap_servers": args.bootstrap_servers,
        "topics": args.topics,
        "alerts_topic": args.alerts_topic,
        "dead_letter_topic": args.dead_letter_topic,
        "group_id": args.group_id,
        "group_instance_id": args.group_instance_id,
        "metrics_port": args.metrics_port,
        "spec": args.spec,
        "batch_size": args.batch_size,
        "internal_partitions": args.internal_partitions,
        "evaluation_shards": args.evaluation_shards,
        "checkpoint_interval_seconds": args.checkpoint_interval_seconds,
        "reorder_idle_seconds": args.reorder_idle_seconds,
        "kafka": _kafka_pairs(args.kafka),
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(cli)
        spec = load_spec(settings.spec) if settings.spec else MonitorSpec.default()
    except (ConfigError, SpecError) as exc:
        return _fail(str(exc))

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        engine = MonitorEngine(spec, reorder_idle_seconds=settings.reorder_idle_seconds)
        engine.preload_references(keep=settings.shards == 1)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    worker = Worker(settings, engine)

    def stop(signum: int, _frame: Any) -> None:
        logging.getLogger("stream_monitor").info("%s received: finishing the batch, then stopping", signal.Signals(signum).name)
        worker.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return worker.run()
    except KafkaSetupError as exc:
        return _fail(str(exc))


def _simulate(args: argparse.Namespace) -> int:
    from stream_monitor.kafka.admin import KafkaSetupError, ensure_topics
    from stream_monitor.simulation.producer import produce_events
    from stream_monitor.simulation.scenarios import demo_drift, endless
    from stream_monitor.simulation.synthetic import credit_risk_profile

    config = _kafka_pairs(args.kafka) or {}
    drifts = [demo_drift(args.drift_at)] if args.drift_at is not None else []
    try:
        ensure_topics(args.bootstrap_servers, {args.topic: args.partitions}, config=config)
        events = endless(credit_risk_profile(), args.events, args.seed, drifts, args.rate or 100.0)
        count = produce_events(args.bootstrap_servers, args.topic, events, config=config, rate=args.rate or None)
    except KafkaSetupError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 0
    print(f"produced {count} events to {args.topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
