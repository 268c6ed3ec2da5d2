"""A link in sync but with quarantined records or open conflicts is amber, not green: the REST
status and the dashboard card count them and say what to do, and the quarantined records are
listed with their errors (API and dashboard). Red still wins over amber. A real vdir folder, a
real hub and the real service on 127.0.0.1."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from concord.engine import sync_link
from concord.link.activation import pause
from tests.service.conftest import Served, write_vcard

BROKEN = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEMAIL:\x00\r\n"  # no END


@contextmanager
def _signed_in(svc: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=30, headers={"X-Concord-UI": "1"}) as c:
        assert c.post("/login", data={"token": svc.token("records:read")},
                      follow_redirects=False).status_code == 303
        yield c


def test_quarantined_and_conflicting_records_turn_the_light_amber_with_the_fix(
        service: Served, tmp_path: Path) -> None:
    folder, cfg, hub = tmp_path / "office", service.cfg.links["office"], service.hub
    write_vcard(folder, "c1", "Acme")
    write_vcard(folder, "c2", "Brick Lane Bakery")
    sync_link(hub, cfg)
    with service.client("records:read") as c:
        assert c.get("/api/v1/links/office").json()["status"]["color"] == "green"
        assert c.get("/api/v1/links/office/quarantine").json() == []

    # one known record breaks at the spoke, one new file never parsed; both sides edit another
    (folder / "c2.vcf").write_text(BROKEN.format(uid="c2", name="Brick Lane Bakery"))
    (folder / "new.vcf").write_text(BROKEN.format(uid="new", name="Never Read"))
    acme = next(r for r in hub.list_records("client") if r.fields["name"] == "Acme")
    hub.put("client", acme.id, {**acme.fields, "name": "Acme Hub"})
    write_vcard(folder, "c1", "Acme Office")
    sync_link(hub, cfg)

    with service.client("records:read") as c:
        s = c.get("/api/v1/links/office").json()["status"]
        assert s["color"] == "amber", s
        assert "2 records quarantined, 1 open conflict" in s["reason"], s
        assert "quarantined record" in s["fix"] and "conflict" in s["fix"], s
        assert s["quarantined"] == 2 and s["conflicts"] == 1
        items = c.get("/api/v1/links/office/quarantine").json()
        assert c.get("/api/v1/links/nope/quarantine").status_code == 404
    by_ref = {Path(q["ref"]).name.split(".")[0]: q for q in items}
    assert set(by_ref) == {"c2", "new"}, items
    known, unknown = by_ref["c2"], by_ref["new"]
    assert known["record"] == "Brick Lane Bakery" and known["hub_id"], known
    assert unknown["record"] is None and unknown["hub_id"] is None, unknown
    for q in items:
        assert q["entity"] == "client" and q["side"] == "spoke" and q["error"]
        assert q["retry_at"] is not None and q["retry_at"] > q["since"]

    with _signed_in(service) as ui:
        card = ui.get("/ui/links/office/card").text
        assert 'data-color="amber"' in card and "2 quarantined records" in card, card
        assert 'href="/quarantine?link=office"' in card and "1 open conflict" in card, card
        page = ui.get("/quarantine?link=office")
        assert page.status_code == 200
        assert "Brick Lane Bakery" in page.text and known["error"].replace("\x00", "\\x00") in page.text.replace(
            "&#39;", "'").replace("&#34;", '"').replace("&lt;", "<").replace("&gt;", ">")
        assert page.text.count("<tr data-ref=") == 2
        # the known record's name links to that record's own row, whichever page it is on
        [href] = re.findall(r'<a href="(/records/client[^"]*)">Brick Lane Bakery</a>', page.text)
        shown = ui.get(html.unescape(href))
        assert shown.status_code == 200 and f'id="rec-{known["hub_id"]}"' in shown.text, href
        assert shown.text.count('<tr id="rec-') == 1 and "Acme" not in shown.text
        gone = ui.get("/records/client?id=no-such-record")
        assert "No record no-such-record" in gone.text and "All clients" in gone.text

    # blue (a record pending for the spoke) still counts what will hold the light at amber
    hub.put("client", "from-the-hub", {"name": "Hub-Only Holdings"})
    with service.client("records:read") as c:
        s = c.get("/api/v1/links/office").json()["status"]
    assert s["color"] == "blue" and s["pending"] == 1, s
    assert "also 2 records quarantined, 1 open conflict" in s["reason"], s
    assert "press Sync" in s["fix"] and "quarantined record" in s["fix"], s

    # red wins over amber: a paused link is red, with the pause's reason
    pause(hub, "office", by="alice", reason="year-end close")
    with service.client("records:read") as c:
        s = c.get("/api/v1/links/office").json()["status"]
    assert s["color"] == "red" and "year-end close" in s["reason"], s
    assert s["quarantined"] == 2 and s["conflicts"] == 1
    with _signed_in(service) as ui:  # the card names the pause's reason too
        card = ui.get("/ui/links/office/card").text
        assert 'data-color="red"' in card and "year-end close" in card, card


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_fixing_the_source_record_turns_the_light_green_again(
        service: Served, tmp_path: Path) -> None:
    folder, cfg, hub = tmp_path / "office", service.cfg.links["office"], service.hub
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "bad.vcf").write_text(BROKEN.format(uid="bad", name="Broken"))
    sync_link(hub, cfg)
    with service.client("records:read") as c:
        assert c.get("/api/v1/links/office").json()["status"]["color"] == "amber"
        write_vcard(folder, "bad", "Mended")
        sync_link(hub, cfg)
        s = c.get("/api/v1/links/office").json()["status"]
        assert s["color"] == "green" and s["quarantined"] == 0, s
        assert c.get("/api/v1/links/office/quarantine").json() == []
