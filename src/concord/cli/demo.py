"""`concord demo`: the practice-database link from nothing to green, on this machine.

It creates a sample practice database (SQLite), writes a configuration linking it to an
embedded hub, activates the link (prerequisites checked), runs the first migration with a
progress bar, then edits and deletes rows in the practice database the way the desktop
system would, and shows each change arriving in the hub and how long it took.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from concord.demo.sample import ADMIN_EMAIL, default_entities, default_mapping

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v), ensure_ascii=False)


def _is_table(v: Any) -> bool:
    return isinstance(v, dict) and (len(v) > 3 or any(isinstance(x, dict) for x in v.values()))


def to_toml(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """A small TOML writer (the standard library only reads TOML): tables for nested
    mappings, inline values for the rest."""
    lines: list[str] = []
    subs = {k: v for k, v in data.items() if _is_table(v)}
    if prefix and any(k not in subs for k in data):
        lines.append("[" + ".".join(_key(p) for p in prefix) + "]")
    for k, v in data.items():
        if k not in subs:
            lines.append(f"{_key(k)} = {_val(v)}")
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for k, v in subs.items():
        out += to_toml(v, (*prefix, k))
    return out


def demo_config(practice_db: Path, hub_db: Path) -> dict[str, Any]:
    entities = default_entities()
    return {
        "hub": {"url": f"sqlite:///{hub_db.name}", "tenant": "demo"},
        "links": {"practice": {
            "connector": "sql", "admin": ADMIN_EMAIL, "batch_size": 2000, "interval": 1.0,
            "options": {"url": f"sqlite:///{practice_db.name}", "mapping": default_mapping()},
            "entities": entities,
        }},
    }


EDITS: list[tuple[str, str, str, str]] = [
    # (what the office does, SQL, entity, row key)
    ("rename client 42", "UPDATE clients SET name = 'Harbourside Bakery Pty Ltd', "
     "updated_at = CURRENT_TIMESTAMP WHERE client_id = 42", "client", "42"),
    ("change the e-mail of contact 7", "UPDATE contacts SET email = 'new.address@example.com' "
     "WHERE contact_id = 7", "contact", "7"),
    ("complete task 12", "UPDATE tasks SET status = 'Completed' WHERE task_id = 12", "task", "12"),
    ("change a custom field of client 42", "UPDATE custom_field_values SET value = 'Hospitality' "
     "WHERE value_id = (SELECT min(value_id) FROM custom_field_values WHERE client_id = 42)",
     "client", "42"),
    ("delete job 3", "DELETE FROM jobs WHERE job_id = 3", "job", "3"),
    ("add a new client", "INSERT INTO clients (client_id, code, kind, name, email, updated_at) "
     "VALUES (990001, 'C990001', 'company', 'Brand New Client Pty Ltd', "
     "'accounts@brandnew.example', CURRENT_TIMESTAMP)", "client", "990001"),
]


def demo(
    directory: Annotated[Path, typer.Option(help="where to put the demo's files")] = Path("concord-demo"),
    clients: Annotated[int, typer.Option(help="clients in the sample practice database")] = 10_000,
    live: Annotated[bool, typer.Option(help="keep running: sync live until Ctrl-C")] = False,
    seed: Annotated[int, typer.Option(help="seed of the sample data")] = 1,
) -> None:
    """Create a sample practice database, activate its link, migrate, and sync edits live."""
    from rich.table import Table

    from concord.cli.options import COLORS, console, err
    from concord.cli.running import print_result, run_one, watch_links
    from concord.config import load_config
    from concord.connectors.sql import SQLConnector, SQLOptions
    from concord.demo.sample import create_sample
    from concord.engine import sync_link
    from concord.hub.store import Hub
    from concord.link.activation import ActivationRefused, activate
    from concord.link.status import link_status

    directory.mkdir(parents=True, exist_ok=True)
    practice_db, hub_db, cfg_path = directory / "practice.db", directory / "hub.db", directory / "concord.toml"
    for f in (practice_db, hub_db):
        for extra in ("", "-wal", "-shm", "-journal"):
            Path(f"{f}{extra}").unlink(missing_ok=True)

    console.rule("[bold]Concord demo: the practice database link")
    t0 = time.perf_counter()
    counts = create_sample(f"sqlite:///{practice_db}", clients_n=clients, seed=seed)
    console.print(f"1. Sample practice database [bold]{practice_db}[/]: "
                  f"{sum(counts.values()):,} rows ({clients:,} clients) in {time.perf_counter() - t0:.1f} s")
    cfg_path.write_text("# Written by `concord demo`: the practice database linked to an embedded hub.\n"
                        + to_toml(demo_config(practice_db, hub_db)))
    console.print(f"2. Configuration written to [bold]{cfg_path}[/]")
    cfg = load_config(cfg_path)
    link = cfg.link("practice")
    hub = Hub(cfg.hub.url, cfg.hub.tenant)
    try:
        out = activate(hub, link, by=ADMIN_EMAIL)
    except ActivationRefused as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"3. Activated by {ADMIN_EMAIL} (an active administrator): {out.message}")

    console.print("4. First migration:")
    t0 = time.perf_counter()
    result = run_one(hub, link)
    took = time.perf_counter() - t0
    print_result(result, False)
    migrated = sum(er.counts.get("migrated", 0) for er in result.entities.values())
    console.print(f"   {migrated:,} records in {took:.1f} s ({migrated / max(took, 1e-6):,.0f} records/s)")

    console.print("5. Edits in the practice database, as the office makes them:")
    conn = SQLConnector(SQLOptions.model_validate(link.options), link="practice")
    try:
        office = sqlite3.connect(practice_db)
        conn.wait_for_change(0)  # start watching before the first edit

        def step() -> None:
            conn.wait_for_change(0.5)
            sync_link(hub, link, conn, trigger="watch")

        for what, sql, entity, ref in EDITS:
            before = _hub_content(hub, entity, ref)
            office.execute(sql)
            office.commit()
            t0 = time.perf_counter()
            arrived = _until(functools.partial(_changed, hub, entity, ref, before), step, 10.0)
            ms = (time.perf_counter() - t0) * 1000
            mark = "[green]✓[/]" if arrived else "[red]✗[/]"
            console.print(f"   {mark} {what}: in the hub after {ms:,.0f} ms")
        office.close()
        _summary(console, Table, hub, conn, link.name)
    finally:
        conn.close()
    st = link_status(hub, "practice")
    console.print(f"Status: [{COLORS[st.color]}]{st.color.upper()}[/] — {st.reason}" + (f" ({st.fix})" if st.fix else ""))
    console.print(f"Try: [bold].venv/bin/concord status --config {cfg_path}[/], or edit {practice_db} "
                  f"and run [bold].venv/bin/concord sync --watch --config {cfg_path}[/]")
    if live:
        watch_links(hub, [link], None)


def _hub_content(hub: Any, entity: str, ref: str) -> Any:
    rows = hub.archive_select("practice", entity, spoke_refs=[ref])
    if not rows:
        return None
    rec = hub.get(entity, rows[0].hub_id)
    return None if rec is None or rec.deleted else (rec.fields, rec.refs)


def _changed(hub: Any, entity: str, ref: str, before: Any) -> bool:
    return bool(_hub_content(hub, entity, ref) != before)


def _until(done: Callable[[], bool], step: Callable[[], Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step()
        if done():
            return True
    return False


def _summary(console: Any, table_cls: Any, hub: Any, conn: Any, link: str) -> None:
    table = table_cls(title="Practice database → hub")
    for col in ("entity", "practice rows", "hub records", "quarantined"):
        table.add_column(col, justify="right" if col != "entity" else "left")
    quarantined = hub.quarantined(link)
    for entity in conn.resolved():
        q = sum(1 for x in quarantined if x["entity"] == entity)
        table.add_row(entity, f"{conn.count(entity):,}", f"{hub.count(entity):,}", str(q))
    console.print(table)
