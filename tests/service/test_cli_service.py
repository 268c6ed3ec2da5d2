"""``concord token`` commands and ``concord serve`` started as a real process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from concord.cli_service import serve, token_app
from tests.service.conftest import free_port


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(serve)
    app.add_typer(token_app, name="token")
    return app


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "concord.toml"
    cfg.write_text('[hub]\nurl = "sqlite:///hub.db"\n\n[links.office]\nconnector = "vdir"\n'
                   'options = { path = "office" }\ninterval = 3600\n'
                   '[links.office.entities.client]\ndirection = "two-way"\n')
    return cfg


def test_token_create_list_revoke_and_serve(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    runner = CliRunner()
    r = runner.invoke(_app(), ["token", "create", "alice", "--role", "standard", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("cct_")
    r = runner.invoke(_app(), ["token", "create", "bob", "--scope", "bogus", "-c", str(cfg)])
    assert r.exit_code == 2 and "unknown scope 'bogus'" in r.output
    listed = runner.invoke(_app(), ["token", "list", "-c", str(cfg)]).stdout
    assert "alice" in listed and token not in listed

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from concord.cli_service import serve; "
                             "import typer; typer.run(serve)", "-c", str(cfg), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        h = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/api/v1/links", headers=h).json()[0]["name"] == "office"
        assert httpx.get(url + "/api/v1/me", headers=h).json()["scopes"] == ["records:read", "sync:run"]
        tid = token.split("_")[1]
        assert runner.invoke(_app(), ["token", "revoke", tid, "-c", str(cfg)]).exit_code == 0
        assert runner.invoke(_app(), ["token", "revoke", tid, "-c", str(cfg)]).exit_code == 1
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert token not in out
