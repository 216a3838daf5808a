"""Advance all numeric streams of a signal together.

A signal is watched in the aggregate and in every segment value, so a batch
hands it to dozens or hundreds of streams, most of them with a few dozen
values. Scoring and the CUSUM are the same arithmetic for every stream, so
they run once over the concatenated values; only what is genuinely per
stream (the search in its own reference, its windows and blocks) stays in a
loop. The outcome is what ``NumericStream.advance`` gives stream by stream,
to the last bit: the same ranks, the same scores (one shared score table),
and integer CUSUM sums, with any stream whose values raise an alarm fed
through its own detector so that it stops and restarts at the alarm.
"""

from __future__ import annotations

import numpy as np

from stream_monitor.core.evaluations import NumericEvaluations
from stream_monitor.core.streams import NumericStream
from stream_monitor.stats.cusum import update_many

__all__ = ["advance_streams"]


def advance_streams(
    streams: list[NumericStream],
    values: list[np.ndarray],
    timestamps: list[np.ndarray],
    evaluations: NumericEvaluations,
) -> None:
    """``stream.advance(values[i], timestamps[i], evaluations)`` for every stream, in bulk."""
    ready: list[tuple[NumericStream, np.ndarray, np.ndarray]] = []
    for stream, v, t in zip(streams, values, timestamps):
        part = stream._after_reference(v, t)
        if part is not None:
            ready.append((stream, *part))
    if not ready:
        return
    sizes = [stream.reference.size for stream, _, _ in ready]  # type: ignore[union-attr]
    if any(size != sizes[0] for size in sizes):
        # A reference checkpointed under another reference_size has another
        # score table: each size is advanced as a group of its own.
        for size in dict.fromkeys(sizes):
            _advance_ready([part for part, s in zip(ready, sizes) if s == size], evaluations)
        return
    _advance_ready(ready, evaluations)


def _advance_ready(ready: list[tuple[NumericStream, np.ndarray, np.ndarray]], evaluations: NumericEvaluations) -> None:
    """Streams whose references hold the same number of values (and so share a score table)."""
    references = [stream.reference for stream, _, _ in ready]
    ranks = [r.ranks(v) for r, (_, v, _) in zip(references, ready)]  # type: ignore[union-attr]
    counts = np.array([v.size for _, v, _ in ready])
    below = np.concatenate([b for b, _ in ranks])
    at_or_below = np.concatenate([a for _, a in ranks])
    means = np.array([r.score_mean for r in references])  # type: ignore[union-attr]
    z = references[0].scores_from_ranks(below, at_or_below) - np.repeat(means, counts)  # type: ignore[union-attr]
    alarmed = update_many([stream.cusum for stream, _, _ in ready], z, counts).tolist()
    end = 0
    for (stream, v, t), (b, a), hit in zip(ready, ranks, alarmed):
        start, end = end, end + v.size
        scores = z[start:end]
        alarms = stream._run_cusum(scores) if hit else []
        stream._absorb(v, t, b, a, scores, alarms, evaluations)

