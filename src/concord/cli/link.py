"""`concord link ...`: activate, pause, resume and deactivate a link."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

link_app = typer.Typer(help="Activate, pause, resume or deactivate a link.", no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="CONCORD_CONFIG",
                                         help="the configuration file")]
AsOpt = Annotated[str | None, typer.Option("--as", help="your e-mail (an active administrator)")]


def _by(who: str | None) -> str:
    return who or os.environ.get("CONCORD_USER") or os.environ.get("USER", "cli")


@link_app.command()
def activate(name: str, who: AsOpt = None,
             migrate: Annotated[bool, typer.Option(help="run the first migration now")] = True,
             config: ConfigOpt = Path("concord.toml")) -> None:
    """Check prerequisites, install change capture and run the first migration."""
    from concord.cli.main import _load, _print_result, console, err, run_one
    from concord.link.activation import ActivationRefused, admin_contact
    from concord.link.activation import activate as do_activate

    cfg, hub = _load(config)
    link = cfg.link(name)
    try:
        out = do_activate(hub, link, by=who or admin_contact(link) or _by(None))
    except ActivationRefused as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(("[green]" if out.changed else "[yellow]") + out.message + "[/]")
    if out.changed and migrate:
        _print_result(run_one(hub, link), False)


@link_app.command()
def pause(name: str, who: AsOpt = None,
          reason: Annotated[str | None, typer.Option(help="shown in the status")] = None,
          config: ConfigOpt = Path("concord.toml")) -> None:
    """Stop syncing for now; changes keep being recorded and catch up on resume."""
    from concord.cli.main import _load, console
    from concord.link.activation import pause as do_pause

    _, hub = _load(config)
    console.print(do_pause(hub, name, by=_by(who), reason=reason).message)


@link_app.command()
def resume(name: str, who: AsOpt = None, config: ConfigOpt = Path("concord.toml")) -> None:
    """Resume a paused link."""
    from concord.cli.main import _load, console
    from concord.link.activation import resume as do_resume

    _, hub = _load(config)
    console.print(do_resume(hub, name, by=_by(who)).message)


@link_app.command()
def deactivate(name: str, who: AsOpt = None,
               yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
               config: ConfigOpt = Path("concord.toml")) -> None:
    """Remove change capture from the spoke; the hub keeps every record."""
    from concord.cli.main import _load, console
    from concord.link.activation import deactivate as do_deactivate

    cfg, hub = _load(config)
    link = cfg.link(name)
    if not yes:
        typer.confirm(f"Deactivate link {name!r} (remove its triggers from the practice database)?",
                      abort=True)
    console.print(do_deactivate(hub, link, by=_by(who)).message)
