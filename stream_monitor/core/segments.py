"""Bounded segment cardinality: which values of a segment key get their own streams.

A segment key like ``region`` has a handful of values; one like ``customer_id``
has millions. Every value that gets its own streams costs a reference and a
window per feature, so each key admits at most ``max_values`` values and pools
the rest as ``__other__``. Slots go to values with volume: a value is admitted
once a bounded heavy-hitter counter (Space-Saving) has seen it at least
``min_events`` times, so a burst of one-off ids early on can't take the slots.
Once every slot is taken, counting stops and the cost per event is one dict
lookup.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

OTHER = "__other__"


class SegmentSlots:
    def __init__(self, key: str, max_values: int, min_events: int) -> None:
        self.key = key
        self.max_values = max_values
        self.min_events = min_events
        #: Admitted values, in admission order; their index is their slot.
        self.admitted: dict[str, int] = {}
        #: Space-Saving counters of candidates: value -> [count, overestimate].
        self._candidates: dict[str, list[int]] = {}
        self._capacity = 4 * max_values
        #: Events of this key seen so far, and the length of the discovery phase.
        self.seen = 0
        self.discovery_events = max_values * min_events

    @property
    def full(self) -> bool:
        return len(self.admitted) >= self.max_values

    def assign(self, values: Iterable[str | None]) -> list[str | None]:
        """Map raw segment values to the value whose streams they feed.

        ``None`` means no segment stream of this key: the value is missing, or
        it is still earning a slot during the discovery phase.
        """
        admitted = self.admitted
        out: list[str | None] = []
        for value in values:
            self.seen += 1
            if value is None:
                out.append(None)
            elif value in admitted:
                out.append(value)
            elif self.full:
                out.append(OTHER)
            elif self._count(value):
                out.append(value)
            else:
                # During discovery a value still earning its slot feeds the
                # aggregate only, so a low-cardinality key's first events don't
                # leave a stray ``__other__`` behind; after it, the pool.
                out.append(OTHER if self.seen > self.discovery_events else None)
        return out

    def group_codes(self, codes: np.ndarray, strings: list[str]) -> list[tuple[str, np.ndarray]]:
        """:meth:`assign` for a column of string codes (-1: missing), as rows per segment value.

        Values in order of their first row, rows ascending. Once every slot
        is taken the mapping no longer changes, so it is worked out once per
        distinct code instead of once per event.
        """
        if not self.full:
            rows: dict[str, list[int]] = {}
            for row, value in enumerate(self.assign([strings[c] if c >= 0 else None for c in codes.tolist()])):
                if value is not None:
                    rows.setdefault(value, []).append(row)
            return [(value, np.asarray(members, dtype=np.intp)) for value, members in rows.items()]
        self.seen += len(codes)
        distinct, inverse = np.unique(codes, return_inverse=True)
        targets: dict[str | None, int] = {}
        target_of_code = np.array(
            [targets.setdefault(None if c < 0 else (strings[c] if strings[c] in self.admitted else OTHER), len(targets))
             for c in distinct.tolist()],
            dtype=np.intp,
        )
        names = list(targets)
        row_target = target_of_code[inverse.ravel()]
        order = np.argsort(row_target, kind="stable")
        bounds = np.flatnonzero(np.diff(row_target[order])) + 1
        groups = [(names[int(row_target[part[0]])], part) for part in np.split(order, bounds) if part.size]
        groups.sort(key=lambda group: int(group[1][0]))
        return [(name, rows) for name, rows in groups if name is not None]

    def _count(self, value: str) -> bool:
        """Count one occurrence; True if this occurrence admits the value."""
        counters = self._candidates
        entry = counters.get(value)
        if entry is None:
            if len(counters) >= self._capacity:
                victim = min(counters, key=lambda v: counters[v][0])
                floor = counters.pop(victim)[0]
                entry = counters[value] = [floor, floor]
            else:
                entry = counters[value] = [0, 0]
        entry[0] += 1
        guaranteed = entry[0] - entry[1]
        if guaranteed >= self.min_events:
            del counters[value]
            self.admitted[value] = len(self.admitted)
            if self.full:
                self._candidates = {}
            return True
        return False

    def to_state(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "max_values": self.max_values,
            "min_events": self.min_events,
            "seen": self.seen,
            "admitted": list(self.admitted),
            "candidates": {v: list(c) for v, c in self._candidates.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SegmentSlots":
        slots = cls(state["key"], state["max_values"], state["min_events"])
        slots.seen = state["seen"]
        slots.admitted = {v: i for i, v in enumerate(state["admitted"])}
        slots._candidates = {v: list(c) for v, c in state["candidates"].items()}
        return slots
