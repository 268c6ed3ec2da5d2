"""Activation, pause/resume/deactivate, crash and resume, and bad rows, for the
practice-database link (real SQLite files; a real process killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from concord.demo.sample import ADMIN_EMAIL
from concord.engine import sync_link
from concord.errors import LinkUnavailable
from concord.link.activation import ActivationRefused, activate, deactivate, pause, resume
from tests.integration.sql_helpers import (
    assert_mirrors,
    connector,
    db_exec,
    db_rows,
    link_config,
    practice,
    table_count,
)

ROOT = Path(__file__).resolve().parents[2]


def test_activation_checks_prerequisites_and_reports_already_activated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=5, activated=False)
    db_exec(url, "UPDATE staff SET active = 0 WHERE email = :e", e=ADMIN_EMAIL)
    with pytest.raises(ActivationRefused) as exc:
        activate(hub, link, by=ADMIN_EMAIL)
    assert "not an active administrator" in str(exc.value) and ADMIN_EMAIL in str(exc.value)
    db_exec(url, "UPDATE staff SET active = 1 WHERE email = :e", e=ADMIN_EMAIL)

    # someone who is not an administrator cannot activate
    staff_email = db_rows(url, "SELECT email FROM staff WHERE role = 'staff' LIMIT 1")[0][0]
    with pytest.raises(ActivationRefused, match="only an administrator"):
        activate(hub, link, by=staff_email)

    # a mapped column that does not exist is named, with the fix
    broken = link_config(url)
    broken.options["mapping"]["client"]["columns"].append("fax_number")
    with pytest.raises(ActivationRefused, match=r"clients\.fax_number"):
        activate(hub, broken, by=ADMIN_EMAIL)
    assert not connector(link).capture_installed()

    assert activate(hub, link, by=ADMIN_EMAIL).changed
    assert connector(link).capture_installed()
    again = activate(hub, link, by=ADMIN_EMAIL)
    assert not again.changed and "already been activated" in again.message
    actions = [(a["action"], a["outcome"]) for a in hub.activity()]
    assert ("activate", "refused") in actions and ("activate", "ok") in actions


def test_pause_resume_deactivate_reactivate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=60)
    assert sync_link(hub, link).status == "ok"

    assert pause(hub, "practice", by=ADMIN_EMAIL).changed
    db_exec(url, "UPDATE clients SET name = 'Edited while paused' WHERE client_id = 3")
    with pytest.raises(LinkUnavailable, match="paused"):
        sync_link(hub, link)
    assert resume(hub, "practice", by=ADMIN_EMAIL).changed
    assert sync_link(hub, link).status == "ok"
    names = {c.fields["name"] for c in hub.list_records("client", limit=1000)}
    assert "Edited while paused" in names

    assert deactivate(hub, link, by=ADMIN_EMAIL).changed
    left = db_rows(url, "SELECT name FROM sqlite_master WHERE name LIKE 'concord%'")
    assert left == []  # triggers, changelog and side tables are gone
    assert db_rows(url, "SELECT count(*) FROM clients")[0][0] == 60  # the practice's data is not
    with pytest.raises(LinkUnavailable, match="not active"):
        sync_link(hub, link)

    # edits made while inactive arrive after reactivation, with no duplicates
    db_exec(url, "UPDATE clients SET name = 'Edited while inactive' WHERE client_id = 4")
    db_exec(url, "DELETE FROM tasks WHERE task_id = 5")
    assert activate(hub, link, by=ADMIN_EMAIL).changed
    assert sync_link(hub, link).status == "ok"
    names = {c.fields["name"] for c in hub.list_records("client", limit=1000)}
    assert "Edited while inactive" in names
    assert_mirrors(url, link, hub)


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from concord.engine import sync_link
from concord.hub.store import Hub
from tests.integration.sql_helpers import connector, link_config

link = link_config({url!r}, batch=100)
conn = connector(link)
real_scan = conn.scan

def scan(entity, after=None, batch=2000):
    for n, items in enumerate(real_scan(entity, after, batch)):
        if entity == "contact" and n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # read, not yet written: killed mid-run
        yield items

conn.scan = scan
sync_link(Hub({hub!r}), link, conn)
"""


def test_sigkill_during_migration_then_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=400)
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER.format(root=str(ROOT), url=url,
                                                    hub=f"sqlite:///{tmp_path / 'hub.db'}")))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    cp = hub.checkpoint("practice", "contact")
    assert cp.progress is not None and cp.progress["after"]  # stopped part-way, position kept
    migrated_before = hub.count("contact")
    assert 0 < migrated_before < db_rows(url, "SELECT count(*) FROM contacts")[0][0]

    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert r.entities["contact"].counts["create in hub"] == \
        db_rows(url, "SELECT count(*) FROM contacts")[0][0] - migrated_before  # resumed, not redone
    assert_mirrors(url, link, hub)
    assert hub.link_row("practice")["migrated"]


def test_bad_rows_are_quarantined_and_the_rest_migrates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=80)
    db_exec(url, "UPDATE clients SET email = 'not-an-email' WHERE client_id = 3")
    db_exec(url, "UPDATE clients SET name = :n WHERE client_id = 4", n="x" * 500)
    db_exec(url, "UPDATE jobs SET due_date = '31/02/2024' WHERE job_id = 2")
    db_exec(url, "UPDATE jobs SET budget_hours = 'lots' WHERE job_id = 5")
    db_exec(url, "UPDATE tasks SET client_id = 999999 WHERE task_id = 6")

    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    errors = {(q["entity"], q["ref"]): q["error"] for q in hub.quarantined("practice")}
    assert "not a valid e-mail address" in errors[("client", "3")]
    assert "column email" in errors[("client", "3")] and "table clients" in errors[("client", "3")]
    assert "over the limit of 120" in errors[("client", "4")]
    assert "not a date" in errors[("job", "2")] and "fix:" in errors[("job", "2")]
    assert "not a whole number" in errors[("job", "5")]
    assert "client 999999, which does not exist" in errors[("task", "6")]
    # everything else arrived (a job of a quarantined client waits for its client)
    good = "SELECT count(*) FROM jobs WHERE client_id NOT IN (3, 4) AND job_id NOT IN ({})"
    assert hub.count("job") == db_rows(url, good.format("2, 5"))[0][0]
    waiting = {q["ref"] for q in hub.quarantined("practice") if q["entity"] == "job"} - {"2", "5"}
    assert all("not synced" in errors[("job", ref)] for ref in waiting)
    assert_mirrors(url, link, hub)

    # corrected in the practice database, the row arrives and leaves quarantine
    db_exec(url, "UPDATE jobs SET due_date = '2024-02-29' WHERE job_id = 2")
    assert sync_link(hub, link).status == "ok"
    assert ("job", "2") not in {(q["entity"], q["ref"]) for q in hub.quarantined("practice")}
    assert hub.count("job") == db_rows(url, good.format("5"))[0][0]


def test_children_waiting_for_a_quarantined_parent_follow_it_once_it_is_fixed(tmp_path: Path) -> None:
    """Quarantined records are retried each run: once client 3 is corrected, its jobs arrive
    too, although no job row changed."""
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=40)
    db_exec(url, "UPDATE clients SET email = 'not-an-email' WHERE client_id = 3")
    assert sync_link(hub, link).status == "ok"
    jobs_of_3 = {str(r[0]) for r in db_rows(url, "SELECT job_id FROM jobs WHERE client_id = 3")}
    waiting = {q["ref"] for q in hub.quarantined("practice") if q["entity"] == "job"}
    assert jobs_of_3 and jobs_of_3 <= waiting

    db_exec(url, "UPDATE clients SET email = 'office@client3.example' WHERE client_id = 3")
    assert sync_link(hub, link).status == "ok"
    assert not [q for q in hub.quarantined("practice") if q["entity"] in ("client", "job")]
    assert hub.count("job") == table_count(url, "jobs")
    assert_mirrors(url, link, hub)
