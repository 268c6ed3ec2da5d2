"""The command line as a new user meets it: a practice database (SQLite file made from the
sample schema) or a vdir folder, a real hub file, `concord` run through Typer's runner."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concord.cli import app
from concord.cli.demo import demo_config, to_toml
from concord.config import load_config
from concord.demo.sample import ADMIN_EMAIL, create_sample
from concord.hub.store import Hub
from concord.records import ENTITY_TYPES
from tests.integration.sql_helpers import db_rows

runner = CliRunner()


def practice_dir(tmp_path: Path, clients: int = 20) -> Path:
    create_sample(f"sqlite:///{tmp_path / 'practice.db'}", clients_n=clients)
    (tmp_path / "concord.toml").write_text(
        to_toml(demo_config(tmp_path / "practice.db", tmp_path / "hub.db")))
    return tmp_path / "concord.toml"


def hub_of(config: Path) -> Hub:
    cfg = load_config(config)
    return Hub(cfg.hub.url, cfg.hub.tenant)


def test_sync_never_activates_a_link_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = practice_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    r = runner.invoke(app, ["sync", "--dry-run", "-c", str(config)])
    assert r.exit_code != 0 and "link activate practice" in r.output, r.output
    hub = hub_of(config)
    assert hub.link_row("practice") is None and hub.count("client") == 0
    assert hub.runs("practice") == []
    r = runner.invoke(app, ["sync", "-c", str(config)])
    assert r.exit_code != 0 and "not been activated" in r.output, r.output
    assert hub.link_row("practice") is None and hub.count("client") == 0
    # no change capture was installed in the practice database either
    assert not [t for (t,) in db_rows(url, "SELECT name FROM sqlite_master WHERE type='trigger'")
                if "concord" in t.lower()]
    # the person `link activate` refuses is refused by sync too: sync never activates
    staff = db_rows(url, "SELECT email FROM staff WHERE role = 'staff' LIMIT 1")[0][0]
    r = runner.invoke(app, ["link", "activate", "practice", "--as", staff, "-c", str(config)])
    assert r.exit_code == 1 and "only an administrator" in r.output
    assert hub.link_row("practice") is None


@pytest.mark.parametrize("bad", ["mysql://office@db.example/practice", "not a url",
                                 "sqlite:///missing.db", "nosuchdb://x/y"])
def test_a_bad_practice_database_url_is_one_clear_error_and_creates_nothing(
        tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = practice_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    config.write_text(config.read_text().replace("sqlite:///practice.db", bad))
    for argv in (["link", "activate", "practice", "--as", ADMIN_EMAIL], ["sync"]):
        r = runner.invoke(app, [*argv, "-c", str(config)])
        out = r.output
        assert r.exit_code in (1, 2) and isinstance(r.exception, SystemExit | None), out
        assert "Traceback" not in out and len(out.strip().splitlines()) <= 6, out
        assert "options.url" in out and "fix:" in out, out
        assert "mapping" not in out, out
        hub_of(config).set_link("practice", "sql", state="active")  # as if it had been
    assert not (tmp_path / "missing.db").exists()


def test_init_then_sync_on_the_empty_folder_is_green(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "concord.toml"
    r = runner.invoke(app, ["sync", "-c", str(config)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["status", "-c", str(config)])
    assert r.exit_code == 0 and "green" in r.output and "first migration" not in r.output, r.output


def test_status_is_amber_with_a_quarantined_record_and_lists_it(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "concord.toml"
    (tmp_path / "contacts" / "bad.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bad\r\nFN:Broken\r\n")  # cut short: no END
    assert runner.invoke(app, ["sync", "-c", str(config)]).exit_code == 0
    r = runner.invoke(app, ["status", "-c", str(config), "--details"])
    # amber is not an error: the link syncs, but a person has something to do
    assert r.exit_code == 0 and "amber" in r.output, r.output
    assert "1 record quarantined" in r.output and "fix:" in r.output, r.output
    assert "bad.vcf" in r.output and "END:VCARD" in r.output, r.output
    r = runner.invoke(app, ["status", "-c", str(config), "--json", "--details"])
    [s] = json.loads(r.output)
    assert s["color"] == "amber" and s["quarantined"] == 1 and s["fix"], s
    [q] = s["quarantine"]
    assert q["ref"] == "bad.vcf" and "END:VCARD" in q["error"] and q["retry_at"] > q["since"], q
def test_first_dry_run_counts_what_the_real_run_does(tmp_path: Path) -> None:
    """Contacts, jobs and tasks whose client the same run creates are planned, not
    quarantined: the dry run's counts are the real run's."""
    config = practice_dir(tmp_path, clients=30)
    r = runner.invoke(app, ["link", "activate", "practice", "--no-migrate", "--as", ADMIN_EMAIL,
                            "-c", str(config)])
    assert r.exit_code == 0, r.output
    dry = runner.invoke(app, ["sync", "--dry-run", "-c", str(config)])
    assert dry.exit_code == 0, dry.output
    assert "quarantined" not in dry.output, dry.output
    hub = hub_of(config)
    assert hub.count("client") == 0 and hub.quarantined("practice") == []
    real = runner.invoke(app, ["sync", "-c", str(config)])
    assert real.exit_code == 0, real.output
    assert "quarantined" not in real.output and hub.quarantined("practice") == []
    planned = re.search(r"(\d+) create in hub", dry.output)
    created = re.search(r"(\d+) create in hub", real.output)
    assert planned is not None and created is not None, (dry.output, real.output)
    assert int(planned[1]) == int(created[1]) == sum(
        hub.count(e) for e in ENTITY_TYPES)


def test_the_quarantine_hint_names_a_command_that_lists_every_record(tmp_path: Path) -> None:
    config = practice_dir(tmp_path, clients=30)
    db = sqlite3.connect(tmp_path / "practice.db")
    with db:
        db.execute("UPDATE contacts SET client_id = 99999")  # a client that is not there
    (contacts,) = db.execute("SELECT count(*) FROM contacts").fetchone()
    db.close()
    assert contacts > 20
    runner.invoke(app, ["link", "activate", "practice", "--no-migrate", "--as", ADMIN_EMAIL,
                        "-c", str(config)])
    dry = runner.invoke(app, ["sync", "--dry-run", "-c", str(config)])
    assert f"and {contacts - 20} more" in dry.output and "a real run quarantines them" in dry.output
    real = runner.invoke(app, ["sync", "-c", str(config)])
    hint = re.search(r"`(concord [^`]+)`", real.output.split(f"and {contacts - 20} more")[1])
    assert hint is not None, real.output
    shown = runner.invoke(app, [*hint[1].split()[1:], "-c", str(config)])
    assert shown.output.count("quarantined contact") == contacts, shown.output


def test_version_and_machine_readable_log_and_tokens(tmp_path: Path) -> None:
    from concord import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"concord {__version__}"
    config = practice_dir(tmp_path)
    runner.invoke(app, ["link", "activate", "practice", "--as", ADMIN_EMAIL, "-c", str(config)])
    r = runner.invoke(app, ["log", "--json", "-c", str(config)])
    assert r.exit_code == 0, r.output
    [run] = json.loads(r.output)
    assert run["link"] == "practice" and run["status"] == "ok"
    assert run["counts"]["create in hub"] == sum(hub_of(config).count(e) for e in ENTITY_TYPES)
    r = runner.invoke(app, ["token", "create", "reporting", "--scope", "records:read", "-c", str(config)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["token", "list", "--json", "-c", str(config)])
    [tok] = json.loads(r.output)
    assert tok["name"] == "reporting" and tok["revoked_at"] is None and "hash" not in tok


def test_piped_output_is_not_wrapped_or_cut(tmp_path: Path) -> None:
    """`concord log | grep …` sees each run on one whole line, however long."""
    config = practice_dir(tmp_path)
    runner.invoke(app, ["link", "activate", "practice", "--as", ADMIN_EMAIL, "-c", str(config)])
    [run] = hub_of(config).runs("practice")
    r = runner.invoke(app, ["log", "-c", str(config)], env={"COLUMNS": "60"})
    [line] = [ln for ln in r.output.splitlines() if "practice" in ln]
    assert run["message"][:100] in line, r.output
