"""Service configuration: where to read, where to write, how to talk to Kafka.

Precedence, highest first:

1. command-line flags (``load_settings(cli=...)``; a flag that was not given is
   passed as None and ignored),
2. environment variables ``STREAM_MONITOR_<SETTING>`` (case-insensitive; an
   empty variable counts as unset),
3. the monitor spec's ``[kafka]`` table (Kafka pass-through settings only),
4. the defaults below.

librdkafka pass-through
    Any librdkafka property can be handed to the consumer, producer and admin
    clients: ``STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` becomes
    ``{"security.protocol": "SASL_SSL"}`` (the part after ``KAFKA__`` is
    lower-cased and ``_`` becomes ``.``, as librdkafka names use dots; the one
    exception, ``..._KAFKA__LOG_LEVEL``, maps to ``log_level``), the
    flag form is ``--kafka security.protocol=SASL_SSL``, and the spec form a
    ``[kafka]`` table. Per property, flags beat env beat the spec. They are
    applied on top of stream-monitor's client defaults (see
    :func:`consumer_config` / :func:`producer_config`): you own your cluster's
    settings. ``bootstrap.servers``, ``group.id`` and ``group.instance.id`` are
    refused there: use the dedicated settings.

Secrets
    Kafka settings usually carry credentials. ``repr()``, ``str()`` and
    :meth:`Settings.describe` of a :class:`Settings` redact them (see
    :func:`redact`); ``model_dump()`` does not, so never log that.

Use :func:`load_settings` rather than ``Settings()``: it applies the CLI layer
and the spec's ``[kafka]`` table, and turns validation failures into a
:class:`ConfigError` whose message names the setting, its env var and flag.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stream_monitor.spec import kafka_value, load_spec, normalize_kafka_property

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "Settings",
    "consumer_config",
    "env_var",
    "flag",
    "is_secret_key",
    "load_settings",
    "producer_config",
    "redact",
]

log = logging.getLogger(__name__)

ENV_PREFIX = "STREAM_MONITOR_"
KAFKA_ENV_PREFIX = f"{ENV_PREFIX}KAFKA__"
REDACTED = "***"


class ConfigError(ValueError):
    """Invalid service configuration; the message names the setting, its env var and flag.

    ``problems`` holds ``(setting, message)`` pairs, one per problem.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        lines = [message for _, message in self.problems]
        if len(lines) == 1:
            text = f"invalid configuration: {lines[0]}"
        else:
            text = "\n  ".join([f"invalid configuration ({len(lines)} problems):", *lines])
        super().__init__(text)


# --------------------------------------------------------------------------- redaction

# Tokens (after splitting a key on anything that is not a letter or digit) that
# make a value secret when they appear anywhere in the key ...
_SECRET_SUBSTRINGS = ("password", "passwd", "passphrase", "secret", "token", "credential", "jaas")
_SECRET_TOKENS = frozenset({"pwd", "pass", "auth"})
# ... unless the key names where the secret lives rather than the secret itself.
_PUBLIC_LAST_TOKENS = frozenset({"location", "file", "path", "url", "endpoint", "serializer", "deserializer"})


def is_secret_key(key: str) -> bool:
    """Whether a configuration key holds a secret, by its name.

    The rule, on the lower-cased key split into words at any non-alphanumeric
    character (``ssl.key.password`` -> ssl, key, password):

    * keys whose last word is a location (``location``, ``file``, ``path``,
      ``url``, ``endpoint``) or a class (``serializer``, ``deserializer``) are
      not secret: ``ssl.key.location``, ``key.serializer``,
      ``sasl.oauthbearer.token.endpoint.url``;
    * otherwise a key is secret if a word contains password, passwd,
      passphrase, secret, token, credential or jaas; or is pwd, pass or auth;
      or is ``key`` or ends in ``key`` (``ssl_key``, ``ssl.key.pem``,
      ``api_key``, ``apikey``); or the key is a SASL ``*.config``
      (``sasl.oauthbearer.config``, ``sasl.jaas.config``).

    Over-redacting a harmless value costs little; leaking a password costs a lot.
    Certificates (``ssl.certificate.pem``, ``ssl.ca.pem``) are public and not redacted.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    if not words or words[-1] in _PUBLIC_LAST_TOKENS:
        return False
    if "sasl" in words and words[-1] == "config":
        return True
    for word in words:
        if word in _SECRET_TOKENS or word.endswith("key"):
            return True
        if any(part in word for part in _SECRET_SUBSTRINGS):
            return True
    return False


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the values of secret-looking keys replaced by ``"***"``.

    Nested mappings (and mappings inside lists) are redacted too; a secret key
    whose value is None stays None (it shows the secret is unset, not what it is).
    See :func:`is_secret_key` for the rule.
    """
    return {key: _redact_value(key, value) for key, value in config.items()}


def _redact_value(key: Any, value: Any) -> Any:
    if isinstance(key, str) and is_secret_key(key):
        return None if value is None else REDACTED
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(redact(v) if isinstance(v, Mapping) else v for v in value)
    return value


# --------------------------------------------------------------------------- sources

# The environment load_settings() reads; None means os.environ. A ContextVar keeps
# concurrent load_settings() calls (threads, tests) from seeing each other's mapping.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("stream_monitor_environ", default=None)


def _current_environ() -> Mapping[str, str]:
    environ = _ENVIRON.get()
    return os.environ if environ is None else environ


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' env source, reading the mapping given to load_settings()."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in environ.items()
            if not (self.env_ignore_empty and value == "")
        }


#: The one string-valued librdkafka property whose name has an underscore.
_UNDERSCORE_PROPERTIES = {"log.level": "log_level"}


def _env_property(suffix: str) -> str:
    """``SECURITY_PROTOCOL`` -> ``security.protocol`` (and ``LOG_LEVEL`` -> ``log_level``)."""
    name = suffix.lower().replace("_", ".")
    return _UNDERSCORE_PROPERTIES.get(name, name)


class _KafkaEnvSource(PydanticBaseSettingsSource):
    """``STREAM_MONITOR_KAFKA__SECURITY_PROTOCOL=x`` -> ``kafka={"security.protocol": "x"}``.

    Done here rather than with pydantic-settings' nested delimiter, whose
    splitting of the remaining underscores is not what librdkafka names need.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        properties: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for name, value in sorted(_current_environ().items()):
            upper = name.upper()
            if upper == f"{ENV_PREFIX}KAFKA":
                problems.append(
                    (
                        "kafka",
                        f"{name} is not supported: set one variable per librdkafka property, "
                        f"e.g. {KAFKA_ENV_PREFIX}SECURITY_PROTOCOL=SASL_SSL",
                    )
                )
                continue
            if not upper.startswith(KAFKA_ENV_PREFIX) or value == "":
                continue
            try:
                key = normalize_kafka_property(_env_property(upper[len(KAFKA_ENV_PREFIX) :]))
            except ValueError as exc:
                problems.append(("kafka", f"env var {name}: {exc}"))
                continue
            properties[key] = value
        if problems:
            raise ConfigError(problems)
        return {"kafka": properties} if properties else {}


# --------------------------------------------------------------------------- settings

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _check_topic(name: str) -> str:
    name = name.strip()
    if not _TOPIC_RE.match(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} is not a valid Kafka topic name (1-249 characters among letters, digits, '.', '_', '-')"
        )
    return name


class Settings(BaseSettings):
    """Service settings. Build them with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    #: Kafka bootstrap servers, comma separated host:port pairs.
    bootstrap_servers: str = "localhost:9092"
    #: Topics of prediction events. Env/flag value may be comma separated (``a,b``).
    topics: Annotated[list[str], NoDecode] = ["predictions"]
    #: Topic the drift alerts are published to.
    alerts_topic: str = "stream-monitor.alerts"
    #: Topic messages that cannot be processed are forwarded to.
    dead_letter_topic: str = "stream-monitor.dead-letter"
    #: Consumer group id; every replica of one deployment shares it.
    group_id: str = "stream-monitor"
    #: Static group membership id (``group.instance.id``), unique per replica (e.g.
    #: the pod name of a StatefulSet): a restart within ``session.timeout.ms`` then
    #: keeps its partitions instead of triggering a rebalance.
    group_instance_id: str | None = None
    #: Port of the Prometheus ``/metrics`` and ``/healthz`` endpoints; 0 picks a free port.
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    #: Interface the metrics server listens on.
    metrics_host: str = "0.0.0.0"
    #: Monitor spec TOML file (see stream_monitor.spec); None = built-in defaults.
    spec: Path | None = None
    #: Max messages fetched per poll (one processing batch).
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    #: Max seconds a poll waits to fill a batch.
    batch_timeout_seconds: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    #: Partitions of the internal topics (model batches and state changelog). One
    #: evaluator owns each; it bounds how many workers share the evaluation.
    #: Fixed when the topics are created.
    internal_partitions: int = Field(default=8, ge=1, le=1024)
    #: Evaluation shards per model: a model's signals are divided among this
    #: many internal partitions (by a hash of the signal name), so up to this
    #: many workers share one busy model's evaluation. Every shard still reads
    #: every row of the model, so each costs a little fixed work per row; 1 =
    #: one evaluator per model. At most ``internal_partitions`` are used.
    #: Changing it restarts the detector state of every model, alert
    #: occurrence counts included (see docs/architecture.md): so it is opt-in,
    #: and an upgrade keeps its checkpoints.
    evaluation_shards: int = Field(default=1, ge=1, le=1024)
    #: Seconds between checkpoints of the detector state to the changelog topic:
    #: the most a restarted worker re-evaluates.
    checkpoint_interval_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    #: A source partition silent for this many seconds stops holding back the
    #: event-time resequencing of the others (see stream_monitor.core.resequencer).
    reorder_idle_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    #: Create the alerts, dead-letter and internal topics at startup when missing.
    create_topics: bool = True
    #: Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    log_level: str = "INFO"
    #: librdkafka pass-through properties (canonical dotted names, string values).
    kafka: dict[str, str] = Field(default_factory=dict)

    @property
    def shards(self) -> int:
        """Evaluation shards per model in effect: two shards never share a partition."""
        return min(self.evaluation_shards, self.internal_partitions)

    @property
    def internal_topic(self) -> str:
        """Model batches from ingest to evaluation, keyed by model (named after the group)."""
        return f"{self.group_id}.model-batches"

    @property
    def changelog_topic(self) -> str:
        """Compacted checkpoints of the evaluators' state (named after the group)."""
        return f"{self.group_id}.state"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: init (the CLI layer) > STREAM_MONITOR_KAFKA__* > other env vars.
        # No dotenv or secrets-dir sources: configuration comes from env and flags only.
        return init_settings, _KafkaEnvSource(settings_cls), _EnvSource(settings_cls)

    # -- validators -----------------------------------------------------------

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap_servers(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers:
            raise ValueError("must list at least one broker, e.g. broker-1:9092,broker-2:9092")
        return ",".join(servers)

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value  # let pydantic report the type
        topics: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"topic names must be strings, got {item!r}")
            for part in item.split(","):
                part = part.strip()
                if part and part not in topics:
                    topics.append(part)
        if not topics:
            raise ValueError("must name at least one topic, e.g. predictions or a,b")
        return [_check_topic(topic) for topic in topics]

    @field_validator("alerts_topic", "dead_letter_topic")
    @classmethod
    def _output_topic(cls, value: str, info: ValidationInfo) -> str:
        value = _check_topic(value)
        if value in info.data.get("topics", ()):
            raise ValueError(f"{value!r} is also an input topic; the monitor must not consume its own output")
        if info.field_name == "dead_letter_topic" and value == info.data.get("alerts_topic"):
            raise ValueError(f"{value!r} is also the alerts topic; use a separate dead-letter topic")
        return value

    @field_validator("group_id", "metrics_host")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("group_instance_id")
    @classmethod
    def _instance_id(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_path(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return Path(value).expanduser() if value else None
        return value

    @field_validator("spec")
    @classmethod
    def _spec_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("kafka", mode="before")
    @classmethod
    def _kafka(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            value = _parse_pairs(value)
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of librdkafka properties to values")
        result: dict[str, str] = {}
        for key, item in value.items():
            name = normalize_kafka_property(key)
            try:
                result[name] = kafka_value(item)
            except ValueError as exc:
                raise ValueError(f"property {name} {exc}") from None
        return result

    # -- redacted views -------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON-able data with secrets redacted: safe to log."""
        return redact(self.model_dump(mode="json"))

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # Feeds repr(), str() and pretty printers: never the raw secrets.
        described = redact(self.model_dump())
        for name, info in type(self).model_fields.items():
            if info.repr:
                yield name, described[name]


def _parse_pairs(items: Any) -> dict[str, str]:
    """``["security.protocol=SSL", ...]`` (repeated ``--kafka`` flags) -> dict."""
    pairs: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected key=value, got {item!r}")
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value (a librdkafka property), got {key.strip() or item!r}")
        pairs[key.strip()] = value
    return pairs


# --------------------------------------------------------------------------- errors

#: Command-line flag of each setting that has one (as defined in stream_monitor.cli).
_FLAGS = {
    "bootstrap_servers": "--bootstrap-servers",
    "topics": "--topic",
    "alerts_topic": "--alerts-topic",
    "dead_letter_topic": "--dead-letter-topic",
    "group_id": "--group-id",
    "group_instance_id": "--group-instance-id",
    "metrics_port": "--metrics-port",
    "spec": "--spec",
    "batch_size": "--batch-size",
    "internal_partitions": "--internal-partitions",
    "evaluation_shards": "--evaluation-shards",
    "checkpoint_interval_seconds": "--checkpoint-interval",
    "reorder_idle_seconds": "--reorder-idle-seconds",
    "kafka": "--kafka KEY=VALUE",
    "log_level": "--log-level",
}

#: What a valid value looks like, per setting.
_HINTS = {
    "bootstrap_servers": "a comma separated list of host:port, e.g. broker-1:9092,broker-2:9092",
    "topics": "one or more topic names, comma separated in the env var (a,b) or a repeated flag",
    "alerts_topic": "a topic name distinct from the input topics",
    "dead_letter_topic": "a topic name distinct from the input and alerts topics",
    "group_id": "a non-empty consumer group id",
    "group_instance_id": "a non-empty id, unique per replica (e.g. the pod name), or leave it unset",
    "metrics_port": "a TCP port 0-65535 (0 picks a free port)",
    "metrics_host": "an interface address such as 0.0.0.0 or 127.0.0.1",
    "spec": "the path of an existing monitor spec TOML file, or leave it unset",
    "batch_size": "an integer between 1 and 1000000",
    "evaluation_shards": "an integer between 1 and 1024 (at most --internal-partitions are used)",
    "batch_timeout_seconds": "a number of seconds greater than 0, e.g. 0.5",
    "create_topics": "true or false",
    "log_level": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "kafka": (
        "valid librdkafka properties (dots written as _ in env var names), "
        f"e.g. {KAFKA_ENV_PREFIX}SECURITY_PROTOCOL=SASL_SSL or --kafka security.protocol=SASL_SSL"
    ),
}


def env_var(setting: str) -> str:
    """The environment variable of a setting (``kafka`` is a family of variables)."""
    if setting == "kafka":
        return f"{KAFKA_ENV_PREFIX}<PROPERTY>"
    return f"{ENV_PREFIX}{setting.upper()}"


def flag(setting: str) -> str | None:
    """The command-line flag of a setting, or None when it has none."""
    return _FLAGS.get(setting)


def _where(setting: str) -> str:
    knobs = [f"env {env_var(setting)}"]
    if flag(setting):
        knobs.append(f"flag {flag(setting)}")
    return " / ".join(knobs)


def _origin(setting: str, cli: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    if setting in cli:
        return f" from flag {flag(setting) or '--' + setting.replace('_', '-')}"
    if setting == "kafka":
        return ""
    if any(name.upper() == env_var(setting) and value != "" for name, value in environ.items()):
        return f" from env {env_var(setting)}"
    return ""


def _problem(error: Mapping[str, Any], cli: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str]:
    loc = error.get("loc") or ()
    setting = str(loc[0]) if loc else ""
    if error["type"] == "extra_forbidden":
        valid = list(Settings.model_fields)
        close = difflib.get_close_matches(setting, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return setting, (
            f"unknown setting {setting!r} given on the command line{hint}; valid settings: {', '.join(valid)}"
        )
    reason = str(error.get("msg", "invalid value"))
    reason = reason.removeprefix("Value error, ")
    reason = reason[:1].lower() + reason[1:]
    if setting not in Settings.model_fields:
        return setting, f"{reason}"
    origin = _origin(setting, cli, environ)
    value = error.get("input")
    if setting == "kafka" or isinstance(value, Mapping):
        shown = ""  # Kafka settings carry credentials: never echo their values
    elif "input" in error:
        shown = f" (got {str(value) if isinstance(value, Path) else value!r}{origin})"
    else:
        shown = f" (given{origin})" if origin else ""
    return setting, (
        f"{setting}: {reason}{shown}. Set {_where(setting)} to {_HINTS.get(setting, 'a valid value')}."
    )


# --------------------------------------------------------------------------- loading


def load_settings(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    spec_kafka: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: CLI values over env vars over the spec's ``[kafka]`` over defaults.

    :param cli: setting name -> value from command-line flags; None values (flag
        not given) are ignored. ``kafka`` may be a dict or a list of
        ``key=value`` strings (repeated ``--kafka`` flags); its properties are
        merged over the env ones, property by property.
    :param environ: the environment to read (default ``os.environ``).
    :param spec_kafka: the spec's ``[kafka]`` table when the caller already
        loaded the spec; by default it is read from the ``spec`` setting's file.
    :raises ConfigError: invalid settings, naming each setting with its env var and flag.
    :raises stream_monitor.spec.SpecError: the spec file is invalid.
    """
    environ = os.environ if environ is None else environ
    cli_values = {key: value for key, value in (cli or {}).items() if value is not None}
    unknown = [key for key in cli_values if key not in Settings.model_fields]
    if unknown:
        raise ConfigError([_problem({"type": "extra_forbidden", "loc": (key,)}, {}, {}) for key in unknown])
    if isinstance(cli_values.get("kafka"), list | tuple):
        # Turned into a dict before pydantic-settings merges the CLI layer over the
        # env one: it merges dicts key by key but lets a list replace them.
        try:
            cli_values["kafka"] = _parse_pairs(cli_values["kafka"])
        except ValueError as exc:
            raise ConfigError([("kafka", f"kafka: {exc}. Set {_where('kafka')}.")]) from None

    token = _ENVIRON.set(environ)
    try:
        settings = Settings(**cli_values)
    except ValidationError as exc:
        # "from None": the pydantic error would show the raw input values, secrets included.
        raise ConfigError([_problem(error, cli_values, environ) for error in exc.errors()]) from None
    except SettingsError as exc:
        raise ConfigError([("", f"{exc}")]) from None
    finally:
        _ENVIRON.reset(token)

    _warn_unknown_env(environ)

    if spec_kafka is None and settings.spec is not None:
        spec_kafka = load_spec(settings.spec).kafka
    if spec_kafka:
        merged = {**spec_kafka, **settings.kafka}
        settings = settings.model_copy(update={"kafka": merged})
    return settings


def _warn_unknown_env(environ: Mapping[str, str]) -> None:
    """Log STREAM_MONITOR_* variables that set nothing: most likely typos."""
    known = {env_var(name) for name in Settings.model_fields}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(KAFKA_ENV_PREFIX):
            continue
        if upper.startswith(f"{ENV_PREFIX}KAFKA_"):
            hint = f"; librdkafka properties take a double underscore: {KAFKA_ENV_PREFIX}{upper[len(ENV_PREFIX) + 6:]}"
        else:
            close = difflib.get_close_matches(upper[len(ENV_PREFIX) :].lower(), list(Settings.model_fields), n=1)
            hint = f"; did you mean {env_var(close[0])}?" if close else ""
        log.warning("ignoring environment variable %s: not a stream-monitor setting%s", name, hint)


# --------------------------------------------------------------------------- librdkafka


def _apply_passthrough(defaults: dict[str, Any], kafka: Mapping[str, str], role: str) -> dict[str, Any]:
    config = dict(defaults)
    for key, value in kafka.items():
        canonical = _ALIASES.get(key, key)
        if canonical in defaults and canonical in _GUARANTEES and kafka_value(defaults[canonical]) != value.lower():
            log.warning("%s: %s=%s overrides stream-monitor's %s", role, key, value, _GUARANTEES[canonical])
        # A user-supplied alias replaces our default under the canonical name, so
        # librdkafka never sees both (which one wins would depend on order).
        if canonical != key:
            config.pop(canonical, None)
        config[key] = value
    return config


#: librdkafka aliases of properties we set a default for.
_ALIASES = {
    "request.required.acks": "acks",
    "queue.buffering.max.ms": "linger.ms",
    "compression.codec": "compression.type",
}

#: Defaults the delivery guarantees rely on; overriding them is allowed but logged.
_GUARANTEES = {
    "enable.auto.commit": "enable.auto.commit=false (offsets are committed after the batch is processed)",
    "enable.idempotence": "enable.idempotence=true (no duplicate alerts on producer retries)",
    "acks": "acks=all",
    "partition.assignment.strategy": (
        "partition.assignment.strategy=cooperative-sticky; every member of the group must use the same strategy"
    ),
}


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration of the events consumer.

    Manual commits (``enable.auto.commit=false``: the worker commits after a
    batch is processed and its alerts are delivered), ``earliest`` reset for new
    groups, incremental cooperative rebalancing, static membership when
    ``group_instance_id`` is set. The pass-through settings are applied last and
    override these defaults.

    A user-supplied ``partition.assignment.strategy`` must be the same for every
    member of the group: consumers with incompatible strategies cannot join the
    same group, and moving between eager (range/roundrobin) and
    cooperative-sticky needs a two-step rolling restart.
    """
    defaults: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        # brokers close idle connections routinely; librdkafka logs each one
        "log.connection.close": False,
    }
    if settings.group_instance_id:
        defaults["group.instance.id"] = settings.group_instance_id
    return _apply_passthrough(defaults, settings.kafka, "consumer")


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration of the alerts / dead-letter producer.

    Idempotent (``enable.idempotence=true``, ``acks=all``) so retries do not
    duplicate alerts, lightly batched (``linger.ms=10``) and lz4-compressed.
    The pass-through settings are applied last and override these defaults.
    """
    defaults: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 10,
        "compression.type": "lz4",
        "log.connection.close": False,
    }
    return _apply_passthrough(defaults, settings.kafka, "producer")
