"""The simulation behind the shipped CUSUM calibration table (offline; numpy only).

Run ``python -m stream_monitor.calibration.simulate --write`` to regenerate
``stream_monitor/calibration/cusum_table.py`` (about 16 minutes on one core);
without ``--write`` it prints the table. Nothing here runs at service start-up.

What is simulated, and why it is exact for continuous features
--------------------------------------------------------------
A numeric stream maps each value through its reference's empirical CDF to a
normal score. A value that falls in the b-th gap of the sorted reference
(b = 0..n) gets the score ``g_b = Phi^-1((2b + 1) / (2(n + 1)))`` whatever
the feature's distribution, and for a continuous feature the probability of
landing in gap b is the b-th *uniform spacing* D_b of the reference, by the
probability integral transform. So, given its reference, a stream's scores
are i.i.d. draws from the atoms g_b with probabilities D, where
D ~ Dirichlet(1, ..., 1): the whole problem is distribution-free. The
reference-estimation error (a stream whose reference happened to sit low sees
scores with a positive mean for ever) is exactly the randomness of D.

For each simulated reference, the average run length (ARL) of a one-sided
CUSUM S = max(0, S + X) with increments X drawn from those atoms is computed
with the Brook-Evans Markov chain on a fine grid of [0, h] (accurate to about
1% at 200 states; the discretization errs towards a shorter ARL, i.e. a higher
rate, the safe side). The long-run false-alarm rate of a stream is 1 / ARL
(the detector restarts from zero after each alarm); a two-sided detector's
rate is the sum of its sides' rates. The table holds the rate averaged over
simulated references: the expected number of false alarms per event of a
stream whose reference is itself a random sample, which is what a user with
many streams experiences.

Tied (discrete) features score on fewer, mid-rank atoms with a smaller
variance; with the centring the stream applies, that only lengthens the run
length, so the continuous-feature table is the conservative one for them
(the benchmark measures integer-valued and nearly-constant features).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from stream_monitor.stats.reference import gap_scores, self_score_moments

#: The mean CUSUM's allowance the table is computed for (the default ``cusum_k``).
MEAN_CUSUM_K = 0.5

#: Reference sizes the table covers; others are interpolated in log n, and
#: sizes above the last one use the last row (a larger reference only lowers
#: the rate, so that is conservative).
REFERENCE_SIZES = (200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
#: Decision intervals tabulated.
H_GRID = (4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0, 30.0)
#: Simulated references per size.
DRAWS = 1000
SEED = 20260101


def cusum_arl(atoms: np.ndarray, probs: np.ndarray, h: float, states: int | None = None) -> float:
    """ARL from S = 0 of S_t = max(0, S_{t-1} + X_t), alarm once S_t > h.

    ``atoms`` must be sorted ascending; X takes the value atoms[i] with
    probability probs[i]. Brook-Evans: state j stands for S in
    [(j - 1/2) w, (j + 1/2) w) with w = h / (states - 1/2), state 0 for
    [0, w/2) including the atom at 0. The default grid keeps w <= 0.125, an
    eighth of the increments' standard deviation.
    """
    states = states or max(200, int(8 * h))
    w = h / (states - 0.5)
    cdf = np.concatenate(([0.0], np.cumsum(probs)))
    levels = np.arange(states) * w
    upper = (np.arange(states) + 0.5) * w
    upper[-1] = h
    below = cdf[np.searchsorted(atoms, upper[None, :] - levels[:, None], side="left")]
    transition = np.diff(below, axis=1, prepend=0.0)
    run_lengths = np.linalg.solve(np.eye(states) - transition, np.ones(states))
    return float(run_lengths[0])


def increments(n: int, k: float = MEAN_CUSUM_K) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per side of the mean CUSUM: (increment atoms sorted ascending, order into the gap scores)."""
    g = gap_scores(n)
    # The centre a stream with a tie-free reference of size n uses (NumericReference.score_mean).
    centre = self_score_moments(n)[0]
    out = []
    for x in (g - centre - k, -(g - centre) - k):
        order = np.argsort(x, kind="stable")
        out.append((x[order], order))
    return out


def rates(n: int, draws: int = DRAWS, seed: int = SEED, hs: tuple[float, ...] = H_GRID, k: float = MEAN_CUSUM_K) -> np.ndarray:
    """Mean false-alarm rate per event (both sides) at each h, over ``draws`` simulated references."""
    rng = np.random.default_rng([seed, n])
    sides = increments(n, k)
    total = np.zeros(len(hs))
    for _ in range(draws):
        spacings = rng.dirichlet(np.ones(n + 1))
        for atoms, order in sides:
            p = spacings[order]
            for j, h in enumerate(hs):
                total[j] += 1.0 / cusum_arl(atoms, p, h)
    return total / draws


def build(draws: int = DRAWS, sizes: tuple[int, ...] = REFERENCE_SIZES) -> list[list[float]]:
    rows = []
    for n in sizes:
        started = time.perf_counter()
        rows.append([round(math.log10(r), 4) for r in rates(n, draws)])
        print(f"n={n}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return rows


def render(rows: list[list[float]], draws: int) -> str:
    lines = [
        '"""Generated by ``python -m stream_monitor.calibration.simulate --write``: do not edit.',
        "",
        "log10 of the expected false-alarm rate per event of a numeric stream's mean CUSUM",
        f"(k = {MEAN_CUSUM_K}, both sides), averaged over {draws} simulated references per",
        "reference size; see ``simulate.py`` for the method. Rows: REFERENCE_SIZES;",
        "columns: H_GRID.",
        '"""',
        "",
        f"CUSUM_K = {MEAN_CUSUM_K!r}",
        f"REFERENCE_SIZES = {REFERENCE_SIZES!r}",
        f"H_GRID = {H_GRID!r}",
        "LOG10_RATE = (",
    ]
    lines += [f"    {tuple(row)!r}," for row in rows]
    lines.append(")")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite cusum_table.py")
    parser.add_argument("--draws", type=int, default=DRAWS, help="simulated references per size")
    args = parser.parse_args(argv)
    text = render(build(args.draws), args.draws)
    if args.write:
        (Path(__file__).parent / "cusum_table.py").write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
