"""The TOML monitor spec: parsing, merging over defaults, and error reporting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stream_monitor.core.settings import DetectionSettings, Thresholds
from stream_monitor.spec import ModelSpec, MonitorSpec, SpecError, load_spec

FULL_SPEC = """
[kafka]                       # optional librdkafka pass-through
"security.protocol" = "SASL_SSL"
sasl.mechanism = "PLAIN"      # dotted (unquoted) keys are accepted too
"linger.ms" = 5
"enable.ssl.certificate.verification" = false

[defaults]
reference_size = 1000
window_size = 500
evaluate_every = 250
cooldown_events = 5000
max_segment_values = 50

[defaults.thresholds]
cusum_h = 14.0

[models.credit-risk]
segment_keys = ["region"]
reference_file = "reference.jsonl"
reference_size = 2000
[models.credit-risk.features]
income = "numeric"
channel = "categorical"
[models.credit-risk.thresholds]
cusum_h = 20.0
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(tmp_path: Path, text: str) -> SpecError:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


@pytest.fixture
def full_spec(tmp_path: Path) -> MonitorSpec:
    (tmp_path / "reference.jsonl").write_text("{}\n", encoding="utf-8")
    return load_spec(write(tmp_path, FULL_SPEC))


# --------------------------------------------------------------------------- valid specs


def test_full_example_loads(full_spec: MonitorSpec, tmp_path: Path) -> None:
    assert full_spec.path == (tmp_path / "spec.toml").resolve()
    assert full_spec.kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "linger.ms": "5",
        "enable.ssl.certificate.verification": "false",
    }
    model = full_spec.model("credit-risk")
    assert isinstance(model, ModelSpec)
    assert model.name == "credit-risk"
    assert model.segment_keys == ("region",)
    assert model.feature_types == {"income": "numeric", "channel": "categorical"}
    assert model.reference_file == (tmp_path / "reference.jsonl").resolve()
    assert model.reference_file.is_absolute()


def test_model_overrides_are_merged_over_defaults(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """
            [defaults]
            window_size = 400
            evaluate_every = 200
            cooldown_events = 100
            [defaults.thresholds]
            cusum_h = 10
            psi_alert = 0.3

            [models.a]
            reference_size = 2000
            [models.a.thresholds]
            cusum_h = 20.0
            """,
        )
    )
    builtin = DetectionSettings()
    expected_defaults = builtin.with_overrides(
        window_size=400, evaluate_every=200, cooldown_events=100, thresholds={"cusum_h": 10.0, "psi_alert": 0.3}
    )
    assert spec.defaults == expected_defaults
    detection = spec.model("a").detection
    assert detection == expected_defaults.with_overrides(reference_size=2000, thresholds={"cusum_h": 20.0})
    # Overridden by the model, inherited from [defaults], untouched built-in default:
    assert detection.reference_size == 2000
    assert detection.window_size == 400 and detection.cooldown_events == 100
    assert detection.max_categories == builtin.max_categories
    assert detection.thresholds.cusum_h == 20.0
    assert detection.thresholds.psi_alert == 0.3
    assert detection.thresholds.ks_p_value == Thresholds().ks_p_value
    assert isinstance(detection.thresholds.cusum_h, float)


def test_unknown_model_gets_the_defaults(full_spec: MonitorSpec) -> None:
    model = full_spec.model("never-declared")
    assert model.name == "never-declared"
    assert model.detection == full_spec.defaults
    assert model.segment_keys == ()
    assert model.feature_types == {}
    assert model.reference_file is None


def test_default_spec_is_the_builtin_settings() -> None:
    spec = MonitorSpec.default()
    assert spec.kafka == {}
    assert spec.path is None
    assert spec.models == {}
    assert spec.model("anything").detection == DetectionSettings()


def test_empty_file_is_the_default_spec(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "# nothing configured\n"))
    assert spec.defaults == DetectionSettings()
    assert spec.kafka == {}
    assert spec.model("x").detection == DetectionSettings()


def test_reference_file_is_relative_to_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "ref.jsonl").write_text("{}\n", encoding="utf-8")
    path = write(folder, '[models.m]\nreference_file = "refs/ref.jsonl"\n')
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    assert load_spec(path).model("m").reference_file == (folder / "refs" / "ref.jsonl").resolve()


def test_quoted_model_names(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, '[models."fraud.v2"]\nwindow_size = 1000\n'))
    assert spec.model("fraud.v2").detection.window_size == 1000


def test_every_detection_field_is_configurable(tmp_path: Path) -> None:
    # The schema is generated from the dataclasses; setting every field to its
    # default value must be accepted.
    defaults = DetectionSettings()
    lines = ["[defaults]"]
    lines += [f"{f.name} = {getattr(defaults, f.name)!r}" for f in dataclasses.fields(defaults) if f.name != "thresholds"]
    lines += ["[defaults.thresholds]"]
    lines += [f"{f.name} = {getattr(defaults.thresholds, f.name)!r}" for f in dataclasses.fields(Thresholds)]
    assert load_spec(write(tmp_path, "\n".join(lines) + "\n")).defaults == defaults


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("[defualts]\nwindow_size = 500\n", "defualts", "defaults"),
        ("[defaults]\nwindow_sise = 500\n", "defaults.window_sise", "window_size"),
        ("[defaults.thresholds]\ncusum_hh = 3.0\n", "defaults.thresholds.cusum_hh", "cusum_h"),
        ("[models.credit-risk]\nsegment_key = ['region']\n", "models.credit-risk.segment_key", "segment_keys"),
        (
            "[models.credit-risk.thresholds]\ncusum_hh = 20.0\n",
            "models.credit-risk.thresholds.cusum_hh",
            "cusum_h",
        ),
    ],
)
def test_unknown_keys_are_refused_with_their_dotted_path(
    tmp_path: Path, text: str, path: str, suggestion: str
) -> None:
    error = spec_error(tmp_path, text)
    assert error.paths == [path]
    message = str(error)
    assert f"{path}: unknown setting" in message
    assert f"did you mean {suggestion!r}" in message
    assert "valid keys here:" in message
    assert str(tmp_path / "spec.toml") in message


def test_unknown_key_lists_the_valid_keys(tmp_path: Path) -> None:
    message = str(spec_error(tmp_path, "[models.credit-risk.thresholds]\ncusum_hh = 20.0\n"))
    for name in (f.name for f in dataclasses.fields(Thresholds)):
        assert name in message


def test_unknown_model_key_lists_model_and_detection_keys(tmp_path: Path) -> None:
    message = str(spec_error(tmp_path, "[models.m]\nzzz = 1\n"))
    for name in ("segment_keys", "reference_file", "features", "window_size", "thresholds"):
        assert name in message


# --------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ('[defaults]\nwindow_size = "500"\n', "defaults.window_size", "must be an integer"),
        ("[defaults]\nwindow_size = 500.0\n", "defaults.window_size", "must be an integer"),
        ("[defaults]\nwindow_size = true\n", "defaults.window_size", "must be an integer"),
        ('[defaults.thresholds]\ncusum_h = "high"\n', "defaults.thresholds.cusum_h", "must be a number"),
        ("[defaults.thresholds]\ncusum_h = nan\n", "defaults.thresholds.cusum_h", "must be a finite number"),
        ("[models.m]\nsegment_keys = 'region'\n", "models.m.segment_keys", "must be an array of strings"),
        ("[models.m]\nsegment_keys = [1]\n", "models.m.segment_keys[0]", "must be a string"),
        ("[models.m.features]\nincome = 'number'\n", "models.m.features.income", 'must be "numeric" or "categorical"'),
        ("[models.m]\nreference_file = 3\n", "models.m.reference_file", "must be a string"),
        ("models = 3\n", "models", "must be a table"),
        ("[models]\nm = 3\n", "models.m", "must be a table"),
        ("defaults = []\n", "defaults", "must be a table"),
        ("[kafka]\n\"linger.ms\" = [5]\n", 'kafka."linger.ms"', "must be a string, number or boolean"),
        ("kafka = 1\n", "kafka", "must be a table"),
    ],
)
def test_wrong_types_are_refused(tmp_path: Path, text: str, path: str, expected: str) -> None:
    error = spec_error(tmp_path, text)
    assert path in error.paths
    assert f"{path}: {expected}" in str(error)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path,
        """
        [defaults]
        window_size = "500"
        [models.a.thresholds]
        cusum_hh = 1.0
        [models.b.features]
        x = "text"
        """,
    )
    assert error.paths == ["defaults.window_size", "models.a.thresholds.cusum_hh", "models.b.features.x"]
    assert "3 problems" in str(error)


# --------------------------------------------------------------------------- detection settings validation


def test_detection_settings_errors_are_reported_with_their_path(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[defaults]\nwindow_size = 0\n")
    assert error.paths == ["defaults.window_size"]
    assert "defaults.window_size: must be a positive integer" in str(error)


def test_threshold_errors_are_reported_with_their_path(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[models.credit-risk.thresholds]\nks_p_value = 2.0\n")
    assert error.paths == ["models.credit-risk.thresholds.ks_p_value"]
    assert "must be between 0 and 1" in str(error)


def test_evaluate_every_must_divide_window_size(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[models.credit-risk]\nwindow_size = 500\nevaluate_every = 300\n")
    assert error.paths == ["models.credit-risk.evaluate_every"]
    assert "evaluate_every (300) must divide window_size (500)" in str(error)


def test_constraint_broken_by_inherited_value_points_at_the_key_that_was_set(tmp_path: Path) -> None:
    # evaluate_every = 250 comes from the defaults; the model only changed window_size.
    error = spec_error(tmp_path, "[models.credit-risk]\nwindow_size = 600\n")
    assert error.paths == ["models.credit-risk.window_size"]
    assert "evaluate_every (250) must divide window_size (600)" in str(error)


def test_invalid_defaults_are_reported_once(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[defaults]\nreference_size = 10\n[models.a]\n[models.b]\n")
    assert error.paths == ["defaults.reference_size"]
    assert "must be at least 50" in str(error)


# --------------------------------------------------------------------------- model tables


def test_missing_reference_file_is_refused(tmp_path: Path) -> None:
    error = spec_error(tmp_path, '[models.credit-risk]\nreference_file = "missing.jsonl"\n')
    assert error.paths == ["models.credit-risk.reference_file"]
    message = str(error)
    assert "file not found" in message
    assert str((tmp_path / "missing.jsonl").resolve()) in message


def test_duplicate_and_empty_segment_keys_are_refused(tmp_path: Path) -> None:
    error = spec_error(tmp_path, '[models.m]\nsegment_keys = ["region", "region", " "]\n')
    assert error.paths == ["models.m.segment_keys[1]", "models.m.segment_keys[2]"]


# --------------------------------------------------------------------------- kafka table


def test_kafka_values_become_librdkafka_strings(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            '[kafka]\n"Enable.Idempotence" = true\n"linger.ms" = 5\n"batch.size" = 1.5\nssl.key.location = "/k"\n',
        )
    )
    assert spec.kafka == {
        "enable.idempotence": "true",
        "linger.ms": "5",
        "batch.size": "1.5",
        "ssl.key.location": "/k",
    }


@pytest.mark.parametrize("key", ['"bootstrap.servers"', '"group.id"', '"group.instance.id"', "bootstrap.servers"])
def test_kafka_properties_managed_by_settings_are_refused(tmp_path: Path, key: str) -> None:
    error = spec_error(tmp_path, f'[kafka]\n{key} = "x"\n')
    assert len(error.problems) == 1
    assert "remove it from the Kafka pass-through" in str(error)


def test_kafka_duplicate_property_spellings_are_refused(tmp_path: Path) -> None:
    error = spec_error(tmp_path, '[kafka]\n"security.protocol" = "SSL"\n"Security.Protocol" = "SSL"\n')
    assert error.paths == ['kafka."Security.Protocol"']


def test_kafka_value_errors_do_not_echo_the_value(tmp_path: Path) -> None:
    error = spec_error(tmp_path, '[kafka]\n"sasl.password" = ["hunter2"]\n')
    assert "hunter2" not in str(error)


# --------------------------------------------------------------------------- file problems


def test_toml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[defaults]\nwindow_size = 500\nevaluate_every =\n")
    message = str(error)
    assert "TOML syntax error" in message
    assert "line 3" in message
    assert str(tmp_path / "spec.toml") in message


def test_unquoted_dotted_key_outside_kafka_is_an_unknown_table(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "[defaults]\nthresholds.cusum_hh = 3.0\n")
    assert error.paths == ["defaults.thresholds.cusum_hh"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "nope.toml")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_bytes(b"[defaults]\n# \xff\n")
    with pytest.raises(SpecError, match="UTF-8"):
        load_spec(path)


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError)
