"""A deterministic synthetic prediction stream, with drift injected on purpose.

The demo, the integration tests and the benchmarks all need prediction events
that look like a real model's traffic and whose drift is *known*: which
feature, which segment, from which event, how much. This module produces them
as plain dicts in the v1 event schema::

    {"event_id": "7-123", "model": "credit-risk", "model_version": "2.3.0",
     "timestamp": 1767225601.23, "features": {"income": 48211.5, ...},
     "prediction": 0.1372, "scores": {"default": 0.1372, "repaid": 0.8628},
     "label": "repaid",            # only on ~10% of events (delayed ground truth)
     "latency_ms": 19.7, "segment": {"region": "eu-west"}}

``label`` is the name of the true class (a key of ``scores``) and the key is
*absent* on events without ground truth.

Determinism: events are drawn in fixed-size chunks, each from its own random
generator seeded by ``(seed, model name, chunk index)``. The same seed gives
byte-identical events, and generating ``[0, n)`` at once equals generating it
in pieces with ``start_index``. Drift only transforms the draws (it never
draws more random numbers), so a drifted stream differs from the undrifted one
with the same seed exactly where the drift applies.

The prediction is computed from the features *after* drift, as a deployed
model would, so feature drift shows up as prediction drift in the same segment.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "Categorical",
    "Drift",
    "ModelProfile",
    "NumericFeature",
    "benchmark_profile",
    "credit_risk_profile",
    "generate",
]

#: Events drawn per random generator. Part of the determinism contract:
#: changing it changes every generated stream.
CHUNK_SIZE = 1000

DRIFT_KINDS = ("mean_shift", "category_shift", "new_category")

_PARAMS = {
    "normal": ("mean", "sd"),
    "lognormal": ("median", "sigma"),
    "poisson": ("lam",),
    "beta": ("a", "b"),
}


@dataclass(frozen=True)
class Drift:
    """A change injected into the stream from event index ``start`` on.

    * ``mean_shift`` (numeric feature): add ``magnitude`` standard deviations
      of the feature's own distribution (negative values shift down).
    * ``category_shift`` (categorical feature): move ``magnitude`` of
      probability mass (0.2 = 20 percentage points) onto category ``target``,
      taken from the other categories in proportion to their share.
    * ``new_category`` (categorical feature): a never-seen category ``target``
      appears with share ``magnitude``; the others shrink proportionally.

    ``segment=("region", "eu-west")`` restricts the drift to that segment's
    traffic; ``None`` applies it to all traffic.
    """

    feature: str
    start: int
    segment: tuple[str, str] | None = None
    kind: str = "mean_shift"
    magnitude: float = 1.0
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"Drift.kind must be one of {DRIFT_KINDS}, got {self.kind!r}")
        if self.start < 0:
            raise ValueError(f"Drift.start must be >= 0, got {self.start}")
        if self.kind != "mean_shift":
            if not self.target:
                raise ValueError(f"a {self.kind} drift needs a target category")
            if not 0.0 <= self.magnitude <= 1.0:
                raise ValueError(f"a {self.kind} drift's magnitude is a probability share in [0, 1], got {self.magnitude}")
        if self.segment is not None and len(self.segment) != 2:
            raise ValueError(f"Drift.segment must be a (key, value) pair, got {self.segment!r}")


@dataclass(frozen=True)
class NumericFeature:
    """How one numeric feature is sampled.

    ``family`` and its ``params``: ``normal`` (mean, sd), ``lognormal``
    (median, sigma of the log), ``poisson`` (lam), ``beta`` (a, b).
    ``clip`` bounds values after drift (either side may be None), ``decimals``
    rounds them (0 or less gives integers), ``missing`` is the share of events
    where the value is ``null``.
    """

    family: str
    params: Mapping[str, float]
    decimals: int | None = None
    clip: tuple[float | None, float | None] | None = None
    missing: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in _PARAMS:
            raise ValueError(f"unknown distribution family {self.family!r}; use one of {sorted(_PARAMS)}")
        if set(self.params) != set(_PARAMS[self.family]):
            raise ValueError(f"a {self.family} feature needs params {_PARAMS[self.family]}, got {sorted(self.params)}")
        if not 0.0 <= self.missing < 1.0:
            raise ValueError(f"missing must be in [0, 1), got {self.missing}")

    @classmethod
    def normal(cls, mean: float, sd: float, **kw: Any) -> NumericFeature:
        return cls("normal", {"mean": mean, "sd": sd}, **kw)

    @classmethod
    def lognormal(cls, median: float, sigma: float, **kw: Any) -> NumericFeature:
        return cls("lognormal", {"median": median, "sigma": sigma}, **kw)

    @classmethod
    def poisson(cls, lam: float, **kw: Any) -> NumericFeature:
        return cls("poisson", {"lam": lam}, **kw)

    @classmethod
    def beta(cls, a: float, b: float, **kw: Any) -> NumericFeature:
        return cls("beta", {"a": a, "b": b}, **kw)

    @property
    def mean(self) -> float:
        """Mean of the distribution (before clipping and rounding)."""
        p = self.params
        if self.family == "normal":
            return p["mean"]
        if self.family == "lognormal":
            return p["median"] * math.exp(p["sigma"] ** 2 / 2)
        if self.family == "poisson":
            return p["lam"]
        return p["a"] / (p["a"] + p["b"])

    @property
    def std(self) -> float:
        """Standard deviation of the distribution: the unit of a ``mean_shift``."""
        p = self.params
        if self.family == "normal":
            return p["sd"]
        if self.family == "lognormal":
            return self.mean * math.sqrt(math.expm1(p["sigma"] ** 2))
        if self.family == "poisson":
            return math.sqrt(p["lam"])
        a, b = p["a"], p["b"]
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        if self.family == "normal":
            return rng.normal(p["mean"], p["sd"], n)
        if self.family == "lognormal":
            return rng.lognormal(math.log(p["median"]), p["sigma"], n)
        if self.family == "poisson":
            return rng.poisson(p["lam"], n).astype(np.float64)
        return rng.beta(p["a"], p["b"], n)

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """The model's view of the feature: z-score (of the log for lognormal), clipped to +-5."""
        p = self.params
        if self.family == "lognormal":
            z = (np.log(np.maximum(x, 1e-9)) - math.log(p["median"])) / p["sigma"]
        else:
            z = (x - self.mean) / self.std
        return np.clip(z, -5.0, 5.0)

    def shift_natural(self, x: np.ndarray, amount: float) -> np.ndarray:
        """Shift by ``amount`` standardized units on the model's scale (multiplicative for lognormal)."""
        if self.family == "lognormal":
            return x * math.exp(amount * self.params["sigma"])
        return x + amount * self.std


@dataclass(frozen=True)
class Categorical:
    """Categories and their probabilities (also used for segment values and traffic shares)."""

    values: tuple[str, ...]
    probs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.probs) or not self.values:
            raise ValueError("a categorical needs as many probabilities as values, and at least one value")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"duplicate categories in {self.values}")
        if any(p < 0 for p in self.probs) or not math.isclose(sum(self.probs), 1.0, abs_tol=1e-6):
            raise ValueError(f"probabilities must be >= 0 and sum to 1, got {self.probs} (sum {sum(self.probs)})")

    @classmethod
    def of(cls, shares: Mapping[str, float]) -> Categorical:
        """From ``{value: share}``; shares are normalised to sum to 1."""
        total = float(sum(shares.values()))
        return cls(tuple(shares), tuple(v / total for v in shares.values()))

    def share(self, value: str) -> float:
        return self.probs[self.values.index(value)]


@dataclass
class ModelProfile:
    """Everything that defines a synthetic model's traffic.

    The model is a logistic regression: ``z = intercept + sum(weights[f] *
    standardized(f)) + sum(category_weights[c][value])``, ``p = sigmoid(z)``
    is the probability of ``positive_class``; ``prediction = p`` and
    ``scores = {positive_class: p, negative_class: 1 - p}``. A missing value
    contributes 0 (mean imputation). On a ``label_rate`` share of events the
    true label, drawn as Bernoulli(p), is attached.

    ``segment_effects`` make segments genuinely different at baseline:
    ``{("region", "latam"): {"income": -0.5}}`` shifts latam income by half a
    standardized unit on the model's scale (on the log scale for lognormal
    features), for all events.
    """

    name: str
    version: str
    numeric: dict[str, NumericFeature]
    categorical: dict[str, Categorical]
    segments: dict[str, Categorical]
    intercept: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    category_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_effects: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    positive_class: str = "default"
    negative_class: str = "repaid"
    label_rate: float = 0.1
    latency_median_ms: float = 20.0
    latency_sigma: float = 0.35

    def __post_init__(self) -> None:
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"features both numeric and categorical: {sorted(overlap)}")
        for name in self.weights:
            if name not in self.numeric:
                raise ValueError(f"weights names {name!r}, which is not a numeric feature")
        for name, table in self.category_weights.items():
            if name not in self.categorical:
                raise ValueError(f"category_weights names {name!r}, which is not a categorical feature")
            unknown = set(table) - set(self.categorical[name].values)
            if unknown:
                raise ValueError(f"category_weights[{name!r}] names unknown categories {sorted(unknown)}")
        for segment, effects in self.segment_effects.items():
            _check_segment(self, segment)
            for name in effects:
                if name not in self.numeric:
                    raise ValueError(f"segment_effects names {name!r}, which is not a numeric feature")
        if not 0.0 <= self.label_rate <= 1.0:
            raise ValueError(f"label_rate must be in [0, 1], got {self.label_rate}")

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def _check_segment(profile: ModelProfile, segment: tuple[str, str]) -> None:
    key, value = segment
    if key not in profile.segments:
        raise ValueError(f"unknown segment key {key!r}; {profile.name} has {sorted(profile.segments)}")
    if value not in profile.segments[key].values:
        raise ValueError(f"unknown value {value!r} of segment {key!r}; known: {list(profile.segments[key].values)}")


# -- profiles -------------------------------------------------------------------------------------


def credit_risk_profile() -> ModelProfile:
    """The demo model: probability that a consumer loan defaults.

    Six numeric features, three categorical ones, traffic split by ``region``
    (eu-west 40%, us-east 30%, apac 20%, latam 10%). The mean predicted
    default probability is about 0.17; events are about 400-500 bytes of JSON.
    """
    return ModelProfile(
        name="credit-risk",
        version="2.3.0",
        numeric={
            "income": NumericFeature.lognormal(52_000, 0.55, decimals=2, clip=(0, None), missing=0.02),
            "age": NumericFeature.normal(41, 12, decimals=0, clip=(18, 90)),
            "debt_to_income": NumericFeature.beta(2.0, 5.0, decimals=4),
            "credit_utilization": NumericFeature.beta(1.5, 3.0, decimals=4),
            "open_accounts": NumericFeature.poisson(4.0, decimals=0),
            "loan_amount": NumericFeature.lognormal(12_000, 0.7, decimals=-1, clip=(500, None)),
        },
        categorical={
            "employment_type": Categorical.of(
                {"salaried": 0.58, "self_employed": 0.17, "contractor": 0.10,
                 "part_time": 0.08, "unemployed": 0.04, "retired": 0.03}
            ),
            "home_ownership": Categorical.of({"mortgage": 0.42, "rent": 0.38, "own": 0.15, "other": 0.05}),
            "channel": Categorical.of({"web": 0.46, "mobile_app": 0.34, "branch": 0.12, "partner_broker": 0.08}),
        },
        segments={"region": Categorical.of({"eu-west": 0.4, "us-east": 0.3, "apac": 0.2, "latam": 0.1})},
        intercept=-2.2,
        weights={
            "income": -0.6,
            "age": -0.25,
            "debt_to_income": 0.8,
            "credit_utilization": 0.7,
            "open_accounts": 0.1,
            "loan_amount": 0.35,
        },
        category_weights={
            "employment_type": {"self_employed": 0.25, "contractor": 0.2, "part_time": 0.4,
                                "unemployed": 1.0, "retired": -0.1},
            "home_ownership": {"own": -0.3, "rent": 0.2},
            "channel": {"partner_broker": 0.3},
        },
        segment_effects={
            ("region", "us-east"): {"income": 0.3},
            ("region", "latam"): {"income": -0.5, "loan_amount": -0.3},
            ("region", "apac"): {"age": -0.2},
        },
    )


def benchmark_profile(
    numeric: int = 20, categorical: int = 3, segment_keys: int = 2, segment_values: int = 50
) -> ModelProfile:
    """A generic wide model for throughput benchmarks.

    Numeric features ``f00, f01, ...`` cycle through normal, lognormal, beta
    and poisson; categorical ``c0, c1, ...`` have 4, 6, 8, ... categories
    with decreasing shares; segment keys ``s0, s1, ...`` have
    ``segment_values`` values each (``v00``, ``v01``, ...) with roughly
    uniform traffic (the busiest value gets 1.5x the quietest one).
    """
    families = [
        lambda i: NumericFeature.normal(10.0 * i, 1.0 + i % 5, decimals=4),
        lambda i: NumericFeature.lognormal(100.0 * (i + 1), 0.5, decimals=3),
        lambda i: NumericFeature.beta(2.0 + i % 3, 5.0, decimals=5),
        lambda i: NumericFeature.poisson(3.0 + i % 7, decimals=0),
    ]
    numeric_features = {f"f{i:02d}": families[i % 4](i) for i in range(numeric)}
    categorical_features = {}
    for j in range(categorical):
        k = 4 + 2 * j
        categorical_features[f"c{j}"] = Categorical.of({f"k{m}": 1.0 / (m + 1) for m in range(k)})
    width = max(2, len(str(segment_values - 1)))
    shares = np.linspace(1.5, 1.0, segment_values) if segment_values > 1 else np.ones(1)
    segments = {
        f"s{s}": Categorical.of({f"v{m:0{width}d}": float(shares[m]) for m in range(segment_values)})
        for s in range(segment_keys)
    }
    names = list(numeric_features)
    return ModelProfile(
        name="benchmark",
        version="1.0.0",
        numeric=numeric_features,
        categorical=categorical_features,
        segments=segments,
        intercept=-1.0,
        weights={name: w for name, w in zip(names[:6], (0.5, -0.4, 0.3, 0.3, -0.2, 0.2))},
        category_weights={"c0": {"k1": 0.3, "k3": -0.3}} if categorical else {},
    )


# -- generation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    """A drift resolved against a profile (indices instead of names)."""

    drift: Drift
    segment_key_index: int | None
    segment_value_index: int | None
    column: int | None  # target category's column in the probability matrix


def _compile(profile: ModelProfile, drifts: Sequence[Drift]) -> tuple[list[_Compiled], dict[str, list[str]]]:
    """Validate drifts; return them resolved, plus each categorical's (extended) category list."""
    columns = {name: list(cat.values) for name, cat in profile.categorical.items()}
    compiled: list[_Compiled] = []
    segment_keys = list(profile.segments)
    for drift in drifts:
        if drift.feature in profile.numeric:
            if drift.kind != "mean_shift":
                raise ValueError(f"{drift.feature!r} is numeric; a {drift.kind} drift needs a categorical feature")
        elif drift.feature in profile.categorical:
            if drift.kind == "mean_shift":
                raise ValueError(f"{drift.feature!r} is categorical; use category_shift or new_category, not mean_shift")
            known = drift.target in profile.categorical[drift.feature].values
            if drift.kind == "category_shift" and not known:
                raise ValueError(
                    f"category_shift target {drift.target!r} is not a category of {drift.feature!r}; "
                    "use new_category for unseen values"
                )
            if drift.kind == "new_category" and known:
                raise ValueError(f"new_category target {drift.target!r} already is a category of {drift.feature!r}")
            if drift.target not in columns[drift.feature]:
                columns[drift.feature].append(drift.target)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown feature {drift.feature!r}; {profile.name} has {profile.feature_names}")
        key_index = value_index = None
        if drift.segment is not None:
            _check_segment(profile, drift.segment)
            key_index = segment_keys.index(drift.segment[0])
            value_index = profile.segments[drift.segment[0]].values.index(drift.segment[1])
        column = columns[drift.feature].index(drift.target) if drift.kind != "mean_shift" else None
        compiled.append(_Compiled(drift, key_index, value_index, column))
    return compiled, columns


def _pick(u: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Inverse-CDF draw of category indices from uniforms."""
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]  # exactly 1.0 at the end, so rounding never picks a zero-probability tail
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(probs) - 1)


def generate(
    profile: ModelProfile,
    n: int,
    seed: int,
    drifts: Sequence[Drift] = (),
    start_index: int = 0,
    start_time: float = 1_767_225_600.0,
    rate: float = 100.0,
) -> Iterator[dict]:
    """Yield events ``start_index .. start_index + n - 1`` of the stream ``(profile, seed, drifts)``.

    Event ``i`` has ``event_id == f"{seed}-{i}"`` and ``timestamp ==
    start_time + i / rate`` (so ``start_time`` is the time of event 0, not of
    the first event yielded). ``seed`` must be a non-negative integer.
    """
    if n < 0 or start_index < 0:
        raise ValueError(f"n and start_index must be >= 0, got n={n}, start_index={start_index}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    compiled, columns = _compile(profile, drifts)  # raises here, at the call, not at the first next()
    return _generate(profile, n, seed, compiled, columns, start_index, start_time, rate)


def _generate(
    profile: ModelProfile,
    n: int,
    seed: int,
    compiled: list[_Compiled],
    columns: dict[str, list[str]],
    start_index: int,
    start_time: float,
    rate: float,
) -> Iterator[dict]:
    end = start_index + n
    chunk = start_index // CHUNK_SIZE
    while chunk * CHUNK_SIZE < end:
        events = _chunk(profile, seed, chunk, compiled, columns, start_time, rate)
        lo = max(start_index - chunk * CHUNK_SIZE, 0)
        hi = min(end - chunk * CHUNK_SIZE, CHUNK_SIZE)
        yield from events[lo:hi]
        chunk += 1


def _chunk(
    profile: ModelProfile,
    seed: int,
    chunk: int,
    drifts: list[_Compiled],
    columns: dict[str, list[str]],
    start_time: float,
    rate: float,
) -> list[dict]:
    size = CHUNK_SIZE
    name_key = zlib.crc32(profile.name.encode())
    rng = np.random.default_rng(np.random.SeedSequence([seed, name_key, chunk]))
    index = chunk * size + np.arange(size)

    # 1. Draws, in a fixed order (the order is part of the determinism contract).
    segment_idx = [_pick(rng.random(size), cat.probs) for cat in profile.segments.values()]
    numeric_raw: dict[str, np.ndarray] = {}
    numeric_missing: dict[str, np.ndarray | None] = {}
    for name, feat in profile.numeric.items():
        numeric_raw[name] = feat.sample(rng, size)
        numeric_missing[name] = rng.random(size) < feat.missing if feat.missing > 0 else None
    category_u = {name: rng.random(size) for name in profile.categorical}
    label_present = rng.random(size) < profile.label_rate
    label_u = rng.random(size)
    latency = rng.lognormal(math.log(profile.latency_median_ms), profile.latency_sigma, size)

    def segment_mask(key_index: int | None, value_index: int | None) -> np.ndarray:
        if key_index is None:
            return np.ones(size, dtype=bool)
        return segment_idx[key_index] == value_index

    segment_keys = list(profile.segments)

    # 2. Numeric features: baseline segment effects, drift, clip, round.
    numeric_values: dict[str, np.ndarray] = {}
    for name, feat in profile.numeric.items():
        x = numeric_raw[name]
        for (key, value), effects in profile.segment_effects.items():
            if name in effects:
                mask = segment_idx[segment_keys.index(key)] == profile.segments[key].values.index(value)
                x = np.where(mask, feat.shift_natural(x, effects[name]), x)
        for c in drifts:
            if c.drift.feature == name and c.drift.start <= index[-1]:
                mask = (index >= c.drift.start) & segment_mask(c.segment_key_index, c.segment_value_index)
                x = np.where(mask, x + c.drift.magnitude * feat.std, x)
        if feat.clip is not None:
            lo, hi = feat.clip
            x = np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        if feat.decimals is not None:
            x = np.round(x, feat.decimals)
        numeric_values[name] = x

    # 3. Categorical features: per-event probability rows, drift transforms rows.
    category_idx: dict[str, np.ndarray] = {}
    for name, cat in profile.categorical.items():
        k = len(columns[name])
        base = np.zeros(k)
        base[: len(cat.probs)] = cat.probs
        active = [c for c in drifts if c.drift.feature == name and c.drift.start <= index[-1]]
        if not active:
            category_idx[name] = _pick(category_u[name], base)
            continue
        probs = np.tile(base, (size, 1))
        for c in active:
            mask = (index >= c.drift.start) & segment_mask(c.segment_key_index, c.segment_value_index)
            rows = probs[mask]
            m = c.drift.magnitude
            col = c.column
            if c.drift.kind == "category_shift":
                # Move m of mass onto the target, taken proportionally from the others.
                others = 1.0 - rows[:, col]
                moved = np.minimum(m, others)
                scale = np.divide(others - moved, others, out=np.zeros_like(others), where=others > 0)
                new = rows * scale[:, None]
                new[:, col] = rows[:, col] + moved
            else:  # new_category
                new = rows * (1.0 - m)
                new[:, col] += m
            probs[mask] = new
        cdf = np.cumsum(probs, axis=1)
        cdf /= cdf[:, -1:]
        category_idx[name] = np.minimum((cdf <= category_u[name][:, None]).sum(axis=1), k - 1)

    # 4. The model.
    z = np.full(size, profile.intercept)
    for name, weight in profile.weights.items():
        feat = profile.numeric[name]
        contribution = weight * feat.standardize(numeric_values[name])
        missing = numeric_missing[name]
        if missing is not None:
            contribution = np.where(missing, 0.0, contribution)
        z = z + contribution
    for name, table in profile.category_weights.items():
        lookup = np.array([table.get(value, 0.0) for value in columns[name]])
        z = z + lookup[category_idx[name]]
    # Unrounded, as a model server would emit them (and 1 - p carries float noise).
    p = 1.0 / (1.0 + np.exp(-z))
    q = 1.0 - p
    is_positive = label_u < p

    # 5. Plain Python values, then dicts.
    timestamps = np.round(start_time + index / rate, 6).tolist()
    latency_list = np.round(latency, 1).tolist()
    p_list, q_list = p.tolist(), q.tolist()
    feature_lists: list[tuple[str, list]] = []
    for name, feat in profile.numeric.items():
        x = numeric_values[name]
        values = x.astype(np.int64).tolist() if feat.decimals is not None and feat.decimals <= 0 else x.tolist()
        missing = numeric_missing[name]
        if missing is not None:
            for i in np.flatnonzero(missing).tolist():
                values[i] = None
        feature_lists.append((name, values))
    for name in profile.categorical:
        names = columns[name]
        feature_lists.append((name, [names[i] for i in category_idx[name].tolist()]))
    segment_lists = [
        (key, [cat.values[i] for i in idx.tolist()])
        for (key, cat), idx in zip(profile.segments.items(), segment_idx)
    ]
    label_present_list = label_present.tolist()
    label_list = np.where(is_positive, profile.positive_class, profile.negative_class).tolist()

    events: list[dict] = []
    model, version = profile.name, profile.version
    pos, neg = profile.positive_class, profile.negative_class
    first = chunk * size
    for i in range(size):
        event: dict[str, Any] = {
            "event_id": f"{seed}-{first + i}",
            "model": model,
            "model_version": version,
            "timestamp": timestamps[i],
            "features": {name: values[i] for name, values in feature_lists},
            "prediction": p_list[i],
            "scores": {pos: p_list[i], neg: q_list[i]},
        }
        if label_present_list[i]:
            event["label"] = label_list[i]
        event["latency_ms"] = latency_list[i]
        event["segment"] = {key: values[i] for key, values in segment_lists}
        events.append(event)
    return events
