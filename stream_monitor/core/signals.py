"""Signal names: what a stream, an alert, a checkpoint and a metric series call a monitored quantity.

An event's monitored quantities are its features and the *reserved signals*:
``prediction``, ``score:<class>`` (one per watched class), ``label`` and
``latency_ms``. Ingest keeps them apart in every model batch as
``(name, kind)`` columns: a feature is ``(its name, "data_drift")``, the
others carry their own kind. Past ingest a quantity is known by one string,
its *signal name*: streams are keyed by it, and so are alert ids, the alert's
``feature`` field and Kafka key, checkpoints, codebooks, evaluation shards
and the ``feature`` label of the drift-score metric. :func:`signal_name` is
the one place that string is made.

A feature is named as in its event, so every existing stream, alert id and
checkpoint keeps its name, with one exception: a feature whose name is
taken by a reserved signal (``prediction``, ``label``, ``latency_ms``, or
anything starting with ``score:``) is ``feature:<name>``, e.g.
``feature:prediction``. So that this can't collide in turn, a feature already
named ``feature:<name>`` of such a name (``feature:prediction``,
``feature:feature:score:a``, ...) gets the prefix too: a feature keeps its
name exactly when that name, stripped of every leading ``feature:``, is not
reserved. The mapping is one-to-one and never yields a reserved name.

The monitor spec, the ``features`` object of an event and the dead-letter
copy of an event always use the feature's own name (``prediction`` in
``[models.m.features]`` declares the feature, never the model's prediction).
"""

from __future__ import annotations

from stream_monitor.core.alerts import Kind
from stream_monitor.core.events import _quote

#: Reserved signal names besides the ``score:`` ones.
RESERVED_NAMES = frozenset({"prediction", "label", "latency_ms"})
#: Prefix of the class-score signals: ``score:<class>``.
SCORE_PREFIX = "score:"
#: Prefix of a feature whose own name is taken by a reserved signal.
FEATURE_PREFIX = "feature:"
_ESCAPABLE = (SCORE_PREFIX, FEATURE_PREFIX)


def is_reserved(name: str) -> bool:
    """Whether ``name`` is the name of a signal that is not a feature (``prediction``, ``score:a``, ...)."""
    return name in RESERVED_NAMES or name.startswith(SCORE_PREFIX)


def _renamed(feature: str) -> bool:
    """Whether a feature gets :data:`FEATURE_PREFIX`: its name without any leading ``feature:`` is reserved."""
    if feature in RESERVED_NAMES:
        return True
    if not feature.startswith(_ESCAPABLE):  # every ordinary name: one check
        return False
    while feature.startswith(FEATURE_PREFIX):
        feature = feature[len(FEATURE_PREFIX) :]
    return is_reserved(feature)


def feature_signal(feature: str) -> str:
    """The signal name of the feature ``feature`` (its own name unless a reserved signal has it)."""
    return FEATURE_PREFIX + feature if _renamed(feature) else feature


def signal_name(name: str, kind: str) -> str:
    """The signal name of a model batch's column ``(name, kind)``."""
    return feature_signal(name) if kind == Kind.DATA_DRIFT else name


def describe(name: str, kind: str) -> str:
    """How a message names the column ``(name, kind)``, e.g. ``feature 'prediction' (monitored as 'feature:prediction')``."""
    if kind != Kind.DATA_DRIFT:
        return f"'{_quote(name)}'"
    signal = feature_signal(name)
    if signal == name:
        return f"feature '{_quote(name)}'"
    return f"feature '{_quote(name)}' (monitored as '{_quote(signal)}')"
