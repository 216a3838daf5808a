from stream_monitor.core.events import RawMessage, Rejection
from stream_monitor.kafka.dead_letter import dead_letter


def test_dead_letter_keeps_the_original_and_says_why_and_where():
    message = RawMessage(b"not json", topic="predictions", partition=3, offset=42, key=b"k")
    letter = dead_letter(Rejection(message, "not_json", "not valid JSON; send one object"))
    headers = dict(letter.headers)
    assert letter.value == b"not json" and letter.key == b"k"
    assert headers["stream-monitor.reason"] == b"not_json"
    assert headers["stream-monitor.source.topic"] == b"predictions"
    assert headers["stream-monitor.source.partition"] == b"3"
    assert headers["stream-monitor.source.offset"] == b"42"
    assert headers["stream-monitor.truncated"] == b"false"


def test_huge_originals_are_cut_and_say_so():
    message = RawMessage(b"x" * 10_000_000, topic="t", partition=0, offset=0)
    letter = dead_letter(Rejection(message, "oversized", "too big"), max_bytes=1000)
    headers = dict(letter.headers)
    assert len(letter.value) == 1000
    assert headers["stream-monitor.truncated"] == b"true"
    assert headers["stream-monitor.original.size"] == b"10000000"


def test_huge_keys_are_cut_too():
    message = RawMessage(b"{}", topic="t", partition=0, offset=0, key=b"k" * 2_000_000)
    letter = dead_letter(Rejection(message, "missing_field", "no event_id"))
    headers = dict(letter.headers)
    assert len(letter.key) == 1024
    assert headers["stream-monitor.truncated"] == b"true"
    assert headers["stream-monitor.original.key.size"] == b"2000000"
