"""A large first migration prepared in a second process (engine/aside.py) gives exactly what
one process gives, on a real SQLite practice database: the same hub records, link state,
quarantine, errors, counts and checkpoints. An error in the preparing process comes back as
itself with every chunk before it committed, and the next run resumes there; a run killed
with SIGKILL leaves no preparing process behind, and the next run finishes the migration.

The size threshold (``ASIDE_FROM``) is lowered so a small database takes the path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, LinkConfig
from concord.connectors.base import REGISTRY, Item, ItemError
from concord.connectors.sql import SQLConnector
from concord.engine import sync_link
from concord.errors import TransientError
from concord.hub.store import Hub
from concord.link.activation import activate
from tests.integration.sql_helpers import ENTITY_TABLES, db_rows, link_config
from tests.integration.test_fresh_migration import _state, add_spoke_uids, practice_with_bad_rows
from tests.integration.vdirenv import card

ROOT = Path(__file__).resolve().parents[2]


SYNC = """
import json, sys
sys.path.insert(0, {root!r})
from concord.config import LinkConfig
from concord.connectors.base import REGISTRY
from concord.engine import aside, sync_link
from concord.engine.run import EntitySync
from concord.hub.store import Hub

aside.ASIDE_FROM = 0
EntitySync.ASIDE = {on!r}
REGISTRY.update({registry!r})
{pre}
started = 0
real = aside.Aside.__init__

def counting(self, *a, **kw):
    global started
    started += 1
    real(self, *a, **kw)

aside.Aside.__init__ = counting
out = {{}}
if __name__ == "__main__":
    try:
        r = sync_link(Hub({hub!r}), LinkConfig.model_validate_json({link!r}))
        out = {{"status": r.status, "message": r.message,
               "counts": {{e: {{k: v for k, v in er.counts.items() if v}}
                          for e, er in r.entities.items()}},
               "errors": {{e: sorted(er.errors) for e, er in r.entities.items()}}}}
    except Exception as exc:
        out = {{"raised": type(exc).__name__, "message": str(exc)}}
    out["started"] = started
    print(json.dumps(out))
"""


def _sync(tmp_path: Path, hub: Hub, link: Any, *, aside_on: bool,
          env: dict[str, str] | None = None, pre: str = "") -> dict[str, Any]:
    """One sync, with the second process on (for any size) or off, in a process of its own:
    forking is refused beside other threads, which earlier tests may leave in this one.
    Returns its status, message, counts and errors (or the error it raised) and how many
    entity types were prepared aside."""
    script = tmp_path / "sync.py"
    script.write_text(textwrap.dedent(SYNC.format(
        root=str(ROOT), on=aside_on, registry=dict(REGISTRY), hub=hub.url,
        link=link.model_dump_json(), pre=pre)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
                                            **(env or {})})
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if "counts" in out:
        out["counts"] = {e: c for e, c in out["counts"].items() if c}
    return out


class ScanOnlySQL(SQLConnector):
    """The SQL connector without key ranges: one process prepares, by the plain scan (as
    for a DAV collection)."""

    def bounds(self, entity: str, after: str | None, batch: int) -> None:
        return None


@pytest.mark.parametrize(("batch", "kind"), [(7, "sql"), (500, "sql"), (7, "sql-scan")])
def test_a_migration_prepared_aside_is_the_one_process_migration(
        tmp_path: Path, batch: int, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several processes over key ranges (``sql``), or one by the plain scan (``sql-scan``)."""
    url = practice_with_bad_rows(tmp_path)
    monkeypatch.setitem(REGISTRY, "sql-scan", f"{__name__}:ScanOnlySQL")
    link = link_config(url, batch=batch).model_copy(update={"connector": kind})
    results = {}
    for on in (True, False):
        hub = Hub(f"sqlite:///{tmp_path / f'hub-{on}.db'}")
        activate(hub, link, by=link.admin or "")
        if on:
            add_spoke_uids(url)
        r = _sync(tmp_path, hub, link, aside_on=on)
        assert r["status"] == "ok", r
        assert (r["started"] > 0) == on
        results[on] = (r["counts"], r["errors"], _state(hub, link.name, list(ENTITY_TABLES)))
        again = _sync(tmp_path, hub, link, aside_on=on)
        assert again["status"] == "ok" and not again["counts"], again
    assert results[True][0] == results[False][0]
    assert results[True][1] == results[False][1]
    for key in results[True][2]:
        assert results[True][2][key] == results[False][2][key], key
    state = results[True][2]
    assert "client-uid-5" in state["client"]["records"]
    assert any(q[2] == "3" for q in state["quarantine"])  # the bad e-mail, quarantined
    assert any("not-an-email" in e for e in results[True][1]["client"])


def _cards(folder: Path, n: int) -> dict[str, str]:
    """``n`` cards, every fifth of an organisation the link filters out; plus a broken
    card and a second card with the UID of c0003 (in a later chunk); all dated an hour back
    (out of the racy window). Returns the odd files by what they are."""
    folder.mkdir()
    for i in range(n):
        org = "Other Pty Ltd" if i % 5 == 4 else "Kept Pty Ltd"
        (folder / f"c{i:04}.vcf").write_text(
            card(f"Person {i}", f"uid{i}", emails=[f"p{i}@x.com"], org=org))
    odd = {"broken": "c0010b.vcf", "dup": "c0030b.vcf"}
    (folder / odd["broken"]).write_text("BEGIN:VCARD\nVERSION:3.0\nFN:Broken\n")  # no END
    (folder / odd["dup"]).write_text(card("Person 3 again", "uid3", org="Kept Pty Ltd"))
    for f in folder.iterdir():
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    return odd


@pytest.mark.parametrize("batch", [7, 500])
def test_a_folder_prepared_aside_is_the_one_process_migration(
        tmp_path: Path, batch: int) -> None:
    """A vdir folder streams its first migration in name ranges, prepared by several
    processes; it leaves what one process leaves. The run's full listing right after the
    migration (a folder has no change token) does not try a file the migration left out a
    second time: the broken card is quarantined after one attempt, its error and each
    filtered-out card are counted once."""
    folder = tmp_path / "cards"
    odd = _cards(folder, 60)
    link = LinkConfig(name="cards", connector="vdir", batch_size=batch,
                      options={"path": str(folder)},
                      entities={"contact": EntityConfig(filter={"org": ["Kept Pty Ltd"]})})
    results = {}
    for on in (True, False):
        hub = Hub(f"sqlite:///{tmp_path / f'hub-{on}.db'}")
        r = _sync(tmp_path, hub, link, aside_on=on)
        assert r["status"] == "ok", r
        assert (r["started"] > 0) == on
        results[on] = (r["counts"], r["errors"], _state(hub, "cards", ["contact"]))
        [broken] = [q for q in hub.quarantined("cards") if q["ref"] == odd["broken"]]
        assert broken["attempts"] == 1, broken
        seq = hub.last_seq()
        again = _sync(tmp_path, hub, link, aside_on=on)
        assert again["status"] == "ok", again
        assert hub.last_seq() == seq  # nothing written the second time
        assert "create in hub" not in again["counts"].get("contact", {}), again
        # the cards the filter leaves out are noted at the version read: not read again
        assert "not synced" not in again["counts"].get("contact", {}), again
    assert results[True][0] == results[False][0]
    assert results[True][1] == results[False][1]
    for key in results[True][2]:
        assert results[True][2][key] == results[False][2][key], key
    counts, errors, state = results[True]
    assert counts["contact"]["not synced"] == 12  # every fifth of 60, once
    assert set(state["contact"]["left"]) == {f"c{i:04}.vcf" for i in range(4, 60, 5)}
    assert counts["contact"]["create in hub"] == 60 - 12
    assert sum(odd["broken"] in e for e in errors["contact"]) == 1, errors
    assert {q[2] for q in state["quarantine"]} == {odd["broken"], odd["dup"]}
    assert state["contact"]["records"]["uid3"][0]["name"] == "Person 3"  # the first kept


POOL_RUNNING = """
import threading
from concord.connectors import vdir
vdir._start_pool()  # as an earlier run of a big folder leaves it in this process
assert list(vdir._POOL.map(abs, [-1])) == [1] and threading.active_count() > 1
"""


def test_a_folder_is_prepared_aside_after_a_run_that_left_its_parsing_pool_running(
        tmp_path: Path) -> None:
    """Forking beside a running thread is unsafe, and the parsing pool of a folder runs
    one: the folder connector stops it before the migration forks its preparing processes
    (``before_fork``), rather than the migration giving up the second process."""
    folder = tmp_path / "cards"
    _cards(folder, 30)
    link = LinkConfig(name="cards", connector="vdir", batch_size=4,
                      options={"path": str(folder)}, entities={"contact": EntityConfig()})
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    r = _sync(tmp_path, hub, link, aside_on=True, pre=POOL_RUNNING)
    assert r["status"] == "ok", r
    assert r["started"] == 1
    assert r["counts"]["contact"]["create in hub"] == 30
    assert hub.count("contact") == 30


class FailingSQL(SQLConnector):
    """The SQL connector, failing with a transient error on the chunk holding client 35
    while CONCORD_TEST_FAIL is set (the preparing processes inherit the environment)."""

    @staticmethod
    def _check(entity: str, items: list[Item | ItemError]) -> list[Item | ItemError]:
        if (entity == "client" and os.environ.get("CONCORD_TEST_FAIL")
                and any(it.ref == "35" for it in items)):
            raise TransientError("practice database went away (test)")
        return items

    def scan(self, entity: str, after: str | None = None,
             batch: int = 2000) -> Iterator[list[Item | ItemError]]:
        for items in super().scan(entity, after, batch):
            yield self._check(entity, items)

    def scan_range(self, entity: str, after: str | None,
                   upto: str | None) -> list[Item | ItemError]:
        return self._check(entity, super().scan_range(entity, after, upto))


class FailingScanOnlySQL(FailingSQL, ScanOnlySQL):
    pass


@pytest.mark.parametrize("cls", ["FailingSQL", "FailingScanOnlySQL"])
def test_an_error_while_preparing_comes_back_and_the_next_run_resumes(
        tmp_path: Path, cls: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = practice_with_bad_rows(tmp_path, clients=80)
    monkeypatch.setitem(REGISTRY, "sql-failing", f"{__name__}:{cls}")
    link = link_config(url, batch=10).model_copy(update={"connector": "sql-failing"})
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    activate(hub, link, by=link.admin or "")
    r = _sync(tmp_path, hub, link, aside_on=True, env={"CONCORD_TEST_FAIL": "1"})
    assert r["started"]
    # the error itself, raised again in the run's process: the scheduler retries it
    assert r["raised"] == "TransientError" and "went away" in r["message"], r
    assert hub.link_row(link.name)["last_error"] == "practice database went away (test)"
    cp = hub.checkpoint(link.name, "client")
    assert cp.progress is not None and cp.progress["done"] == 30  # three chunks committed
    assert hub.count("client") == 29  # and client 3, quarantined (its e-mail)
    r = _sync(tmp_path, hub, link, aside_on=True)
    assert r["status"] == "ok", r
    assert r["counts"]["client"]["create in hub"] == 80 - 30  # resumed, not redone
    linked = hub.archive(link.name, "client")
    assert len(linked) == 79 and len({a.spoke_ref for a in linked.values()}) == 79


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
import multiprocessing
from concord.engine import aside, sync_link
from concord.engine.run import EntitySync
from concord.hub.store import Hub
from tests.integration.sql_helpers import link_config

aside.ASIDE_FROM = 0
link = link_config({url!r}, batch=20)
real = EntitySync._commit_fresh
chunks = 0

def commit(self, *a, **kw):
    global chunks
    real(self, *a, **kw)
    chunks += 1
    if self.entity == "contact" and chunks >= 3:
        with open({pids!r}, "w") as f:
            f.write(" ".join(str(p.pid) for p in multiprocessing.active_children()))
        os.kill(os.getpid(), signal.SIGKILL)

EntitySync._commit_fresh = commit
if __name__ == "__main__":
    sync_link(Hub({hub!r}), link)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state or "State:\tZ" in state


def test_a_run_killed_while_preparing_leaves_no_process_and_resumes(tmp_path: Path) -> None:
    url = practice_with_bad_rows(tmp_path, clients=200)
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    link = link_config(url, batch=20)
    hub = Hub(hub_url)
    activate(hub, link, by=link.admin or "")
    pids = tmp_path / "children"
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER.format(root=str(ROOT), url=url, hub=hub_url,
                                                    pids=str(pids))))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    children = [int(p) for p in pids.read_text().split()]
    assert children, "the migration was not prepared in a second process"
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in children), "the preparing process outlived its run"
    before = hub.count("contact")
    total = db_rows(url, "SELECT count(*) FROM contacts")[0][0]
    assert 0 < before < total
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert r.entities["contact"].counts["create in hub"] == total - before
    assert len(hub.archive(link.name, "contact")) == total


def test_a_link_can_keep_its_migration_in_one_process(tmp_path: Path) -> None:
    """``prepare_aside = false``, for a server short of memory: no second process."""
    url = practice_with_bad_rows(tmp_path, clients=30)
    link = link_config(url, batch=10).model_copy(update={"prepare_aside": False})
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    activate(hub, link, by=link.admin or "")
    r = _sync(tmp_path, hub, link, aside_on=True)
    assert r["status"] == "ok" and r["started"] == 0, r
    assert r["counts"]["client"]["create in hub"] == 29
