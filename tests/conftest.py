"""Shared fixtures: one Kafka-protocol broker per test session, and unique names.

Which broker the tests talk to:

* ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster (e.g. a real Kafka in CI);
* otherwise an embedded Tansu broker started once for the session (needs the
  ``embedded`` extra; without it the integration tests fail with an
  explanation rather than skip, so a CI job cannot silently test nothing).

Tests share the session broker, so every test uses its own topic and group
names (``unique_name``) and never sees another test's data. Tests that pause
or kill the broker take a private one (``own_broker``).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

# Run from a plain checkout without `pip install -e .`: make the package and
# tests/helpers importable whatever the import mode.
_TESTS = Path(__file__).resolve().parent
for _path in (str(_TESTS.parent), str(_TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from stream_monitor.embedded.broker import EmbeddedBroker  # noqa: E402

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of the cluster shared by the whole session."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    # Raises EmbeddedBrokerUnavailable (install hint included) without the extra.
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A private embedded broker this test may pause, resume or stop."""
    if os.environ.get(BOOTSTRAP_ENV):
        pytest.skip(f"{BOOTSTRAP_ENV} is set: an external cluster cannot be paused or killed by a test")
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("events")`` -> ``"events-test_foo-1a2b3c4d"``: a topic or group name no other test uses.

    Every call returns a new name (keep it in a variable to reuse it). The test
    name is embedded so a leftover topic on a shared cluster says where it came from.
    """
    test = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.name)[:60]
    return lambda prefix: f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"
