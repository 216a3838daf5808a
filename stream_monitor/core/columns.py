"""Columnar model batches: the unit that travels from ingest to evaluation.

Ingest decodes JSON once and gathers each signal (feature, prediction, score,
label, latency) into one column per batch; evaluation then works on whole
arrays. Between the two stages a batch crosses Kafka (the internal topic, keyed
by model, so one owner sees every event of a model in one total order), so it
has a compact binary form: a small JSON header and raw little-endian arrays,
decoded with ``np.frombuffer`` and no per-event work.

Each row keeps its source topic, partition and offset: evaluation uses them to
drop rows a crashed ingest replays, and alerts use them to point at the
triggering event.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import orjson

from stream_monitor.core.alerts import Kind
from stream_monitor.core.events import Event

MAGIC = b"SMB1"
_HEADER = struct.Struct("<4sI")
#: Of two classes' scores the second is the first's complement; beyond this
#: many classes, scores are not watched (a misbehaving producer can't grow state).
MAX_SCORE_CLASSES = 32


@dataclass(slots=True)
class ModelBatch:
    model: str
    topics: list[str]
    topic_index: np.ndarray  # int16[n]
    partition: np.ndarray  # int32[n]
    offset: np.ndarray  # int64[n]
    timestamp: np.ndarray  # float64[n], NaN when unknown
    event_ids: list[str]
    versions: list[str | None]
    version_code: np.ndarray  # int32[n] into versions
    #: (name, kind) of each numeric column: a feature by its own name with kind
    #: ``data_drift``, or a reserved signal (``prediction``, ``score:<class>``,
    #: ``label``, ``latency_ms``) with its own kind. The pair is unambiguous
    #: (a feature may be called ``prediction``); past the batch a column is
    #: known by ``core.signals.signal_name(name, kind)``.
    numeric_signals: list[tuple[str, str]]
    numeric: np.ndarray  # float64[n, F], NaN = missing
    #: (name, kind) of each categorical column, as ``numeric_signals``.
    categorical_signals: list[tuple[str, str]]
    categorical: np.ndarray  # int32[n, C] into strings, -1 = missing
    strings: list[str]
    segment_keys: list[str]
    segments: np.ndarray  # int32[n, K] into strings, -1 = missing
    #: Highest offset ingest has processed per (topic, partition) when it cut
    #: this batch, whether or not the events there belonged to this model.
    progress: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Partitions of each source topic, as ingest last read them from the
    #: cluster's metadata (empty when unknown): the resequencer waits for every
    #: partition of a topic, not only those it has heard from.
    source_partitions: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_ids)

    def take(self, rows: np.ndarray) -> "ModelBatch":
        """The same batch restricted to ``rows`` (e.g. after dropping replayed rows)."""
        return ModelBatch(
            model=self.model,
            topics=self.topics,
            topic_index=self.topic_index[rows],
            partition=self.partition[rows],
            offset=self.offset[rows],
            timestamp=self.timestamp[rows],
            event_ids=[self.event_ids[i] for i in rows],
            versions=self.versions,
            version_code=self.version_code[rows],
            numeric_signals=self.numeric_signals,
            numeric=self.numeric[rows],
            categorical_signals=self.categorical_signals,
            categorical=self.categorical[rows],
            strings=self.strings,
            segment_keys=self.segment_keys,
            segments=self.segments[rows],
            progress=self.progress,
            source_partitions=self.source_partitions,
        )

    @classmethod
    def concat(cls, batches: Sequence["ModelBatch"]) -> "ModelBatch":
        """One batch holding the rows of several of the same model, in the given order.

        Column sets, string tables and topic lists may differ between the parts;
        they are unified and the codes remapped.
        """
        if len(batches) == 1:
            return batches[0]
        strings, topics, versions = _Interner(), _Interner(), {}
        numeric_signals = list(dict.fromkeys(s for b in batches for s in b.numeric_signals))
        categorical_signals = list(dict.fromkeys(s for b in batches for s in b.categorical_signals))
        segment_keys = list(dict.fromkeys(k for b in batches for k in b.segment_keys))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in (
            "topic_index", "partition", "offset", "timestamp", "version_code", "numeric", "categorical", "segments")}
        event_ids: list[str] = []
        for b in batches:
            n = len(b)
            string_map = np.array([strings(x) for x in b.strings] + [-1], dtype=np.int32)
            topic_map = np.array([topics(t) for t in b.topics] + [-1], dtype=np.int16)
            version_map = np.array([versions.setdefault(v, len(versions)) for v in b.versions] + [-1], dtype=np.int32)
            parts["topic_index"].append(topic_map[b.topic_index])
            parts["partition"].append(b.partition)
            parts["offset"].append(b.offset)
            parts["timestamp"].append(b.timestamp)
            parts["version_code"].append(version_map[b.version_code])
            parts["numeric"].append(_place(b.numeric, b.numeric_signals, numeric_signals, n, np.nan, np.float64))
            categorical = _place(b.categorical, b.categorical_signals, categorical_signals, n, -1, np.int32)
            parts["categorical"].append(np.where(categorical >= 0, string_map[categorical], -1))
            segments = _place(b.segments, b.segment_keys, segment_keys, n, -1, np.int32)
            parts["segments"].append(np.where(segments >= 0, string_map[segments], -1))
            event_ids.extend(b.event_ids)
        progress: dict[tuple[str, int], int] = {}
        for b in batches:
            for key, offset in b.progress.items():
                progress[key] = max(progress.get(key, -1), offset)
        source_partitions: dict[str, int] = {}
        for b in batches:
            for topic, count in b.source_partitions.items():
                source_partitions[topic] = max(source_partitions.get(topic, 0), count)
        joined = {name: np.concatenate(arrays) for name, arrays in parts.items()}
        return cls(
            model=batches[0].model,
            topics=topics.values,
            topic_index=joined["topic_index"],
            partition=joined["partition"],
            offset=joined["offset"],
            timestamp=joined["timestamp"],
            event_ids=event_ids,
            versions=list(versions),
            version_code=joined["version_code"],
            numeric_signals=numeric_signals,
            numeric=joined["numeric"],
            categorical_signals=categorical_signals,
            categorical=joined["categorical"],
            strings=strings.values,
            segment_keys=segment_keys,
            segments=joined["segments"],
            progress=progress,
            source_partitions=source_partitions,
        )

    def row_json(self, row: int) -> bytes:
        """One row re-encoded as a v1 event, for the dead-letter topic."""
        features = {}
        extras = {}
        for j, (name, kind) in enumerate(self.numeric_signals):
            value = self.numeric[row, j]
            if value == value:
                _put(features, extras, name, kind, float(value))
        for j, (name, kind) in enumerate(self.categorical_signals):
            code = self.categorical[row, j]
            if code >= 0:
                _put(features, extras, name, kind, self.strings[code])
        segment = {k: self.strings[c] for k, c in zip(self.segment_keys, self.segments[row]) if c >= 0}
        doc = {"event_id": self.event_ids[row], "model": self.model, "features": features, **extras}
        if segment:
            doc["segment"] = segment
        return orjson.dumps(doc)

    # -- wire format --------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays = {
            "topic_index": self.topic_index.astype("<i2", copy=False),
            "partition": self.partition.astype("<i4", copy=False),
            "offset": self.offset.astype("<i8", copy=False),
            "timestamp": self.timestamp.astype("<f8", copy=False),
            "version_code": self.version_code.astype("<i4", copy=False),
            "numeric": self.numeric.astype("<f8", copy=False),
            "categorical": self.categorical.astype("<i4", copy=False),
            "segments": self.segments.astype("<i4", copy=False),
        }
        layout = []
        chunks = []
        position = 0
        for name, array in arrays.items():
            data = np.ascontiguousarray(array).tobytes()
            layout.append([name, array.dtype.str, list(array.shape), position, len(data)])
            chunks.append(data)
            padding = (-len(data)) % 8
            chunks.append(b"\0" * padding)
            position += len(data) + padding
        header = orjson.dumps(
            {
                "model": self.model,
                "topics": self.topics,
                "event_ids": self.event_ids,
                "versions": self.versions,
                "numeric_signals": self.numeric_signals,
                "categorical_signals": self.categorical_signals,
                "strings": self.strings,
                "segment_keys": self.segment_keys,
                "progress": [[t, p, o] for (t, p), o in self.progress.items()],
                "source_partitions": self.source_partitions,
                "arrays": layout,
            }
        )
        padding = (-(len(header) + _HEADER.size)) % 8
        return _HEADER.pack(MAGIC, len(header) + padding) + header + b" " * padding + b"".join(chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelBatch":
        magic, header_size = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ValueError("not a stream-monitor model batch (bad magic); is another producer writing to the internal topic?")
        start = _HEADER.size
        header = orjson.loads(data[start : start + header_size])
        body = memoryview(data)[start + header_size :]
        arrays = {}
        for name, dtype, shape, position, size in header["arrays"]:
            arrays[name] = np.frombuffer(body[position : position + size], dtype=np.dtype(dtype)).reshape(shape)
        return cls(
            model=header["model"],
            topics=header["topics"],
            topic_index=arrays["topic_index"],
            partition=arrays["partition"],
            offset=arrays["offset"],
            timestamp=arrays["timestamp"],
            event_ids=header["event_ids"],
            versions=header["versions"],
            version_code=arrays["version_code"],
            numeric_signals=[tuple(s) for s in header["numeric_signals"]],
            numeric=arrays["numeric"],
            categorical_signals=[tuple(s) for s in header["categorical_signals"]],
            categorical=arrays["categorical"],
            strings=header["strings"],
            segment_keys=header["segment_keys"],
            segments=arrays["segments"],
            progress={(t, p): o for t, p, o in header["progress"]},
            # Records written before partition counts travelled have none.
            source_partitions=header.get("source_partitions", {}),
        )


def _put(features: dict, extras: dict, name: str, kind: str, value: float | str) -> None:
    if kind == Kind.DATA_DRIFT:
        features[name] = value
    elif name.startswith("score:"):
        extras.setdefault("scores", {})[name[6:]] = value
    else:
        extras[name] = value


def signal_values(event: Event) -> Iterator[tuple[str, str, float | str]]:
    """Every monitored (name, kind, value) of an event; missing values are skipped.

    Features keep their own names, whatever they are: the kind tells a feature
    called ``prediction`` from the prediction (see ``core.signals``).
    """
    for name, value in event.features.items():
        if value is not None:
            yield name, Kind.DATA_DRIFT, value
    if event.prediction is not None:
        yield "prediction", Kind.PREDICTION_DRIFT, event.prediction
    if event.scores and not isinstance(event.prediction, float):
        # With a numeric prediction the scores restate it; with a class label
        # (or none) they carry the model's confidence. Of two classes' scores
        # the second is the first's complement, so one stream says it all.
        limit = 1 if len(event.scores) == 2 else MAX_SCORE_CLASSES
        for i, (cls, value) in enumerate(event.scores.items()):
            if i >= limit:
                break
            yield f"score:{cls}", Kind.PREDICTION_DRIFT, value
    if event.label is not None:
        yield "label", Kind.LABEL_DRIFT, event.label
    if event.latency_ms is not None:
        yield "latency_ms", Kind.LATENCY_DRIFT, event.latency_ms


class _Interner:
    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def __call__(self, value: str) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code


def build_model_batches(
    events: Sequence[Event], progress: dict[tuple[str, int], int] | None = None
) -> list[ModelBatch]:
    """Gather decoded events into one columnar batch per model, rows in input order."""
    by_model: dict[str, list[Event]] = {}
    for event in events:
        by_model.setdefault(event.model, []).append(event)
    return [_build(model, rows, progress or {}) for model, rows in by_model.items()]


def _build(model: str, events: list[Event], progress: dict[tuple[str, int], int]) -> ModelBatch:
    n = len(events)
    nan = float("nan")
    strings = _Interner()
    topics = _Interner()
    numeric_cols: dict[tuple[str, str], list[float]] = {}
    categorical_cols: dict[tuple[str, str], list[int]] = {}
    segment_cols: dict[str, list[int]] = {}
    versions: dict[str | None, int] = {}
    version_code = np.empty(n, dtype=np.int32)
    topic_index = np.empty(n, dtype=np.int16)
    partition = np.empty(n, dtype=np.int32)
    offset = np.empty(n, dtype=np.int64)
    timestamp = np.empty(n, dtype=np.float64)
    event_ids: list[str] = []
    for i, event in enumerate(events):
        message = event.message
        if message is not None:
            topic_index[i] = topics(message.topic)
            partition[i] = message.partition
            offset[i] = message.offset
        else:
            topic_index[i], partition[i], offset[i] = -1, -1, -1
        timestamp[i] = event.timestamp
        event_ids.append(event.event_id)
        version_code[i] = versions.setdefault(event.model_version, len(versions))
        for name, kind, value in signal_values(event):
            if isinstance(value, float):
                column = numeric_cols.get((name, kind))
                if column is None:
                    column = numeric_cols[(name, kind)] = [nan] * n
                column[i] = value
            else:
                column = categorical_cols.get((name, kind))
                if column is None:
                    column = categorical_cols[(name, kind)] = [-1] * n
                column[i] = strings(value)
        for key, value in event.segment.items():
            column = segment_cols.get(key)
            if column is None:
                column = segment_cols[key] = [-1] * n
            column[i] = strings(value)
    return ModelBatch(
        model=model,
        topics=topics.values,
        topic_index=topic_index,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        event_ids=event_ids,
        versions=list(versions),
        version_code=version_code,
        numeric_signals=list(numeric_cols),
        numeric=_matrix(numeric_cols.values(), n, np.float64),
        categorical_signals=list(categorical_cols),
        categorical=_matrix(categorical_cols.values(), n, np.int32),
        strings=strings.values,
        segment_keys=list(segment_cols),
        segments=_matrix(segment_cols.values(), n, np.int32),
        progress=dict(progress),
    )


def _place(values: np.ndarray, names: list, all_names: list, n: int, missing: float, dtype: type) -> np.ndarray:
    """A part's columns placed at their positions among ``all_names`` (missing elsewhere)."""
    out = np.full((n, len(all_names)), missing, dtype=dtype)
    index = {name: j for j, name in enumerate(all_names)}
    for j, name in enumerate(names):
        out[:, index[name]] = values[:, j]
    return out


def _matrix(columns: Iterable[list], n: int, dtype: type) -> np.ndarray:
    columns = list(columns)
    if not columns:
        return np.empty((n, 0), dtype=dtype)
    return np.array(columns, dtype=dtype).T.copy()
