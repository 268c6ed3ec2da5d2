"""A run whose process is killed is marked interrupted by the next start (real processes,
SIGKILL, a real SQLite hub and vdir folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import concord
from concord.config import from_dict
from concord.engine import sync_link
from concord.hub.store import Hub
from concord.service.scheduler import Scheduler

SRC = str(Path(concord.__file__).resolve().parents[1])
STARTER = """
import sys, time
from concord.hub.store import Hub
hub = Hub(sys.argv[1])
print(hub.start_run("office", "client", "cli", "someone"), flush=True)
time.sleep(600)
"""


def killed_run(url: str) -> int:
    proc = subprocess.Popen([sys.executable, "-c", STARTER, url], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout is not None
    run_id = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return run_id


def test_a_killed_run_is_marked_interrupted_by_the_next_sync_and_the_service(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    (tmp_path / "office").mkdir()
    cfg = from_dict({"hub": {"url": url}, "links": {"office": {
        "connector": "vdir", "options": {"path": str(tmp_path / "office")},
        "entities": {"client": {"direction": "two-way"}}}}})
    hub = Hub(url)
    first = killed_run(url)
    live = hub.start_run("office", "client", "cli", "me")  # this process is alive: kept
    assert {r["id"]: r["status"] for r in hub.runs("office")}[first] == "running"
    sync_link(hub, cfg.link("office"), entities=["client"])
    runs = {r["id"]: r for r in hub.runs("office")}
    assert runs[first]["status"] == "interrupted" and runs[first]["finished_at"]
    assert "next run resumes" in runs[first]["message"]
    assert runs[live]["status"] == "running"
    assert any(a["action"] == "run interrupted" for a in hub.activity(limit=20))

    second = killed_run(url)
    sched = Scheduler(hub, cfg.links, watch=False, isolate=False)
    sched.start()
    sched.stop()
    assert {r["id"]: r["status"] for r in hub.runs("office")}[second] == "interrupted"
