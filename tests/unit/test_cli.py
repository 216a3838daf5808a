"""The command line refuses bad configuration before touching Kafka, and says why."""

import pytest

from stream_monitor.cli import main


def run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_invalid_spec_refuses_to_start_and_names_the_key(tmp_path, capsys):
    spec = tmp_path / "monitor.toml"
    spec.write_text('[models.credit-risk.thresholds]\ncusum_hh = 3.0\n')
    code, err = run(["run", "--bootstrap-servers", "127.0.0.1:1", "--spec", str(spec)], capsys)
    assert code == 2
    assert "models.credit-risk.thresholds.cusum_hh" in err and "cusum_h" in err


def test_inconsistent_windows_are_refused_with_their_path(tmp_path, capsys):
    spec = tmp_path / "monitor.toml"
    spec.write_text("[defaults]\nwindow_size = 500\nevaluate_every = 300\n")
    code, err = run(["run", "--spec", str(spec)], capsys)
    assert code == 2 and "evaluate_every" in err


def test_broken_reference_file_stops_start_up_with_its_line(tmp_path, capsys):
    (tmp_path / "ref.jsonl").write_text('{"event_id": "1", "model": "m", "features": {"x": 1.0}}\nnot json\n')
    spec = tmp_path / "monitor.toml"
    spec.write_text('[models.m]\nreference_file = "ref.jsonl"\n')
    code, err = run(["run", "--bootstrap-servers", "127.0.0.1:1", "--spec", str(spec)], capsys)
    assert code == 2
    assert "line 2" in err and "ref.jsonl" in err


def test_bad_environment_value_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("STREAM_MONITOR_METRICS_PORT", "not-a-port")
    code, err = run(["run"], capsys)
    assert code == 2 and "STREAM_MONITOR_METRICS_PORT" in err


def test_kafka_flag_needs_key_value():
    with pytest.raises(SystemExit, match="key=value"):
        main(["run", "--kafka", "security.protocol"])
