"""The end-to-end benchmark's progress measure (benchmarks/throughput.py, part (d))."""

import pytest

from benchmarks.throughput import Step, progress_steps


def test_a_step_is_timed_between_the_poll_that_first_shows_it_and_the_one_before():
    # (read time, events applied, workers' CPU seconds, broker CPU seconds, events ingested)
    samples = [
        (0.0, 0, 0.0, 0.0, 0),
        (0.25, 0, 0.2, 0.1, 10_000),
        (0.5, 20_000, 0.4, 0.2, 30_000),
        (0.75, 20_000, 0.6, 0.3, 50_000),
        (1.0, 40_000, 0.8, 0.4, 50_000),
    ]
    assert progress_steps(samples) == [
        Step(at=pytest.approx(0.375), applied=20_000, cpu=pytest.approx(0.3), broker_cpu=pytest.approx(0.15), ingested=20_000),
        Step(at=pytest.approx(0.875), applied=40_000, cpu=pytest.approx(0.7), broker_cpu=pytest.approx(0.35), ingested=50_000),
    ]


def test_no_step_without_progress():
    assert progress_steps([(0.0, 5, 0.0, 0.0, 5), (0.25, 5, 0.1, 0.1, 9)]) == []
    assert progress_steps([]) == []
