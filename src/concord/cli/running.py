"""Running links from the command line: one run with a progress bar, the printed result,
and watch mode."""

from __future__ import annotations

import os
import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from concord.cli.options import console, err
from concord.config import LinkConfig
from concord.connectors.base import make_connector
from concord.engine import RunResult, sync_link
from concord.errors import ConcordError, LinkLocked
from concord.hub.store import Hub


def print_result(r: RunResult, dry_run: bool) -> None:
    color = {"ok": "green", "dry-run": "cyan", "held": "red", "paused": "yellow"}.get(r.status, "red")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(r.counts.items()) if v) or "nothing to do"
    console.print(f"[{color}]{r.link}: {r.status}[/] — {counts}")
    if r.message and r.status != "ok":
        console.print(f"  {r.message}")
    for er in r.entities.values():
        for e in er.errors[:20]:
            console.print(f"  [yellow]quarantined[/] {e}")
        if len(er.errors) > 20:
            where = (f"a real run quarantines them; `concord status {r.link} --details` then "
                     "lists them all" if dry_run else
                     f"`concord status {r.link} --details` lists them all")
            console.print(f"  … and {len(er.errors) - 20} more ({where})")
        if dry_run:
            for line in er.plan[:200]:
                console.print(f"  {er.entity:<10} {line.label:<40} hub={line.hub_id} spoke={line.spoke_ref}")
            if len(er.plan) > 200:
                console.print(f"  … {len(er.plan) - 200} more actions")


def run_one(hub: Hub, link: LinkConfig, *, entities: list[str] | None = None, dry_run: bool = False,
            confirm_deletes: bool = False, trigger: str = "cli", show_progress: bool = True,
            connector: Any = None) -> RunResult:
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                        console=console, transient=True, disable=not show_progress)
    tasks: dict[str, TaskID] = {}
    started: dict[str, float] = {}

    def on_progress(entity: str, done: int, total: int) -> None:
        if entity not in tasks:
            tasks[entity] = progress.add_task(f"{link.name}/{entity}", total=total or None, rate="")
            started[entity] = time.perf_counter()
        rate = done / max(1e-6, time.perf_counter() - started[entity])
        progress.update(tasks[entity], completed=done, total=total or None, rate=f"{rate:,.0f} rec/s")

    with progress:
        return sync_link(hub, link, connector, entities=entities, dry_run=dry_run,
                         confirm_deletes=confirm_deletes, trigger=trigger,
                         requested_by=os.environ.get("USER", "cli"), progress=on_progress)


def watch_links(hub: Hub, links: list[LinkConfig], entities: list[str] | None) -> None:
    """Run each link whenever its spoke signals a change (or its interval passes)."""
    conns = {lk.name: make_connector(lk.connector, lk.options, link=lk.name) for lk in links}
    console.print("watching for changes; Ctrl-C to stop")
    try:
        while True:
            for lk in links:
                wait = lk.interval / max(1, len(links))
                conns[lk.name].wait_for_change(wait)
                try:
                    r = sync_link(hub, lk, conns[lk.name], entities=entities, trigger="watch")
                except LinkLocked:
                    continue
                except ConcordError as exc:
                    err.print(f"[red]{lk.name}[/]: {exc}")
                    continue
                if r.counts or r.status != "ok":
                    print_result(r, False)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        for c in conns.values():
            c.close()
