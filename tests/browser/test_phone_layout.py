"""On a phone (375x667) the dashboard's pages fit the screen: the activity table, with long
details and names, scrolls inside its own box, never the page sideways. Real Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concord.engine import sync_link
from tests.browser.test_dashboard import sign_in
from tests.service.conftest import vdir_config, write_vcard

PHONE = {"width": 375, "height": 667}


@pytest.fixture
def phone(browser: Any) -> Any:
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    yield pg
    ctx.close()


def test_activity_and_quarantine_fit_a_phone_screen(phone: Any, make_service: Any,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "office"
    write_vcard(folder, "c1", "Acme Pty")
    (folder / "broken-record-with-a-long-file-name-from-the-office-export.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Broken\r\n")  # cut short: quarantined
    svc = make_service(vdir_config(f"sqlite:///{tmp_path / 'hub.db'}", folder))
    sync_link(svc.hub, svc.cfg.links["office"])
    for i in range(5):  # what real runs write: long actors, details and outcomes
        svc.hub.log_activity("bookkeeper.with.a.long.name@practice.example", "sync requested",
                             link="office", entity="client", outcome="already running",
                             detail="client record 0195f3a2-7c1e-7d3b-9a4f-2b8e6c1d0f97: a "
                                    "sync of this link and entity is already running; it was "
                                    f"not started twice (request {i}); {folder}/a/long/path/without/any/"
                                    "space/in/it/as/a/spoke/error/names/it.vcf")
    svc.hub.set_link("office", "vdir", last_error=(  # a long path, with nowhere to break
        f"{folder}/a/very/long/path/to/the/practice/export/folder/that/cannot/be/read.vcf"))
    sign_in(phone, svc, "admin")
    for path in ("/", "/activity", "/quarantine"):
        phone.goto(svc.url + path)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a {PHONE['width']}px phone"
        if path == "/":
            assert phone.locator("#activity-live tbody tr").count() >= 5
            # the table itself fits: nothing hidden to the right of its box
            assert phone.evaluate("(e => e.scrollWidth <= e.clientWidth)"
                                  "(document.querySelector('#activity-live'))")
