"""The fresh path of a first migration (``EntitySync._create_fresh``) gives exactly what the
general path (a planned case and a decision per record) gives: the same hub records, link
state, quarantine, counts and checkpoints, on the same spoke, with bad rows, spoke UIDs that
become hub ids, a UID too long to be one, and two files sharing one UID in one chunk.

Each scenario migrates the same spoke twice, into two empty hubs, once per path, and compares
what the hubs hold; then a second sync of each must find nothing to do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, LinkConfig
from concord.connectors.base import StreamedMigration
from concord.connectors.vdir import VdirConnector, VdirOptions
from concord.engine import RunResult, sync_link
from concord.engine.run import EntitySync
from concord.hub.store import Hub, load_content
from concord.records import hash_text
from tests.integration.sql_helpers import ENTITY_TABLES, connector, db_exec, link_config
from tests.integration.vdirenv import card


def _run(monkeypatch: pytest.MonkeyPatch, fresh: bool, hub: Hub, link: LinkConfig,
         conn: Any = None) -> tuple[RunResult, int]:
    """Sync with the fresh path on or off; returns the result and the chunks it took."""
    taken = 0
    real = EntitySync._create_fresh

    def counting(self: EntitySync, *a: Any, **kw: Any) -> None:
        nonlocal taken
        taken += 1
        real(self, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(EntitySync, "FRESH_PATH", fresh)
        m.setattr(EntitySync, "_create_fresh", counting)
        r = sync_link(hub, link, conn) if conn is not None else sync_link(hub, link)
    return r, taken


def _state(hub: Hub, link: str, entities: list[str]) -> dict[str, Any]:
    """What a hub holds, with generated hub ids replaced by the spoke ref they are linked
    to (the two runs draw different fresh ids; ids taken from spoke UIDs must match)."""
    ref_of: dict[str, str] = {}
    for e in entities:
        for a in hub.archive(link, e).values():
            ref_of[a.hub_id] = f"{e}:{a.spoke_ref}"
    out: dict[str, Any] = {}
    for e in entities:
        recs = {}
        for rec in hub.list_records(e, include_deleted=True, limit=10**6):
            key = rec.id if not _generated(rec.id) else ref_of.get(rec.id, "unlinked")
            recs[key] = (rec.fields, {k: ref_of.get(v or "", v) for k, v in rec.refs.items()},
                         rec.deleted)
        hashes = {rec.id: rec.hash for rec in hub.list_records(e, limit=10**6)}
        arch = {}
        for a in hub.archive(link, e).values():
            fields, refs = load_content(a.base)
            # hashes cover generated ids: checked for consistency, not compared
            arch[a.spoke_ref] = (a.spoke_version, fields,
                                 {k: ref_of.get(v or "", v) for k, v in refs.items()},
                                 a.hash == hash_text(a.base), a.hub_hash == hashes.get(a.hub_id))
        cp = hub.checkpoint(link, e)
        out[e] = {"records": recs, "archive": arch,
                  "checkpoint": (cp.spoke_token, cp.progress),
                  "left": {ref: n[0] for ref, n in hub.spoke_left(link, e).items()}}
    out["quarantine"] = sorted((q["entity"], q["side"], q["ref"], q["error"])
                               for q in hub.quarantined(link))
    out["conflicts"] = len(hub.conflicts(link=link, open_only=False))
    return out


def _generated(hub_id: str) -> bool:
    return len(hub_id) == 32 and hub_id[12] == "7"  # a UUIDv7 from records.new_id


def _counts(r: RunResult) -> dict[str, dict[str, int]]:
    out = {e: {k: v for k, v in er.counts.items() if v} for e, er in r.entities.items()}
    return {e: c for e, c in out.items() if c}


def practice_with_bad_rows(tmp_path: Path, clients: int = 60) -> str:
    """The sample practice database with a bad e-mail (client 3), a bad date (job 2) and a
    task referring to a client that does not exist (task 6)."""
    from concord.demo.sample import create_sample

    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=clients)
    db_exec(url, "UPDATE clients SET email = 'not-an-email' WHERE client_id = 3")
    db_exec(url, "UPDATE jobs SET due_date = '31/02/2024' WHERE job_id = 2")
    db_exec(url, "UPDATE tasks SET client_id = 999999 WHERE task_id = 6")
    return url


def add_spoke_uids(url: str) -> None:
    """Rows the practice database knows by a UID of their own (a spoke ident), one of them
    too long to be a hub id (after activation, which creates the table)."""
    db_exec(url, "INSERT INTO concord_ids (entity, ident, row_key) VALUES "
                 "('client', 'client-uid-5', '5'), ('contact', :long, '4'), "
                 "('job', 'job-uid-9', '9')", long="L" * 90)


@pytest.mark.parametrize("batch", [7, 500])
def test_a_practice_database_migrates_alike_on_both_paths(tmp_path: Path, batch: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from concord.link.activation import activate

    url = practice_with_bad_rows(tmp_path)
    link = link_config(url, batch=batch)
    results = {}
    for fresh in (True, False):
        hub = Hub(f"sqlite:///{tmp_path / f'hub-{fresh}.db'}")
        activate(hub, link, by=link.admin or "")
        if fresh:
            add_spoke_uids(url)
        r, taken = _run(monkeypatch, fresh, hub, link)
        assert r.status == "ok", r.message
        assert (taken > 0) == fresh
        results[fresh] = (_counts(r), _state(hub, link.name, list(ENTITY_TABLES)))
        again, _ = _run(monkeypatch, fresh, hub, link, connector(link))
        assert again.status == "ok" and not _counts(again), _counts(again)
    assert results[True][0] == results[False][0]
    for key in results[True][1]:
        assert results[True][1][key] == results[False][1][key], key
    fresh_state = results[True][1]
    assert "client-uid-5" in fresh_state["client"]["records"]  # the UID became the hub id
    assert "job-uid-9" in fresh_state["job"]["records"]
    assert any(q[2] == "3" for q in fresh_state["quarantine"])
    assert results[True][0]["client"]["create in hub"] == 59


class _ListedVdir(VdirConnector):
    """A vdir folder that does not stream its first migration: the run's full listing is
    its first sync (the path of a listing spoke that cannot stream)."""

    def streamed_migration(self) -> StreamedMigration | None:
        return None


def _folder(tmp_path: Path, people: int, extra: dict[str, str]) -> Path:
    """Cards c00..c{people-1} with UIDs uid0.., plus ``extra`` files, all dated an hour back
    (out of the racy window: both runs see plain stamps)."""
    folder = tmp_path / "cards"
    folder.mkdir()
    for i in range(people):
        (folder / f"c{i:02}.vcf").write_text(card(f"Person {i}", f"uid{i}",
                                                  emails=[f"p{i}@x.com"]))
    for name, text in extra.items():
        (folder / name).write_text(text)
    for f in folder.iterdir():
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    return folder


def _folder_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: Path, batch: int,
                      make: Any, *, again: bool) -> dict[str, Any]:
    """Sync the folder into two empty hubs, one per path; both must leave the same counts
    and state (and, with ``again``, find nothing to do on a second sync). Returns the state."""
    link = LinkConfig(name="cards", connector="vdir", batch_size=batch,
                      options={"path": str(folder)}, entities={"contact": EntityConfig()})
    results = {}
    for fresh in (True, False):
        hub = Hub(f"sqlite:///{tmp_path / f'hub-{fresh}.db'}")
        conn = make(VdirOptions(path=str(folder)), link="cards")
        r, taken = _run(monkeypatch, fresh, hub, link, conn)
        assert r.status == "ok", r.message
        assert (taken > 0) == fresh
        if again:
            second, _ = _run(monkeypatch, fresh, hub, link, conn)
            assert second.status == "ok" and not _counts(second), _counts(second)
        results[fresh] = (_counts(r), _state(hub, "cards", ["contact"]))
    assert results[True][0] == results[False][0]
    for key in results[True][1]:
        assert results[True][1][key] == results[False][1][key], key
    return results[True][1]


BROKEN = "BEGIN:VCARD\nVERSION:3.0\nFN:Broken\n"  # no END


@pytest.mark.parametrize("batch", [3, 100])
def test_a_folder_with_a_duplicate_uid_and_a_bad_card_migrates_alike(
        tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, 10, {"c03b.vcf": card("Person 3 again", "uid3"),  # after c03
                                    "c05.vcf": BROKEN})
    state = _folder_both_ways(tmp_path, monkeypatch, folder, batch, VdirConnector, again=True)
    assert set(state["contact"]["records"]) == {f"uid{i}" for i in range(10) if i != 5}
    assert state["contact"]["records"]["uid3"][0]["name"] == "Person 3"  # the first kept
    errors = {q[2]: q[3] for q in state["quarantine"]}
    assert "uid3" in errors["c03b.vcf"] and "c03.vcf" in errors["c03b.vcf"]
    assert "c05.vcf" in errors


@pytest.mark.parametrize("batch", [2, 100])
def test_a_first_listing_of_a_folder_syncs_alike_on_both_paths(
        tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spoke that cannot stream (a listing spoke) takes the fresh path on its first
    sync into an empty hub too, with the same outcome; a second sync of each finds nothing
    to do. Two files sharing a UID in different chunks (batch 2) quarantine one of them on
    both paths."""
    folder = _folder(tmp_path, 9, {
        "c03b.vcf": card("Person 3 again", "uid3"), "c05.vcf": BROKEN,
        "nouid.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Uid\r\nEND:VCARD\r\n"})
    assert _ListedVdir(VdirOptions(path=str(folder)), link="cards").streamed_migration() is None
    state = _folder_both_ways(tmp_path, monkeypatch, folder, batch, _ListedVdir, again=True)
    assert {k for k in state["contact"]["records"] if k.startswith("uid")} == {
        f"uid{i}" for i in range(9) if i != 5}
    assert "contact:nouid.vcf" in state["contact"]["records"]
    # the two files sharing uid3: the one read first holds it, the other is quarantined
    errors = {q[2]: q[3] for q in state["quarantine"]}
    assert "c05.vcf" in errors and len(errors) == 2, errors
    [dup] = set(errors) - {"c05.vcf"}
    assert dup in ("c03.vcf", "c03b.vcf") and "uid3" in errors[dup], errors
