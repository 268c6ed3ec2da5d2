"""``Hub.commit_batch``: a run's chunk commits whole, and a record somebody wrote after the
chunk was planned is left alone, with nothing of it committed (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from concord.hub.batch import Batch, Conflict
from concord.hub.store import ArchiveRow, Checkpoint, Hub, RecordWrite
from concord.records import canonical, hash_text


@pytest.fixture
def hub(hub_url: str) -> Iterator[Hub]:
    h = Hub(hub_url)
    yield h
    h.close()


def _archive(hub_id: str, ref: str, fields: dict[str, str]) -> ArchiveRow:
    text = canonical(fields, {})
    return ArchiveRow(hub_id, ref, "v1", hash_text(text), text)


def _batch(planned: dict[str, int | None], checkpoint: Checkpoint | None = None) -> Batch:
    b = Batch("l", "client", "link:l", expected=planned, checkpoint=checkpoint)
    for hub_id in planned:
        fields = {"name": f"From the spoke {hub_id}"}
        b.records.append(RecordWrite("client", hub_id, fields, {}))
        b.archive.append(_archive(hub_id, f"{hub_id}.vcf", fields))
        b.conflicts.append(Conflict(hub_id, "field", ["name"], "spoke", {"name": "old"}))
    return b


def test_a_batch_commits_records_link_state_conflicts_and_checkpoint_together(hub: Hub) -> None:
    a = hub.put("client", "a", {"name": "Hub A"})
    b = _batch({"a": a.seq, "new": None}, Checkpoint(hub_seq=5, spoke_token="t1"))
    out = hub.commit_batch(b)
    assert out.changed == set() and out.written == 2 and out.conflicts == 2
    got = hub.get_many("client", ["a", "new"])
    assert got["a"].fields["name"] == "From the spoke a"
    arch = hub.archive("l", "client")
    assert set(arch) == {"a", "new"}
    # the link state notes the record as written by this very commit
    assert arch["a"].hub_hash == got["a"].hash
    assert {c["hub_id"] for c in hub.conflicts(link="l")} == {"a", "new"}
    cp = hub.checkpoint("l", "client")
    assert (cp.hub_seq, cp.spoke_token) == (5, "t1")


def test_a_record_written_after_planning_is_left_whole(hub: Hub) -> None:
    a = hub.put("client", "a", {"name": "Hub A"})
    c = hub.put("client", "c", {"name": "Hub C"})
    b = _batch({"a": a.seq, "c": c.seq, "gone": None})
    hub.put("client", "a", {"name": "Edited meanwhile"})  # after the plan, before the commit
    hub.put("client", "gone", {"name": "Created meanwhile"})
    out = hub.commit_batch(b)
    assert out.changed == {"a", "gone"} and out.written == 1 and out.conflicts == 1
    got = hub.get_many("client", ["a", "c", "gone"])
    assert got["a"].fields["name"] == "Edited meanwhile"  # not overwritten
    assert got["gone"].fields["name"] == "Created meanwhile"
    assert got["c"].fields["name"] == "From the spoke c"
    assert set(hub.archive("l", "client")) == {"c"}
    assert [x["hub_id"] for x in hub.conflicts(link="l")] == ["c"]


def test_a_migration_position_counts_the_writes_committed_with_it(hub: Hub) -> None:
    a = hub.put("client", "a", {"name": "Hub A"})
    progress = {"after": "a.vcf", "written": 3}
    b = _batch({"a": a.seq, "b": None}, Checkpoint(0, None, progress))
    hub.put("client", "b", {"name": "Created meanwhile"})
    hub.commit_batch(b)
    assert hub.checkpoint("l", "client").progress == {"after": "a.vcf", "written": 4}
