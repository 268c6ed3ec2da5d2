"""The dashboard shows typed values readably: e-mail addresses as addresses with their kinds,
an address on one line, attendees by name and status, and ``extras`` as a short summary with
the kept properties listed under it, never a dict dump. A conflict whose only difference is
in ``extras`` is still shown, with the differing property marked, and can be resolved."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from concord.engine import sync_link
from concord.service import render
from tests.service.conftest import Served

EMAILS = [{"address": "ann@acme.example", "types": ["work"], "pref": 1},
          {"address": "ann@home.example", "types": ["home"]}]
ADDRESS = {"street": "1 High St", "locality": "Sydney", "region": "NSW", "postcode": "2000",
           "country": "Australia", "types": ["work"]}
EXTRAS = {"format": "vcard", "props": [{"name": "X-FOO", "value": "one"},
                                       {"group": "item1", "name": "X-ABLABEL", "value": "Other"}],
          "forms": {"N": "absent"}}
CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Acme Pty\r\nN:Pty;Ann;;;\r\n"
        "EMAIL;TYPE=WORK:ann@acme.example\r\nADR;TYPE=WORK:;;1 High St;Sydney;NSW;2000;Australia\r\n"
        "X-FOO:{x}\r\nitem1.X-ABLabel:Other\r\nEND:VCARD\r\n")
DUMP = re.compile(r"\{\s*(&#39;|'|&#34;|\")\w+(&#39;|'|&#34;|\")\s*:")  # {'format': … / {"a": …


def test_typed_values_read_as_text() -> None:
    assert render.show(EMAILS, "client", "emails") == (
        "ann@acme.example (work, preferred); ann@home.example (home)")
    assert render.show([ADDRESS], "client", "addresses") == (
        "1 High St, Sydney NSW 2000, Australia (work)")
    assert render.show([{"number": "+61 2 9000 0000", "types": ["work", "cell"]}],
                       "client", "phones") == "+61 2 9000 0000 (work, cell)"
    assert render.show(["audit", "tax"], "client", "categories") == "audit, tax"
    assert render.show([{"email": "ann@acme.example", "name": "Ann Lee", "status": "ACCEPTED"},
                        {"email": "bob@acme.example", "role": "OPT-PARTICIPANT"}],
                       "event", "attendees") == (
        "Ann Lee <ann@acme.example> (accepted); bob@acme.example (optional)")
    assert render.show({"email": "boss@acme.example"}, "event", "organizer") == "boss@acme.example"
    assert render.show({"rules": ["FREQ=WEEKLY;BYDAY=MO"], "exdates": ["2026-03-02"]},
                       "event", "recurrence") == "FREQ=WEEKLY;BYDAY=MO; except 2026-03-02"
    assert render.show(True, "staff", "active") == "yes"
    summary = render.show(EXTRAS, "client", "extras")
    assert summary == "2 more properties kept from the vCard, and 1 formatting detail"
    assert render.show({"format": "vcard", "forms": {"N": "absent"}}, "client", "extras") == (
        "1 formatting detail kept from the vCard")
    view = render.extras_view(EXTRAS)
    assert [i["name"] for i in view["items"]] == ["X-FOO", "item1.X-ABLABEL", "N written as"]
    alarm = render.extras_view({"format": "ical", "components": [
        "BEGIN:VALARM\r\nTRIGGER:-PT15M\r\nACTION:DISPLAY\r\nEND:VALARM"]})
    assert alarm["summary"] == "1 more property kept from the iCalendar"
    assert alarm["items"][0]["name"] == "VALARM" and "TRIGGER:-PT15M" in alarm["items"][0]["value"]
    assert render.title({"given_name": "Ann", "family_name": "Lee", "title": "CFO"}, "x") == (
        "Ann Lee")
    assert render.title({"summary": "Board meeting"}, "e1") == "Board meeting"
    assert render.title({"emails": EMAILS}, "c9") == "ann@acme.example"
    for value in (EMAILS, [ADDRESS], EXTRAS):
        assert not DUMP.search(render.show(value, "client", "x"))


def test_conflict_rows_name_a_difference_the_text_does_not_show() -> None:
    ours = dict(EXTRAS, props=[{"name": "X-FOO", "value": "hub"}])
    theirs = dict(EXTRAS, props=[{"name": "X-FOO", "value": "office"}])
    row = render.field_row("client", "extras", ours, theirs)
    assert row["differs"] and row["extras"]["hub"]["differs"]
    assert [i["name"] for i in row["extras"]["hub"]["items"] if i["differs"]] == ["X-FOO"]
    # Same addresses, one with a parameter the model does not name: the row says where.
    row = render.field_row("client", "emails", [{"address": "a@acme.example"}],
                           [{"address": "a@acme.example", "params": {"X-SERVICE": ["x"]}}])
    assert row["hub"] == row["spoke"] == "a@acme.example"
    assert row["differs"] and row["note"] == "differs in emails[1].params"


@contextmanager
def _signed_in(svc: Served, *scopes: str) -> Iterator[httpx.Client]:
    """A dashboard user: the sign-in cookie, and the header the dashboard's POSTs carry."""
    with httpx.Client(base_url=svc.url, timeout=30, headers={"X-Concord-UI": "1"}) as c:
        r = c.post("/login", data={"token": svc.token(*scopes)}, follow_redirects=False)
        assert r.status_code == 303
        yield c


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_record_views_show_typed_values_readably(service: Served) -> None:
    service.hub.put("client", "acme", {"name": "Acme Pty", "emails": EMAILS,
                                       "addresses": [ADDRESS], "categories": ["audit", "tax"],
                                       "extras": EXTRAS, "custom.industry": "Retail"})
    with _signed_in(service, "records:read") as c:
        for path in ("/records/client", "/ui/records/client/acme/row"):
            html = c.get(path).text
            row = html[html.index('id="rec-acme"'):]
            row = row[:row.index("</tr>")]
            assert "ann@acme.example (work, preferred); ann@home.example (home)" in row
            assert "1 High St, Sydney NSW 2000, Australia (work)" in row
            assert "audit, tax" in row and "Retail" in row
            assert '<details class="extras">' in row
            assert "2 more properties kept from the vCard, and 1 formatting detail" in row
            assert "X-FOO" in row and "item1.X-ABLABEL" in row
            assert not DUMP.search(row), row
            assert "[{" not in row and "&#39;address&#39;" not in row


def _extras_conflict(svc: Served, folder: Path) -> tuple[str, dict[str, Any]]:
    """The same client's kept vCard property edited on both sides: a conflict on extras only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "c1.vcf").write_text(CARD.format(x="one"))
    cfg = svc.cfg.links["office"]
    sync_link(svc.hub, cfg)
    rec = svc.hub.list_records("client")[0]
    extras = json.loads(json.dumps(rec.fields["extras"]))
    extras["props"][0]["value"] = "hub edit"
    svc.hub.put("client", rec.id, {**rec.fields, "extras": extras})
    (folder / "c1.vcf").write_text(CARD.format(x="office edit"))
    sync_link(svc.hub, cfg)
    (conflict,) = svc.hub.conflicts()
    assert json.loads(conflict["fields"]) == ["extras"]
    return rec.id, conflict


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_a_conflict_only_in_extras_is_shown_readably_and_resolved(service: Served,
                                                                 tmp_path: Path) -> None:
    rid, conflict = _extras_conflict(service, tmp_path / "office")
    cid = conflict["id"]
    with _signed_in(service, "records:read", "records:write") as c:
        html = c.get("/conflicts").text
        assert f'id="conflict-{cid}"' in html  # shown, not hidden
        section = html[html.index(f'id="conflict-{cid}"'):html.index("</section>")]
        assert "Differs in: extras" in section
        row = section[section.index('data-field="extras"'):]
        row = row[:row.index("</tr>")]
        assert 'class="differs"' in section[section.index('data-field="extras"') - 40:][:80]
        assert row.count('<details class="extras" open>') == 2  # a differing row: opened
        assert "2 more properties kept from the vCard" in row
        assert re.search(r'<li class="differs"[^>]*><b>X-FOO</b> <span[^>]*>hub edit</span>', row)
        assert re.search(r'<li class="differs"[^>]*><b>X-FOO</b> <span[^>]*>office edit</span>',
                         row)
        assert "<li><b>item1.X-ABLABEL</b>" in row  # the same on both sides: not marked
        emails = section[section.index('data-field="emails"'):]
        emails = emails[:emails.index("</tr>")]
        assert "ann@acme.example (work)" in emails and "same on both" in emails
        assert "1 High St, Sydney NSW 2000, Australia (work)" in section
        assert not DUMP.search(section), section

        # Merged values that do not fit the model are refused by name, on the API and the
        # dashboard alike; nothing is resolved.
        r = c.post(f"/api/v1/conflicts/{cid}/resolve", json={"fields": {"email": "a@b.example"}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "email"
        r = c.post(f"/ui/conflicts/{cid}/resolve", data={"choose": "merge", "f:emails": "a@b"})
        assert r.status_code == 422 and "field 'emails'" in r.text
        assert service.hub.conflicts()

        # Save merged: the office's extras (chosen by side), the hub's everything else.
        form = {"choose": "merge", "p:extras": "spoke", "p:emails": "hub", "p:addresses": "hub",
                "f:name": "Acme Pty", "f:given_name": "Ann", "f:family_name": "Pty"}
        r = c.post(f"/ui/conflicts/{cid}/resolve", data=form)
        assert r.status_code == 200 and "resolved" in r.text, r.text
    got = service.hub.get("client", rid)
    assert got is not None
    assert got.fields["extras"]["props"][0] == {"name": "X-FOO", "value": "office edit"}
    assert got.fields["emails"] == [{"address": "ann@acme.example", "types": ["work"]}]
    assert got.fields["name"] == "Acme Pty"
    assert service.hub.conflicts() == []
