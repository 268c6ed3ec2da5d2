"""The demo command and the `concord link` sub-commands, run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from concord.cli.demo import demo
from concord.cli.link import link_app
from concord.config import load_config
from concord.demo.sample import ADMIN_EMAIL
from concord.hub.store import Hub
from concord.link.status import link_status


def test_demo_reaches_green_and_shows_edits_arriving(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    demo(directory=tmp_path, clients=150, live=False, seed=3)
    out = capsys.readouterr().out
    assert out.count("✓") == 6 and "✗" not in out
    assert "GREEN" in out
    cfg = load_config(tmp_path / "concord.toml")
    hub = Hub(cfg.hub.url, cfg.hub.tenant)
    assert link_status(hub, "practice").color == "green"
    assert hub.count("client") == 151  # 150 and the one the demo added


def test_link_commands(tmp_path: Path) -> None:
    demo(directory=tmp_path, clients=60, live=False)
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "concord.toml")]
    r = runner.invoke(link_app, ["activate", "practice", "--as", ADMIN_EMAIL, *cfg])
    assert r.exit_code == 0 and "already been activated" in r.output
    r = runner.invoke(link_app, ["pause", "practice", "--as", ADMIN_EMAIL, *cfg])
    assert r.exit_code == 0 and "paused" in r.output
    r = runner.invoke(link_app, ["resume", "practice", "--as", ADMIN_EMAIL, *cfg])
    assert r.exit_code == 0 and "resumed" in r.output
    r = runner.invoke(link_app, ["deactivate", "practice", "--yes", "--as", ADMIN_EMAIL, *cfg])
    assert r.exit_code == 0 and "deactivated" in r.output
    cfg_obj = load_config(tmp_path / "concord.toml")
    hub = Hub(cfg_obj.hub.url, cfg_obj.hub.tenant)
    assert link_status(hub, "practice").color == "red"
    r = runner.invoke(link_app, ["activate", "practice", "--as", "nobody@example.com", *cfg])
    assert r.exit_code == 1 and "only an administrator" in r.output
