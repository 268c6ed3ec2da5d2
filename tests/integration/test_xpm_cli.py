"""`concord xpm connect` / `concord xpm estimate` and a paused XPM link in `concord status`.

Xero is stood in for by the in-process XPM fake (``tests/servers/xpm.py``; no local XPM
server exists): the connectors the CLI makes from the configuration use its transport, and
the browser's part of the login (the user's consent) is played by the fake's ``authorize``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from concord.cli import app
from concord.connectors.xpm import auth as xauth
from concord.connectors.xpm import connector as xconn
from concord.hub import schema as s
from concord.hub.store import Hub
from tests.servers.xpm import REDIRECT, TOKEN_KEY, XpmFake


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[XpmFake, Path, Hub]:
    fake = XpmFake()
    fake.add_definition(name="Year End", type="Date", useClient=True)
    for n in range(3):
        fake.add_client(name=f"Client {n}")
    monkeypatch.setattr(xconn, "DEFAULT_TRANSPORT", fake.transport)
    monkeypatch.setenv("XPM_SECRET", "s3cret")
    monkeypatch.setenv("XPM_TOKEN_KEY", TOKEN_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    cfg = tmp_path / "concord.toml"
    cfg.write_text(f"""
[hub]
url = "sqlite:///{tmp_path / 'hub.db'}"

[links.xpm]
connector = "xpm"
options = {{ client_id = "concord-test", client_secret = "env:XPM_SECRET", token_key = "env:XPM_TOKEN_KEY", redirect_uri = "{REDIRECT}" }}
entities = {{ client = {{}}, staff = {{}} }}
""")
    return fake, cfg, Hub(f"sqlite:///{tmp_path / 'hub.db'}")


def _browser(fake: XpmFake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user logs in and allows Concord: Xero sends the browser to the redirect address."""
    made: list[Any] = []
    real = xauth.start_authorization

    def start(*a: Any, **kw: Any) -> Any:
        made.append(real(*a, **kw))
        return made[-1]

    def prompt(_text: str) -> str:
        auth = made[-1]
        code = fake.authorize(client_id="concord-test", redirect_uri=REDIRECT,
                              code_challenge=xauth.challenge_of(auth))
        return f"{REDIRECT}?code={code}&state={auth.state}"

    monkeypatch.setattr(xauth, "start_authorization", start)
    monkeypatch.setattr("typer.prompt", prompt)


def test_connect_stores_one_encrypted_token_set_and_estimate_counts_calls(
        setup: tuple[XpmFake, Path, Hub], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, cfg, hub = setup
    _browser(fake, monkeypatch)
    runner = CliRunner()
    out = runner.invoke(app, ["xpm", "connect", "xpm", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "login.xero.com" in out.output and "code_challenge_method=S256" in out.output
    assert fake.practice.tenant_id in out.output
    out = runner.invoke(app, ["xpm", "connect", "xpm", "-c", str(cfg)])  # again: replaced
    assert out.exit_code == 0, out.output
    with hub.engine.connect() as conn:
        rows = list(conn.execute(select(s.oauth_tokens)))
    assert len(rows) == 1 and rows[0].generation == 2
    est = runner.invoke(app, ["xpm", "estimate", "xpm", "-c", str(cfg)])
    assert est.exit_code == 0, est.output
    assert "about" in est.output and "calls left today" in est.output
    line = next(ln for ln in est.output.splitlines() if " client " in ln)
    # the client listing and the field definitions; three clients' custom field values
    assert re.findall(r"\d+", line) == ["2", "3", "0"]
    assert fake.calls["CustomFieldV31_GetClientByIdentifier"] == 0  # counted, not read
    sync = runner.invoke(app, ["sync", "xpm", "-c", str(cfg)])
    assert sync.exit_code == 0, sync.output
    assert hub.count("client") == 3
    actions = [a["action"] for a in hub.activity()]
    assert "xpm connected" in actions and "xpm estimate" in actions


def test_a_paused_link_says_until_when_in_the_status(setup: tuple[XpmFake, Path, Hub],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake, cfg, _hub = setup
    _browser(fake, monkeypatch)
    runner = CliRunner()
    assert runner.invoke(app, ["xpm", "connect", "xpm", "-c", str(cfg)]).exit_code == 0
    fake.fail_next("429-day", match="staff.api")
    runner.invoke(app, ["sync", "xpm", "-c", str(cfg)])
    st = runner.invoke(app, ["status", "xpm", "-c", str(cfg)])
    assert "Sync paused until" in st.output, st.output
    assert "resumes by itself" in st.output


def test_a_missing_secret_variable_names_it(setup: tuple[XpmFake, Path, Hub],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _fake, cfg, _hub = setup
    monkeypatch.delenv("XPM_SECRET")
    out = CliRunner().invoke(app, ["xpm", "estimate", "xpm", "-c", str(cfg)])
    assert out.exit_code != 0
    assert "XPM_SECRET" in out.output + str(out.exception)
