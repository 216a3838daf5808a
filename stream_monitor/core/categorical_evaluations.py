"""The window evaluations of a batch's categorical streams, run together.

As with numeric streams (``core.evaluations``), a categorical stream decides
when its windows are due while it takes in a batch, files each due window's
category counts here (reference, short window, long window: one row each),
and reads the statistics back in :meth:`CategoricalStream.resolve` to reach
its verdicts in order. All rows are tested at once by ``stats.category_tests``;
the statistics of a row depend on its counts alone, and are those the
``two_sample`` functions give one window at a time, to the last bit (the
unit tests hold them to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_monitor.calibration import CHI_SQUARE_MIN_EXPECTED, PSI_MIN_EXPECTED
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.stats.category_tests import chi_square_rows, pool_rows, share_test_rows, unseen_rows
from stream_monitor.stats.window_tests import psi_rows

__all__ = ["CategoryStatistics", "CategoricalEvaluations"]


@dataclass(frozen=True, slots=True)
class CategoryStatistics:
    """The window tests of one categorical evaluation."""

    #: Pearson chi-square over the long window's pooled cells.
    chi_square: float
    dof: int
    chi_square_p_value: float
    #: Values in the long window.
    events: int
    #: Code of the cell whose share moved most (-1: the pooled rare categories), its shares, its p-value.
    category: int
    category_reference_share: float
    category_current_share: float
    category_p_value: float
    psi: float
    psi_threshold: float
    #: Share of the short window in categories the reference never saw, and its p-value.
    unseen_share: float
    unseen_p_value: float
    #: Values in the short window.
    short_events: int


class CategoricalEvaluations:
    """Collects the due windows of categorical streams during a batch; :meth:`run` tests them all."""

    def __init__(self, settings: DetectionSettings) -> None:
        self.calibration = settings.calibration
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows = 0
        self.results: list[CategoryStatistics] | None = None

    def add(self, reference: np.ndarray, short: np.ndarray, long: np.ndarray) -> int:
        """File windows of one stream: its reference counts (K,), short and long window counts (rows, K).

        Returns the first row's index.
        """
        first = self.rows
        self._chunks.append((reference, short, long))
        self.rows += short.shape[0]
        self.results = None
        return first

    def run(self) -> list[CategoryStatistics]:
        """Test every filed window (once; later calls return the same results)."""
        if self.results is not None:
            return self.results
        results: list[CategoryStatistics | None] = [None] * self.rows
        # Codebooks restored from older checkpoints may differ in size: one group per width.
        by_width: dict[int, list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]] = {}
        first = 0
        for chunk in self._chunks:
            by_width.setdefault(chunk[0].size, []).append((first, chunk))
            first += chunk[1].shape[0]
        for chunks in by_width.values():
            rows = np.concatenate([np.arange(start, start + c[1].shape[0]) for start, c in chunks])
            reference = np.concatenate([np.broadcast_to(c[0], c[1].shape) for _, c in chunks]).astype(np.int64)
            short = np.concatenate([c[1] for _, c in chunks]).astype(np.int64)
            long = np.concatenate([c[2] for _, c in chunks]).astype(np.int64)
            for row, statistics in zip(rows.tolist(), self._run(reference, short, long)):
                results[row] = statistics
        self.results = results  # type: ignore[assignment]
        return self.results  # type: ignore[return-value]

    def _run(self, reference: np.ndarray, short: np.ndarray, long: np.ndarray) -> list[CategoryStatistics]:
        rows = reference.shape[0]
        events = long.sum(axis=1).tolist()
        chi = [(0.0, 0, 1.0)] * rows
        share = [(0, 0.0, 0.0, 1.0)] * rows
        for c, picked, ref_cells, cur_cells, codes in pool_rows(reference, long, CHI_SQUARE_MIN_EXPECTED).groups():
            statistics, dof, p_values = chi_square_rows(ref_cells, cur_cells)
            shares = share_test_rows(ref_cells, cur_cells)
            for i, (row, statistic, p_value, (cell, reference_share, current_share, share_p)) in enumerate(
                zip(picked.tolist(), statistics.tolist(), p_values.tolist(), shares)
            ):
                chi[row] = (statistic, dof, p_value)
                share[row] = (int(codes[i, cell]), reference_share, current_share, share_p)
        psi_values = [0.0] * rows
        psi_thresholds = [0.0] * rows
        cal = self.calibration
        for c, picked, ref_cells, cur_cells, _ in pool_rows(reference, long, PSI_MIN_EXPECTED).groups():
            for row, value in zip(picked.tolist(), psi_rows(ref_cells, cur_cells).tolist()):
                psi_values[row] = value
                psi_thresholds[row] = cal.psi_threshold(events[row], c, categorical=True)
        unseen = unseen_rows(reference, short)
        short_events = short.sum(axis=1).tolist()
        return [
            CategoryStatistics(
                chi_square=chi[row][0],
                dof=chi[row][1],
                chi_square_p_value=chi[row][2],
                events=events[row],
                category=share[row][0],
                category_reference_share=share[row][1],
                category_current_share=share[row][2],
                category_p_value=share[row][3],
                psi=psi_values[row],
                psi_threshold=psi_thresholds[row],
                unseen_share=unseen[row][1],
                unseen_p_value=unseen[row][2],
                short_events=short_events[row],
            )
            for row in range(rows)
        ]
