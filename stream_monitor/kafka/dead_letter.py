"""Dead-letter records: a rejected message, intact, with why and where it came from.

The value is the original bytes so the record can be inspected or replayed
as-is after the producer is fixed; the context travels in headers (the
convention Kafka Connect's dead-letter queues use), so tooling that reads the
original topic reads this one too.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_monitor.core.events import Rejection

HEADER_PREFIX = "stream-monitor."
#: Larger originals are cut to this size (and say so in a header): a 10 MB
#: message would otherwise exceed the broker's message size limit and block
#: the dead-letter topic, which would block committing, which would stop the
#: monitor.
MAX_DEAD_LETTER_BYTES = 512 * 1024
#: Keys are cut too: a rejected message with a 2 MB key must not become a dead
#: letter the broker refuses (that would stop the worker at every restart).
MAX_DEAD_LETTER_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(rejection: Rejection, max_bytes: int = MAX_DEAD_LETTER_BYTES) -> DeadLetter:
    message = rejection.message
    original = message.value or b""
    key = message.key
    truncated = len(original) > max_bytes or (key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES)
    headers = [
        (HEADER_PREFIX + "reason", rejection.reason.encode()),
        (HEADER_PREFIX + "detail", rejection.detail.encode("utf-8", "replace")),
        (HEADER_PREFIX + "source.topic", message.topic.encode()),
        (HEADER_PREFIX + "source.partition", str(message.partition).encode()),
        (HEADER_PREFIX + "source.offset", str(message.offset).encode()),
        (HEADER_PREFIX + "original.size", str(len(original)).encode()),
        (HEADER_PREFIX + "original.key.size", str(len(key) if key is not None else 0).encode()),
        (HEADER_PREFIX + "truncated", b"true" if truncated else b"false"),
    ]
    return DeadLetter(key=None if key is None else key[:MAX_DEAD_LETTER_KEY_BYTES], value=original[:max_bytes], headers=headers)
