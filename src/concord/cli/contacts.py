"""``concord contacts``: addresses seen on e-mails that match no contact, listed for review by
mail links whose ``new_contacts`` option is ``review`` (see docs/email.md)."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer
from rich.table import Table

from concord.cli.options import DEFAULT_CONFIG, ConfigOpt, console, err, load
from concord.errors import ConcordError

contacts_app = typer.Typer(help="New addresses from e-mails: review, accept, dismiss.",
                           no_args_is_help=True)


@contacts_app.command("review")
def review(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """List the addresses waiting for review, with the e-mail each was first seen on."""
    from concord.engine.addresses import contact_candidates

    _, hub = load(config)
    rows = contact_candidates(hub)
    if not rows:
        console.print("no addresses waiting for review")
        return
    t = Table("address", "name", "link", "first e-mail", "seen")
    for r in rows:
        t.add_row(r["address"], r["name"] or "", r["link"], r["email_id"],
                  time.strftime("%Y-%m-%d %H:%M", time.localtime(r["at"])))
    console.print(t)


@contacts_app.command("accept")
def accept(addresses: Annotated[list[str], typer.Argument(help="addresses to make contacts")],
           config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Make contacts of listed addresses; their e-mails are linked on the next sync."""
    from concord.engine.addresses import accept_candidates

    _, hub = load(config)
    try:
        ids = accept_candidates(hub, addresses, by=os.environ.get("USER", "cli"))
    except ConcordError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"{len(ids)} contact(s) made: {', '.join(ids)}")


@contacts_app.command("dismiss")
def dismiss(addresses: Annotated[list[str], typer.Argument(help="addresses never to list again")],
            config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Take addresses off the review list for good."""
    from concord.engine.addresses import dismiss_candidates

    _, hub = load(config)
    console.print(f"{dismiss_candidates(hub, addresses)} address(es) dismissed")
