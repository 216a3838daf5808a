"""Service configuration: precedence, env parsing, errors, redaction, librdkafka configs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stream_monitor.config import (
    ConfigError,
    Settings,
    consumer_config,
    is_secret_key,
    load_settings,
    producer_config,
    redact,
)
from stream_monitor.spec import SpecError

SECRET = "hunter2-s3cr3t"


def load(cli: dict | None = None, **env: str) -> Settings:
    """load_settings with exactly this environment (never the test runner's)."""
    return load_settings(cli, environ=env)


def config_error(cli: dict | None = None, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(cli, **env)
    return info.value


# --------------------------------------------------------------------------- defaults and precedence


def test_defaults() -> None:
    s = load()
    assert s.bootstrap_servers == "localhost:9092"
    assert s.topics == ["predictions"]
    assert s.alerts_topic == "stream-monitor.alerts"
    assert s.dead_letter_topic == "stream-monitor.dead-letter"
    assert s.group_id == "stream-monitor"
    assert s.group_instance_id is None
    assert s.metrics_port == 9108
    assert s.metrics_host == "0.0.0.0"
    assert s.spec is None
    assert s.batch_size == 5000
    assert s.batch_timeout_seconds == 0.5
    assert s.create_topics is True
    assert s.log_level == "INFO"
    assert s.kafka == {}


def test_env_overrides_defaults() -> None:
    s = load(
        STREAM_MONITOR_BOOTSTRAP_SERVERS="b1:9092,b2:9092",
        STREAM_MONITOR_GROUP_ID="g",
        STREAM_MONITOR_GROUP_INSTANCE_ID="pod-0",
        STREAM_MONITOR_METRICS_PORT="0",
        STREAM_MONITOR_BATCH_SIZE="100",
        STREAM_MONITOR_BATCH_TIMEOUT_SECONDS="0.1",
        STREAM_MONITOR_CREATE_TOPICS="false",
        STREAM_MONITOR_LOG_LEVEL="debug",
    )
    assert s.bootstrap_servers == "b1:9092,b2:9092"
    assert s.group_id == "g"
    assert s.group_instance_id == "pod-0"
    assert s.metrics_port == 0
    assert s.batch_size == 100
    assert s.batch_timeout_seconds == 0.1
    assert s.create_topics is False
    assert s.log_level == "DEBUG"


def test_env_names_are_case_insensitive() -> None:
    assert load(stream_monitor_group_id="lower").group_id == "lower"


def test_cli_overrides_env() -> None:
    s = load(
        {"group_id": "from-cli", "metrics_port": 9200, "topics": ["c"]},
        STREAM_MONITOR_GROUP_ID="from-env",
        STREAM_MONITOR_METRICS_PORT="9100",
        STREAM_MONITOR_TOPICS="a,b",
        STREAM_MONITOR_ALERTS_TOPIC="alerts-from-env",
    )
    assert s.group_id == "from-cli"
    assert s.metrics_port == 9200
    assert s.topics == ["c"]
    assert s.alerts_topic == "alerts-from-env"  # not given on the CLI: env still applies


def test_cli_none_means_flag_not_given() -> None:
    s = load({"group_id": None, "metrics_port": None, "kafka": None}, STREAM_MONITOR_GROUP_ID="from-env")
    assert s.group_id == "from-env"
    assert s.metrics_port == 9108


def test_empty_env_var_counts_as_unset() -> None:
    s = load(STREAM_MONITOR_METRICS_PORT="", STREAM_MONITOR_GROUP_INSTANCE_ID="", STREAM_MONITOR_SPEC="")
    assert s.metrics_port == 9108
    assert s.group_instance_id is None
    assert s.spec is None


def test_blank_group_instance_id_is_none() -> None:
    assert load({"group_instance_id": "  "}).group_instance_id is None


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_MONITOR_GROUP_ID", "from-os")
    monkeypatch.setenv("STREAM_MONITOR_KAFKA__CLIENT_ID", "cid")
    s = load_settings()
    assert s.group_id == "from-os"
    assert s.kafka == {"client.id": "cid"}


def test_explicit_environ_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_MONITOR_GROUP_ID", "from-os")
    monkeypatch.setenv("STREAM_MONITOR_KAFKA__CLIENT_ID", "cid")
    s = load_settings(environ={})
    assert s.group_id == "stream-monitor"
    assert s.kafka == {}


def test_settings_are_frozen() -> None:
    s = load()
    with pytest.raises(Exception):
        s.group_id = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ["a", "b"]),
        (" a , b ,, ", ["a", "b"]),
        ("a,b,a", ["a", "b"]),
        ("single", ["single"]),
    ],
)
def test_topics_env_is_comma_separated(value: str, expected: list[str]) -> None:
    assert load(STREAM_MONITOR_TOPICS=value).topics == expected


def test_topics_from_cli_list_or_string() -> None:
    assert load({"topics": ["a", "b,c"]}).topics == ["a", "b", "c"]
    assert load({"topics": "x,y"}).topics == ["x", "y"]


@pytest.mark.parametrize("value", [",", " , ", "bad topic", "a/b"])
def test_invalid_topics_are_refused(value: str) -> None:
    message = str(config_error(STREAM_MONITOR_TOPICS=value))
    assert "topics" in message
    assert "STREAM_MONITOR_TOPICS" in message
    assert "--topic" in message


def test_alerts_topic_must_not_be_an_input_topic() -> None:
    message = str(config_error(STREAM_MONITOR_TOPICS="a,b", STREAM_MONITOR_ALERTS_TOPIC="b"))
    assert "alerts_topic" in message
    assert "STREAM_MONITOR_ALERTS_TOPIC" in message


def test_dead_letter_topic_must_differ_from_alerts_topic() -> None:
    message = str(config_error({"alerts_topic": "out", "dead_letter_topic": "out"}))
    assert "dead_letter_topic" in message
    assert "--dead-letter-topic" in message


# --------------------------------------------------------------------------- kafka pass-through


def test_kafka_env_vars_become_librdkafka_properties() -> None:
    s = load(
        STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        STREAM_MONITOR_KAFKA__SASL_MECHANISM="SCRAM-SHA-512",
        STREAM_MONITOR_KAFKA__SASL_OAUTHBEARER_CLIENT_SECRET="s",
        stream_monitor_kafka__ssl_ca_location="/ca.pem",
        STREAM_MONITOR_KAFKA__LOG_LEVEL="3",
        STREAM_MONITOR_KAFKA__CLIENT_ID="",  # empty = unset
    )
    assert s.kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.oauthbearer.client.secret": "s",
        "ssl.ca.location": "/ca.pem",
        "log_level": "3",  # the one librdkafka property with an underscore
    }


def test_kafka_cli_overrides_env_per_property() -> None:
    s = load(
        {"kafka": {"security.protocol": "SSL", "client.id": "cli"}},
        STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        STREAM_MONITOR_KAFKA__SASL_MECHANISM="PLAIN",
    )
    assert s.kafka == {"security.protocol": "SSL", "sasl.mechanism": "PLAIN", "client.id": "cli"}


def test_kafka_cli_accepts_repeated_key_value_flags() -> None:
    s = load({"kafka": ["security.protocol=SSL", "sasl.jaas.config=a=b"]}, STREAM_MONITOR_KAFKA__CLIENT_ID="env")
    assert s.kafka == {"security.protocol": "SSL", "sasl.jaas.config": "a=b", "client.id": "env"}


def test_kafka_cli_values_are_normalised() -> None:
    s = load({"kafka": {" Enable.Idempotence ": True, "linger.ms": 5}})
    assert s.kafka == {"enable.idempotence": "true", "linger.ms": "5"}


def test_kafka_precedence_spec_then_env_then_cli(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[kafka]\n"security.protocol" = "PLAINTEXT"\n"sasl.mechanism" = "PLAIN"\n"client.id" = "spec"\n'
        '"linger.ms" = 20\n',
        encoding="utf-8",
    )
    s = load(
        {"kafka": ["client.id=cli"]},
        STREAM_MONITOR_SPEC=str(spec),
        STREAM_MONITOR_KAFKA__SASL_MECHANISM="SCRAM-SHA-256",
        STREAM_MONITOR_KAFKA__CLIENT_ID="env",
    )
    assert s.spec == spec
    assert s.kafka == {
        "security.protocol": "PLAINTEXT",  # spec only
        "linger.ms": "20",  # spec only
        "sasl.mechanism": "SCRAM-SHA-256",  # env beats spec
        "client.id": "cli",  # CLI beats env and spec
    }


def test_spec_kafka_can_be_passed_by_a_caller_that_loaded_the_spec() -> None:
    s = load_settings(
        {"kafka": {"client.id": "cli"}},
        environ={"STREAM_MONITOR_KAFKA__SASL_MECHANISM": "env"},
        spec_kafka={"client.id": "spec", "sasl.mechanism": "spec", "acks": "1"},
    )
    assert s.kafka == {"client.id": "cli", "sasl.mechanism": "env", "acks": "1"}


def test_invalid_spec_file_raises_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text("[defaults]\nwindow_sise = 1\n", encoding="utf-8")
    with pytest.raises(SpecError, match="defaults.window_sise"):
        load({"spec": str(spec)})


def test_whole_kafka_env_var_is_refused() -> None:
    message = str(config_error(STREAM_MONITOR_KAFKA='{"security.protocol": "SSL"}'))
    assert "STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL" in message


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ("STREAM_MONITOR_KAFKA__BOOTSTRAP_SERVERS", "bootstrap_servers"),
        ("STREAM_MONITOR_KAFKA__GROUP_ID", "group_id"),
        ("STREAM_MONITOR_KAFKA__GROUP_INSTANCE_ID", "group_instance_id"),
    ],
)
def test_managed_properties_are_refused_in_the_pass_through(env: str, setting: str) -> None:
    message = str(config_error(**{env: "x"}))
    assert env in message
    assert f"STREAM_MONITOR_{setting.upper()}" in message


def test_managed_properties_are_refused_on_the_cli() -> None:
    message = str(config_error({"kafka": ["bootstrap.servers=x:9092"]}))
    assert "STREAM_MONITOR_BOOTSTRAP_SERVERS" in message
    assert "--bootstrap-servers" in message


@pytest.mark.parametrize("item", ["no-equals-sign", "=value"])
def test_malformed_kafka_flags_are_refused(item: str) -> None:
    message = str(config_error({"kafka": [item]}))
    assert "--kafka" in message
    assert "key=value" in message


def test_unknown_prefixed_env_vars_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stream_monitor.config"):
        load(STREAM_MONITOR_TOPIC="a", STREAM_MONITOR_KAFKA_SASL_PASSWORD=SECRET)
    text = caplog.text
    assert "STREAM_MONITOR_TOPIC" in text and "did you mean STREAM_MONITOR_TOPICS" in text
    assert "STREAM_MONITOR_KAFKA__SASL_PASSWORD" in text
    assert SECRET not in text


# --------------------------------------------------------------------------- error messages


def test_error_names_setting_env_var_and_flag() -> None:
    error = config_error(STREAM_MONITOR_METRICS_PORT="70000")
    message = str(error)
    assert "metrics_port" in message
    assert "STREAM_MONITOR_METRICS_PORT" in message
    assert "--metrics-port" in message
    assert "70000" in message
    assert "from env STREAM_MONITOR_METRICS_PORT" in message
    assert "0-65535" in message  # what to do
    assert error.problems[0][0] == "metrics_port"


def test_error_names_the_flag_when_the_value_came_from_the_cli() -> None:
    message = str(config_error({"batch_size": 0}, STREAM_MONITOR_BATCH_SIZE="10"))
    assert "from flag --batch-size" in message


def test_error_is_not_a_raw_pydantic_error() -> None:
    error = config_error(STREAM_MONITOR_METRICS_PORT="not-a-port")
    message = str(error)
    assert "validation error for" not in message
    assert "errors.pydantic.dev" not in message
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STREAM_MONITOR_BATCH_SIZE": "0"}, "batch_size"),
        ({"STREAM_MONITOR_BATCH_TIMEOUT_SECONDS": "0"}, "batch_timeout_seconds"),
        ({"STREAM_MONITOR_CREATE_TOPICS": "maybe"}, "create_topics"),
        ({"STREAM_MONITOR_LOG_LEVEL": "loud"}, "log_level"),
        ({"STREAM_MONITOR_BOOTSTRAP_SERVERS": " , "}, "bootstrap_servers"),
        ({"STREAM_MONITOR_GROUP_ID": " "}, "group_id"),
        ({"STREAM_MONITOR_METRICS_PORT": "-1"}, "metrics_port"),
    ],
)
def test_invalid_values_name_their_env_var(env: dict[str, str], setting: str) -> None:
    error = config_error(**env)
    assert error.problems[0][0] == setting
    assert f"STREAM_MONITOR_{setting.upper()}" in str(error)


def test_missing_spec_file_is_a_config_error(tmp_path: Path) -> None:
    message = str(config_error({"spec": str(tmp_path / "nope.toml")}))
    assert "spec" in message and "file not found" in message and "--spec" in message


def test_several_problems_are_reported_together() -> None:
    error = config_error(STREAM_MONITOR_METRICS_PORT="x", STREAM_MONITOR_BATCH_SIZE="0")
    assert {setting for setting, _ in error.problems} == {"metrics_port", "batch_size"}
    assert "2 problems" in str(error)


def test_unknown_cli_setting_is_refused() -> None:
    message = str(config_error({"metrics_prot": 1}))
    assert "unknown setting 'metrics_prot'" in message
    assert "did you mean 'metrics_port'" in message


def test_errors_never_echo_kafka_values() -> None:
    error = config_error(
        {"kafka": {"sasl.password": [SECRET]}},
        STREAM_MONITOR_KAFKA__SSL_KEY_PASSWORD=SECRET,
        STREAM_MONITOR_METRICS_PORT="bad",
    )
    assert SECRET not in str(error)
    assert "kafka" in str(error) and "metrics_port" in str(error)


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.client.secret",
        "sasl.jaas.config",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "api_key",
        "apiKey",
        "access_token",
        "SASL_PASSWORD",
        "basic.auth.user.info.secret",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "ssl.key.location",
        "ssl.keystore.location",
        "key.serializer",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.assertion.private.key.file",
        "ssl.certificate.pem",
        "ssl.ca.pem",
        "ssl.ca.location",
        "sasl.kerberos.keytab",
        "sasl.username",
        "sasl.mechanism",
        "security.protocol",
        "bootstrap_servers",
        "group_instance_id",
        "kafka",
        "metrics_port",
    ],
)
def test_public_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_copies_and_recurses() -> None:
    original = {
        "sasl.password": SECRET,
        "security.protocol": "SASL_SSL",
        "nested": {"ssl.key.password": SECRET, "ssl.key.location": "/k"},
        "list": [{"token": SECRET}],
        "client.secret": None,
    }
    redacted = redact(original)
    assert redacted == {
        "sasl.password": "***",
        "security.protocol": "SASL_SSL",
        "nested": {"ssl.key.password": "***", "ssl.key.location": "/k"},
        "list": [{"token": "***"}],
        "client.secret": None,
    }
    assert original["sasl.password"] == SECRET  # not modified in place


@pytest.fixture
def secret_settings() -> Settings:
    return load(
        {"kafka": {"sasl.oauthbearer.client.secret": SECRET}},
        STREAM_MONITOR_KAFKA__SASL_PASSWORD=SECRET,
        STREAM_MONITOR_KAFKA__SASL_JAAS_CONFIG=f"user=x password={SECRET}",
        STREAM_MONITOR_KAFKA__SASL_USERNAME="alice",
    )


def test_secrets_never_appear_in_repr_or_str(secret_settings: Settings) -> None:
    assert secret_settings.kafka["sasl.password"] == SECRET  # the real value is kept for librdkafka
    for text in (repr(secret_settings), str(secret_settings), f"{secret_settings}", f"{secret_settings!r}"):
        assert SECRET not in text
        assert "alice" in text  # the rest is still there
        assert "***" in text


def test_describe_is_redacted_and_json_able(secret_settings: Settings) -> None:
    described = secret_settings.describe()
    text = json.dumps(described)
    assert SECRET not in text
    assert described["kafka"]["sasl.password"] == "***"
    assert described["kafka"]["sasl.username"] == "alice"
    assert described["group_id"] == "stream-monitor"


def test_secrets_never_appear_in_log_records(secret_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test_config")
    with caplog.at_level(logging.INFO, logger="test_config"):
        logger.info("settings %s", secret_settings)
        logger.info("settings %r", secret_settings)
        logger.info("settings %s", secret_settings.describe())
    assert len(caplog.records) == 3
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    assert SECRET not in caplog.text


# --------------------------------------------------------------------------- librdkafka configs


def test_consumer_config_defaults() -> None:
    config = consumer_config(load({"bootstrap_servers": "b:9092", "group_id": "g"}))
    assert config == {
        "bootstrap.servers": "b:9092",
        "group.id": "g",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        "log.connection.close": False,
    }


def test_consumer_config_static_membership() -> None:
    config = consumer_config(load(STREAM_MONITOR_GROUP_INSTANCE_ID="pod-3"))
    assert config["group.instance.id"] == "pod-3"


def test_producer_config_defaults() -> None:
    config = producer_config(load({"bootstrap_servers": "b:9092", "group_instance_id": "pod-3"}))
    assert config == {
        "bootstrap.servers": "b:9092",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 10,
        "compression.type": "lz4",
        "log.connection.close": False,
    }


def test_pass_through_overrides_client_defaults() -> None:
    s = load(
        {"kafka": {"auto.offset.reset": "latest", "linger.ms": "50", "security.protocol": "SSL"}},
        STREAM_MONITOR_KAFKA__PARTITION_ASSIGNMENT_STRATEGY="range",
    )
    consumer = consumer_config(s)
    producer = producer_config(s)
    assert consumer["auto.offset.reset"] == "latest"
    assert consumer["partition.assignment.strategy"] == "range"
    assert consumer["security.protocol"] == "SSL"
    assert producer["linger.ms"] == "50"
    assert producer["security.protocol"] == "SSL"
    assert consumer["enable.auto.commit"] is False  # untouched defaults stay


def test_alias_replaces_the_default_it_aliases() -> None:
    s = load({"kafka": {"request.required.acks": "1", "compression.codec": "zstd"}})
    producer = producer_config(s)
    assert "acks" not in producer and producer["request.required.acks"] == "1"
    assert "compression.type" not in producer and producer["compression.codec"] == "zstd"


def test_overriding_delivery_guarantees_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    s = load({"kafka": {"enable.auto.commit": True}})
    with caplog.at_level(logging.WARNING, logger="stream_monitor.config"):
        consumer_config(s)
        producer_config(s)  # not a producer default: no warning
    assert len(caplog.records) == 1
    assert "consumer: enable.auto.commit=true" in caplog.text


def test_configs_are_accepted_by_librdkafka() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    s = load({"bootstrap_servers": "127.0.0.1:1", "group_instance_id": "pod-0", "kafka": {"log_level": "0"}})
    consumer = confluent_kafka.Consumer(consumer_config(s))
    consumer.close()
    producer = confluent_kafka.Producer(producer_config(s))
    assert producer.flush(0) == 0
