"""A model's state does not depend on how its rows were cut into batches.

A long batch is taken in parts (bounded memory) with the outcome of taking it
whole, and category codes go to names by first row, whatever the batches'
string tables.
"""

import orjson
import pytest

import stream_monitor.core.model as model_module
from stream_monitor.core.columns import ModelBatch
from stream_monitor.core.engine import MonitorEngine, ingest
from stream_monitor.core.events import RawMessage
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.state_codec import encode_state
from stream_monitor.simulation.synthetic import benchmark_profile, generate
from stream_monitor.spec import ModelSpec, MonitorSpec


def _messages(n: int) -> list[RawMessage]:
    return [
        RawMessage(orjson.dumps(event), topic="predictions", partition=i % 2, offset=i // 2)
        for i, event in enumerate(generate(benchmark_profile(), n, seed=11))
    ]


def _run(batch_size: int, messages: list[RawMessage]) -> tuple[bytes, list[str]]:
    engine = MonitorEngine(MonitorSpec.default())
    alerts: list[str] = []
    for start in range(0, len(messages), batch_size):
        batch = ingest(messages[start : start + batch_size], engine.spec).batches
        for model_batch in batch:
            alerts += [a.alert_id for a in engine.evaluate(model_batch).alerts]
    alerts += [a.alert_id for a in engine.flush(force=True).alerts]
    state = {name: m.to_state() for name, m in engine.models.items()}
    for one in state.values():
        one.pop("resequencer")
        one["streams"].sort(key=lambda item: item[0])
    return encode_state(state), sorted(alerts)


def _one_feature(name: str, values: list) -> list[RawMessage]:
    """Events of model "m", event i carrying ``values[i]`` as feature ``name`` (with event time i)."""
    events = [{"event_id": str(i), "model": "m", "timestamp": float(i), "features": {name: v}} for i, v in enumerate(values)]
    return [RawMessage(orjson.dumps(e), topic="t", partition=0, offset=i) for i, e in enumerate(events)]


def _categorical(name: str, max_categories: int = 64) -> MonitorSpec:
    """A spec declaring feature ``name`` of model "m" categorical."""
    settings = DetectionSettings(max_categories=max_categories)
    return MonitorSpec(defaults=settings, models={"m": ModelSpec(name="m", detection=settings, feature_types={name: "categorical"})})


def test_a_batch_longer_than_a_pass_gives_the_state_and_alerts_of_short_batches(monkeypatch):
    messages = _messages(24_000)
    short = _run(1_000, messages)
    monkeypatch.setattr(model_module, "MAX_ROWS_PER_PASS", 2_500)
    long = _run(24_000, messages)
    assert long == short


def test_category_codes_follow_first_rows_not_the_string_table_of_a_joined_batch():
    """A resequenced batch is joined from several, each with its own string table: codes must
    still go to names by first row, so they (and which names the cap sends to __other__) do
    not depend on how rows were cut into batches."""
    colours = ["red", "green", "blue", "cyan", "plum"]
    messages = _one_feature("colour", [colours[i % 5] for i in range(50)])
    early, late = ingest(messages[:23], None).batches[0], ingest(messages[23:], None).batches[0]
    joined = ModelBatch.concat([late, early]).take(list(range(27, 50)) + list(range(27)))  # rows back in order
    assert joined.event_ids == [str(i) for i in range(50)]
    assert joined.strings[:2] == ["cyan", "plum"]  # the late part's table came first

    monitor = MonitorEngine(MonitorSpec(defaults=DetectionSettings(max_categories=3))).new_monitor("m")
    monitor.observe(joined, 0.0)
    assert monitor.codebooks["colour"].names == ["red", "green", "blue"]  # cyan and plum share __other__


def test_numbers_sent_for_a_categorical_feature_are_coded_by_their_text_in_first_row_order():
    values = [10001, "A", 10001.0000001, "B", 2.5, "10001", 2.5]  # 10001.0000001 prints as "10001" too
    batch = ingest(_one_feature("zip", values), None).batches[0]
    monitor = MonitorEngine(_categorical("zip", max_categories=3)).new_monitor("m")
    monitor.observe(batch, 0.0)

    assert monitor.codebooks["zip"].names == ["10001", "A", "B"]  # 2.5 came fourth: __other__ (code 3)
    numeric = [j for j, (name, _) in enumerate(batch.numeric_signals) if name == "zip"][0]
    categorical = [j for j, (name, _) in enumerate(batch.categorical_signals) if name == "zip"][0]
    codes, present = monitor._category_codes("zip", batch, categorical, numeric)
    assert codes.tolist() == [0, 1, 0, 2, 3, 0, 3]
    assert present.all()


def test_minus_zero_is_its_own_category_however_the_rows_are_cut():
    messages = _one_feature("zip", [0.0, -0.0, 0.0, -0.0])
    spec = _categorical("zip")

    def names(cuts: list[int]) -> list[str]:
        monitor = MonitorEngine(spec).new_monitor("m")
        for start, end in zip([0, *cuts], [*cuts, len(messages)]):
            monitor.observe(ingest(messages[start:end], None).batches[0], 0.0)
        return monitor.codebooks["zip"].names

    assert names([]) == names([1]) == ["0", "-0"]
