from stream_monitor.core.segments import OTHER, SegmentSlots


def test_values_with_volume_get_slots_and_one_offs_are_pooled_after_discovery():
    slots = SegmentSlots("user", max_values=3, min_events=5)
    stream = (["a", "b", "c", "d"] * 10) + [f"once{i}" for i in range(100)] + ["a", "zzz"]
    out = slots.assign(stream)
    assert list(slots.admitted) == ["a", "b", "c"]
    # the 5th occurrence admits a value; before that it feeds only the aggregate
    assert out[:4] == [None] * 4 and out[16:19] == ["a", "b", "c"]
    # every slot taken: everything else is pooled
    assert out[-1] == OTHER and out[-2] == "a"
    assert all(v == OTHER for v in out[40:140])


def test_missing_values_belong_to_no_segment():
    slots = SegmentSlots("region", max_values=2, min_events=1)
    assert slots.assign([None, "eu", None]) == [None, "eu", None]


def test_candidate_counting_is_bounded():
    slots = SegmentSlots("user", max_values=10, min_events=50)
    slots.assign([f"u{i}" for i in range(100_000)])
    assert len(slots._candidates) <= 4 * 10
    assert slots.admitted == {}


def test_state_round_trip_continues_identically():
    a = SegmentSlots("k", max_values=4, min_events=3)
    a.assign(list("abcabcdd"))
    b = SegmentSlots.from_state(a.to_state())
    tail = list("dddeeeeffff")
    assert a.assign(tail) == b.assign(tail)
    assert a.to_state() == b.to_state()


def test_grouping_codes_is_assigning_values_row_by_row():
    """``group_codes`` (the batch path) gives the rows ``assign`` gives, before and after the slots fill up."""
    import numpy as np

    rng = np.random.default_rng(4)
    strings = [f"value-{i}" for i in range(30)]
    by_codes, by_values = SegmentSlots("k", 5, 3), SegmentSlots("k", 5, 3)
    for _ in range(40):
        codes = rng.choice(np.arange(-1, 30), size=int(rng.integers(1, 60)), p=np.r_[0.05, np.full(30, 0.95 / 30)])
        grouped = by_codes.group_codes(codes.astype(np.int32), strings)
        expected: dict[str, list[int]] = {}
        for row, value in enumerate(by_values.assign([strings[c] if c >= 0 else None for c in codes])):
            if value is not None:
                expected.setdefault(value, []).append(row)
        assert [(value, rows.tolist()) for value, rows in grouped] == list(expected.items())
        assert by_codes.to_state() == by_values.to_state()
    assert by_codes.full
