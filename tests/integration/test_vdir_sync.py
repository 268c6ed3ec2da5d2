"""Two vdir folders linked through the hub: the must-shows, through ``sync_link`` and the CLI.

Each scenario runs on a SQLite hub and on a PostgreSQL hub (the ``hub_url`` fixture).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from concord.engine import sync_link
from concord.errors import HubError, LinkLocked
from concord.formats import vcard
from concord.hub.store import Hub
from tests.integration.vdirenv import VdirEnv, card, duplicates, stat_versions


def seed(env: VdirEnv, n: int, folder: str = "a") -> None:
    for i in range(n):
        env.write(folder, f"c{i}.vcf", card(f"Person {i}", f"uid{i}", emails=[f"p{i}@x.com"],
                                            phones=[f"0{i}"]))


def test_what_changes_in_a_folder_during_its_first_migration_arrives_in_the_same_run(
        env: VdirEnv) -> None:
    """A folder's first migration streams its files in name order, a chunk per commit. A
    folder has no change token, so the run lists it in full right after the migration: a
    file added behind the scan's position and an edit to a file already migrated both reach
    the hub in that same run, and the next run finds nothing to do."""
    seed(env, 9)
    link = env.cfg.link("a").model_copy(update={"batch_size": 3})
    done: list[int] = []

    def progress(entity: str, n: int, total: int) -> None:
        if not done:  # the first chunk (c0, c1, c2) has committed
            env.write("a", "a-new.vcf", card("Newcomer", "uid-new"))  # sorts before c0
            env.edit("a", "uid0", title="Partner")
        done.append(n)

    r = sync_link(env.hub, link, entities=["contact"], progress=progress)
    assert r.status == "ok", r.message
    assert done[:3] == [3, 6, 9]  # streamed: three chunks, each committed on its own
    recs = env.hub_records()
    assert recs["uid-new"]["name"] == "Newcomer"
    assert recs["uid0"]["title"] == "Partner"
    assert len(recs) == 10
    seq = env.hub.last_seq()
    again = sync_link(env.hub, link, entities=["contact"])
    assert again.status == "ok" and env.hub.last_seq() == seq


def test_an_edit_in_either_folder_reaches_the_other(env: VdirEnv) -> None:
    seed(env, 3)
    env.sync_all()
    assert env.cards("b") == env.cards("a")
    assert set(env.hub_records()) == {"uid0", "uid1", "uid2"}

    env.edit("a", "uid1", title="Partner")
    env.sync_all()
    assert env.cards("b")["uid1"]["title"] == "Partner"

    env.edit("b", "uid2", phones=["999"])
    env.sync_all()
    assert env.cards("a")["uid2"]["phones"] == [{"number": "999"}]
    assert env.cards("a") == env.cards("b")
    assert env.conflicts() == []


def test_new_contact_created_in_b_reaches_a(env: VdirEnv) -> None:
    seed(env, 2)
    env.sync_all()
    env.write("b", "new.vcf", card("Newcomer", "new-uid", emails=["n@x.com"]))
    env.sync_all()
    assert env.cards("a")["new-uid"] == {"name": "Newcomer",
                                         "emails": [{"address": "n@x.com"}]}


def test_edits_to_different_fields_on_both_sides_are_merged(env: VdirEnv) -> None:
    seed(env, 3)
    env.sync_all()
    env.edit("a", "uid1", phones=["555"])
    env.edit("b", "uid1", emails=["new@x.com"])
    env.sync_all()
    for side in ("a", "b"):
        assert env.cards(side)["uid1"] == {"name": "Person 1",
                                           "emails": [{"address": "new@x.com"}],
                                           "phones": [{"number": "555"}]}
    assert env.hub_records()["uid1"]["phones"] == [{"number": "555"}]
    assert env.conflicts() == []


@pytest.mark.parametrize("first", ["a", "b"])
def test_delete_on_one_side_and_edit_on_the_other_keeps_the_edit(env: VdirEnv, first: str) -> None:
    seed(env, 3)
    env.sync_all()
    env.path_of("a", "uid2").unlink()
    env.edit("b", "uid2", name="Person Two")
    env.sync(first)
    env.sync_all()
    assert env.cards("a")["uid2"]["name"] == "Person Two"
    assert env.cards("b")["uid2"]["name"] == "Person Two"
    assert env.hub_records()["uid2"]["name"] == "Person Two"
    kinds = [(c["hub_id"], c["kind"]) for c in env.conflicts()]
    assert ("uid2", "delete-vs-edit") in kinds


def test_hub_edit_over_a_spoke_delete_recreates_the_file(env: VdirEnv) -> None:
    env.write("a", "c.vcf", card("Ann", "u1"))
    env.write("a", "d.vcf", card("Bob", "u2"))
    env.sync("a")
    (env.folder("a") / "c.vcf").unlink()
    env.hub.put("contact", "u1", {"name": "Ann Edited"})
    r = env.sync("a")
    assert r.counts["edit wins: re-create in spoke"] == 1
    assert env.cards("a") == {"u1": {"name": "Ann Edited"}, "u2": {"name": "Bob"}}
    assert env.sync("a").counts == {}


def test_push_link_recreates_a_file_deleted_at_the_spoke(make_env) -> None:
    env = make_env({"a": {}, "b": {"direction": "push"}})
    env.write("a", "c.vcf", card("Ann", "u1"))
    env.sync_all()
    env.path_of("b", "u1").unlink()
    r = env.sync("b")
    assert r.counts["re-create in spoke (push link)"] == 1
    assert env.cards("b") == {"u1": {"name": "Ann"}}
    assert env.hub_records() == {"u1": {"name": "Ann"}}


def test_deleting_90_percent_is_held_until_confirmed(env: VdirEnv) -> None:
    seed(env, 30)
    env.sync_all()
    for p in sorted(env.files("b").values())[:27]:
        p.unlink()
    r = env.sync("b")
    assert r.status == "held"
    assert "--confirm-deletes" in r.message
    assert len(env.hub_records()) == 30  # nothing applied
    env.sync("a")
    assert len(env.cards("a")) == 30
    code, out = env.cli("status", "b")
    assert code == 3 and "held by the delete guard" in out

    code, out = env.cli("sync", "b")
    assert "held" in out and "--confirm-deletes" in out
    assert code == 4  # the documented status for a plan the delete guard held
    assert len(env.hub_records()) == 30

    code, out = env.cli("sync", "b", "--confirm-deletes")
    assert code == 0 and "27 delete in hub" in out
    assert len(env.hub_records()) == 3
    # the deletes now reach a; that side is guarded too, and confirmed the same way
    assert env.sync("a").status == "held"
    assert len(env.cards("a")) == 30
    code, out = env.cli("sync", "a", "--confirm-deletes")
    assert code == 0
    assert env.cards("a") == env.cards("b") and len(env.cards("a")) == 3


def test_a_spoke_that_suddenly_lists_empty_is_held(env: VdirEnv) -> None:
    seed(env, 3)
    env.sync_all()
    for p in env.files("a").values():
        p.unlink()
    r = env.sync("a")
    assert r.status == "held" and "lists no records" in r.message
    assert len(env.hub_records()) == 3


def test_malformed_vcard_is_reported_by_file_name_and_the_others_sync(env: VdirEnv) -> None:
    seed(env, 4)
    bad = env.write("a", "broken.vcf", "BEGIN:VCARD\nVERSION:3.0\nFN:Cut short\n")
    code, out = env.cli("sync")
    assert code == 0
    assert str(bad) in out and "END:VCARD" in out and "fix:" in out
    assert set(env.cards("b")) == {f"uid{i}" for i in range(4)}
    [q] = env.hub.quarantined("a")
    assert q["ref"] == "broken.vcf" and str(bad) in q["error"]
    code, out = env.cli("status", "a", "--details")
    assert "broken.vcf" in out
    # repaired, it syncs and leaves quarantine
    bad.write_text(card("Repaired", "fixed-uid"))
    env.sync_all()
    assert env.cards("b")["fixed-uid"]["name"] == "Repaired"
    assert env.hub.quarantined("a") == []


def test_touched_but_unchanged_file_is_not_a_change(env: VdirEnv) -> None:
    seed(env, 3)
    env.sync_all()
    before_seq = env.hub.last_seq()
    b_before = stat_versions(env.folder("b"))
    p = env.path_of("a", "uid1")
    text = p.read_text()
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = stat_versions(env.folder("a"))
    r = env.sync("a")
    assert r.ok and not any(k for k in r.counts if k not in ("version only",))
    assert env.hub.last_seq() == before_seq  # no hub write
    assert stat_versions(env.folder("a")) == touched  # no rewrite of the file
    assert p.read_text() == text
    env.sync("b")
    assert stat_versions(env.folder("b")) == b_before
    # and the new version was recorded: the next run does not look at it again
    assert env.sync("a").counts == {}


def rewrite_in_place(p, old: str, new: str) -> None:  # type: ignore[no-untyped-def]
    """Same size, same inode, and the mtime put back: what a rewrite within one timestamp tick
    (a coarse file system, or two saves in quick succession) looks like to stat()."""
    assert len(old) == len(new)
    st = p.stat()
    text = p.read_bytes().decode()
    assert old in text
    with open(p, "r+", newline="") as f:
        f.write(text.replace(old, new))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = p.stat()
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (st.st_mtime_ns, st.st_ino, st.st_size)


@pytest.fixture
def coarse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders on a file system with 2 s timestamps (FAT): every test file is recent."""
    from concord.connectors import filestamps

    monkeypatch.setattr(filestamps, "window_of", lambda root: filestamps.RACY_NS)


@pytest.mark.usefixtures("coarse")
def test_a_same_size_rewrite_within_one_mtime_tick_reaches_the_hub(env: VdirEnv) -> None:
    env.write("a", "ann.vcf", card("Ann", "u1", title="Manager"))
    env.sync_all()
    rewrite_in_place(env.path_of("a", "u1"), "Manager", "Partner")
    r = env.sync("a")
    assert r.counts["spoke -> hub"] == 1, r.counts
    assert env.hub_records()["u1"]["title"] == "Partner"
    env.sync("b")
    assert env.cards("b")["u1"]["title"] == "Partner"


@pytest.mark.usefixtures("coarse")
def test_a_same_size_rewrite_within_one_mtime_tick_and_a_hub_edit_conflict(env: VdirEnv) -> None:
    env.write("a", "ann.vcf", card("Ann", "u1", title="Manager"))
    env.sync_all()
    env.hub.put("contact", "u1", {"name": "Ann", "title": "Chief"})  # meanwhile, in the hub
    rewrite_in_place(env.path_of("a", "u1"), "Manager", "Partner")
    env.sync("a")
    # never a silent overwrite: the hub wins (authority hub), the folder's value is kept
    [c] = [c for c in env.conflicts() if c["hub_id"] == "u1"]
    assert c["winner"] == "hub" and c["kept_values"] == {"title": "Partner"}
    assert env.cards("a")["u1"]["title"] == "Chief"


def test_a_rewrite_in_the_same_tick_found_after_the_window_and_then_no_reads(
        env: VdirEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from concord.connectors import filestamps, vdir

    monkeypatch.setattr(filestamps, "window_of", lambda root: 500_000_000)  # short: waited out
    env.write("a", "ann.vcf", card("Ann", "u1", title="Manager"))
    seed(env, 3)
    env.sync("a")  # read within the window: the versions hold the content's hash
    rewrite_in_place(env.path_of("a", "u1"), "Manager", "Partner")
    time.sleep(0.6)
    r = env.sync("a")  # past the window, those files are checked once more, by content
    assert r.counts["spoke -> hub"] == 1, r.counts
    assert env.hub_records()["u1"]["title"] == "Partner"
    env.sync_all()
    time.sleep(0.6)
    env.sync_all()  # the files Concord wrote are read once more, past the window
    reads: list[object] = []
    real, real_many = filestamps.read_version, vdir._read_many
    monkeypatch.setattr(filestamps, "read_version", lambda p, w: reads.append(p) or real(p, w))
    monkeypatch.setattr(vdir, "_read_many",
                        lambda f, refs, w: reads.extend(refs) or real_many(f, refs, w))
    assert env.sync("a").counts == {} and env.sync("b").counts == {}
    assert reads == []  # a no-op run past the window lists by stat() alone, reads nothing
    assert env.cards("b")["u1"]["title"] == "Partner"


def test_unmapped_properties_survive_a_round_trip(env: VdirEnv) -> None:
    original = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:rich-1\r\nFN:Ann Rich\r\nN:Rich;Ann;;;\r\n"
        "item1.EMAIL;TYPE=INTERNET,pref:ann@rich.example\r\nitem1.X-ABLabel:_$!<Work>!$_\r\n"
        "TEL;TYPE=CELL,VOICE:+44 1\r\nX-SKYPE;TYPE=work:ann.rich\r\n"
        "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAEBAQEBAQEBAQEBAQE\r\n"
        " BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\r\n"
        "END:VCARD\r\n")
    pa = env.write("a", "rich.vcf", original)
    env.sync_all()
    env.edit("b", "rich-1", title="Director")
    env.sync_all()
    text = pa.read_bytes().decode()
    assert vcard.parse(text).fields()["title"] == "Director"
    for line in original.split("\r\n")[2:-2]:  # every original line but VERSION/END is kept
        if not line.startswith("TITLE"):
            assert line in text.split("\r\n"), line


def test_dry_run_prints_the_plan_and_changes_nothing(env: VdirEnv) -> None:
    seed(env, 3)
    env.sync_all()
    env.edit("a", "uid0", title="CEO")
    env.write("a", "n.vcf", card("New One", "n1"))
    a_before, b_before = stat_versions(env.folder("a")), stat_versions(env.folder("b"))
    seq = env.hub.last_seq()
    cps = {n: env.hub.checkpoint(n, "contact") for n in ("a", "b")}
    runs = len(env.hub.runs())

    code, out = env.cli("sync", "a", "--dry-run")
    assert code == 0 and "dry-run" in out
    assert "spoke -> hub hub=uid0" in out and "create in hub hub=n1 spoke=n.vcf" in out
    assert env.hub.last_seq() == seq
    assert stat_versions(env.folder("a")) == a_before
    assert stat_versions(env.folder("b")) == b_before
    assert {n: env.hub.checkpoint(n, "contact") for n in ("a", "b")} == cps
    assert len(env.hub.runs()) == runs
    assert "n1" not in env.hub_records()
    # the real run then does what the plan said
    r = env.sync("a")
    assert r.counts["spoke -> hub"] == 1 and r.counts["create in hub"] == 1


def test_value_map_with_an_unmapped_value_means_not_synced(make_env) -> None:
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}, "b": {}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org", org="Acme Ltd"))
    env.write("a", "n.vcf", card("No Kind", "k1"))
    r = env.sync("a")
    assert r.counts["not synced"] == 1
    env.sync_all()
    assert set(env.cards("b")) == {"p1", "k1"}
    # a hub record with an unmapped value does not go out over that link either
    env.write("b", "org2.vcf", card("Other Org", "o2", kind="org"))
    env.sync_all()
    assert "o2" in env.hub_records()
    assert "o2" not in env.cards("a")


def test_a_file_the_link_leaves_out_is_read_again_only_when_it_or_the_selection_changes(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder is listed in full on every run. A card its link does not carry (a value map
    without the card's kind) is noted with the version read: later runs neither read nor
    count it until the file changes, the link's selection changes, or it is deleted."""
    from concord.connectors import filestamps
    from concord.connectors.vdir import VdirConnector

    monkeypatch.setattr(filestamps, "window_of", lambda root: 0)  # exact stamps
    read: list[str] = []
    real_get = VdirConnector.get

    def counting_get(self, entity, refs):  # type: ignore[no-untyped-def]
        read.extend(refs)
        return real_get(self, entity, refs)

    monkeypatch.setattr(VdirConnector, "get", counting_get)
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org", org="Acme Ltd"))
    r = env.sync("a")
    assert r.counts["not synced"] == 1 and set(env.hub_records()) == {"p1"}
    assert set(env.hub.spoke_left("a", "contact")) == {"o.vcf"}

    read.clear()
    assert env.sync("a").counts == {} and read == []  # nothing read, nothing counted
    st, _ = light(env, "a")
    assert (st.color, st.spoke_excluded) == ("green", 1), st.reason
    assert "spoke items not taken in (by the link's filters/value maps): 1" in st.reason

    env.edit("a", "o1", title="Owner")  # still an organisation: read once, noted again
    assert env.sync("a").counts == {"not synced": 1} and read == ["o.vcf"]
    read.clear()
    assert env.sync("a").counts == {} and read == []

    # a second left-out card, deleted: its note goes with it
    env.write("a", "q.vcf", card("Beta Ltd", "q1", kind="org"))
    env.sync("a")
    assert set(env.hub.spoke_left("a", "contact")) == {"o.vcf", "q.vcf"}
    env.path_of("a", "q1").unlink()
    assert env.sync("a").counts == {}
    assert set(env.hub.spoke_left("a", "contact")) == {"o.vcf"}

    # a field map that no longer brings the kind in reads it again (and leaves it out again:
    # the kind the value map checks still comes from the card under another name)
    renamed = env.cfg.link("a").model_copy(deep=True)
    renamed.entities["contact"].fields = {"name": "fn", "kind": "kind", "title": "title"}
    read.clear()
    r = sync_link(env.hub, renamed, entities=["contact"])
    assert read == ["o.vcf"] and r.counts["not synced"] == 1, r.counts

    # the value map gains the kind: the noted card is read and synced, its note dropped
    wider = env.cfg.link("a").model_copy(deep=True)
    wider.entities["contact"].values["kind"]["org"] = "org"
    read.clear()
    r = sync_link(env.hub, wider, entities=["contact"])
    assert r.counts["create in hub"] == 1 and read == ["o.vcf"], r.counts
    assert env.hub_records()["o1"]["title"] == "Owner"
    assert env.hub.spoke_left("a", "contact") == {}


def test_a_folder_whose_every_card_is_left_out_is_not_read_again(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing linked yet: a folder is migrated (streamed) while it links nothing, so one
    filled after an empty first run is streamed too; but one whose cards were all read and
    left out (or quarantined) is listed and skipped, not read in full on every run."""
    from concord.connectors import filestamps
    from concord.connectors.vdir import VdirConnector

    monkeypatch.setattr(filestamps, "window_of", lambda root: 0)
    read: list[str] = []
    real_scan = VdirConnector.scan

    def counting_scan(self, entity, after=None, batch=500):  # type: ignore[no-untyped-def]
        for got in real_scan(self, entity, after, batch):
            read.extend(g.ref for g in got)
            yield got

    monkeypatch.setattr(VdirConnector, "scan", counting_scan)
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}})
    assert env.sync("a").ok
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org"))
    env.write("a", "b.vcf", "BEGIN:VCARD\nVERSION:3.0\nFN:Broken\n")  # no END
    r = env.sync("a")  # filled after an empty first run: streamed
    assert read == ["b.vcf", "o.vcf"] and r.counts["not synced"] == 1, r.counts
    read.clear()
    assert env.sync("a").counts == {} and read == []
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    assert env.sync("a").counts == {"create in hub": 1} and read == []  # listed, read alone
    assert set(env.hub_records()) == {"p1"}


def test_a_linked_card_edited_out_of_the_selection_is_not_synced_until_it_comes_back(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A card linked over a, then edited at a to a kind a's value map has no entry for: no
    synchronisation either way while it stays so (a hub edit made meanwhile is not written
    over the card, nor retried on every run: a's light is green and says what it leaves out).
    Edited back, it is merged with the hub's edit three-way, the losing value kept; and a
    hub delete while it is out unlinks it without touching the card."""
    from concord.connectors import filestamps

    # exact stamps: a file's version changes only when it is written (not when the window
    # of a just-written file passes, which has it read once more)
    monkeypatch.setattr(filestamps, "window_of", lambda root: 0)
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}, "b": {}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "q.vcf", card("Other", "q1", kind="individual"))
    env.sync_all()
    env.edit("a", "p1", kind="org", title="Boss")
    env.edit("a", "q1", kind="org")
    assert env.sync("a").counts == {"not synced": 2}
    env.edit("b", "p1", title="Chief")
    assert env.sync("b").counts["spoke -> hub"] == 1
    assert env.sync("a").counts == {"not synced": 1}  # the hub's edit waits, noted once
    assert env.sync("a").counts == {}
    assert env.cards("a")["p1"]["title"] == "Boss" and env.cards("a")["p1"]["kind"] == "org"
    st, flagged = light(env, "a")
    assert (st.color, st.pending, flagged) == ("green", 0, set()), st.reason
    assert (st.excluded, st.spoke_excluded) == (2, 0), st.reason  # linked: counted once

    env.edit("a", "p1", kind="individual")  # back in the selection: merged three-way
    r = env.sync("a")
    assert r.counts["conflicts"] == 1, r.counts
    assert env.hub_records()["p1"]["title"] == env.cards("a")["p1"]["title"] == "Chief"
    [c] = env.conflicts()
    assert c["kept_values"] == {"title": "Boss"}  # the losing value, kept

    env.path_of("b", "q1").unlink()  # a hub delete of the one still out: a keeps its card
    env.sync("b")
    assert env.sync("a").counts == {"unlinked (deleted in the hub, not synced at the spoke)": 1}
    assert env.cards("a")["q1"]["kind"] == "org"
    assert env.hub.archive("a", "contact").get("q1") is None
    assert env.sync("a").counts == {}
    st, _ = light(env, "a")
    assert (st.color, st.pending) == ("amber", 0), st.reason  # amber: the open conflict


def test_a_card_left_out_holds_its_uid_against_a_hub_record_of_the_same_identity(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub holds t5 (no kind: inside a's selection) and a holds its own card with UID
    t5, an organisation a's value map leaves out. The hub's record is not created over the
    card (a folder's file named by that UID), nor the card taken in: neither is synced over
    a while the card stays out, and nothing is retried every run. Edited into the selection,
    the card meets the hub's record three-way; deleted instead, the record goes to a."""
    from concord.connectors import filestamps

    monkeypatch.setattr(filestamps, "window_of", lambda root: 0)
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}})
    env.hub.put("contact", "t5", {"name": "Hub Five"}, by="test")
    env.hub.put("contact", "t6", {"name": "Hub Six"}, by="test")
    env.write("a", "t5.vcf", card("Card Five", "t5", kind="org", title="Owner"))
    env.write("a", "t6.vcf", card("Card Six", "t6", kind="org"))
    r = env.sync("a")
    assert r.ok and r.counts == {"not synced": 4}, r.counts  # two cards, two records
    assert env.cards("a")["t5"] == {"name": "Card Five", "kind": "org", "title": "Owner"}
    assert env.hub.archive("a", "contact") == {}
    assert env.sync("a").counts == {}
    st, _ = light(env, "a")
    assert (st.color, st.pending) == ("green", 0), st.reason
    assert (st.excluded, st.spoke_excluded) == (2, 0), st.reason  # each identity once

    env.edit("a", "t5", kind="individual")  # into the selection: one record, merged
    r = env.sync("a")
    assert r.counts["conflicts"] == 1 and set(env.hub.archive("a", "contact")) == {"t5"}
    assert env.cards("a")["t5"]["name"] == env.hub_records()["t5"]["name"]
    [c] = env.conflicts()
    assert c["kept_values"]  # the losing name, kept

    env.path_of("a", "t6").unlink()  # the card holding t6 goes: the hub's t6 goes to a
    r = env.sync("a")
    assert r.counts["create in spoke"] == 1, r.counts
    assert env.cards("a")["t6"] == {"name": "Hub Six"}
    assert env.sync("a").counts == {}


def test_a_file_left_out_by_the_migration_is_counted_once_when_its_racy_window_ends(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file just written is versioned with its content's hash until the racy window has
    passed, then by its plain stamp: the run's listing right after the migration sees
    another version of a file the migration read and left out (not synced) without anyone
    having changed it. It is not read and counted a second time in that run."""
    from concord.connectors import filestamps

    monkeypatch.setattr(filestamps, "window_of", lambda root: 300_000_000)
    env = make_env({"a": {"values": {"kind": {"individual": "individual"}}}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org", org="Acme Ltd"))
    r = env.sync("a", progress=lambda entity, done, total: time.sleep(0.4))
    assert r.ok, r.message
    assert r.counts["not synced"] == 1 and r.counts["create in hub"] == 1
    assert set(env.hub_records()) == {"p1"}


def test_category_filter(make_env) -> None:
    env = make_env({"a": {}, "b": {"filter": {"categories": ["Client"]}}})
    env.write("a", "1.vcf", card("Client One", "c1", categories=["Client", "VIP"]))
    env.write("a", "2.vcf", card("Supplier", "s1", categories=["Supplier"]))
    env.write("a", "3.vcf", card("Nobody", "x1"))
    env.sync_all()
    assert set(env.cards("b")) == {"c1"}
    assert set(env.hub_records()) == {"c1", "s1", "x1"}
    # a card at b outside the filter stays out of the hub
    env.write("b", "4.vcf", card("Private", "p1", categories=["Personal"]))
    env.sync_all()
    assert "p1" not in env.hub_records()
    assert "p1" not in env.cards("a")


def light(env: VdirEnv, name: str, link=None):  # type: ignore[no-untyped-def]
    from concord.link.status import link_status, pending_ids

    link = link or env.cfg.link(name)
    st = link_status(env.hub, name, link)
    ids = [r.id for r in env.hub.list_records("contact", limit=100_000)]
    flagged = {i for i, names in pending_ids(env.hub, {name: link}, "contact", ids).items()
               if name in names}
    return st, flagged


def test_records_a_value_map_leaves_out_are_not_pending_until_edited_into_it(make_env) -> None:
    env = make_env({"a": {}, "b": {"values": {"kind": {"individual": "individual"}}}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org"))
    env.write("a", "o2.vcf", card("Beta Ltd", "o2", kind="org"))
    env.sync("a")
    r = env.sync("b")  # the first run of b: the two organisations are left out on purpose
    assert r.counts["not synced"] == 2 and set(env.cards("b")) == {"p1"}
    st, flagged = light(env, "b")
    assert (st.color, st.pending, st.excluded, flagged) == ("green", 0, 2, set()), st.reason
    assert "not synced (by the link's filters/value maps): 2" in st.reason
    assert env.sync("b").counts == {}  # and the next run does not look at them again

    # edited into the mapped range in a: pending for b (blue) until b's next run sends it
    env.edit("a", "o1", kind="individual")
    env.sync("a")
    st, flagged = light(env, "b")
    assert (st.color, st.pending, st.excluded, flagged) == ("blue", 1, 1, {"o1"}), st.reason
    assert env.sync("b").counts["create in spoke"] == 1
    assert set(env.cards("b")) == {"p1", "o1"}
    st, flagged = light(env, "b")
    assert (st.color, st.pending, st.excluded, flagged) == ("green", 0, 1, set()), st.reason

    # a hub delete of a record b leaves out is nothing for b to send
    env.path_of("a", "o2").unlink()
    env.sync("a")
    st, _ = light(env, "b")
    assert (st.color, st.pending, st.excluded) == ("green", 0, 0), st.reason


def test_a_value_map_that_gains_an_entry_sends_what_it_left_out(make_env) -> None:
    env = make_env({"a": {}, "b": {"values": {"kind": {"individual": "individual"}}}})
    env.write("a", "p.vcf", card("Person", "p1", kind="individual"))
    env.write("a", "o.vcf", card("Acme Ltd", "o1", kind="org"))
    env.sync_all()
    assert light(env, "b")[0].color == "green"
    wider = env.cfg.link("b").model_copy(deep=True)
    wider.entities["contact"].values["kind"]["org"] = "org"
    st, flagged = light(env, "b", wider)  # the new selection would carry o1: pending again
    assert (st.color, st.pending, st.excluded, flagged) == ("blue", 1, 0, {"o1"}), st.reason
    r = sync_link(env.hub, wider, entities=["contact"])
    assert r.counts["create in spoke"] == 1 and set(env.cards("b")) == {"p1", "o1"}
    st, flagged = light(env, "b", wider)
    assert (st.color, st.pending, flagged) == ("green", 0, set()), st.reason
    # narrowed again: o1 is linked already and stays as it is; nothing is pending
    st, _ = light(env, "b")
    assert (st.color, st.pending) == ("green", 0), st.reason


def test_records_a_filter_leaves_out_are_not_pending_and_a_linked_record_filtered_out_neither(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from concord.connectors import filestamps

    # exact timestamps: a file is read again only when its stamp changes (as b's c1 below)
    monkeypatch.setattr(filestamps, "window_of", lambda root: 0)
    env = make_env({"a": {}, "b": {"filter": {"categories": ["Client"]}}})
    env.write("a", "1.vcf", card("Client One", "c1", categories=["Client", "VIP"]))
    env.write("a", "2.vcf", card("Supplier", "s1", categories=["Supplier"]))
    env.write("a", "3.vcf", card("Nobody", "x1"))
    env.sync_all()
    assert set(env.cards("b")) == {"c1"}
    st, flagged = light(env, "b")
    assert (st.color, st.pending, st.excluded, flagged) == ("green", 0, 2, set()), st.reason
    env.edit("a", "s1", categories=["Client"])
    env.sync("a")
    st, flagged = light(env, "b")
    assert (st.color, st.pending, flagged) == ("blue", 1, {"s1"}), st.reason
    env.sync("b")
    assert set(env.cards("b")) == {"c1", "s1"}
    assert light(env, "b")[0].color == "green"
    # linked records edited out of the filter leave b, whether b's run meets them in the
    # hub's feed (s1) or as a touched file (c1); the hub keeps them with their edits
    env.edit("a", "c1", categories=["Former"], title="Left")
    env.edit("a", "s1", categories=["Former"], title="Left")
    env.sync("a")
    p = env.path_of("b", "c1")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    r = env.sync("b")
    assert r.counts["remove from spoke"] == 2, r.counts
    assert set(env.cards("b")) == set()
    hub = env.hub_records()
    assert hub["c1"]["categories"] == hub["s1"]["categories"] == ["Former"]
    assert hub["c1"]["title"] == hub["s1"]["title"] == "Left"
    st, flagged = light(env, "b")
    assert (st.color, st.pending, st.excluded, flagged) == ("green", 0, 3, set()), st.reason
    assert not env.sync("b").counts.get("create in hub")  # nothing comes back


def test_a_spoke_edit_of_a_record_the_hub_moved_out_of_the_filter_is_kept(make_env) -> None:
    """The hub moves a record out of b's filter while b's copy is edited: the copy leaves b,
    the hub keeps its own edit, and b's edit is kept in the conflicts log, not lost and not
    written back over the hub's."""
    env = make_env({"a": {}, "b": {"filter": {"categories": ["Client"]}}})
    env.write("a", "1.vcf", card("Client One", "c1", categories=["Client"]))
    env.sync_all()
    env.edit("a", "c1", categories=["Former"])
    env.sync("a")
    env.edit("b", "c1", title="Edited in b")
    r = env.sync("b")
    assert r.ok and r.counts["remove from spoke"] == 1, r.counts
    assert env.hub_records()["c1"]["categories"] == ["Former"]
    kept = [c for c in env.conflicts() if c["hub_id"] == "c1"]
    assert kept and kept[0]["kept_values"]["title"] == "Edited in b"
    assert "c1" not in env.cards("b")


def test_pull_link_leaves_hub_edits_pending(make_env) -> None:
    env = make_env({"a": {"direction": "pull"}, "b": {}})
    env.write("a", "1.vcf", card("Ann", "u1", phones=["1"]))
    env.sync_all()
    assert env.cards("b")["u1"]["name"] == "Ann"
    pa = env.path_of("a", "u1")
    text = pa.read_text()
    env.edit("b", "u1", title="Partner")
    env.sync("b")
    r = env.sync("a")
    assert r.counts["pending"] == 1
    assert pa.read_text() == text  # the hub edit did not reach the pull spoke
    assert env.hub_records()["u1"]["title"] == "Partner"  # and it was not lost either
    # a later spoke edit merges with the pending hub edit, losing neither
    env.edit("a", "u1", phones=["2"])
    env.sync("a")
    assert env.hub_records()["u1"] == {"name": "Ann", "phones": [{"number": "2"}],
                                       "title": "Partner"}
    assert "title" not in env.cards("a")["u1"]


def test_conflict_resolution_takes_the_losers_values_back(env: VdirEnv) -> None:
    seed(env, 2)
    env.sync_all()
    env.edit("a", "uid0", name="Alpha")
    env.edit("b", "uid0", name="Bravo")
    env.sync("a")
    env.sync("b")  # hub (Alpha, from a) wins over b's Bravo; Bravo is kept
    env.sync_all()
    assert env.cards("b")["uid0"]["name"] == "Alpha"
    [c] = [c for c in env.conflicts() if c["hub_id"] == "uid0"]
    assert c["winner"] == "hub" and c["kept_values"] == {"name": "Bravo"}
    code, out = env.cli("conflicts")
    assert str(c["id"]) in out and "Bravo" in out
    assert "Alpha" in out  # the record by its name, not only its hub id
    code, out = env.cli("conflicts", "--json")
    [row] = [r for r in json.loads(out) if r["id"] == c["id"]]
    assert row["record"] == "Alpha" and row["hub_id"] == "uid0" and row["kept"] == {"name": "Bravo"}

    code, out = env.cli("conflicts", "resolve", str(c["id"]), "--take", "loser")
    assert code == 0 and "loser" in out
    assert env.hub_records()["uid0"]["name"] == "Bravo"
    env.sync_all()
    assert env.cards("a")["uid0"]["name"] == "Bravo"
    assert env.cards("b")["uid0"]["name"] == "Bravo"
    assert env.hub.conflicts() == []  # resolved
    code, out = env.cli("conflicts", "resolve", str(c["id"]), "--take", "loser")
    assert code == 2 and "already resolved" in out


def test_a_second_sync_of_the_same_link_while_one_holds_the_lock_is_refused(env: VdirEnv) -> None:
    seed(env, 2)
    other = Hub(env.hub_url)  # another process's view of the same hub
    try:
        with other.lock("sync:a:contact"):
            with pytest.raises(LinkLocked, match="already being synced"):
                env.sync("a")
            code, out = env.cli("sync", "a")
            assert code == 0 and "already syncing" in out
            assert env.hub_records() == {}
            env.sync("b")  # another link is not blocked
        assert env.sync("a").counts["create in hub"] == 2  # free again
    finally:
        other.close()


class _CrashOnce:
    """Make the hub's commit fail once, after the connector has written to the spoke."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fired = False
        self.real = real = Hub.save_archive

        def save_archive(hub, conn, link, entity, rows):  # type: ignore[no-untyped-def]
            if rows and not self.fired:
                self.fired = True
                raise HubError("simulated crash between the spoke write and the hub commit")
            return real(hub, conn, link, entity, rows)

        monkeypatch.setattr(Hub, "save_archive", save_archive)
        real_fresh = Hub._write_fresh

        def write_fresh(hub, conn, link, entity, by, rows):  # type: ignore[no-untyped-def]
            if rows and not self.fired:  # a first sync's link state goes this way
                self.fired = True
                raise HubError("simulated crash between the spoke write and the hub commit")
            return real_fresh(hub, conn, link, entity, by, rows)

        monkeypatch.setattr(Hub, "_write_fresh", write_fresh)


def test_crash_after_spoke_create_links_the_item_without_duplicate(
        env: VdirEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, 5)
    env.sync("a")
    crash = _CrashOnce(monkeypatch)
    with pytest.raises(HubError, match="simulated crash"):
        env.sync("b")
    assert crash.fired
    assert len(env.files("b")) == 5  # the spoke writes happened; the hub knows nothing of them
    assert env.hub.archive_count("b", "contact") == 0
    r = env.sync("b")
    # the intent recorded before the writes identifies them as Concord's own
    assert r.counts["own write found again: synced"] == 5
    assert "create in spoke" not in r.counts and "create in hub" not in r.counts
    assert sorted(p.name for p in env.folder("b").glob("*.vcf")) == [f"uid{i}.vcf" for i in range(5)]
    assert len(env.hub_records()) == 5
    assert env.conflicts() == []
    env.sync_all()
    assert env.cards("a") == env.cards("b")
    assert len(list(env.folder("a").glob("*.vcf"))) == 5


def test_crash_after_spoke_update_marks_it_synced(env: VdirEnv,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, 3)
    env.sync_all()
    # b's files out of the racy window, their plain stamps noted: otherwise the crash could
    # fire on noting them (a version-only change) before the spoke write it is meant for
    hour_ago = time.time() - 3600
    for p in env.folder("b").glob("*.vcf"):
        os.utime(p, (hour_ago, hour_ago))
    env.sync("b")
    env.edit("a", "uid1", title="Partner")
    env.sync("a")
    _CrashOnce(monkeypatch)
    with pytest.raises(HubError, match="simulated crash"):
        env.sync("b")
    assert env.cards("b")["uid1"]["title"] == "Partner"  # written before the crash
    seq = env.hub.last_seq()
    r = env.sync("b")
    assert r.counts["own write found again: synced"] == 1
    assert env.hub.last_seq() == seq and env.conflicts() == []
    assert env.sync("b").counts == {}


def test_crash_in_a_pull_batch_leaves_nothing_half_done(env: VdirEnv,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, 4)
    _CrashOnce(monkeypatch)
    with pytest.raises(HubError):
        env.sync("a")
    assert env.hub_records() == {}  # the hub write rolled back with the archive
    env.sync_all()
    assert set(env.hub_records()) == {f"uid{i}" for i in range(4)}
    ids = [vcard.parse(p.read_text()).uid for p in env.folder("b").glob("*.vcf")]
    assert len(ids) == 4 and duplicates(ids) == []


def test_cli_sync_all_links_and_status_green(env: VdirEnv) -> None:
    seed(env, 3)
    code, out = env.cli("sync")
    assert code == 0 and "a: ok" in out and "3 create in hub" in out and "3 create in spoke" in out
    code, out = env.cli("status")
    assert code == 0 and out.count("green") == 2
    code, out = env.cli("log")
    assert "a" in out and "ok" in out


def test_sync_link_through_the_api_with_an_explicit_connector(env: VdirEnv) -> None:
    from concord.connectors.base import make_connector

    seed(env, 2)
    link = env.cfg.link("a")
    with make_connector(link.connector, link.options, link="a") as conn:
        r = sync_link(env.hub, link, conn, entities=["contact"])
    assert r.ok and r.counts["create in hub"] == 2
    assert r.run_id is not None and env.hub.runs("a")[0]["status"] == "ok"


def test_crash_after_spoke_update_then_newer_hub_edit_is_not_a_conflict(
        make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env({"a": {}, "b": {"authority": "spoke"}})
    seed(env, 3)
    env.sync_all()
    env.edit("a", "uid1", title="First")
    env.sync("a")
    crash = _CrashOnce(monkeypatch)
    with pytest.raises(HubError):
        env.sync("b")  # b now holds "First", but the hub does not know it was synced
    monkeypatch.setattr(Hub, "save_archive", crash.real)
    env.edit("a", "uid1", title="Second")
    env.sync("a")
    env.sync_all()
    assert env.hub_records()["uid1"]["title"] == "Second"
    assert env.cards("b")["uid1"]["title"] == "Second"
    assert env.conflicts() == []


def test_two_files_with_one_uid_in_a_single_run_quarantine_the_second(env: VdirEnv) -> None:
    env.write("a", "x.vcf", card("Ann X", "u1"))
    env.write("a", "y.vcf", card("Ann Y", "u1"))
    env.write("a", "z.vcf", card("Zed", "u2"))
    r = env.sync("a")
    assert r.status == "ok"
    assert r.counts["create in hub"] == 2
    [err] = r.entities["contact"].errors
    assert "UID u1 is already used by" in err and "fix:" in err
    [q] = env.hub.quarantined("a")
    linked = env.hub.archive("a", "contact")["u1"].spoke_ref
    assert {q["ref"], linked} == {"x.vcf", "y.vcf"}
    names = {"x.vcf": "Ann X", "y.vcf": "Ann Y"}
    assert env.hub_records() == {"u1": {"name": names[linked]}, "u2": {"name": "Zed"}}
    env.sync_all()
    assert set(env.cards("b")) == {"u1", "u2"}
    assert env.cards("b")["u1"]["name"] == names[linked]


def test_same_uid_new_in_both_folders_links_equal_and_conflicts_different(env: VdirEnv) -> None:
    env.write("a", "same.vcf", card("Same Person", "s1", phones=["1"]))
    env.write("b", "same-copy.vcf", card("Same Person", "s1", phones=["1"]))
    env.write("a", "diff.vcf", card("Dee from A", "d1", title="Partner"))
    env.write("b", "diff-copy.vcf", card("Dee from B", "d1", phones=["2"]))
    env.sync("a")
    r = env.sync("b")
    assert r.counts["same identity, equal: link"] == 1
    assert "create in spoke" not in r.counts and "create in hub" not in r.counts
    env.sync_all()
    assert sorted(p.name for p in env.folder("b").glob("*.vcf")) == ["diff-copy.vcf", "same-copy.vcf"]
    assert env.cards("a") == env.cards("b") == env.hub_records()
    # authority hub: a's values (in the hub first) win where they differ; b's are kept
    assert env.hub_records()["d1"]["name"] == "Dee from A"
    [c] = env.conflicts()
    assert c["hub_id"] == "d1" and c["kind"] == "create" and c["winner"] == "hub"
    assert c["kept_values"]["name"] == "Dee from B"
    assert c["kept_values"]["phones"] == [{"number": "2"}]
