"""``concord token`` commands and ``concord serve`` started as a real process."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from concord.cli.service import serve, token_app
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
    proc = subprocess.Popen([sys.executable, "-c", "from concord.cli.service import serve; "
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


def test_serve_over_tls(tmp_path: Path) -> None:
    """``--ssl-certfile/--ssl-keyfile`` serve HTTPS (a self-signed certificate made here)."""
    cfg = _config(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from concord.cli.service import serve; "
                             "import typer; typer.run(serve)", "-c", str(cfg), "--port", str(port),
                             "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"https://127.0.0.1:{port}"
        r = None
        for _ in range(200):
            try:
                r = httpx.get(url + "/api/v1/links", timeout=1,
                              verify=ssl.create_default_context(cafile=str(cert)))
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r is not None and r.status_code == 401  # TLS works; the API still wants a token
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/links", timeout=2)
            plain_refused = False
        except httpx.HTTPError:
            plain_refused = True
        assert plain_refused
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
