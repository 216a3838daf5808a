"""Categorical evaluations run together give what evaluating each window alone gives.

* ``stats.category_tests`` row by row against the ``two_sample`` functions
  (``window_statistics``), to the last bit, over rows built to reach every
  pooling branch;
* ``BlockCounts.extend`` against ``add`` / ``close_block``;
* streams advanced together (one ``CategoricalEvaluations`` per batch)
  against the pre-batching update loop (one block and one evaluation at a
  time, with the ``two_sample`` functions), on drifting streams: the same
  detections and the same state.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from stream_monitor.calibration import CHI_SQUARE_MIN_EXPECTED, PSI_MIN_EXPECTED, Calibration
from stream_monitor.core.alerts import Severity, iso_time
from stream_monitor.core.categorical_evaluations import CategoricalEvaluations, CategoryStatistics
from stream_monitor.core.settings import DetectionSettings
from stream_monitor.core.state_codec import encode_state
from stream_monitor.core.streams import CategoricalStream, CategoryCodebook, Detection
from stream_monitor.stats.category_tests import pool_rows
from stream_monitor.stats.two_sample import category_share_test, chi_square_2xk, pool_cells, psi, unseen_category_test
from stream_monitor.stats.windows import BlockCounts

SETTINGS = DetectionSettings()


def window_statistics(
    reference: np.ndarray, short: np.ndarray, long: np.ndarray, calibration: Calibration
) -> CategoryStatistics:
    """One window's statistics by the ``two_sample`` functions (what the batch computes per row)."""
    ref_cells, cur_cells, cell_codes = pool_cells(reference, long, CHI_SQUARE_MIN_EXPECTED, return_codes=True)
    chi = chi_square_2xk(ref_cells, cur_cells)
    share = category_share_test(ref_cells, cur_cells)
    code = int(cell_codes[share.cell]) if share.cell < cell_codes.size else -1
    psi_ref, psi_cur = pool_cells(reference, long, PSI_MIN_EXPECTED)
    psi_value = psi(psi_ref, psi_cur) if psi_ref.size > 1 else 0.0
    events = int(long.sum())
    unseen = unseen_category_test(reference, short)
    return CategoryStatistics(
        chi_square=float(chi.statistic),
        dof=int(chi.dof),
        chi_square_p_value=float(chi.p_value),
        events=events,
        category=code,
        category_reference_share=share.reference_share,
        category_current_share=share.current_share,
        category_p_value=share.p_value,
        psi=psi_value,
        psi_threshold=calibration.psi_threshold(events, int(psi_ref.size), categorical=True),
        unseen_share=unseen.share,
        unseen_p_value=unseen.p_value,
        short_events=int(short.sum()),
    )


def _random_rows(rng: np.random.Generator, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference (one per row), short and long window counts over ``width`` cells of every shape:
    a few dense categories, long tails, categories absent from the reference, one dominant category."""
    reference = np.zeros((rows, width), dtype=np.int64)
    short = np.zeros((rows, width), dtype=np.int64)
    long = np.zeros((rows, width), dtype=np.int64)
    for r in range(rows):
        kind = r % 5
        used = int(rng.integers(1, width + 1)) if kind else int(rng.integers(1, min(width, 5) + 1))
        shares = rng.dirichlet(np.full(used, [5.0, 0.3, 1.0, 0.1, 2.0][kind]))
        cells = rng.choice(width, size=used, replace=False)
        reference[r, cells] = rng.multinomial(int(rng.integers(200, 1500)), shares)
        drifted = shares.copy()
        if kind in (2, 3):
            drifted = rng.dirichlet(np.ones(used)) * 0.3 + shares * 0.7
        if kind == 4:
            # Mass moving to categories the reference never saw.
            unseen = np.setdiff1d(np.arange(width), cells)
            if unseen.size:
                cells = np.append(cells, unseen[: int(rng.integers(1, 3))])
                drifted = np.append(drifted * 0.9, np.full(cells.size - used, 0.1 / (cells.size - used)))
        blocks = [rng.multinomial(250, drifted / drifted.sum()) for _ in range(int(rng.integers(2, 9)))]
        for b in blocks:
            long[r, cells] += b
        for b in blocks[-2:]:
            short[r, cells] += b
    return reference, short, long


def _evaluate_rows(reference: np.ndarray, short: np.ndarray, long: np.ndarray, chunk: int = 7):
    evaluations = CategoricalEvaluations(SETTINGS)
    firsts = [evaluations.add(reference[i], short[i : i + chunk], long[i : i + chunk]) for i in range(0, len(short), chunk)]
    assert firsts == list(range(0, len(short), chunk))
    return evaluations.run()


@pytest.mark.parametrize("width", [3, 9, 65])
def test_batch_statistics_are_those_of_the_two_sample_functions_to_the_last_bit(width):
    rng = np.random.default_rng(width)
    reference, short, long = _random_rows(rng, 700, width)
    # One reference per chunk of 7 rows, as a stream files its windows.
    reference = np.repeat(reference[::7], 7, axis=0)[: len(short)]
    results = _evaluate_rows(reference, short, long)
    alone = [window_statistics(reference[r], short[r], long[r], SETTINGS.calibration) for r in range(len(short))]
    assert results == alone
    # The rows reached every branch: pooled cell, sparse cells merged into a
    # kept one, nothing to pool, categories unseen by the reference.
    pooled = pool_rows(reference, long, CHI_SQUARE_MIN_EXPECTED)
    if width > 3:
        assert pooled.included[:, -1].any() and (~pooled.included[:, -1] & (pooled.cells < (long > 0).sum(axis=1))).any()
    assert any(r.unseen_p_value < 1.0 for r in results) and any(r.unseen_p_value == 1.0 for r in results)
    assert any(r.dof == 0 for r in results) or width > 3


def test_pooling_decisions_on_the_threshold_are_those_of_pool_cells():
    """Sparse cells whose expected total lands on the threshold (30 events x 1/3 = 10, give or take
    a rounding) are pooled or merged exactly as ``pool_cells`` decides."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(300):
        ref = np.zeros(12, dtype=np.int64)
        cur = np.zeros(12, dtype=np.int64)
        ref[:3] = rng.integers(300, 400, size=3)
        cur[:3] = rng.integers(600, 800, size=3)
        # Sparse cells totalling 30 (or 29, 31) events, split at random.
        total = int(rng.integers(29, 32))
        cells = rng.integers(3, 12, size=total)
        side = rng.random(total) < 1 / 3
        np.add.at(ref, cells[side], 1)
        np.add.at(cur, cells[~side], 1)
        # Scale the windows so that n = m / 2 (the factor 1/3 of the defaults).
        deficit = 2 * int(ref.sum()) - int(cur.sum())
        if deficit > 0:
            cur[0] += deficit
        else:
            ref[0] += (-deficit + 1) // 2
            cur[0] += (-deficit) % 2
        rows.append((ref, cur))
    reference = np.array([r for r, _ in rows])
    current = np.array([c for _, c in rows])
    pooled = pool_rows(reference, current, CHI_SQUARE_MIN_EXPECTED)
    for row, (c, picked, ref_cells, cur_cells, codes) in [
        (int(row), group) for group in pooled.groups() for row in group[1]
    ]:
        i = int(np.flatnonzero(picked == row)[0])
        expected = pool_cells(reference[row], current[row], CHI_SQUARE_MIN_EXPECTED, return_codes=True)
        assert ref_cells[i].tolist() == expected[0].tolist()
        assert cur_cells[i].tolist() == expected[1].tolist()
        assert codes[i].tolist() == expected[2].tolist()
    assert pooled.included[:, -1].any() and not pooled.included[:, -1].all()


def test_pooled_chi_square_agrees_with_scipy():
    rng = np.random.default_rng(11)
    reference, short, long = _random_rows(rng, 60, 9)
    for r, result in enumerate(_evaluate_rows(reference, short, long, chunk=1)):
        ref_cells, cur_cells = pool_cells(reference[r], long[r], CHI_SQUARE_MIN_EXPECTED)
        assert result.chi_square == chi_square_2xk(ref_cells, cur_cells).statistic
        if ref_cells.size > 1:
            expected = stats.chi2_contingency(np.stack((ref_cells, cur_cells)), correction=False)
            assert result.chi_square == pytest.approx(expected.statistic, rel=1e-10)
            assert result.chi_square_p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


# --------------------------------------------------------------------------- block counts


def test_block_counts_extend_is_add_and_close_block_at_every_boundary():
    rng = np.random.default_rng(5)
    every, categories = 7, 6
    bulk, single = BlockCounts(3, categories), BlockCounts(3, categories)
    filled = 0
    for _ in range(200):
        codes = rng.integers(0, categories, size=int(rng.integers(0, 30)))
        room = every - filled % every
        before = single.rows()
        closed = bulk.extend(codes, room, every)
        expected_closed = []
        for code in codes.tolist():
            single.add(np.array([code]))
            filled += 1
            if filled % every == 0:
                single.close_block()
                expected_closed.append(single.counts(1))
        assert closed.tolist() == [c.tolist() for c in expected_closed]
        assert encode_state(bulk.to_state()) == encode_state(single.to_state())
        assert bulk._head == single._head
        if not len(codes):
            assert bulk.rows().tolist() == before.tolist()


def test_block_counts_extend_rejects_a_room_beyond_the_block():
    with pytest.raises(ValueError):
        BlockCounts(2, 3).extend(np.array([0, 1]), 0, 5)


# --------------------------------------------------------------------------- streams


def _legacy_update(stream: CategoricalStream, codes: np.ndarray, timestamps: np.ndarray) -> list[Detection]:
    """The update loop before batching: one block, one evaluation at a time, by the two_sample functions."""
    detections: list[Detection] = []
    i = 0 if stream.ready else stream.add_reference(codes)
    n, every = len(codes), stream.settings.evaluate_every
    while i < n:
        end = min(n, i + every - stream.seen % every)
        stream.blocks.add(codes[i:end])
        if stream.seen % every == 0:
            stream.block_starts.append(timestamps[i])
        stream.seen += end - i
        stream.last_timestamp = float(timestamps[end - 1])
        i = end
        if stream.seen % every == 0:
            stream.blocks.close_block()
            if stream.seen >= stream.settings.window_size:
                detections += _legacy_evaluate(stream, i - 1)
    return detections


def _legacy_window(stream: CategoricalStream) -> dict:
    starts = stream.block_starts.values()
    return {
        "events": min(stream.seen, stream.settings.window_size),
        "first_event_at": iso_time(float(starts[0])) if len(starts) else None,
        "last_event_at": iso_time(stream.last_timestamp),
    }


def _legacy_evaluate(stream: CategoricalStream, position: int) -> list[Detection]:
    settings, cal = stream.settings, stream.calibration
    ref = stream.reference_counts
    short = stream.blocks.counts(settings.window_size // settings.evaluate_every)
    st = window_statistics(ref, short, stream.blocks.counts(), cal)
    category = stream.codebook.name(st.category) if st.category >= 0 else "(rare categories pooled)"
    stream.scores = {"chi_square": st.chi_square, "psi": st.psi}
    half = cal.chi_square_p_value / 2.0
    tests = {
        "chi_square": {
            "statistic": st.chi_square, "dof": st.dof, "p_value": st.chi_square_p_value, "threshold": half,
            "events": st.events, "category": category,
            "category_reference_share": st.category_reference_share,
            "category_current_share": st.category_current_share, "category_p_value": st.category_p_value,
        },
        "psi": {"statistic": st.psi, "threshold": st.psi_threshold, "events": st.events},
        "new_category": {
            "share": st.unseen_share, "p_value": st.unseen_p_value,
            "threshold": cal.new_category_p_value, "events": int(short.sum()),
        },
    }
    if st.unseen_p_value < cal.new_category_p_value:
        detector, statistic, threshold, p_value = "new_category", st.unseen_share, cal.new_category_p_value, st.unseen_p_value
    elif st.chi_square_p_value < half or st.category_p_value < half:
        detector, statistic, threshold = "chi_square", st.chi_square, half
        p_value = float(min(st.chi_square_p_value, st.category_p_value))
    elif st.psi >= st.psi_threshold:
        detector, statistic, threshold, p_value = "psi", st.psi, st.psi_threshold, None
    else:
        stream._stable(settings.reference_size + stream.seen)
        return []
    critical = st.psi >= settings.thresholds.psi_critical or st.unseen_share >= settings.thresholds.new_category_critical
    return stream._gate(
        Detection(
            position=position, stream_position=settings.reference_size + stream.seen, detector=detector,
            severity=Severity.CRITICAL if critical else Severity.WARNING, statistic=statistic,
            threshold=threshold, p_value=p_value, tests=tests, reference=stream._shares(ref),
            current=stream._shares(short, extra=np.flatnonzero((ref == 0) & (short > 0))),
            window=_legacy_window(stream),
        )
    )


def _series(kind: int, size: int, categories: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary, a share shift, a new category taking off, or a long tail slowly reshuffled."""
    shares = rng.dirichlet(np.full(categories, 0.7))
    values = rng.choice(categories, size=size, p=shares)
    half = size // 2
    if kind == 1:
        moved = shares.copy()
        moved[0], moved[-1] = moved[-1], moved[0] + 0.0
        moved = 0.6 * moved + 0.4 * rng.dirichlet(np.ones(categories))
        values[half:] = rng.choice(categories, size=size - half, p=moved / moved.sum())
    elif kind == 2:
        late = rng.random(size - half) < 0.06
        values[half:][late] = categories  # never in the reference
    elif kind == 3:
        values = np.minimum(rng.zipf(1.6, size=size) - 1, categories + 3)
        values[half:] = np.minimum(rng.zipf(1.4, size=size - half) - 1, categories + 3)
    return values.astype(np.int32)


def _book() -> CategoryCodebook:
    book = CategoryCodebook(SETTINGS.max_categories)
    book.encode([f"c{i}" for i in range(20)])
    return book


def _asdicts(found: list[Detection]) -> list[dict]:
    return [dataclasses.asdict(d) for d in found]


def test_streams_evaluated_together_match_the_one_at_a_time_update_loop():
    rng = np.random.default_rng(29)
    count = 10
    book = _book()
    series = [_series(i % 4, int(rng.integers(4_000, 12_000)), int(rng.integers(3, 15)), rng) for i in range(count)]
    clocks = [np.arange(s.size, dtype=np.float64) * 0.25 + 3 * i for i, s in enumerate(series)]
    together = [CategoricalStream(SETTINGS, book) for _ in range(count)]
    legacy = [CategoricalStream(SETTINGS, book) for _ in range(count)]
    alone = [CategoricalStream(SETTINGS, book) for _ in range(count)]
    positions = [0] * count
    found = {name: [[] for _ in range(count)] for name in ("together", "legacy", "alone")}
    batches = 0
    while any(p < s.size for p, s in zip(positions, series)):
        evaluations = CategoricalEvaluations(SETTINGS)
        members = []
        for i in range(count):
            take = int(rng.integers(0, 1_600))
            if take == 0 or positions[i] >= series[i].size:
                continue
            cut = slice(positions[i], positions[i] + take)
            positions[i] = min(series[i].size, positions[i] + take)
            members.append((i, series[i][cut], clocks[i][cut]))
            together[i].advance(series[i][cut], clocks[i][cut], evaluations)
        for i, v, t in members:
            found["together"][i] += _asdicts(together[i].resolve(evaluations))
            found["legacy"][i] += _asdicts(_legacy_update(legacy[i], v, t))
            found["alone"][i] += _asdicts(alone[i].update(v, t))
            assert together[i].scores == legacy[i].scores and together[i].drifting == legacy[i].drifting
        batches += 1
    assert batches > 10
    detectors = {d["detector"] for f in found["legacy"] for d in f}
    assert {"chi_square", "new_category"} <= detectors
    assert found["together"] == found["legacy"] == found["alone"]
    for a, b, c in zip(together, legacy, alone):
        assert encode_state(a.to_state()) == encode_state(b.to_state()) == encode_state(c.to_state())


def test_detections_do_not_depend_on_batching_or_a_checkpoint():
    rng = np.random.default_rng(31)
    book = _book()
    values = _series(1, 9_000, 8, rng)
    clock = np.arange(values.size, dtype=np.float64)
    whole = CategoricalStream(SETTINGS, book)
    expected = [(d.detector, d.position, d.stream_position, d.window) for d in whole.update(values, clock)]
    assert expected
    stream = CategoricalStream(SETTINGS, book)
    found, start = [], 0
    for size in rng.integers(1, 700, size=values.size).tolist():
        if start >= values.size:
            break
        if start > 3_000 and stream.seen % 250 and not found:
            stream = CategoricalStream.from_state(SETTINGS, book, stream.to_state())  # mid-block checkpoint
        part = slice(start, start + size)
        found += [(d.detector, start + d.position, d.stream_position, d.window) for d in stream.update(values[part], clock[part])]
        start += size
    assert found == expected
    assert encode_state(stream.to_state()) == encode_state(whole.to_state())
