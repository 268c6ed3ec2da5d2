"""`concord sync --watch` handles a failed run as the service's scheduler does: a spoke that is
away (a CardDAV server on a closed port of 127.0.0.1) is retried with exponential backoff and
"retrying at …", told once per attempt; a configuration that cannot work (a vdir folder that
does not exist) stops its link, told once, while the other links go on; a person's
`concord sync LINK` that succeeds clears the stop and watching resumes it. Real connectors
fail for real; nothing is mocked."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from concord.cli.running import watch_links
from concord.config import from_dict
from concord.engine import sync_link
from concord.hub.store import Hub
from concord.link.status import link_status
from tests.service.conftest import assert_backed_off, free_port, wait_for


def test_watch_backs_off_transient_errors_and_stops_terminal_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    port = free_port()
    folder = tmp_path / "no-such-folder"
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.vcf").write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ada Lovelace\r\n"
                                "END:VCARD\r\n")
    cfg = from_dict({"hub": {"url": url}, "links": {
        "dav": {"connector": "carddav", "interval": 0.05,
                "options": {"url": f"http://127.0.0.1:{port}/dav/",
                            "collections": {"contact": f"http://127.0.0.1:{port}/c/"}},
                "entities": {"contact": {}}},
        "folder": {"connector": "vdir", "interval": 0.05, "options": {"path": str(folder)},
                   "entities": {"contact": {}}},
        "good": {"connector": "vdir", "interval": 0.05, "options": {"path": str(good)},
                 "entities": {"contact": {}}}}})
    hub = Hub(url)
    links = list(cfg.links.values())
    stop = threading.Event()
    watcher = threading.Thread(target=watch_links, args=(hub, links, None),
                               kwargs={"backoff_first": 0.2, "stop": stop}, daemon=True)
    watcher.start()
    try:
        # the healthy link syncs although its neighbours fail
        wait_for(lambda: hub.count("contact") == 1, what="the good folder's card in the hub")
        row = wait_for(lambda: (r := hub.link_row("dav")) and (r["failures"] or 0) >= 3 and r,
                       what="three failed attempts at the closed port")
        runs = [r for r in hub.runs("dav") if r["status"] == "error"]
        assert 3 <= len(runs) <= row["failures"] + 1, runs  # not one per 0.05 s interval
        assert_backed_off(runs, 0.2)  # each attempt waits out its backoff: 0.2 s, 0.4 s, ...
        st = link_status(hub, "dav", cfg.link("dav"))
        assert st.color == "red" and "retrying at" in st.reason, st.reason

        wait_for(lambda: (hub.link_row("folder") or {}).get("parked"), what="the folder link to stop")
        st = link_status(hub, "folder", cfg.link("folder"))
        assert st.color == "red" and "options.path" in st.reason and st.stopped
        # a person's run, once the folder is there, clears the stop; watching resumes the link
        folder.mkdir()
        (folder / "b.vcf").write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Grace Hopper\r\n"
                                      "END:VCARD\r\n")
        assert sync_link(hub, cfg.link("folder"), trigger="cli").status == "ok"
        assert hub.count("contact") == 2
        (folder / "c.vcf").write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Alan Turing\r\n"
                                      "END:VCARD\r\n")
        wait_for(lambda: hub.count("contact") == 3, what="the resumed link to sync a new card")
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()
    # the stopped link was not tried again each interval: told once, no run until the person's
    assert [r["status"] for r in hub.runs("folder")] == ["ok", "ok"]
    told = capsys.readouterr().err
    assert told.count("folder: stopped") == 1, told
    assert told.count("retrying at") == len([r for r in hub.runs("dav") if r["status"] == "error"])
