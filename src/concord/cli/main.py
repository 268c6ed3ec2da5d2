"""The `concord` command line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from concord.cli.options import COLORS, DEFAULT_CONFIG, ConfigOpt, console, err, load
from concord.cli.running import print_result, run_one, watch_links
from concord.config import EXAMPLE
from concord.errors import ConcordError, LinkLocked, LinkUnavailable
from concord.hub.store import Hub
from concord.link.retry import record_failure
from concord.link.status import link_status, quarantine_entry

app = typer.Typer(help="Concord keeps a practice's records in agreement across its systems.",
                  no_args_is_help=True, add_completion=False)
conflicts_app = typer.Typer(help="List and resolve conflicts (every losing version is kept).",
                            invoke_without_command=True)
app.add_typer(conflicts_app, name="conflicts")
#: `concord sync` exit status: the delete guard held back a plan (nothing of it applied)
EXIT_HELD = 4


def _version(value: bool) -> None:
    if value:
        from concord import __version__

        console.print(f"concord {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
          ) -> None:
    """Concord keeps a practice's records in agreement across its systems."""


@app.command()
def init(directory: Annotated[Path, typer.Argument()] = Path("."),
         force: Annotated[bool, typer.Option(help="overwrite an existing concord.toml")] = False,
         example: Annotated[str | None, typer.Option(
             help="a ready configuration: practice-groupware (practice database ↔ "
                  "CardDAV/CalDAV)")] = None) -> None:
    """Write a commented configuration for the embedded default (a SQLite hub)."""
    from concord import examples

    if example is not None and example not in examples.NAMES:
        err.print(f"[red]no example named {example!r}[/] (examples: {', '.join(examples.NAMES)})")
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "concord.toml"
    if target.exists() and not force:
        err.print(f"[yellow]{target} exists[/]; pass --force to overwrite it")
        raise typer.Exit(1)
    target.write_text(EXAMPLE if example is None else examples.render(example))
    if example is None:
        (directory / "contacts").mkdir(exist_ok=True)
    console.print(f"wrote {target}; edit it, then run [bold]concord sync[/]")


@app.command()
def sync(link: Annotated[str | None, typer.Argument(help="the link to sync (default: all)")] = None,
         entity: Annotated[list[str] | None, typer.Option("--entity", "-e", help="only this entity type")] = None,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and stop")] = False,
         confirm_deletes: Annotated[bool, typer.Option("--confirm-deletes", help="apply a plan the delete guard held")] = False,
         watch: Annotated[bool, typer.Option("--watch", help="keep running: sync each change as it happens")] = False,
         config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Sync one link or all of them (read, plan, guard, apply)."""
    cfg, hub = load(config)
    links = [cfg.link(link)] if link else list(cfg.links.values())
    if not links:
        err.print("no links configured; add a [links.NAME] table to the config")
        raise typer.Exit(2)
    failed = held = False
    for lk in links:
        try:
            r = run_one(hub, lk, entities=entity, dry_run=dry_run, confirm_deletes=confirm_deletes)
        except LinkLocked as exc:
            console.print(f"[blue]{lk.name}: already syncing[/] — {exc}")
            continue
        except ConcordError as exc:
            err.print(f"[red]{lk.name}: error[/] — {exc}")
            failed = True
            if watch and not dry_run and not isinstance(exc, LinkUnavailable):
                record_failure(hub, lk.name, exc, str(exc))  # watching starts backed off
            continue
        print_result(r, dry_run)
        failed |= r.status == "error"
        held |= r.status == "held"
    if watch and not dry_run:
        watch_links(hub, links, entity)
    raise typer.Exit(1 if failed else EXIT_HELD if held else 0)


@app.command()
def status(link: Annotated[str | None, typer.Argument()] = None,
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
           details: Annotated[bool, typer.Option("--details", help="list quarantined records")] = False,
           config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """The status light of each link: green in sync, amber in sync with quarantined records or
    open conflicts, blue syncing, red stopped; with the reason and the fix."""
    cfg, hub = load(config)
    names = [link] if link else list(cfg.links)
    statuses = [link_status(hub, n, cfg.links.get(n)) for n in names]
    if as_json:
        out = [s.as_dict() for s in statuses]
        if details:
            for o in out:
                o["quarantine"] = [quarantine_entry(q) for q in hub.quarantine_list(o["link"])]
        console.print_json(json.dumps(out))
    else:
        for s in statuses:
            dot = f"[{COLORS[s.color]}]●[/]"
            console.print(f"{dot} [bold]{s.link}[/] {s.color}: {s.reason}")
            if s.fix:
                console.print(f"    fix: {s.fix}")
            if s.conflicts:
                console.print(f"    {s.conflicts} open conflict(s): `concord conflicts`")
            if details:
                for q in map(quarantine_entry, hub.quarantine_list(s.link)):
                    named = f" ({q['record']})" if q["record"] else ""
                    console.print(f"    [yellow]quarantined[/] {q['entity']} {q['ref']}{named}: "
                                  f"{q['error']}")
    raise typer.Exit(0 if all(s.color != "red" for s in statuses) else 3)


@conflicts_app.callback()
def conflicts_list(ctx: typer.Context,
                   all_: Annotated[bool, typer.Option("--all", help="include resolved ones")] = False,
                   as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
                   config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """List open conflicts with the value each side had, by the record's name."""
    if ctx.invoked_subcommand is not None:
        return
    _, hub = load(config)
    rows = hub.conflicts(open_only=not all_)
    names = _record_names(hub, rows)
    if as_json:
        console.print_json(json.dumps([
            {**{k: r[k] for k in ("id", "link", "entity", "hub_id", "kind", "winner", "at",
                                   "resolved_at", "resolved_by", "resolution")},
             "record": names.get(r["hub_id"], r["hub_id"]), "fields": json.loads(r["fields"]),
             "kept": json.loads(r["kept"])} for r in rows]))
        return
    if not rows:
        console.print("no open conflicts")
        return
    t = Table("id", "link", "entity", "record", "kind", "fields", "winner", "kept (losing values)")
    for r in rows:
        t.add_row(str(r["id"]), r["link"], r["entity"], names.get(r["hub_id"], r["hub_id"]),
                  r["kind"], ", ".join(json.loads(r["fields"])), r["winner"], r["kept"][:80])
    console.print(t)


def _record_names(hub: Hub, rows: list[dict[str, Any]]) -> dict[str, str]:
    """hub id -> the record's name (and code, where it has one) for the conflicts list."""
    from concord.service.render import title

    by_entity: dict[str, list[str]] = {}
    for r in rows:
        by_entity.setdefault(r["entity"], []).append(r["hub_id"])
    out: dict[str, str] = {}
    for entity, ids in by_entity.items():
        for hid, rec in hub.get_many(entity, ids).items():
            name = title(rec.fields, hid)
            code = rec.fields.get("code")
            out[hid] = f"{name} ({code})" if isinstance(code, str) and code and code != name else name
    return out


@conflicts_app.command("resolve")
def conflicts_resolve(cid: Annotated[int, typer.Argument(help="conflict id")],
                      take: Annotated[str, typer.Option(help="'winner' keeps the result; 'loser' restores the kept values")] = "winner",
                      config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Resolve a conflict: keep the winner, or restore the losing values into the hub
    (the next sync carries them to the other systems)."""
    from concord.link.resolve import resolve_conflict

    _, hub = load(config)
    try:
        msg = resolve_conflict(hub, cid, take=take, by=os.environ.get("USER", "cli"))
    except ConcordError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(msg)


@app.command()
def log(link: Annotated[str | None, typer.Argument()] = None,
        limit: Annotated[int, typer.Option(help="how many runs")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """The run journal: every run with who, when, outcome and counts."""
    _, hub = load(config)
    hub.interrupt_dead_runs(link)
    if as_json:
        runs = [{k: v for k, v in r.items() if k != "tenant"} for r in hub.runs(link, limit=limit)]
        for r in runs:
            r["counts"] = r["counts"] or {}
        console.print_json(json.dumps(runs))
        return
    t = Table("run", "link", "entity", "trigger", "by", "started", "seconds", "status", "summary")
    for r in hub.runs(link, limit=limit):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])) if r["started_at"] else "-"
        secs = f"{r['finished_at'] - r['started_at']:.2f}" if r["finished_at"] and r["started_at"] else "-"
        t.add_row(str(r["id"]), r["link"], r["entity"] or "all", r["trigger"], r["requested_by"] or "",
                  started, secs, r["status"], (r["message"] or "")[:100])
    console.print(t)


def _wire() -> None:
    """Sub-commands that live in their own modules."""
    from concord.cli.contacts import contacts_app
    from concord.cli.link import link_app
    from concord.cli.service import serve, token_app

    app.add_typer(link_app, name="link")
    app.add_typer(contacts_app, name="contacts")
    app.add_typer(token_app, name="token")
    from concord.cli.xpm import xpm_app

    app.add_typer(xpm_app, name="xpm")
    app.command()(serve)
    try:
        from concord.cli.demo import demo
    except ImportError:  # pragma: no cover
        return
    app.command()(demo)


_wire()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
