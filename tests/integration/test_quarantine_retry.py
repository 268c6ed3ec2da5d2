"""Quarantined records are retried with backoff, and when they or a parent change; never on
every run (a real vdir folder and SQLite hub)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from concord.config import from_dict
from concord.engine import sync_link
from concord.hub.store import RETRY_FIRST_S, Hub

GOOD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n"
BAD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bad\r\nFN:Broken\r\nEMAIL:\x00\r\n"  # no END


def settled(path: Path) -> None:
    """As an hour old: out of the racy window, so its version is its plain stamp (a file
    just written is versioned by its content until the window passes)."""
    t = time.time() - 3600
    os.utime(path, (t, t))


def test_one_bad_file_is_not_retried_every_run_but_when_it_changes_or_its_backoff_ends(
        tmp_path: Path) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    (folder / "good.vcf").write_text(GOOD.format(uid="good", name="Good"))
    (folder / "bad.vcf").write_text(BAD)
    for f in folder.iterdir():
        settled(f)
    cfg = from_dict({"hub": {"url": f"sqlite:///{tmp_path / 'hub.db'}"}, "links": {"office": {
        "connector": "vdir", "options": {"path": str(folder)},
        "entities": {"contact": {"direction": "two-way"}}}}})
    hub, link = Hub(cfg.hub.url), cfg.link("office")
    r = sync_link(hub, link, trigger="schedule")
    assert r.counts["quarantined"] == 1 and r.entities["contact"].errors
    [q] = hub.quarantined("office")
    assert q["attempts"] == 1 and q["retry_at"] >= time.time() + RETRY_FIRST_S - 5
    runs = len(hub.runs("office"))

    # nothing changed: the next scheduled runs do not read it again, count it or journal it
    for _ in range(3):
        r = sync_link(hub, link, trigger="schedule")
        assert r.counts == {} and not r.entities["contact"].errors
    assert len(hub.runs("office")) == runs

    # edited (still broken): read again at once; the same failure is not news
    (folder / "bad.vcf").write_text(BAD.replace("Broken", "Still broken"))
    settled(folder / "bad.vcf")
    r = sync_link(hub, link, trigger="schedule")
    assert r.entities["contact"].errors and r.counts == {}
    [q] = hub.quarantined("office")
    assert q["attempts"] == 2 and q["retry_at"] >= time.time() + 2 * RETRY_FIRST_S - 5

    # the backoff ends: tried again without any change
    hub.retry_quarantined_now("office")
    assert sync_link(hub, link, trigger="schedule").entities["contact"].errors
    assert not sync_link(hub, link, trigger="schedule").entities["contact"].errors

    # corrected: it arrives and leaves quarantine
    (folder / "bad.vcf").write_text(GOOD.format(uid="bad", name="Fixed"))
    r = sync_link(hub, link, trigger="schedule")
    assert hub.quarantined("office") == [] and hub.count("contact") == 2, r.counts


def test_a_first_migration_releases_what_was_quarantined_before_it_and_is_linked_now(
        tmp_path: Path) -> None:
    """A first migration skips releasing quarantine rows where the entity had none when it
    began (it scans each file once, so nothing it quarantines is linked later); where some
    were held already (here, a file quarantined before the link's first migration), the
    chunk that links the file releases its row, and a row of another entity stays."""
    folder = tmp_path / "office"
    folder.mkdir()
    for i in range(5):
        (folder / f"c{i}.vcf").write_text(GOOD.format(uid=f"uid{i}", name=f"Person {i}"))
        settled(folder / f"c{i}.vcf")
    cfg = from_dict({"hub": {"url": f"sqlite:///{tmp_path / 'hub.db'}"}, "links": {"office": {
        "connector": "vdir", "options": {"path": str(folder)}, "batch_size": 2,
        "entities": {"contact": {}}}}})
    hub = Hub(cfg.hub.url)
    with hub.begin() as conn:
        hub.quarantine_items(conn, "office", "contact", [("spoke", "c3.vcf", "held (test)", None)])
        hub.quarantine_items(conn, "office", "client", [("spoke", "c3.vcf", "held (test)", None)])
    r = sync_link(hub, cfg.link("office"))
    assert r.ok, r.message
    assert r.entities["contact"].counts["migrated"] == 5
    assert [(q["entity"], q["ref"]) for q in hub.quarantined("office")] == [("client", "c3.vcf")]
