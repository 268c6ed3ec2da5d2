"""``concord serve`` and ``concord token create|list|revoke``.

Wired into the main CLI with ``app.command()(serve)`` and ``app.add_typer(token_app,
name="token")``. TLS: pass ``--ssl-certfile`` and ``--ssl-keyfile`` (uvicorn's certificate
options); without them, serve on loopback only or behind a TLS-terminating proxy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from concord.cli.options import DEFAULT_CONFIG, ConfigOpt, console, err, load
from concord.config import load_config
from concord.errors import ConcordError
from concord.hub.store import Hub
from concord.service.auth import (
    ROLES,
    SCOPES,
    create_token,
    list_tokens,
    parse_scopes,
    revoke_token,
)

ROLE_HELP = ", ".join(f"{k} ({' '.join(v)})" for k, v in ROLES.items())

token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def _hub(config: Path) -> Hub:
    return load(config)[1]


def serve(config: ConfigOpt = DEFAULT_CONFIG,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8350,
          ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
          ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
          no_scheduler: Annotated[bool, typer.Option("--no-scheduler",
                                                     help="serve the API only; run no syncs")] = False,
          ) -> None:
    """Run the REST API (/docs), the dashboard (/) and the scheduler in one process."""
    import uvicorn

    from concord.service.app import create_app

    try:
        cfg = load_config(config)
        app = create_app(cfg, start_scheduler=not no_scheduler)
    except ConcordError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    if bool(ssl_certfile) != bool(ssl_keyfile):
        err.print("[red]error:[/] TLS needs both --ssl-certfile and --ssl-keyfile")
        raise typer.Exit(2)
    scheme = "https" if ssl_certfile else "http"
    console.print(f"Concord on {scheme}://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="info",
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)


@token_app.command("create")
def token_create(name: Annotated[str, typer.Argument(help="who or what the token is for")],
                 role: Annotated[str | None, typer.Option(
                     help=f"a set of scopes: {ROLE_HELP}")] = None,
                 scope: Annotated[list[str] | None, typer.Option(
                     help=f"a scope (repeatable): {', '.join(SCOPES)}")] = None,
                 config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Create a token and print it once; only its hash is stored."""
    try:
        scopes = parse_scopes(scope, role)
    except ConcordError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    tid, token = create_token(_hub(config), name, scopes)
    err.print(f"token {tid} for {name!r} with scopes: {' '.join(scopes)} "
              "(shown once; store it now)")
    print(token)


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
               config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Tokens with their scopes and when they were last used (never the secret)."""
    if as_json:
        console.print_json(json.dumps([
            {k: row[k] for k in ("id", "name", "scopes", "created_at", "last_used_at", "revoked_at")}
            for row in list_tokens(_hub(config))]))
        return
    t = Table("id", "name", "scopes", "created", "last used", "revoked")

    def when(ts: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""

    for row in list_tokens(_hub(config)):
        t.add_row(row["id"], row["name"], row["scopes"], when(row["created_at"]),
                  when(row["last_used_at"]), when(row["revoked_at"]))
    console.print(t)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="the id shown by `token list`")],
                 config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Revoke a token: the API refuses it within seconds."""
    if not revoke_token(_hub(config), token_id):
        err.print(f"[red]error:[/] no active token {token_id!r} (see `concord token list`)")
        raise typer.Exit(1)
    console.print(f"token {token_id} revoked")
