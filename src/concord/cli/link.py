"""`concord link ...`: activate, pause, resume and deactivate a link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from concord.cli.options import AsOpt, ConfigOpt, actor, console, err, load
from concord.errors import ConcordError

link_app = typer.Typer(help="Activate, pause, resume or deactivate a link.", no_args_is_help=True)



@link_app.command()
def activate(name: str, who: AsOpt = None,
             migrate: Annotated[bool, typer.Option(help="run the first migration now")] = True,
             config: ConfigOpt = Path("concord.toml")) -> None:
    """Check prerequisites, install change capture and run the first migration."""
    from concord.cli.running import print_result, run_one
    from concord.link.activation import ActivationRefused, admin_contact
    from concord.link.activation import activate as do_activate

    cfg, hub = load(config)
    link = cfg.link(name)
    try:
        out = do_activate(hub, link, by=who or admin_contact(link) or actor(None))
    except ActivationRefused as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    except ConcordError as exc:  # a bad configuration: one line naming the key and the fix
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(("[green]" if out.changed else "[yellow]") + out.message + "[/]")
    if out.changed and migrate:
        print_result(run_one(hub, link), False)


@link_app.command()
def pause(name: str, who: AsOpt = None,
          reason: Annotated[str | None, typer.Option(help="shown in the status")] = None,
          config: ConfigOpt = Path("concord.toml")) -> None:
    """Stop syncing for now; changes keep being recorded and catch up on resume."""
    from concord.link.activation import pause as do_pause

    _, hub = load(config)
    console.print(do_pause(hub, name, by=actor(who), reason=reason).message)


@link_app.command()
def resume(name: str, who: AsOpt = None, config: ConfigOpt = Path("concord.toml")) -> None:
    """Resume a paused link."""
    from concord.link.activation import resume as do_resume

    _, hub = load(config)
    console.print(do_resume(hub, name, by=actor(who)).message)


@link_app.command()
def deactivate(name: str, who: AsOpt = None,
               yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
               config: ConfigOpt = Path("concord.toml")) -> None:
    """Remove change capture from the spoke; the hub keeps every record."""
    from concord.link.activation import deactivate as do_deactivate

    cfg, hub = load(config)
    link = cfg.link(name)
    if not yes:
        typer.confirm(f"Deactivate link {name!r} (remove its triggers from the practice database)?",
                      abort=True)
    console.print(do_deactivate(hub, link, by=actor(who)).message)
