"""Hub ids: unique, in the order they were taken (so a migration's inserts append), and
valid UUIDs of version 7, also when the clock steps back."""

from __future__ import annotations

import uuid

import pytest

from concord import records
from concord.records import new_id, usable_id


def test_ids_are_unique_ordered_version_7_uuids() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for i in (ids[0], ids[-1]):
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122 and u.hex == i
        assert usable_id(i)


def test_ids_keep_their_order_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000_000_000_000]
    monkeypatch.setattr(records.time, "time_ns", lambda: now[0])
    a = new_id()
    now[0] -= 5_000_000_000  # five seconds back (an NTP correction)
    b = new_id()
    now[0] += 60_000_000_000
    c = new_id()
    assert a < b < c
    assert int(c[:12], 16) == now[0] // 1_000_000  # the time part follows the clock again


def test_more_ids_in_one_millisecond_than_the_counter_holds_stay_ordered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records.time, "time_ns", lambda: 1_900_000_000_000_000_000)
    ids = [new_id() for _ in range(5000)]  # the 12-bit counter carries into the time part
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
