"""The optional TOML monitor spec: what to watch and how closely.

Without a spec every model seen in traffic is monitored with the built-in
:class:`~stream_monitor.core.settings.DetectionSettings`. A spec adjusts those
defaults, declares per-model segment keys, feature types and reference files,
and may carry librdkafka settings::

    [kafka]                       # optional librdkafka pass-through
    "security.protocol" = "SASL_SSL"

    [defaults]                    # optional; any DetectionSettings field
    window_size = 500
    evaluate_every = 250

    [defaults.thresholds]         # optional; any Thresholds field
    cusum_h = 14.0

    [models.credit-risk]          # per model; the model name is the table key
    segment_keys = ["region"]     # read from the event's features
    reference_file = "reference.jsonl"   # relative to the spec file's folder
    reference_size = 2000         # any DetectionSettings field, per model
    [models.credit-risk.features] # optional declared feature types
    income = "numeric"
    channel = "categorical"
    [models.credit-risk.thresholds]
    cusum_h = 20.0

Features (``features``, ``segment_keys``) are named as in the event's
``features`` object: ``prediction = "numeric"`` declares a feature called
``prediction`` (whose alerts say ``feature:prediction``, see
:mod:`stream_monitor.core.signals`), never the model's prediction, label,
latency or scores, whose types come from traffic.

Every table refuses keys it does not know (a typo must not silently fall back
to a default), numbers must be TOML numbers (``window_size = "500"`` is
refused), and the detection settings are built, and therefore validated, at load
time. Every problem is reported in one :class:`SpecError` with the dotted path
of the offending key.

In ``[kafka]`` both ``"security.protocol" = "..."`` (quoted key) and the dotted
form ``security.protocol = "..."`` (which TOML parses as nested tables) are
accepted; numbers and booleans are passed to librdkafka as strings
(``true``/``false``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from stream_monitor.core.settings import DetectionSettings, Thresholds

__all__ = [
    "FeatureType",
    "ModelSpec",
    "MonitorSpec",
    "SpecError",
    "load_spec",
    "normalize_kafka_property",
    "kafka_value",
    "MANAGED_KAFKA_PROPERTIES",
]

FeatureType = Literal["numeric", "categorical"]

#: librdkafka properties that stream-monitor sets from its own settings. They are
#: refused in every Kafka pass-through (spec ``[kafka]``, env, CLI) so there is one
#: place to set them; the value is the name of the setting to use instead.
MANAGED_KAFKA_PROPERTIES: Mapping[str, str] = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "group.id": "group_id",
    "group.instance.id": "group_instance_id",
}

_KAFKA_PROPERTY_RE = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)*$")


def normalize_kafka_property(name: str) -> str:
    """The canonical (stripped, lower-case) form of a librdkafka property name.

    Raises ValueError, with a message saying what to do, for names that cannot
    be librdkafka properties and for the ones stream-monitor manages itself.
    """
    if not isinstance(name, str):
        raise ValueError(f"Kafka property names must be strings, got {name!r}")
    canonical = name.strip().lower()
    if not _KAFKA_PROPERTY_RE.match(canonical):
        raise ValueError(
            f"{name!r} is not a librdkafka property name (expected dot-separated lower-case words, "
            "e.g. security.protocol)"
        )
    if canonical in MANAGED_KAFKA_PROPERTIES:
        setting = MANAGED_KAFKA_PROPERTIES[canonical]
        raise ValueError(
            f"{canonical} is set by stream-monitor from its {setting} setting "
            f"(env STREAM_MONITOR_{setting.upper()} or flag --{setting.replace('_', '-')}); "
            "remove it from the Kafka pass-through"
        )
    return canonical


def kafka_value(value: Any) -> str:
    """A pass-through value as the string librdkafka expects (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return repr(value)
    if isinstance(value, str):
        return value
    # The value is not echoed: pass-through settings carry credentials.
    raise ValueError(f"must be a string, number or boolean, not {_kind(value)}")


class SpecError(ValueError):
    """An invalid monitor spec.

    ``problems`` holds ``(dotted_path, message)`` pairs, one per problem (the path
    is empty for file-level problems such as a TOML syntax error); ``file`` is the
    spec file.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], file: Path | None = None) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        self.file = file
        super().__init__(self._format())

    @property
    def paths(self) -> list[str]:
        """Dotted paths of the offending keys, in report order."""
        return [path for path, _ in self.problems]

    def _format(self) -> str:
        where = f"invalid monitor spec {self.file}" if self.file else "invalid monitor spec"
        lines = [f"{path}: {message}" if path else message for path, message in self.problems]
        if len(lines) == 1:
            return f"{where}: {lines[0]}"
        return "\n  ".join([f"{where} ({len(lines)} problems):", *lines])


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything the spec says about one model, defaults already merged in.

    Treat ``feature_types`` as read-only: the object is shared by every caller.
    """

    name: str
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    #: Feature names whose values segment the model's streams (besides the event's
    #: own ``segment`` object); a name is the feature's, even ``prediction``.
    segment_keys: tuple[str, ...] = ()
    #: Declared feature types by the feature's name in events (``prediction`` is a
    #: feature called so, not the prediction); undeclared features are inferred from traffic.
    feature_types: dict[str, FeatureType] = field(default_factory=dict)
    #: Absolute path of a JSONL file of v1 events used as the reference, if any.
    reference_file: Path | None = None


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A loaded monitor spec (or the built-in default one)."""

    #: librdkafka pass-through settings from ``[kafka]`` (canonical names, string values).
    kafka: dict[str, str] = field(default_factory=dict)
    #: ``[defaults]`` applied to the built-in detection settings.
    defaults: DetectionSettings = field(default_factory=DetectionSettings)
    #: Models declared under ``[models.*]``, merged with the defaults.
    models: dict[str, ModelSpec] = field(default_factory=dict)
    #: The spec file, or None for the default spec.
    path: Path | None = None

    @classmethod
    def default(cls) -> MonitorSpec:
        """The spec used when no file is given: built-in defaults, no declared models."""
        return cls()

    def model(self, name: str) -> ModelSpec:
        """The merged view for any model name; models not in the spec get the defaults.

        Models are discovered from traffic, so an unknown name is not an error.
        """
        declared = self.models.get(name)
        if declared is not None:
            return declared
        return ModelSpec(name=name, detection=self.defaults)


# --------------------------------------------------------------------------- schema
#
# The override tables are generated from the dataclasses, so a field added to
# DetectionSettings or Thresholds is configurable from the spec without touching
# this module. All values are optional: only what the spec sets is overridden.

_FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
_STRICT_TYPES: dict[Any, Any] = {int: StrictInt, float: _FiniteFloat, bool: StrictBool, str: StrictStr}


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _override_fields(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    result: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "thresholds":
            continue
        result[f.name] = (Optional[_STRICT_TYPES[hints[f.name]]], None)  # noqa: UP045
    return result


_ThresholdsTable = create_model("_ThresholdsTable", __base__=_Table, **_override_fields(Thresholds))
_DetectionTable = create_model(
    "_DetectionTable",
    __base__=_Table,
    thresholds=(Optional[_ThresholdsTable], None),  # noqa: UP045
    **_override_fields(DetectionSettings),
)


class _ModelTable(_DetectionTable):  # type: ignore[misc,valid-type]
    segment_keys: list[StrictStr] = []
    reference_file: Optional[StrictStr] = None  # noqa: UP045
    features: dict[str, FeatureType] = {}


class _SpecFile(_Table):
    # [kafka] is a free-form pass-through and is checked separately.
    kafka: dict[str, Any] = {}
    defaults: _DetectionTable = _DetectionTable()  # type: ignore[valid-type]
    models: dict[str, _ModelTable] = {}


_THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))
_DETECTION_KEYS = tuple(f.name for f in dataclasses.fields(DetectionSettings))
_MODEL_ONLY_KEYS = ("segment_keys", "reference_file", "features")
_TOP_KEYS = ("kafka", "defaults", "models")


def _valid_keys(parent: tuple[Any, ...]) -> tuple[str, ...] | None:
    """Keys allowed in the table at ``parent`` (a pydantic error location)."""
    if parent == ():
        return _TOP_KEYS
    if parent[-1] == "thresholds":
        return _THRESHOLD_KEYS
    if parent == ("defaults",):
        return _DETECTION_KEYS
    if len(parent) == 2 and parent[0] == "models":
        return tuple(sorted(_DETECTION_KEYS + _MODEL_ONLY_KEYS))
    return None


# --------------------------------------------------------------------------- messages

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _dotted(loc: Sequence[Any]) -> str:
    """A TOML-style dotted path: ``models."fraud.v2".thresholds.cusum_h``, ``x.segment_keys[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.match(part) else json.dumps(part)
        out = f"{out}.{text}" if out else text
    return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__} value"


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return f"an array {json.dumps(value, default=str)}"
    return repr(value)


_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": 'must be an array of strings, e.g. ["region"]',
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def _pydantic_problem(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = tuple(error["loc"])
    path = _dotted(loc)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        valid = _valid_keys(loc[:-1])
        message = "unknown setting"
        if valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            message += f"; valid keys here: {', '.join(valid)}"
        else:
            message += "; remove it"
        return path, message
    if kind == "literal_error":
        return path, f'must be "numeric" or "categorical", got {_describe_value(value)}'
    if kind in _TYPE_MESSAGES:
        message = _TYPE_MESSAGES[kind]
        if kind in ("dict_type", "model_type", "model_attributes_type"):
            return path, f"{message} (e.g. [{path}]), got {_describe_value(value)}"
        return path, f"{message}, got {_describe_value(value)}"
    return path, f"{error['msg']} (got {_describe_value(value)})"


_LEADING_NAME = re.compile(r"^(thresholds\.)?([a-z_]+)\b\s*(.*)$", re.DOTALL)


def _settings_problem(
    prefix: tuple[str, ...], message: str, table_set: set[str], thresholds_set: set[str], inherited_from: str
) -> tuple[str, str]:
    """Attach a DetectionSettings/Thresholds ValueError to the key that caused it.

    Their messages start with the field name (``window_size must ...``,
    ``thresholds.cusum_h must ...``). The path points at that field if the table
    sets it, else at another field the message names that the table does set
    (``evaluate_every (250) must divide window_size (600)`` when only window_size
    was overridden), else at the named field with a note on where its value came from.
    """
    match = _LEADING_NAME.match(message)
    if not match or (
        match.group(2) not in (_THRESHOLD_KEYS if match.group(1) else _DETECTION_KEYS)
    ):
        return _dotted(prefix), message
    in_thresholds, name, rest = bool(match.group(1)), match.group(2), match.group(3)
    text = rest if rest.startswith("must") else message
    if (name in thresholds_set) if in_thresholds else (name in table_set):
        return _dotted(prefix + (("thresholds", name) if in_thresholds else (name,))), text
    if not in_thresholds:
        for other in _DETECTION_KEYS:
            if other != name and other in table_set and re.search(rf"\b{other}\b", rest):
                return _dotted(prefix + (other,)), message
    full = prefix + (("thresholds", name) if in_thresholds else (name,))
    return _dotted(full), f"{text} (value {inherited_from})"


# --------------------------------------------------------------------------- loading


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([("", "file not found; check the --spec flag / STREAM_MONITOR_SPEC")], path) from None
    except OSError as exc:
        raise SpecError([("", f"cannot read the file: {exc.strerror or exc}")], path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([("", f"not UTF-8 text (byte {exc.start}); save the spec as UTF-8")], path) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            [
                (
                    "",
                    f"TOML syntax error: {exc}. Fix the syntax at that line "
                    '(keys containing dots or spaces must be quoted, e.g. "security.protocol" = "SSL")',
                )
            ],
            path,
        ) from None


def _parse_kafka_table(table: Any, problems: list[tuple[str, str]]) -> dict[str, str]:
    if not isinstance(table, dict):
        problems.append(("kafka", f'must be a table of librdkafka properties, e.g. [kafka] "security.protocol" = "SSL"; got {_describe_value(table)}'))
        return {}
    result: dict[str, str] = {}
    origin: dict[str, str] = {}

    def walk(node: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = keys + (key,)
            path = _dotted(("kafka",) + here)
            if isinstance(value, dict):
                walk(value, here)
                continue
            try:
                name = normalize_kafka_property(".".join(here))
            except ValueError as exc:
                problems.append((path, str(exc)))
                continue
            try:
                text = kafka_value(value)
            except ValueError as exc:
                problems.append((path, str(exc)))
                continue
            if name in result:
                problems.append((path, f"same property as {origin[name]}; keep only one"))
                continue
            result[name] = text
            origin[name] = path

    walk(table, ())
    return result


def _resolve_reference(value: str, base_dir: Path, path: str, problems: list[tuple[str, str]]) -> Path | None:
    if not value.strip():
        problems.append((path, "must be a file path; remove the key if the model has no reference file"))
        return None
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    candidate = candidate.resolve()
    if not candidate.is_file():
        problems.append(
            (
                path,
                f"file not found: {candidate} (relative paths are resolved against the spec file's folder "
                f"{base_dir}); fix the path or remove the key",
            )
        )
        return None
    return candidate


def _detection_overrides(table: BaseModel) -> dict[str, Any]:
    data = table.model_dump(include=set(_DETECTION_KEYS), exclude_none=True)
    if not data.get("thresholds"):
        data.pop("thresholds", None)
    return data


def _build_model(
    name: str,
    table: _ModelTable,
    defaults: DetectionSettings | None,
    base_dir: Path,
    problems: list[tuple[str, str]],
) -> ModelSpec | None:
    prefix = ("models", name)
    count = len(problems)
    if not name.strip():
        problems.append((_dotted(prefix), "model names must not be empty"))

    segment_keys: list[str] = []
    for index, key in enumerate(table.segment_keys):
        where = _dotted(prefix + ("segment_keys", index))
        if not key.strip():
            problems.append((where, "segment keys must be non-empty feature names"))
        elif key in segment_keys:
            problems.append((where, f"{key!r} is listed twice; keep one"))
        else:
            segment_keys.append(key)

    for feature in table.features:
        if not feature.strip():
            problems.append((_dotted(prefix + ("features", feature)), "feature names must not be empty"))

    reference_file = None
    if table.reference_file is not None:
        reference_file = _resolve_reference(
            table.reference_file, base_dir, _dotted(prefix + ("reference_file",)), problems
        )

    detection = None
    if defaults is not None:
        overrides = _detection_overrides(table)
        try:
            detection = defaults.with_overrides(**overrides)
        except ValueError as exc:
            problems.append(
                _settings_problem(
                    prefix,
                    str(exc),
                    set(overrides) - {"thresholds"},
                    set(overrides.get("thresholds", {})),
                    "inherited from [defaults]",
                )
            )

    if len(problems) != count or detection is None:
        return None
    return ModelSpec(
        name=name,
        detection=detection,
        segment_keys=tuple(segment_keys),
        feature_types=dict(table.features),
        reference_file=reference_file,
    )


def load_spec(path: Path | str | os.PathLike[str]) -> MonitorSpec:
    """Load and validate a monitor spec file.

    Raises SpecError listing every problem found, each with the dotted path of
    the offending key.
    """
    path = Path(path).expanduser().resolve()
    document = _read_toml(path)
    problems: list[tuple[str, str]] = []

    kafka = _parse_kafka_table(document.get("kafka", {}), problems)
    try:
        parsed = _SpecFile.model_validate({**document, "kafka": {}})
    except ValidationError as exc:
        problems.extend(_pydantic_problem(error) for error in exc.errors())
        raise SpecError(problems, path) from None

    defaults_overrides = _detection_overrides(parsed.defaults)
    defaults: DetectionSettings | None
    try:
        defaults = DetectionSettings().with_overrides(**defaults_overrides)
    except ValueError as exc:
        defaults = None  # every model would inherit the problem: report it once
        problems.append(
            _settings_problem(
                ("defaults",),
                str(exc),
                set(defaults_overrides) - {"thresholds"},
                set(defaults_overrides.get("thresholds", {})),
                "is the built-in default",
            )
        )

    models: dict[str, ModelSpec] = {}
    for name, table in parsed.models.items():
        model = _build_model(name, table, defaults, path.parent, problems)
        if model is not None:
            models[name] = model

    if problems:
        raise SpecError(problems, path)
    assert defaults is not None
    return MonitorSpec(kafka=kafka, defaults=defaults, models=models, path=path)
