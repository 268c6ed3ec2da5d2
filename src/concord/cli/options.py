"""What every ``concord`` sub-command shares: the consoles, the ``--config`` and ``--as``
options, and loading the configuration and the hub with a clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from concord.config import Config, load_config
from concord.errors import ConcordError
from concord.hub.store import Hub

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="CONCORD_CONFIG",
                                         help="the configuration file")]
AsOpt = Annotated[str | None, typer.Option("--as", help="your e-mail (an active administrator)")]
DEFAULT_CONFIG = Path("concord.toml")


def load(config: Path) -> tuple[Config, Hub]:
    """The configuration and its hub; a bad file exits with status 2 and the error."""
    try:
        cfg = load_config(config)
        return cfg, Hub(cfg.hub.url, cfg.hub.tenant)
    except ConcordError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def actor(who: str | None) -> str:
    """Who is acting: ``--as``, else $CONCORD_USER, else the login name."""
    return who or os.environ.get("CONCORD_USER") or os.environ.get("USER", "cli")
