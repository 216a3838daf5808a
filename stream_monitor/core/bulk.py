"""Bulk ingest: a batch of raw messages straight to columnar model batches.

Producers send the same event shape over and over: one model's events carry
the same feature names, score classes and segment keys, each feature keeps
its type. So instead of validating and normalising every value of every event
in Python (:func:`~stream_monitor.core.events.decode_event`, then
:func:`~stream_monitor.core.columns.build_model_batches`), events are grouped
by shape and each field is checked once per group, as a column: the set of
value types, the longest string, the range of a numeric array.

Whatever a column check cannot vouch for, down to a single value, sends its
event to the per-event path, which stays the single source of truth: it makes
every rejection (reason and detail), and the events it accepts are merged with
the groups' columns. The result is the batch the per-event path would build,
byte for byte: rows in input order, signals, strings, versions and topics
numbered in order of first appearance.
"""

from __future__ import annotations

import gc
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter
from typing import Callable, Collection, Iterator, Sequence

import numpy as np
import orjson

from stream_monitor.core.alerts import Kind
from stream_monitor.core.columns import MAX_SCORE_CLASSES, ModelBatch, signal_values
from stream_monitor.core.events import (
    MAX_EPOCH_SECONDS,
    MAX_EVENT_BYTES,
    MAX_FEATURES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_SCORES,
    MAX_SEGMENT_ENTRIES,
    MAX_STRING_VALUE_CHARS,
    Event,
    RawMessage,
    Rejection,
    _Invalid,
    _timestamp,
    event_from_document,
    parse_message,
)

NoneType = type(None)
_NUMBERS = frozenset({float, int, NoneType})
_CATEGORIES = frozenset({str, bool, NoneType})
_SEGMENT_VALUES = frozenset({str, bool, int})
#: A row's segment values come after all its signals in first-appearance order.
_SEGMENT_POSITION = 1 << 20
_NAN = float("nan")

#: (row, position in the row): orders signals, segment keys and strings by first appearance.
First = tuple[int, int]


@dataclass(slots=True)
class Part:
    """Rows of one model gathered together: one shape group, or the events of the per-event path.

    Columns hold one value per row of the part, ``NaN``/``None`` where the
    row has none; ``first`` maps a signal, segment key or string to where
    it first appears in the part.
    """

    rows: list[int]  # index of each row's message in the input batch, ascending
    messages: list[RawMessage]
    event_ids: list[str]
    versions: list[str | None]
    timestamp: np.ndarray
    numeric: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    categorical: dict[tuple[str, str], list[str | None]] = field(default_factory=dict)
    segments: dict[str, list[str | None]] = field(default_factory=dict)
    numeric_first: dict[tuple[str, str], First] = field(default_factory=dict)
    categorical_first: dict[tuple[str, str], First] = field(default_factory=dict)
    segment_first: dict[str, First] = field(default_factory=dict)
    string_first: dict[str, First] = field(default_factory=dict)


@dataclass(slots=True)
class Decoded:
    """A batch split between shape groups (``parts``) and the per-event path (``events``, ``rejections``)."""

    parts: dict[str, list[Part]]
    #: (index in the batch, event) of the valid events the per-event path decoded, in input order.
    events: list[tuple[int, Event]]
    rejections: list[Rejection]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for the length of one batch.

    A batch's documents are thousands of fresh dicts, and gathering them makes
    thousands of short-lived tuples; every few hundred allocations the
    collector would walk all of them again, though none can be garbage yet
    (decoding makes no reference cycles). That walk cost a third of the time
    of ingest. Reference counting still frees everything as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- decoding ----------------------------------------------------------------------------------------


def decode_columns(
    messages: Sequence[RawMessage],
    numeric_features: Callable[[str], Collection[str]] = lambda model: (),
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> Decoded:
    """Decode a batch by shape groups; ``numeric_features(model)`` are the features that must hold numbers.

    A string in one of those is left to the per-event path, so the caller can
    reject its event as a type mismatch (after the decode rejections, as for
    every event).
    """
    docs, unparsed, longest = _parse(messages, max_event_bytes)
    # A JSON string takes at least its length in bytes, plus its two quotes.
    strings_fit = longest <= MAX_STRING_VALUE_CHARS + 2
    groups, slow, fetched = _shape_groups(docs)
    parts: dict[str, list[Part]] = {}
    for (model, *shape), rows in groups.items():
        declared = frozenset(numeric_features(model))
        if len(rows) < _FEW_ROWS:
            slow.extend(rows)
            continue
        while rows:
            part, bad = _gather(model, shape, rows, docs, messages, declared, fetched, strings_fit)
            slow.extend(rows[k] for k in bad)
            if part is not None:
                parts.setdefault(model, []).append(part)
                break
            rows = [row for k, row in enumerate(rows) if k not in bad]
    slow.sort()
    events: list[tuple[int, Event]] = []
    rejections: list[Rejection] = []
    for i in slow:
        if i in unparsed:
            rejections.append(unparsed[i])
            continue
        message = messages[i]
        try:
            events.append((i, event_from_document(docs[i], message)))
        except _Invalid as invalid:
            rejections.append(Rejection(message, invalid.reason, invalid.detail))
    return Decoded(parts, events, rejections)


#: Smaller shape groups take the per-event path: gathering columns costs more than it saves for a few rows.
_FEW_ROWS = 4


def _parse(messages: Sequence[RawMessage], max_event_bytes: int) -> tuple[list[object], dict[int, Rejection], int]:
    """Each message's JSON document (``None`` where it has none), the rejections of those without, and the
    length of the longest message parsed."""
    values = [m.value for m in messages]
    try:
        longest = max(map(len, values), default=0)
        if longest <= max_event_bytes:
            return list(map(orjson.loads, values)), {}, longest
    except (TypeError, ValueError):  # a message without a value, or not JSON
        pass
    docs: list[object] = []
    rejected: dict[int, Rejection] = {}
    for i, message in enumerate(messages):
        try:
            docs.append(parse_message(message, max_event_bytes))
        except _Invalid as invalid:
            docs.append(None)
            rejected[i] = Rejection(message, invalid.reason, invalid.detail)
    return docs, rejected, max((len(values[i]) for i in range(len(values)) if i not in rejected), default=0)


def _shape_groups(docs: list[object]) -> tuple[dict[tuple, list[int]], list[int], dict[str, list]]:
    """Rows grouped by (model, feature names, score classes, segment keys); the rest left to the per-event path.

    Also returns the fields read to find the shapes, one value per document,
    so that a group of the whole batch (the usual case) does not read them again.
    """
    if set(map(type, docs)) != {dict}:
        return (*_shape_groups_of_some(docs), {})
    fetched = {key: list(map(dict.get, docs, repeat(key))) for key in _SHAPE_FIELDS}
    models, features, scores, segments = fetched.values()
    score_types, segment_types = set(map(type, scores)), set(map(type, segments))
    if not (
        set(map(type, models)) == {str}
        and set(map(type, features)) == {dict}
        and score_types <= {dict, NoneType}
        and segment_types <= {dict, NoneType}
    ):
        return (*_shape_groups_of_some(docs), {})
    names = [
        models,
        list(map(tuple, features)),
        list(map(tuple if score_types == {dict} else _names, scores)),
        list(map(tuple if segment_types == {dict} else _names, segments)),
    ]
    if all(column.count(column[0]) == len(column) for column in names):  # the usual batch: one model, one shape
        return {tuple(column[0] for column in names): list(range(len(docs)))}, [], fetched
    shapes = zip(*names)
    groups: dict[tuple, list[int]] = {}
    for i, shape in enumerate(shapes):
        rows = groups.get(shape)
        if rows is None:
            groups[shape] = [i]
        else:
            rows.append(i)
    return groups, [], fetched


_SHAPE_FIELDS = ("model", "features", "scores", "segment")


def _names(mapping: dict | None) -> tuple | None:
    return None if mapping is None else tuple(mapping)


def _shape_groups_of_some(docs: list[object]) -> tuple[dict[tuple, list[int]], list[int]]:
    """:func:`_shape_groups` of a batch where some documents are not events (or not JSON at all)."""
    groups: dict[tuple, list[int]] = {}
    slow: list[int] = []
    for i, doc in enumerate(docs):
        if type(doc) is dict:
            model, features, scores, segment = map(doc.get, _SHAPE_FIELDS)
            if (
                type(model) is str
                and type(features) is dict
                and (scores is None or type(scores) is dict)
                and (segment is None or type(segment) is dict)
            ):
                groups.setdefault((model, tuple(features), _names(scores), _names(segment)), []).append(i)
                continue
        slow.append(i)
    return groups, slow


# -- one shape group -----------------------------------------------------------------------------------


class _Rows(Exception):
    """Raised by a column check: these rows (positions in the group) need the per-event path."""

    def __init__(self, rows: Collection[int]) -> None:
        super().__init__(f"{len(rows)} rows")
        self.rows = set(rows)


def _gather(
    model: str,
    shape: list,
    rows: list[int],
    docs: list[object],
    messages: Sequence[RawMessage],
    declared: frozenset[str],
    fetched: dict[str, list],
    strings_fit: bool,
) -> tuple[Part | None, set[int]]:
    """The group's part, and the positions of the rows that need the per-event path (not in the part).

    Every column is checked before any row is given up, so one pass finds
    them all; the part is then cut from the columns already read. ``None``
    for the part means: gather the rest again. ``fetched`` holds fields
    already read from every document of the batch (see :func:`_shape_groups`):
    the group's own when it is the whole batch. ``strings_fit``: no string of
    the batch can be over :data:`MAX_STRING_VALUE_CHARS` (its messages are too short).
    """
    names, classes, segment_keys = shape
    if not _group_is_valid(model, names, classes, segment_keys):
        return None, set(range(len(rows)))
    whole = len(rows) == len(docs)
    batch_wide = fetched if whole else {}
    group = docs if whole else [docs[i] for i in rows]
    group_messages = list(messages) if whole else [messages[i] for i in rows]
    bad: set[int] = set()

    def check(gather: Callable, *columns: Sequence, **options: object) -> object:
        try:
            return gather(*columns, **options)
        except _Rows as wrong:
            bad.update(wrong.rows)
            return _Failed(gather, columns, options)

    def values_of(name: str) -> list:
        values = batch_wide.get(name)
        return list(map(dict.get, group, repeat(name))) if values is None else values

    columns = [
        check(_ids, values_of("event_id")),
        check(_versions, values_of("model_version")),
        check(_timestamps, values_of("timestamp"), group_messages),
        check(_signal, values_of("prediction"), strings_fit=strings_fit),
        check(_signal, values_of("label"), strings_fit=strings_fit),
        check(_latency, values_of("latency_ms")),
        *(
            check(_signal, values, numbers_only=name in declared, strings_fit=strings_fit)
            for name, values in zip(names, _columns(values_of("features")))
        ),
        check(_scores, values_of("scores")) if classes else None,
        *(check(_segment, values) for values in (_columns(values_of("segment")) if segment_keys else ())),
    ]
    if bad:
        keep = [k for k in range(len(rows)) if k not in bad]
        try:
            columns = [_kept(column, keep, np.array(keep)) for column in columns] if keep else None
        except _Rows:  # the minority kind of a column changed with the rows dropped: start over
            columns = None
        if columns is None:
            return None, bad
        rows = [rows[k] for k in keep]
        group_messages = [group_messages[k] for k in keep]
    event_ids, versions, timestamp, prediction, label, latency = columns[:6]
    features = columns[6 : 6 + len(names)]
    scores = columns[6 + len(names)]
    segments = columns[7 + len(names) :]

    part = Part(rows, group_messages, event_ids, versions, timestamp)
    position = 0
    for name, column in zip(names, features):
        _add_signal(part, (name, Kind.DATA_DRIFT), position, column)
        position += 1
    _add_signal(part, ("prediction", Kind.PREDICTION_DRIFT), position, prediction)
    position += 1
    if classes:
        shown = classes[: 1 if len(classes) == 2 else MAX_SCORE_CLASSES]
        hidden = ~np.isnan(prediction) if isinstance(prediction, np.ndarray) else None
        if hidden is None or not hidden.all():  # else a numeric prediction restates the scores in every row
            for cls, values in zip(shown, _columns(scores)):
                column = np.fromiter(values, np.float64, len(values))
                if hidden is not None:
                    column = np.where(hidden, _NAN, column)
                _add_signal(part, (f"score:{cls}", Kind.PREDICTION_DRIFT), position, column)
                position += 1
        else:
            position += len(shown)
    _add_signal(part, ("label", Kind.LABEL_DRIFT), position, label)
    _add_signal(part, ("latency_ms", Kind.LATENCY_DRIFT), position + 1, latency)
    for k, (key, column) in enumerate(zip(segment_keys or (), segments)):
        _add_segment(part, key, _SEGMENT_POSITION + k, column)
    return part, bad


class _Failed:
    """A column check that gave up on some rows: run again on the rows that remain."""

    __slots__ = ("check", "columns", "options")

    def __init__(self, check: Callable, columns: tuple, options: dict) -> None:
        self.check, self.columns, self.options = check, columns, options


def _kept(column: object, keep: list[int], keep_index: np.ndarray) -> object:
    """A checked column restricted to the rows ``keep`` (checking it again if it failed)."""
    if column is None:
        return None
    if isinstance(column, np.ndarray):
        return column[keep_index]
    if isinstance(column, _Failed):
        return column.check(*(list(map(values.__getitem__, keep)) for values in column.columns), **column.options)
    return list(map(column.__getitem__, keep))


def _columns(mappings: list[dict]) -> list[tuple]:
    """Mappings of the same keys in the same order (one group's features, say) as one tuple of values per key.

    Rows first, then columns: reading the mappings one after the other is
    kinder to the cache than advancing thousands of iterators in turn.
    """
    return list(zip(*map(tuple, map(dict.values, mappings))))


def _group_is_valid(model: str, names: tuple, classes: tuple | None, segment_keys: tuple | None) -> bool:
    """The checks that hold for every row of a group alike: the model name and the names of things."""
    return (
        0 < len(model) <= MAX_ID_CHARS
        and len(names) <= MAX_FEATURES
        and _short(names)
        and (classes is None or (len(classes) <= MAX_SCORES and _short(classes)))
        and (segment_keys is None or (len(segment_keys) <= MAX_SEGMENT_ENTRIES and _short(segment_keys)))
    )


def _short(names: tuple) -> bool:
    return not names or max(map(len, names)) <= MAX_NAME_CHARS


def _rows_where(values: list, wrong: Callable[[object], bool]) -> _Rows:
    return _Rows([k for k, value in enumerate(values) if wrong(value)])


# Column checks: each returns the column as the per-event path would normalise it, or raises
# ``_Rows`` naming the rows it can't vouch for (which then take the per-event path).


def _ids(values: list) -> list[str]:
    if set(map(type, values)) == {str}:
        lengths = list(map(len, values))
        if min(lengths) > 0 and max(lengths) <= MAX_ID_CHARS:
            return values
    raise _rows_where(values, lambda v: type(v) is not str or not 0 < len(v) <= MAX_ID_CHARS)


def _versions(values: list) -> list[str | None]:
    kinds = set(map(type, values))
    if kinds <= {str, NoneType, int, float}:
        if int in kinds or float in kinds:
            values = [v if v is None or type(v) is str else str(v) for v in values]
        if max(map(len, filter(None, values)), default=0) <= MAX_ID_CHARS:
            return values
    raise _rows_where(
        values, lambda v: v is not None and (type(v) not in (str, int, float) or len(str(v)) > MAX_ID_CHARS)
    )


def _timestamps(values: list, messages: list[RawMessage]) -> np.ndarray:
    """Epoch seconds; a timestamp that is not a number (a date string, or none) is read as the per-event path reads it."""
    seconds = _numbers(values)
    if seconds is None:
        values = list(values)
        bad = []
        for k, value in enumerate(values):
            if type(value) is not float and type(value) is not int:
                try:
                    values[k] = _timestamp(value, messages[k].timestamp_ms)
                except _Invalid:
                    bad.append(k)
        if bad:
            raise _Rows(bad)
        seconds = np.array(values, dtype=np.float64)
    wrong = (seconds < 0) | (seconds >= MAX_EPOCH_SECONDS)  # NaN (no time known) is neither
    if wrong.any():
        raise _Rows(np.flatnonzero(wrong).tolist())
    return seconds


def _signal(values: Sequence, numbers_only: bool = False, strings_fit: bool = False) -> np.ndarray | list[str | None] | None:
    """A feature, the prediction or the label: floats (NaN = missing), strings (None = missing) or ``None`` if all missing."""
    numbers = _numbers(values)
    if numbers is not None:
        return numbers
    kinds = set(map(type, values))
    if kinds <= _NUMBERS:
        if kinds == {NoneType}:
            return None
        return np.fromiter(values, np.float64, len(values))  # None is NaN; finite: orjson rejects NaN, Infinity and 1e400
    if kinds <= _CATEGORIES and not numbers_only:
        if bool in kinds:
            values = [("true" if v else "false") if type(v) is bool else v for v in values]
        if strings_fit or max(map(len, filter(None, values)), default=0) <= MAX_STRING_VALUE_CHARS:
            return values
        raise _rows_where(values, lambda v: v is not None and len(v) > MAX_STRING_VALUE_CHARS)
    # A column of two kinds (or of invalid values): the rows of the minority kind take the other path.
    types = list(map(type, values))
    numbers = numbers_only or types.count(float) + types.count(int) >= types.count(str) + types.count(bool)
    kept = _NUMBERS if numbers else _CATEGORIES
    raise _Rows([k for k, kind in enumerate(types) if kind not in kept])


def _numbers(values: Sequence) -> np.ndarray | None:
    """The column as float64 if every value is a number (float or int), else ``None``: the usual column, checked in C.

    ``struct`` packs floats and ints (converted as ``float()`` converts them)
    and refuses the other JSON values (str, None, lists, objects), all but
    bools, which Python counts as ints. A bool could only have become 0.0 or
    1.0, so only the rows holding those values are searched for one. This
    spares a pass of ``type()`` over the column, a third of its cost.
    """
    column = np.empty(len(values), np.float64)
    try:
        struct.pack_into(f"{len(values)}d", column, 0, *values)
    except struct.error:
        return None
    maybe_bool = np.flatnonzero((column == 0.0) | (column == 1.0)).tolist()
    if maybe_bool and bool in set(map(type, map(values.__getitem__, maybe_bool))):
        return None
    return column


def _scores(values: list[dict]) -> list[dict]:
    """The score objects, once every score is a number (their columns are cut only if shown)."""
    if set(map(type, chain.from_iterable(map(dict.values, values)))) <= _SCORE_TYPES:
        return values
    raise _rows_where(values, lambda scores: not set(map(type, scores.values())) <= _SCORE_TYPES)


_SCORE_TYPES = frozenset({float, int})


def _latency(values: list) -> np.ndarray | None:
    milliseconds = _numbers(values)
    if milliseconds is None:
        kinds = set(map(type, values))
        if not kinds <= _NUMBERS:
            raise _rows_where(values, lambda v: type(v) not in _NUMBERS)
        if kinds == {NoneType}:
            return None
        milliseconds = np.array(values, dtype=np.float64)
    negative = milliseconds < 0
    if negative.any():
        raise _Rows(np.flatnonzero(negative).tolist())
    return milliseconds


def _segment(values: list) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= _SEGMENT_VALUES:
        if kinds != {str}:
            values = [v if type(v) is str else ("true" if v else "false") if type(v) is bool else str(v) for v in values]
        if max(map(len, values)) <= MAX_ID_CHARS:
            return values
    raise _rows_where(values, lambda v: type(v) not in _SEGMENT_VALUES or (type(v) is str and len(v) > MAX_ID_CHARS))


def _add_signal(part: Part, signal: tuple[str, str], position: int, column: np.ndarray | list | None) -> None:
    if column is None:
        return
    if isinstance(column, np.ndarray):
        present = ~np.isnan(column)
        if present[0]:
            part.numeric[signal] = column
            part.numeric_first[signal] = (0, position)
        elif present.any():
            part.numeric[signal] = column
            part.numeric_first[signal] = (int(present.argmax()), position)
        return
    first = _first_rows(column)
    if first:
        part.categorical[signal] = column
        part.categorical_first[signal] = (min(first.values()), position)
        _note_strings(part.string_first, first, position)


def _add_segment(part: Part, key: str, position: int, column: list[str]) -> None:
    part.segments[key] = column
    part.segment_first[key] = (0, position)
    _note_strings(part.string_first, _first_rows(column), position)


def _first_rows(column: Sequence[str | None]) -> dict[str, int]:
    """Each string of the column and the first row it is in."""
    distinct = dict.fromkeys(column)
    distinct.pop(None, None)
    if len(distinct) <= _FEW_STRINGS:  # a category: each search stops at the value's first row
        return {value: column.index(value) for value in distinct}
    first = dict(zip(reversed(column), range(len(column) - 1, -1, -1)))
    first.pop(None, None)
    return first


#: Up to this many distinct strings in a column, finding each one's first row by search is the faster way.
_FEW_STRINGS = 64


def _note_strings(string_first: dict[str, First], rows: dict[str, int], position: int) -> None:
    for value, row in rows.items():
        seen = string_first.get(value)
        if seen is None or (row, position) < seen:
            string_first[value] = (row, position)


# -- events of the per-event path ----------------------------------------------------------------------


def events_part(indexed: list[tuple[int, Event]]) -> Part:
    """Decoded events as one part; positions follow :func:`signal_values`, as the per-event builder's do."""
    n = len(indexed)
    part = Part(
        rows=[i for i, _ in indexed],
        messages=[e.message for _, e in indexed],
        event_ids=[e.event_id for _, e in indexed],
        versions=[e.model_version for _, e in indexed],
        timestamp=np.array([e.timestamp for _, e in indexed], dtype=np.float64),
    )
    numeric: dict[tuple[str, str], list[float]] = {}
    for row, (_, event) in enumerate(indexed):
        for position, (name, kind, value) in enumerate(signal_values(event)):
            signal = (name, kind)
            if isinstance(value, float):
                column = numeric.get(signal)
                if column is None:
                    column = numeric[signal] = [_NAN] * n
                    part.numeric_first[signal] = (row, position)
                column[row] = value
            else:
                column = part.categorical.get(signal)
                if column is None:
                    column = part.categorical[signal] = [None] * n
                    part.categorical_first[signal] = (row, position)
                column[row] = value
                part.string_first.setdefault(value, (row, position))
        for k, (key, value) in enumerate(event.segment.items()):
            column = part.segments.get(key)
            if column is None:
                column = part.segments[key] = [None] * n
                part.segment_first[key] = (row, _SEGMENT_POSITION + k)
            column[row] = value
            part.string_first.setdefault(value, (row, _SEGMENT_POSITION + k))
    part.numeric = {signal: np.array(column, dtype=np.float64) for signal, column in numeric.items()}
    return part


# -- assembling a model's batch ----------------------------------------------------------------------


def assemble(model: str, parts: list[Part], progress: dict[tuple[str, int], int]) -> ModelBatch:
    """One model's parts as the batch the per-event builder makes of the same rows."""
    if len(parts) == 1:
        part = parts[0]
        order = None
        rank = [range(len(part.rows))]
    else:
        rows = np.concatenate([np.asarray(p.rows, dtype=np.int64) for p in parts])
        order = np.argsort(rows, kind="stable")
        final = np.empty(len(rows), dtype=np.int64)
        final[order] = np.arange(len(rows))
        starts = np.cumsum([0] + [len(p.rows) for p in parts])
        rank = [final[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]

    def ordered(attribute: str) -> list:
        """The parts' lists of ``attribute`` in batch order (a single part's own list: parts are not used again)."""
        if order is None:
            return getattr(parts[0], attribute)
        values = [v for p in parts for v in getattr(p, attribute)]
        return [values[k] for k in order.tolist()]

    messages = ordered("messages")
    n = len(messages)
    topics, topic_index = _codes(list(map(_TOPIC, messages)), np.int16)
    versions, version_code = _codes(ordered("versions"), np.int32)

    numeric_signals = _by_first(parts, rank, "numeric_first")
    categorical_signals = _by_first(parts, rank, "categorical_first")
    segment_keys = _by_first(parts, rank, "segment_first")
    strings = _by_first(parts, rank, "string_first")
    codes: dict[str | None, int] = {s: k for k, s in enumerate(strings)}
    codes[None] = -1

    numeric = _block(parts, "numeric", numeric_signals, n, np.nan, np.float64, lambda c: c)
    categorical = _block(parts, "categorical", categorical_signals, n, -1, np.int32, lambda c: _encode(c, codes))
    segments = _block(parts, "segments", segment_keys, n, -1, np.int32, lambda c: _encode(c, codes))
    timestamp = np.concatenate([p.timestamp for p in parts]) if order is not None else parts[0].timestamp
    if order is not None:
        numeric, categorical, segments, timestamp = numeric[order], categorical[order], segments[order], timestamp[order]
    return ModelBatch(
        model=model,
        topics=topics,
        topic_index=topic_index,
        partition=np.fromiter(map(_PARTITION, messages), np.int32, n),
        offset=np.fromiter(map(_OFFSET, messages), np.int64, n),
        timestamp=timestamp,
        event_ids=ordered("event_ids"),
        versions=versions,
        version_code=version_code,
        numeric_signals=numeric_signals,
        numeric=numeric,
        categorical_signals=categorical_signals,
        categorical=categorical,
        strings=strings,
        segment_keys=segment_keys,
        segments=segments,
        progress=dict(progress),
    )


_TOPIC, _PARTITION, _OFFSET = attrgetter("topic"), attrgetter("partition"), attrgetter("offset")


def _codes(values: list, dtype: type) -> tuple[list, np.ndarray]:
    """The distinct values in order of first appearance, and each value's index among them."""
    if values.count(values[0]) == len(values):  # one topic, one model version: the usual batch
        return [values[0]], np.zeros(len(values), dtype=dtype)
    distinct = list(dict.fromkeys(values))
    index = {value: k for k, value in enumerate(distinct)}
    return distinct, np.fromiter(map(index.__getitem__, values), dtype, len(values))


def _by_first(parts: list[Part], rank: list, attribute: str) -> list:
    """Keys of the parts' ``attribute`` maps, in order of first appearance in the batch."""
    first: dict = {}
    for part, final in zip(parts, rank):
        for key, (row, position) in getattr(part, attribute).items():
            at = (final[row], position)
            seen = first.get(key)
            if seen is None or at < seen:
                first[key] = at
    return sorted(first, key=first.__getitem__)


def _block(parts: list[Part], attribute: str, keys: list, n: int, missing: float, dtype: type, encode: Callable) -> np.ndarray:
    """The parts' columns of ``attribute`` stacked part after part (rows not yet in batch order)."""
    out = np.full((n, len(keys)), missing, dtype=dtype)
    index = {key: j for j, key in enumerate(keys)}
    start = 0
    for part in parts:
        stop = start + len(part.rows)
        for key, column in getattr(part, attribute).items():
            out[start:stop, index[key]] = encode(column)
        start = stop
    return out


def _encode(column: list[str | None], codes: dict[str | None, int]) -> np.ndarray:
    return np.fromiter(map(codes.__getitem__, column), np.int32, len(column))
