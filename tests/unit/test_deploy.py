"""Static checks of the deployment files: docker-compose.yml and deploy/.

No container runs here. The compose file, the Dockerfile, the Prometheus and
Grafana configuration and the dashboard are parsed and checked against each
other and against the service's documented interface (CLI env vars, metric
names). When ``promtool`` is on PATH (Debian: ``apt-get install prometheus``)
the Prometheus config and rules are also checked and unit-tested with it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the deployment files (pip install pyyaml)")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MONITOR_SPEC = DEPLOY / "monitor.toml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stream-monitor.json"

SERVICES = {"kafka", "stream-monitor", "simulator", "prometheus", "grafana"}

# The `stream-monitor run` flags as environment variables, plus the librdkafka
# pass-through (STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL -> security.protocol).
DOCUMENTED_ENV = {
    "STREAM_MONITOR_BOOTSTRAP_SERVERS",
    "STREAM_MONITOR_TOPICS",
    "STREAM_MONITOR_ALERTS_TOPIC",
    "STREAM_MONITOR_DEAD_LETTER_TOPIC",
    "STREAM_MONITOR_GROUP_ID",
    "STREAM_MONITOR_METRICS_PORT",
    "STREAM_MONITOR_SPEC",
}
KAFKA_PASSTHROUGH_ENV = re.compile(r"^STREAM_MONITOR_KAFKA__[A-Z0-9]+(?:_[A-Z0-9]+)*$")

# Metrics the service exposes, by Prometheus type.
METRICS = {
    "stream_monitor_events_consumed_total": "counter",
    "stream_monitor_events_processed_total": "counter",
    "stream_monitor_invalid_events_total": "counter",
    "stream_monitor_alerts_total": "counter",
    "stream_monitor_drift_score": "gauge",
    "stream_monitor_drifting_streams": "gauge",
    "stream_monitor_batch_processing_seconds": "histogram",
    "stream_monitor_last_event_timestamp_seconds": "gauge",
    "stream_monitor_consumer_lag_messages": "gauge",
    "stream_monitor_prediction_latency_seconds": "histogram",
    "stream_monitor_ready": "gauge",
}
METRIC_LABELS = {
    "stream_monitor_events_consumed_total": {"topic"},
    "stream_monitor_events_processed_total": {"model"},
    "stream_monitor_invalid_events_total": {"reason"},
    "stream_monitor_alerts_total": {"model", "kind", "severity"},
    "stream_monitor_drift_score": {"model", "feature", "statistic"},
    "stream_monitor_drifting_streams": {"model", "severity"},
    "stream_monitor_batch_processing_seconds": set(),
    "stream_monitor_last_event_timestamp_seconds": {"model"},
    "stream_monitor_consumer_lag_messages": {"topic", "partition"},
    "stream_monitor_prediction_latency_seconds": {"model"},
    "stream_monitor_ready": set(),
}
# Names that may appear in PromQL: the metrics above plus histogram series.
EXPOSED_SERIES = set(METRICS) | {
    f"{name}{suffix}"
    for name, kind in METRICS.items()
    if kind == "histogram"
    for suffix in ("_bucket", "_sum", "_count")
}
METRIC_NAME = re.compile(r"\bstream_monitor_[A-Za-z0-9_]*")

EXPECTED_ALERTS = {
    "StreamMonitorDown",
    "StreamMonitorNotReady",
    "StreamMonitorConsumerLagGrowing",
    "StreamMonitorInvalidEventsSpike",
    "StreamMonitorCriticalDrift",
    "StreamMonitorNoEvents",
}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found on PATH; install it with `apt-get install prometheus` "
    "(Debian/Ubuntu) to check the Prometheus config, rules and rule unit tests",
)


# --------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment` as a dict, whichever compose syntax it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _volume_mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, source, target) for each entry in `volumes`; kind is bind or volume."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            kind = entry.get("type", "volume")
            mounts.append((kind, str(entry.get("source", "")), str(entry["target"])))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:  # anonymous volume: only a container path
            mounts.append(("volume", "", parts[0]))
            continue
        source, target = parts[0], parts[1]
        mounts.append(("bind" if _is_host_path(source) else "volume", source, target))
    return mounts


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (resolved against the compose file) of bind mounts."""
    return {
        target: (COMPOSE_FILE.parent / source).resolve()
        for kind, source, target in _volume_mounts(service)
        if kind == "bind"
    }


def _published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port."""
    out = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out[int(entry.get("published", entry["target"]))] = int(entry["target"])
            continue
        spec = str(entry).split("/")[0]
        parts = spec.split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 else container
        out[host] = container
    return out


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current)
        current = ""
    if current:
        logical.append(current)
    out = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _dashboard_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_dashboard_panels(panel.get("panels") or []))
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [
        target["expr"]
        for panel in _dashboard_panels(dashboard.get("panels") or [])
        for target in panel.get("targets") or []
        if "expr" in target
    ]
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            exprs.append(query)
    return exprs


def _rule_groups() -> list[dict[str, Any]]:
    return _load_yaml(ALERT_RULES)["groups"]


def _alert_rules() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in _rule_groups() for rule in group["rules"] if "alert" in rule}


# --------------------------------------------------------------------------- compose


def test_compose_defines_the_five_services(services: dict[str, Any]) -> None:
    missing = SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_every_bind_mount_source_exists(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared_volumes = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for kind, source, target in _volume_mounts(service):
            assert PurePosixPath(target).is_absolute(), f"{name}: mount target {target!r} is not absolute"
            if kind == "bind":
                host = (COMPOSE_FILE.parent / source).resolve()
                assert host.exists(), f"{name}: bind-mounted {source!r} does not exist in the repo"
                assert host.is_relative_to(ROOT), f"{name}: {source!r} points outside the repository"
            elif source:
                assert source in declared_volumes, f"{name}: named volume {source!r} is not declared"


def test_build_context_and_dockerfile_exist(services: dict[str, Any]) -> None:
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert "stream-monitor" in built, "the stream-monitor service must be built from deploy/Dockerfile"
    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile == DOCKERFILE.resolve(), f"{name}: builds {dockerfile}, expected deploy/Dockerfile"
        assert dockerfile.is_file()


def test_simulator_uses_the_stream_monitor_image(services: dict[str, Any]) -> None:
    monitor, simulator = services["stream-monitor"], services["simulator"]
    assert simulator.get("image") == monitor.get("image") or simulator.get("build") == monitor.get("build")


def test_stream_monitor_env_vars_are_documented(services: dict[str, Any]) -> None:
    env = _environment(services["stream-monitor"])
    undocumented = {key for key in env if key not in DOCUMENTED_ENV and not KAFKA_PASSTHROUGH_ENV.match(key)}
    assert not undocumented, f"stream-monitor sets undocumented env vars: {sorted(undocumented)}"
    for required in ("STREAM_MONITOR_BOOTSTRAP_SERVERS", "STREAM_MONITOR_TOPICS"):
        assert env.get(required), f"stream-monitor must set {required}"


def test_stream_monitor_spec_is_mounted_read_only(services: dict[str, Any]) -> None:
    service = services["stream-monitor"]
    spec_path = _environment(service).get("STREAM_MONITOR_SPEC")
    if spec_path is None:  # falls back to the flag in `command`
        command = service.get("command") or []
        assert "--spec" in command, "stream-monitor gets no monitor spec"
        spec_path = command[command.index("--spec") + 1]
    binds = _bind_mounts(service)
    assert binds.get(spec_path) == MONITOR_SPEC.resolve(), f"{spec_path} is not a mount of deploy/monitor.toml"
    modes = [str(v).split(":")[2] for v in service["volumes"] if isinstance(v, str) and str(v).count(":") >= 2]
    assert any("ro" in mode.split(",") for mode in modes), "the monitor spec should be mounted read-only"


def test_stream_monitor_reaches_kafka_and_exposes_metrics(services: dict[str, Any]) -> None:
    service = services["stream-monitor"]
    env = _environment(service)
    kafka_env = _environment(services["kafka"])
    advertised = set(_listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).values())
    for server in env["STREAM_MONITOR_BOOTSTRAP_SERVERS"].split(","):
        host, _, port = server.strip().rpartition(":")
        assert (host, int(port)) in advertised, f"{server} is not an advertised Kafka listener"
    port = int(env.get("STREAM_MONITOR_METRICS_PORT", "9108"))
    assert port == 9108
    assert _published_ports(service).get(port) == port


def test_services_wait_for_a_healthy_kafka(services: dict[str, Any]) -> None:
    assert services["kafka"].get("healthcheck", {}).get("test"), "kafka needs a healthcheck"
    for name in ("stream-monitor", "simulator"):
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict) and "kafka" in depends, f"{name} must depend on kafka"
        assert depends["kafka"].get("condition") == "service_healthy", f"{name} must wait for a healthy kafka"


def test_simulator_command(services: dict[str, Any]) -> None:
    command = services["simulator"].get("command")
    if isinstance(command, str):
        command = command.split()
    assert command and command[0] == "simulate"

    def flag(name: str) -> str:
        assert name in command, f"simulator command lacks {name}"
        return str(command[command.index(name) + 1])

    assert flag("--events") == "0"
    assert flag("--rate") == "200"
    assert flag("--drift-at") == "60000"
    monitor_env = _environment(services["stream-monitor"])
    assert flag("--bootstrap-servers") == monitor_env["STREAM_MONITOR_BOOTSTRAP_SERVERS"]
    consumed = [t.strip() for t in monitor_env["STREAM_MONITOR_TOPICS"].split(",")]
    assert flag("--topic") in consumed, "the monitor does not consume the simulator's topic"


def test_kafka_is_single_node_kraft(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    image = kafka["image"]
    assert re.fullmatch(r"apache/kafka:(3\.9\.\d+|4\.\d+\.\d+)", image), f"pin apache/kafka 3.9.x or 4.x, got {image}"
    env = _environment(kafka)
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert roles == {"broker", "controller"}, "kafka must run KRaft broker+controller (KAFKA_PROCESS_ROLES)"
    # The image's configure script refuses to start in KRaft mode without it.
    assert env.get("CLUSTER_ID"), "CLUSTER_ID is required by the apache/kafka image in KRaft mode"
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [v.split("@")[0] for v in voters] == [node_id], "the only voter must be this node"

    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    voter_port = int(voters[0].rpartition(":")[2])
    assert listeners[controller][1] == voter_port, "the quorum voter must point at the controller listener"
    for name in listeners:
        assert name in protocols, f"listener {name} has no security protocol"
    for name in advertised:
        assert name in listeners, f"advertised listener {name} is not a listener"
    bound_ports = [port for _, port in listeners.values()]
    assert len(bound_ports) == len(set(bound_ports)), "listeners must bind distinct ports"

    # Containers: kafka:9092. Host: localhost:9092 through a published port.
    by_address = {address: name for name, address in advertised.items()}
    assert ("kafka", 9092) in by_address, "no listener advertised to containers as kafka:9092"
    assert ("localhost", 9092) in by_address, "no listener advertised to the host as localhost:9092"
    internal = by_address[("kafka", 9092)]
    assert listeners[internal][1] == 9092
    assert env.get("KAFKA_INTER_BROKER_LISTENER_NAME", internal) == internal
    host_listener = by_address[("localhost", 9092)]
    assert _published_ports(kafka).get(9092) == listeners[host_listener][1], (
        "host port 9092 must be published to the listener that advertises localhost:9092"
    )
    hostname = kafka.get("hostname", "kafka")
    assert hostname == "kafka"

    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env.get(key) == "1", f"{key} must be 1 on a single node"


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name in ("kafka", "prometheus", "grafana"):
        image = services[name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin an image tag, got {image!r}"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert _published_ports(services["prometheus"]).get(9090) == 9090
    assert _published_ports(services["grafana"]).get(3000) == 3000


def test_monitor_spec_shape() -> None:
    spec = tomllib.loads(MONITOR_SPEC.read_text(encoding="utf-8"))
    defaults = spec["defaults"]
    for key in ("reference_size", "window_size", "evaluate_every", "cooldown_events", "max_segment_values"):
        assert isinstance(defaults[key], int) and defaults[key] > 0
    assert defaults["window_size"] % defaults["evaluate_every"] == 0
    model = spec["models"]["credit-risk"]
    assert model["segment_keys"] == ["region"]
    assert set(model["features"].values()) <= {"numeric", "categorical"}
    assert len(model["features"]) == 9


# --------------------------------------------------------------------------- image


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    by_kind: dict[str, list[str]] = {}
    for kind, args in instructions:
        by_kind.setdefault(kind, []).append(args)
    assert by_kind["FROM"] == ["python:3.11-slim"]
    users = by_kind.get("USER", [])
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must run as a non-root user"
    runs = " ".join(by_kind.get("RUN", []))
    assert "pip install --no-cache-dir ." in runs
    assert "embedded" not in runs, "the image must not install the `embedded` extra"
    assert json.loads(by_kind["ENTRYPOINT"][-1]) == ["stream-monitor"]
    assert json.loads(by_kind["CMD"][-1]) == ["run"]
    assert "9108" in " ".join(by_kind.get("EXPOSE", [])).split()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "stream-monitor" in pyproject["project"]["scripts"], "ENTRYPOINT names a console script pyproject lacks"


def test_dockerignore_keeps_what_the_build_needs() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    needed = ["pyproject.toml", "stream_monitor"]
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    if "*" in lines:  # allow-list style: each needed path must be re-included
        for path in needed:
            assert any(line.lstrip("!").rstrip("/") == path for line in lines if line.startswith("!")), (
                f".dockerignore excludes {path}, which `pip install .` needs"
            )
    else:
        for path in needed:
            assert path not in lines and f"{path}/" not in lines, f".dockerignore excludes {path}"
    assert ".git" in lines or "*" in lines, ".dockerignore should keep .git out of the build context"


# --------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_the_stream_monitor_service(services: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "stream-monitor" in jobs, "alerts.yml selects job=\"stream-monitor\""
    job = jobs["stream-monitor"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["stream-monitor:9108"]
    host, _, port = targets[0].rpartition(":")
    assert host in services, f"scrape target host {host!r} is not a compose service"
    env_port = _environment(services[host]).get("STREAM_MONITOR_METRICS_PORT", "9108")
    assert port == env_port
    assert job.get("metrics_path", "/metrics") == "/metrics"
    interval = job.get("scrape_interval", config.get("global", {}).get("scrape_interval"))
    assert interval == "15s"


def test_prometheus_mounts_config_and_rules_side_by_side(services: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    binds = _bind_mounts(services["prometheus"])
    by_host = {host: target for target, host in binds.items()}
    config_target = by_host.get(PROMETHEUS_CONFIG.resolve())
    assert config_target == "/etc/prometheus/prometheus.yml", "the image reads /etc/prometheus/prometheus.yml"
    rule_files = config.get("rule_files") or []
    assert rule_files, "prometheus.yml loads no rule files"
    for rule_file in rule_files:
        local = PROMETHEUS_CONFIG.parent / rule_file
        assert local.is_file(), f"rule file {rule_file} does not exist beside prometheus.yml"
        in_container = str(PurePosixPath(config_target).parent / rule_file)
        assert binds.get(in_container) == local.resolve(), f"{rule_file} is not mounted at {in_container}"


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    assert set(rules) == EXPECTED_ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description", "runbook"):
            assert str(annotations.get(key, "")).strip(), f"{name} needs a {key} annotation"
    for name in EXPECTED_ALERTS - {"StreamMonitorCriticalDrift"}:
        assert rules[name].get("for"), f"{name} should only fire after a `for:` duration"
    assert rules["StreamMonitorNotReady"]["for"] == "2m"
    assert rules["StreamMonitorInvalidEventsSpike"]["for"] == "10m"
    assert "0.05" in rules["StreamMonitorInvalidEventsSpike"]["expr"]


def test_alert_rules_use_only_exposed_metrics() -> None:
    for name, rule in _alert_rules().items():
        unknown = set(METRIC_NAME.findall(rule["expr"])) - EXPOSED_SERIES
        assert not unknown, f"{name} uses metrics the service does not expose: {sorted(unknown)}"


def test_alert_unit_tests_cover_the_rules() -> None:
    tests = _load_yaml(ALERT_TESTS)
    assert [PROMETHEUS_CONFIG.parent / f for f in tests["rule_files"]] == [ALERT_RULES]
    tested, negative = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test") or []:
            tested.add(check["alertname"])
            if not check.get("exp_alerts"):
                negative.add(check["alertname"])
    assert len(tested) >= 3 and tested <= EXPECTED_ALERTS
    assert negative, "at least one rule test must assert that an alert does NOT fire"


# --------------------------------------------------------------------------- grafana


def test_grafana_datasource_points_at_prometheus(services: dict[str, Any]) -> None:
    config = _load_yaml(GRAFANA_DATASOURCE)
    assert config["apiVersion"] == 1
    (datasource,) = [ds for ds in config["datasources"] if ds["type"] == "prometheus"]
    match = re.fullmatch(r"http://([^:/]+):(\d+)/?", datasource["url"])
    assert match, f"unexpected datasource url {datasource['url']!r}"
    host, port = match.group(1), int(match.group(2))
    assert host == "prometheus" and host in services
    assert port == 9090
    assert datasource.get("access", "proxy") == "proxy", "the browser cannot resolve the compose service name"


def test_grafana_provisioning_and_dashboards_are_mounted(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    binds = _bind_mounts(grafana)
    by_host = {host: target for target, host in binds.items()}
    assert by_host.get((DEPLOY / "grafana" / "provisioning").resolve()) == "/etc/grafana/provisioning"
    dashboards_target = by_host.get((DEPLOY / "grafana" / "dashboards").resolve())
    assert dashboards_target, "deploy/grafana/dashboards is not mounted"
    providers = _load_yaml(GRAFANA_PROVIDERS)
    assert providers["apiVersion"] == 1
    paths = [p["options"]["path"] for p in providers["providers"] if p.get("type", "file") == "file"]
    assert paths == [dashboards_target], "the dashboard provider must read the mounted dashboards directory"
    env = _environment(grafana)
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert PurePosixPath(home).parent == PurePosixPath(dashboards_target)
        assert (DEPLOY / "grafana" / "dashboards" / PurePosixPath(home).name).is_file()


def test_dashboard_uses_only_exposed_metrics(dashboard: dict[str, Any]) -> None:
    exprs = _dashboard_exprs(dashboard)
    assert exprs
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    unknown = used - EXPOSED_SERIES
    assert not unknown, f"dashboard queries metrics the service does not expose: {sorted(unknown)}"
    for expr in exprs:
        assert METRIC_NAME.search(expr), f"panel query uses no stream-monitor metric: {expr}"


def test_dashboard_covers_the_required_views(dashboard: dict[str, Any]) -> None:
    exprs = _dashboard_exprs(dashboard)
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    for metric in (
        "stream_monitor_events_consumed_total",
        "stream_monitor_invalid_events_total",
        "stream_monitor_alerts_total",
        "stream_monitor_drifting_streams",
        "stream_monitor_drift_score",
        "stream_monitor_consumer_lag_messages",
        "stream_monitor_batch_processing_seconds_bucket",
        "stream_monitor_prediction_latency_seconds_bucket",
    ):
        assert metric in used, f"no dashboard panel shows {metric}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "model" in variables, "the dashboard needs a model variable"
    drift_exprs = [e for e in exprs if "stream_monitor_drift_score" in e and "label_values" not in e]
    assert drift_exprs and all("$model" in e for e in drift_exprs), "drift score panels must filter by $model"
    by_label = [e for e in exprs if re.search(r"by \(([^)]*)\)", e)]
    for expr in by_label:  # grouping labels must exist on the metrics grouped
        metrics = set(METRIC_NAME.findall(expr))
        labels = set().union(*(METRIC_LABELS.get(re.sub(r"_(bucket|sum|count)$", "", m), set()) for m in metrics))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert label == "le" or label in labels, f"{expr}: no label {label!r} on {sorted(metrics)}"


def test_dashboard_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    uid = _load_yaml(GRAFANA_DATASOURCE)["datasources"][0]["uid"]
    panels = _dashboard_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard.get("uid"), "a fixed dashboard uid keeps links stable across provisioning"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


# --------------------------------------------------------------------------- promtool


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@needs_promtool
def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(ALERT_RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules() -> None:
    result = _promtool("test", "rules", str(ALERT_TESTS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    # Substitute the Grafana variables, then let promtool parse every query as
    # a recording rule.
    substitutions = {"$__rate_interval": "1m", "$__interval": "1m", "$model": ".*", "$statistic": "psi"}
    rules = []
    for index, expr in enumerate(_dashboard_exprs(dashboard)):
        if expr.startswith("label_values("):
            expr = expr[len("label_values(") : -1].rsplit(",", 1)[0]
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unsubstituted Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = _promtool("check", "rules", str(rule_file), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed; `docker compose config` validation skipped")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed; `docker compose config` validation skipped")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
