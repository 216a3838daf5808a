"""The window evaluations of a batch, run together.

A numeric stream decides *when* its window is due (every ``evaluate_every``
of its values) while it takes in a batch, but computing the tests one window
at a time would cost a dozen numpy calls per window, hundreds of windows per
batch. So a stream only files its due windows here (values and ranks, one row
each), the whole batch's rows are tested at once (``stats.window_tests``),
and each stream then reads its rows' statistics back, in order, to reach its
verdicts. The statistics of a window depend on that window and its reference
only, never on the other rows, so the verdicts are those of evaluating each
window alone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from stream_monitor.calibration import PSI_MIN_EXPECTED
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.stats.reference import NumericReference
from stream_monitor.stats.category_tests import pool_rows
from stream_monitor.stats.two_sample import ks_p_value
from stream_monitor.stats.window_tests import bin_counts_from_sorted_ranks, ks_from_sorted_ranks, psi_rows, wasserstein_rows

__all__ = ["WindowStatistics", "NumericEvaluations"]


@dataclass(slots=True)
class WindowStatistics:
    """Per filed row: the window tests' statistics, and the window itself (for alert summaries)."""

    windows: np.ndarray
    ks: np.ndarray
    ks_p_value: np.ndarray
    psi: np.ndarray
    psi_threshold: np.ndarray
    #: The references filed, and the one of each row.
    references: list[NumericReference]
    reference_of_row: np.ndarray

    def wasserstein(self, row: int) -> float:
        """Wasserstein distance of a row's window to its reference, in units of the reference's spread.

        Worked out on demand: no verdict depends on it, only the severity of
        a detection and the latest scores of a stream, so most windows never
        need it.
        """
        reference = self.references[int(self.reference_of_row[row])]
        distance = wasserstein_rows(reference.sorted_values[None, :], np.sort(self.windows[row])[None, :])
        return float(distance[0]) / reference.scale


class NumericEvaluations:
    """Collects the due windows of numeric streams during a batch; :meth:`run` tests them all."""

    def __init__(self, settings: DetectionSettings) -> None:
        self.calibration = settings.calibration
        self._windows: list[np.ndarray] = []
        self._below: list[np.ndarray] = []
        self._at_or_below: list[np.ndarray] = []
        #: The distinct references filed (a stream files up to one window per
        #: ``evaluate_every`` values of the batch), and which one each chunk uses.
        self._distinct: list[NumericReference] = []
        self._index: dict[int, int] = {}
        self._reference_of_chunk: list[int] = []
        self.rows = 0
        self.results: WindowStatistics | None = None

    def add(self, reference: NumericReference, windows: np.ndarray, below: np.ndarray, at_or_below: np.ndarray) -> int:
        """File windows (rows, m) of one stream with their ranks; returns the first row's index."""
        first = self.rows
        self.results = None  # filed after a run: tested again on the next
        if id(reference) not in self._index:
            self._index[id(reference)] = len(self._distinct)
            self._distinct.append(reference)
        self._reference_of_chunk.append(self._index[id(reference)])
        self._windows.append(windows)
        self._below.append(below)
        self._at_or_below.append(at_or_below)
        self.rows += windows.shape[0]
        return first

    def run(self) -> WindowStatistics:
        """Test every filed window (once; later calls return the same results)."""
        if self.results is not None:
            return self.results
        rows = self.rows
        m = self._windows[0].shape[1] if rows else 0
        windows = np.concatenate(self._windows) if rows else np.empty((0, 0))
        distinct = self._distinct
        reference_of_row = np.repeat(np.asarray(self._reference_of_chunk, dtype=np.intp), [w.shape[0] for w in self._windows])
        out = WindowStatistics(
            windows=windows,
            ks=np.empty(rows),
            ks_p_value=np.empty(rows),
            psi=np.empty(rows),
            psi_threshold=np.empty(rows),
            references=distinct,
            reference_of_row=reference_of_row,
        )
        if rows:
            below = np.concatenate(self._below)
            at_or_below = np.concatenate(self._at_or_below)
            sizes = np.array([r.size for r in distinct])[reference_of_row]
            for n in np.unique(sizes).tolist():
                picked = np.flatnonzero(sizes == n)
                self._run_size(out, picked, reference_of_row[picked], below[picked], at_or_below[picked], n, m)
        self.results = out
        return out

    def _run_size(
        self,
        out: WindowStatistics,
        picked: np.ndarray,
        reference_of_row: np.ndarray,
        below: np.ndarray,
        at_or_below: np.ndarray,
        n: int,
        m: int,
    ) -> None:
        """The rows whose references hold n values."""
        distinct = self._distinct
        # Sorted ranks carry everything KS and PSI need (see stats.window_tests).
        below_sorted, at_or_below_sorted = np.sort(below, axis=1), np.sort(at_or_below, axis=1)
        tied = np.array([r.has_ties for r in distinct])[reference_of_row]
        ks = np.empty(picked.size)
        if not tied.all():
            free = ~tied
            ks[free] = ks_from_sorted_ranks(below_sorted[free], at_or_below_sorted[free], n)
        if tied.any():
            # Ties in the reference: the runs of equal values, as rank tables.
            tied_references, table_of_row = np.unique(reference_of_row[tied], return_inverse=True)
            end_at, start_before, slots = _RUN_TABLES.tables([distinct[r] for r in tied_references.tolist()], n)
            ks[tied] = ks_from_sorted_ranks(below_sorted[tied], at_or_below_sorted[tied], n, end_at, start_before, slots[table_of_row])
        out.ks[picked] = ks
        out.ks_p_value[picked] = [_ks_p_value(d, n, m) for d in ks.tolist()]

        edges = np.array([r.edge_starts.size for r in distinct])[reference_of_row]
        for count in np.unique(edges).tolist():
            group = np.flatnonzero(edges == count)
            group_refs = reference_of_row[group]
            by_reference = np.zeros((len(distinct), count), dtype=np.intp)
            reference_counts = np.zeros((len(distinct), count + 1), dtype=np.int64)
            for r in np.unique(group_refs).tolist():
                by_reference[r] = distinct[r].edge_starts
                reference_counts[r] = distinct[r].counts
            current = bin_counts_from_sorted_ranks(at_or_below_sorted[group], by_reference[group_refs], n)
            self._psi(out, picked[group], reference_counts[group_refs], current, m)

    def _psi(self, out: WindowStatistics, picked: np.ndarray, reference: np.ndarray, current: np.ndarray, m: int) -> None:
        """PSI over the reference's bins, sparse bins pooled as ``pool_cells`` pools them (as categorical windows are)."""
        for cells, rows, ref_cells, cur_cells, _ in pool_rows(reference, current, PSI_MIN_EXPECTED).groups():
            out.psi[picked[rows]] = psi_rows(ref_cells, cur_cells)
            out.psi_threshold[picked[rows]] = self.calibration.psi_threshold(m, cells, categorical=False)


def _run_tables(reference: NumericReference, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per rank, the end of the run of equal reference values starting there, and the start of the one ending there."""
    end_at = np.full(n + 1, n + 1, dtype=np.int64)
    starts, ends = reference.runs()
    end_at[starts] = ends
    start_before = np.full(n + 1, -1, dtype=np.int64)
    start_before[ends] = starts
    return end_at, start_before


class _RunTableCache:
    """Rank tables of tied references, kept for the ``capacity`` references used most recently.

    Most numeric features repeat values (rounded floats, counts, flags), so
    most references have ties, and every evaluation of their windows needs
    both tables. Worked out at each evaluation they cost about as much as
    the KS statistic itself; kept in every reference they would cost 8 KB a stream
    for as long as it lives. So the tables of the references evaluated
    lately are kept here, one row per reference in one array per reference
    size, and the KS of a batch reads them in place; memory is bounded by
    ``capacity`` rows whatever the number of streams. A reference is held
    while its tables are, so its id cannot be reused meanwhile.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._by_size: dict[int, _SizedRunTables] = {}

    def tables(self, references: list[NumericReference], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(run ends, run starts, slot of each reference): row ``slot[i]`` of the tables is reference i's."""
        if len(references) > self.capacity:
            # More than fit at once: one table per reference, for this call only.
            pairs = [_run_tables(r, n) for r in references]
            return np.stack([e for e, _ in pairs]), np.stack([s for _, s in pairs]), np.arange(len(references))
        tables = self._by_size.get(n)
        if tables is None:
            tables = self._by_size[n] = _SizedRunTables(n)
        slots = np.empty(len(references), dtype=np.intp)
        wanted = {id(r) for r in references}
        for i, reference in enumerate(references):
            slots[i] = tables.slot(reference, wanted, self.capacity)
        return tables.end_at, tables.start_before, slots


class _SizedRunTables:
    """The cached tables of references of one size: row ``slot_of[id(reference)]`` is that reference's."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.end_at = np.empty((0, n + 1), dtype=np.int32)
        self.start_before = np.empty((0, n + 1), dtype=np.int32)
        #: Least recently used first. Slots 0..len - 1 are the ones in use.
        self.slot_of: OrderedDict[int, int] = OrderedDict()
        self.held: list[NumericReference] = []

    def slot(self, reference: NumericReference, wanted: set[int], capacity: int) -> int:
        key = id(reference)
        slot = self.slot_of.get(key)
        if slot is not None:
            self.slot_of.move_to_end(key)
            return slot
        used = len(self.slot_of)
        if used < self.end_at.shape[0]:
            slot = used
            self.held.append(reference)
        elif used < capacity:
            self._grow(min(capacity, max(64, 2 * used)))
            slot = used
            self.held.append(reference)
        else:
            # Full: the least recently used reference not needed by this call gives up its row.
            victim = next(k for k in self.slot_of if k not in wanted)
            slot = self.slot_of.pop(victim)
            self.held[slot] = reference
        self.end_at[slot], self.start_before[slot] = _run_tables(reference, self.n)
        self.slot_of[key] = slot
        return slot

    def _grow(self, rows: int) -> None:
        for name in ("end_at", "start_before"):
            old = getattr(self, name)
            grown = np.empty((rows, self.n + 1), dtype=np.int32)
            grown[: old.shape[0]] = old
            setattr(self, name, grown)


#: Bounded: 4,096 references of 1,000 values take 32 MB.
_RUN_TABLES = _RunTableCache(4096)


_KS_P_VALUES: dict[tuple[float, int, int], float] = {}


def _ks_p_value(statistic: float, n: int, m: int) -> float:
    """Asymptotic KS p-value with Stephens' correction, as ``two_sample.compare_windows``.

    The statistic is a multiple of 1 / lcm(n, m), so few distinct values
    recur: they are remembered (bounded, cleared when full).
    """
    key = (statistic, n, m)
    p = _KS_P_VALUES.get(key)
    if p is None:
        if len(_KS_P_VALUES) >= 65_536:
            _KS_P_VALUES.clear()
        p = _KS_P_VALUES[key] = ks_p_value(statistic, n, m)
    return p
