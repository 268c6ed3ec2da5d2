"""The setup script installs the system packages it is asked for, and none when asked for
none (demo.sh needs no server). Run for real with CONCORD_SETUP_PLAN=1, which prints the
plan and stops before installing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def plan(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "CONCORD_SYSTEM_PACKAGES"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True,
                       text=True, env={**base, "CONCORD_SETUP_PLAN": "1", **env}, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_an_empty_package_list_installs_no_system_package() -> None:
    assert "system packages wanted: (none)" in plan(CONCORD_SYSTEM_PACKAGES="")


def test_unset_means_the_test_servers_and_a_list_is_taken_as_given() -> None:
    assert "system packages wanted: postgresql chromium" in plan()
    assert "system packages wanted: chromium" in plan(CONCORD_SYSTEM_PACKAGES="chromium")


def test_demo_asks_for_no_system_package() -> None:
    text = (ROOT / "scripts" / "demo.sh").read_text()
    assert 'CONCORD_SYSTEM_PACKAGES="" ./scripts/setup.sh' in text
