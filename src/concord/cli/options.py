"""What every ``concord`` sub-command shares: the consoles, the ``--config`` and ``--as``
options, and loading the configuration and the hub with a clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, ConsoleDimensions

from concord.config import Config, load_config
from concord.errors import ConcordError
from concord.hub.store import Hub

#: the width of output that goes to a file or a pipe: wide enough that no line wraps and no
#: table cell is cut, so `concord log | grep …` sees whole lines
PIPED_WIDTH = 10_000


class _Console(Console):
    """A console as wide as a terminal shows, and unbounded when written to a pipe or file."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


#: the rich colour each status light is printed in (amber has no rich name of its own)
COLORS = {"green": "green", "amber": "dark_orange", "blue": "blue", "red": "red"}
console = _Console()
err = _Console(stderr=True)

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
