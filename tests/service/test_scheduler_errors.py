"""The scheduler tells transient errors from terminal ones: a spoke that is away is retried
with exponential backoff ("retrying at …"); a configuration that cannot work stops the link
red with the reason until a person acts. Real connectors fail for real: a CardDAV link to a
closed port on 127.0.0.1, a vdir link to a folder that does not exist."""

from __future__ import annotations

from pathlib import Path

from concord.config import from_dict
from concord.hub.store import Hub
from concord.link.status import link_status
from concord.service.scheduler import Scheduler
from tests.service.conftest import assert_backed_off, free_port, wait_for


def test_transient_errors_back_off_and_terminal_ones_stop_the_link(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    cfg = from_dict({"hub": {"url": url}, "links": {
        "dav": {"connector": "carddav", "interval": 0.05,
                "options": {"url": f"http://127.0.0.1:{free_port()}/dav/",
                            "collections": {"contact": f"http://127.0.0.1:{free_port()}/c/"}},
                "entities": {"contact": {}}},
        "folder": {"connector": "vdir", "interval": 0.05,
                   "options": {"path": str(tmp_path / "no-such-folder")},
                   "entities": {"contact": {}}}}})
    hub = Hub(url)
    for name, conn in (("dav", "carddav"), ("folder", "vdir")):
        hub.set_link(name, conn, state="active")
    sched = Scheduler(hub, cfg.links, watch=False, isolate=False, backoff_first=0.2)
    sched.start()
    try:
        # transient: each failure doubles the wait; the journal holds one run per attempt
        row = wait_for(lambda: (r := hub.link_row("dav")) and (r["failures"] or 0) >= 3 and r,
                       what="three failed attempts")
        runs = [r for r in hub.runs("dav") if r["status"] == "error"]
        assert 3 <= len(runs) <= row["failures"] + 1  # not one per 0.05 s interval
        assert_backed_off(runs, 0.2)  # each attempt waits out its backoff: 0.2 s, 0.4 s, ...
        st = link_status(hub, "dav", cfg.link("dav"))
        assert st.color == "red" and "retrying at" in st.reason and st.retry_at, st.reason

        # terminal: stopped after one attempt, red with the reason and the fix
        wait_for(lambda: (hub.link_row("folder") or {}).get("parked"), what="the folder link to stop")
        st = link_status(hub, "folder", cfg.link("folder"))
        assert st.color == "red" and "will not fix" in st.reason and "options.path" in st.reason
        assert "press Sync" in st.fix and st.stopped
        assert len(hub.runs("folder")) == 1
        # a person's sync runs (and, the folder now there, clears the stop)
        (tmp_path / "no-such-folder").mkdir()
        sched.request("folder", None, trigger="manual", by="admin")
        wait_for(lambda: not (hub.link_row("folder") or {}).get("parked"), what="the manual run")
        assert link_status(hub, "folder", cfg.link("folder")).stopped is None
    finally:
        sched.stop()
    assert len(hub.runs("folder")) >= 2
