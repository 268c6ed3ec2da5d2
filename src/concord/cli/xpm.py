"""`concord xpm ...`: connect a practice to Xero Practice Manager, estimate a run's calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlparse

import typer

xpm_app = typer.Typer(help="Xero Practice Manager: connect a practice, estimate a run's calls.",
                      no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="CONCORD_CONFIG",
                                         help="the configuration file")]


def _connector(config: Path, name: str):  # type: ignore[no-untyped-def]
    from concord.cli.options import err, load
    from concord.connectors.base import make_connector

    cfg, hub = load(config)
    link = cfg.link(name)
    if link.connector != "xpm":
        err.print(f"[red]link {name!r} is a {link.connector} link, not an xpm one[/]")
        raise typer.Exit(2)
    return cfg, hub, link, make_connector("xpm", link.options, link=name)


@xpm_app.command()
def connect(name: Annotated[str, typer.Argument(help="the xpm link")],
            config: ConfigOpt = Path("concord.toml")) -> None:
    """Log in to Xero (authorization code with PKCE) and keep the practice's token set in
    the hub: open the address shown, log in as an XPM user, paste the address Xero sends
    the browser to."""
    from concord.cli.options import console, err
    from concord.connectors.xpm.auth import finish_authorization, start_authorization
    from concord.errors import ConcordError

    _cfg, hub, _link, conn = _connector(config, name)
    auth = start_authorization(conn.opts.client_id, conn.opts.redirect_uri)
    console.print("Open this address, log in to Xero as a user of the practice's XPM, allow "
                  "Concord, then paste the address your browser is sent to:")
    console.print(auth.url, soft_wrap=True)
    answer = typer.prompt("address")
    q = {k: v[0] for k, v in parse_qs(urlparse(answer.strip()).query).items()}
    if "code" not in q:
        err.print(f"[red]no authorization code in that address ({q.get('error', 'nothing')}); "
                  "run `concord xpm connect` again[/]")
        raise typer.Exit(1)
    try:
        tokens = finish_authorization(conn.vault, conn.http, auth, client_id=conn.opts.client_id,
                                      client_secret=conn.opts.client_secret, code=q["code"],
                                      state=q.get("state", ""))
    except ConcordError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        conn.close()
    hub.log_activity("cli", "xpm connected", link=name, outcome="ok",
                     detail=f"practice {tokens.account}")
    console.print(f"[green]connected to the XPM practice {tokens.account}; the token set is "
                  f"kept, encrypted, in the hub[/]")


@xpm_app.command()
def estimate(name: Annotated[str, typer.Argument(help="the xpm link")],
             entity: Annotated[list[str] | None, typer.Option("--entity", "-e")] = None,
             config: ConfigOpt = Path("concord.toml")) -> None:
    """The XPM calls the next run (or a manual sync of --entity) will take, and what the
    day's remaining calls leave for later."""
    from rich.table import Table

    from concord.cli.options import console, err
    from concord.errors import ConcordError

    _cfg, hub, link, conn = _connector(config, name)
    wanted = [e for e in link.entities if not entity or e in entity]
    t = Table("entity", "listing calls", "custom field calls", "deferred (day budget)")
    total = 0
    try:
        for e in wanted:
            est = conn.estimate(e, hub.checkpoint(name, e).spoke_token)
            total += est.calls
            t.add_row(e, str(est.listing), str(est.custom_values), str(est.deferred))
        left = conn.gate.day_left()
    except ConcordError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        conn.close()
    console.print(t)
    console.print(f"about {total} calls, plus one or two for each record sent to XPM; "
                  f"{left} calls left today (XPM allows 5,000 a day, 60 a minute)")
    hub.log_activity("cli", "xpm estimate", link=name, outcome="ok",
                     detail=f"{total} calls for {', '.join(wanted)}; {left} left today")
