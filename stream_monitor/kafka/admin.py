"""Topic setup: make sure the topics the monitor reads and writes exist.

The monitor creates its own topics at startup (alerts, dead letters, and the
input topic in the demo) instead of relying on broker-side auto-creation,
which is usually disabled in production and, where enabled, creates topics
with the broker's default partition count rather than the one we want.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = ["KafkaSetupError", "ensure_topics"]

log = logging.getLogger(__name__)

#: Errors that mean "this broker does not understand replication factor -1"
#: (brokers older than 2.4 / KIP-464); we then retry with an explicit factor.
_RF_UNSUPPORTED = {
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.UNSUPPORTED_VERSION,
    KafkaError.INVALID_REQUEST,
}
_AUTHZ = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class KafkaSetupError(RuntimeError):
    """Topics could not be created or did not show up; the message says what to check."""


def _checklist(bootstrap_servers: str) -> str:
    return (
        f"Check that the brokers at {bootstrap_servers} are reachable from here, that the security settings "
        "(security.protocol, SASL/SSL) match the cluster, and that the principal may create and describe "
        "topics (ACLs). If the cluster forbids topic creation, create the topics beforehand or enable "
        "auto-creation."
    )


def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    config: Mapping[str, Any] | None = None,
    topic_configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 15,
) -> list[str]:
    """Create the missing topics and wait until all of them are in the metadata.

    :param topics: topic name -> partition count (used only when creating; an
        existing topic with another count is left alone and logged).
    :param config: extra librdkafka settings for the admin client (SASL, SSL,
        ...), merged over ``bootstrap.servers``.
    :param topic_configs: topic name -> topic-level configs for creation,
        e.g. ``{"alerts": {"retention.ms": "604800000"}}``.
    :param timeout: seconds for the whole operation.
    :returns: the topics this call created (empty when all existed). A topic
        someone else created in the meantime counts as existing.
    :raises KafkaSetupError: the cluster is unreachable, a creation failed, or
        the topics did not appear in time.

    Replication factor: ``-1`` asks the broker for its default
    (``default.replication.factor``), which is right for any cluster size; a
    broker too old for that gets ``min(3, number of brokers)``.

    Existence is checked by listing *all* topics. Asking the metadata of one
    named topic would auto-create it on brokers with auto-creation enabled
    (Tansu does), with the broker's default partition count.
    """
    if not topics:
        return []
    for name, partitions in topics.items():
        if not name or int(partitions) < 1:
            raise ValueError(f"topic {name!r}: need a non-empty name and at least 1 partition, got {partitions}")
    topic_configs = topic_configs or {}
    unknown = set(topic_configs) - set(topics)
    if unknown:
        raise ValueError(f"topic_configs names topics not in topics: {sorted(unknown)}")

    deadline = time.monotonic() + timeout
    admin = AdminClient({**dict(config or {}), "bootstrap.servers": bootstrap_servers, "logger": log})

    metadata = _list_topics(admin, bootstrap_servers, list(topics), deadline)
    for name, partitions in topics.items():
        existing = metadata.topics.get(name)
        if existing is not None and existing.error is None and len(existing.partitions) != partitions:
            log.warning(
                "topic %s exists with %d partitions (wanted %d); leaving it as it is",
                name, len(existing.partitions), partitions,
            )
    missing = [name for name in topics if name not in metadata.topics]
    created: list[str] = []
    if missing:
        created = _create(admin, bootstrap_servers, {n: topics[n] for n in missing}, topic_configs, -1, deadline,
                          fallback_rf=min(3, max(1, len(metadata.brokers))))
        log.info("created topics %s", ", ".join(created) if created else "(none: created concurrently)")
    _wait_visible(admin, bootstrap_servers, list(topics), deadline)
    return created


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _list_topics(admin: AdminClient, bootstrap_servers: str, names: list[str], deadline: float):
    try:
        return admin.list_topics(timeout=_remaining(deadline))
    except KafkaException as exc:
        raise KafkaSetupError(
            f"could not read the cluster metadata to set up topic(s) {', '.join(names)}: {exc.args[0]}. "
            + _checklist(bootstrap_servers)
        ) from None


def _create(
    admin: AdminClient,
    bootstrap_servers: str,
    topics: dict[str, int],
    topic_configs: Mapping[str, Mapping[str, str]],
    replication_factor: int,
    deadline: float,
    fallback_rf: int,
) -> list[str]:
    new_topics = [
        NewTopic(name, num_partitions=int(partitions), replication_factor=replication_factor,
                 config=dict(topic_configs.get(name, {})))
        for name, partitions in topics.items()
    ]
    # request_timeout bounds the broker round trip; operation_timeout asks the
    # controller to wait until the topic is created before answering.
    wait = _remaining(deadline)
    futures = admin.create_topics(new_topics, request_timeout=wait, operation_timeout=wait)
    created: list[str] = []
    retry_explicit_rf: dict[str, int] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=_remaining(deadline) + 1)
            created.append(name)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            code = error.code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if replication_factor == -1 and code in _RF_UNSUPPORTED:
                retry_explicit_rf[name] = topics[name]
                continue
            raise KafkaSetupError(_creation_message(name, topics[name], error, bootstrap_servers)) from None
        except Exception as exc:  # concurrent.futures.TimeoutError and the like
            raise KafkaSetupError(
                f"creating topic {name!r} did not finish in time ({exc!r}). " + _checklist(bootstrap_servers)
            ) from None
    if retry_explicit_rf:
        log.info("broker rejected replication factor -1; retrying with %d", fallback_rf)
        created += _create(admin, bootstrap_servers, retry_explicit_rf, topic_configs, fallback_rf, deadline,
                           fallback_rf=fallback_rf)
    return created


def _creation_message(name: str, partitions: int, error: KafkaError, bootstrap_servers: str) -> str:
    text = f"could not create topic {name!r} ({partitions} partitions): {error.name()}: {error.str()}. "
    if error.code() in _AUTHZ:
        return text + (
            "The client is not allowed to create topics: grant CREATE (and DESCRIBE) on the topic or cluster "
            "to this principal in the ACLs, or have an administrator create the topic."
        )
    if error.code() == KafkaError.POLICY_VIOLATION:
        return text + "A broker create-topic policy rejected it: ask an administrator to create it for you."
    if error.code() == KafkaError.INVALID_CONFIG:
        return text + "One of the topic configs is invalid for this broker: check the topic_configs values."
    return text + _checklist(bootstrap_servers)


def _wait_visible(admin: AdminClient, bootstrap_servers: str, names: list[str], deadline: float) -> None:
    """Poll the full metadata until every topic is listed with all partitions led."""
    pending = list(names)
    while True:
        try:
            metadata = admin.list_topics(timeout=_remaining(deadline))
        except KafkaException:
            metadata = None
        if metadata is not None:
            pending = [
                name for name in names
                if (topic := metadata.topics.get(name)) is None
                or topic.error is not None
                or not topic.partitions
                or any(p.leader < 0 for p in topic.partitions.values())
            ]
            if not pending:
                return
        if time.monotonic() >= deadline:
            raise KafkaSetupError(
                f"topic(s) {', '.join(pending)} did not appear in the cluster metadata in time "
                "(created, but no partition leaders yet?). " + _checklist(bootstrap_servers)
            )
        time.sleep(0.1)
