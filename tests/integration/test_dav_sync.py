"""Hub <-> CardDAV and hub <-> CalDAV through ``sync_link``, on real Radicale/Xandikos:
two-way edits and deletes, the task status table and category filter, an interrupted
first upload that resumes, and one unreachable server that does not stop another link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from concord.config import EntityConfig, LinkConfig
from concord.connectors.base import WriteResult
from concord.connectors.dav import DEFAULT_TASK_STATUS_MAP, CardDAVConnector
from concord.engine import sync_link
from concord.errors import TransientError
from concord.hub.store import Hub
from tests.servers.dav import DavServer, free_port


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    h = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    yield h  # type: ignore[misc]
    h.close()


def link(server: DavServer, connector: str, entity: str, coll: str, **entity_cfg: Any) -> LinkConfig:
    return LinkConfig(name=f"{connector}-{entity}", connector=connector, options={
        "url": server.url + server.principal, "username": server.username,
        "password": server.password, "collections": {entity: coll}},
        entities={entity: EntityConfig(**entity_cfg)}, batch_size=20)


def server_text(server: DavServer, path: str) -> str | None:
    with httpx.Client(auth=server.auth) as c:
        r = c.get(server.url + path)
    return r.text if r.status_code == 200 else None


def server_hrefs(server: DavServer, coll: str) -> dict[str, str]:
    from concord.connectors.dav.client import DavClient

    c = DavClient(coll, username=server.username, password=server.password)
    try:
        return c.list_etags(httpx.URL(coll).path)
    finally:
        c.close()


def put_raw(server: DavServer, path: str, text: str, etag: str | None, ctype: str) -> None:
    headers = {"Content-Type": ctype}
    if etag:
        headers["If-Match"] = etag
    with httpx.Client(auth=server.auth) as c:
        r = c.put(server.url + path, content=text, headers=headers)
    assert r.status_code in (201, 204), r.text


def test_contacts_two_way(dav_server: DavServer, hub: Hub) -> None:
    coll = dav_server.new_collection("addressbook")
    cfg = link(dav_server, "carddav", "contact", coll)
    for n in range(3):
        hub.put("contact", f"c{n}", {"name": f"Dee Client {n}", "given_name": "Dee",
                                     "family_name": f"Client {n}",
                                     "emails": [{"address": f"dee{n}@ex.com"}]})
    assert sync_link(hub, cfg).ok
    hrefs = server_hrefs(dav_server, coll)
    base = httpx.URL(coll).path
    assert set(hrefs) == {f"{base}c{n}.vcf" for n in range(3)}
    # an edit at the server, keeping a property Concord does not map
    text = server_text(dav_server, f"{base}c0.vcf")
    assert text is not None and "UID:c0" in text
    edited = text.replace("FN:Dee Client 0", "FN:Dee Renamed").replace(
        "END:VCARD", "X-SPOUSE:Sam\r\nEND:VCARD")
    put_raw(dav_server, f"{base}c0.vcf", edited, hrefs[f"{base}c0.vcf"], "text/vcard")
    # a delete at the server
    with httpx.Client(auth=dav_server.auth) as c:
        assert c.delete(dav_server.url + f"{base}c1.vcf").status_code in (200, 204)
    r = sync_link(hub, cfg)
    assert r.ok, r.message
    c0, c1 = hub.get("contact", "c0"), hub.get("contact", "c1")
    assert c0 is not None and c0.fields["name"] == "Dee Renamed"
    assert c1 is not None and c1.deleted
    # edits in the hub go out; the unmapped property stays
    hub.put("contact", "c0", {**c0.fields, "title": "Director"})
    hub.remove("contact", "c2")
    r = sync_link(hub, cfg)
    assert r.ok, r.message
    print(r.counts, {e: x.errors for e, x in r.entities.items()})
    text = server_text(dav_server, f"{base}c0.vcf")
    assert text is not None and "TITLE:Director" in text and "X-SPOUSE:Sam" in text
    assert set(server_hrefs(dav_server, coll)) == {f"{base}c0.vcf"}
    # and a no-op run changes nothing
    again = sync_link(hub, cfg)
    assert again.ok and sum(again.counts.values()) == 0, again.counts


def test_tasks_status_table_and_category_filter(radicale_server: DavServer, hub: Hub) -> None:
    srv = radicale_server
    coll = srv.new_collection("calendar")
    cfg = link(srv, "caldav", "task", coll, values={"status": DEFAULT_TASK_STATUS_MAP},
               filter={"categories": ["Practice"]})
    tasks = {
        "t-open": ("Open", ["Practice"]),
        "t-draft": ("Draft", ["Practice"]),  # no groupware status: not synced
        "t-cancel": ("Canceled", ["Practice", "Tax"]),
        "t-pending": ("Pending Approval", ["Practice"]),
        "t-other": ("Open", ["Private"]),  # outside the category: not synced
    }
    for tid, (status, cats) in tasks.items():
        hub.put("task", tid, {"summary": f"Task {tid}", "status": status, "categories": cats,
                              "due": "2026-06-30"})
    assert sync_link(hub, cfg).ok
    base = httpx.URL(coll).path
    hrefs = server_hrefs(srv, coll)
    assert set(hrefs) == {f"{base}{t}.ics" for t in ("t-open", "t-cancel", "t-pending")}
    t_open = server_text(srv, f"{base}t-open.ics") or ""
    # by design, X-CONCORD-STATUS is written only when VTODO STATUS cannot say the status:
    # "Not Started" is exactly NEEDS-ACTION, so it is not repeated (it was before)
    assert "STATUS:NEEDS-ACTION" in t_open and "X-CONCORD-STATUS" not in t_open
    t_pending = server_text(srv, f"{base}t-pending.ics") or ""
    assert "STATUS:IN-PROCESS" in t_pending and "X-CONCORD-STATUS:Waiting on Others" in t_pending
    assert "STATUS:COMPLETED" in (server_text(srv, f"{base}t-cancel.ics") or "")

    # another client renames the cancelled task, starts another (STATUS only) and
    # deletes a third
    t_cancel = server_text(srv, f"{base}t-cancel.ics") or ""
    put_raw(srv, f"{base}t-cancel.ics", t_cancel.replace("SUMMARY:Task t-cancel", "SUMMARY:Dropped"),
            hrefs[f"{base}t-cancel.ics"], "text/calendar")
    put_raw(srv, f"{base}t-open.ics", t_open.replace("STATUS:NEEDS-ACTION", "STATUS:IN-PROCESS"),
            hrefs[f"{base}t-open.ics"], "text/calendar")
    with httpx.Client(auth=srv.auth) as c:
        assert c.delete(srv.url + f"{base}t-pending.ics").status_code in (200, 204)
    assert sync_link(hub, cfg).ok
    got = hub.get("task", "t-open")
    assert got is not None and got.fields["status"] == "In Process"
    pending = hub.get("task", "t-pending")
    assert pending is not None and pending.deleted
    # Canceled and Completed share "Completed" at the groupware: the practice value stays
    cancelled = hub.get("task", "t-cancel")
    assert cancelled is not None and cancelled.fields["summary"] == "Dropped"
    assert cancelled.fields["status"] == "Canceled"
    # a delete in the hub reaches the server
    hub.remove("task", "t-cancel")
    assert sync_link(hub, cfg).ok
    assert set(server_hrefs(srv, coll)) == {f"{base}t-open.ics"}
    # tasks that were never synced are untouched in the hub
    draft = hub.get("task", "t-draft")
    assert draft is not None and not draft.deleted and draft.fields["status"] == "Draft"


def test_events_attendees_both_ways(xandikos_server: DavServer, hub: Hub) -> None:
    srv = xandikos_server
    coll = srv.new_collection("calendar")
    cfg = link(srv, "caldav", "event", coll)
    hub.put("event", "e1", {"summary": "Year-end review", "start": "2026-07-01T09:00:00Z",
                            "end": "2026-07-01T10:00:00Z", "all_day": False,
                            # by design the organizer is an Attendee object (it was a
                            # string) and an attendee's PARTSTAT is `status` (was `partstat`)
                            "organizer": {"email": "partner@practice.example"},
                            "status": "CONFIRMED",
                            "attendees": [{"email": "client@example.com", "name": "Client",
                                           "status": "NEEDS-ACTION"}]})
    assert sync_link(hub, cfg).ok
    path = httpx.URL(coll).path + "e1.ics"
    text = server_text(srv, path) or ""
    assert "client@example.com" in text
    etag = server_hrefs(srv, coll)[path]
    accepted = text.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED").replace(
        "END:VEVENT", "ATTENDEE;CN=Bookkeeper:mailto:books@example.com\r\nEND:VEVENT")
    put_raw(srv, path, accepted, etag, "text/calendar")
    assert sync_link(hub, cfg).ok
    ev = hub.get("event", "e1")
    assert ev is not None
    att = {a["email"]: a for a in ev.fields["attendees"]}
    assert att["client@example.com"]["status"] == "ACCEPTED" and "books@example.com" in att


class _CutAfterWrite(CardDAVConnector):
    """Writes the first batch, then dies before the engine can record the answer: the
    worst moment for a first upload to be interrupted."""

    calls = 0

    def apply(self, entity: str, ops: Any) -> list[WriteResult]:
        out = super().apply(entity, ops)
        type(self).calls += 1
        if type(self).calls == 2:
            raise TransientError("connection lost")
        return out


def test_interrupted_first_upload_resumes_without_duplicates(radicale_server: DavServer,
                                                             hub: Hub) -> None:
    srv = radicale_server
    coll = srv.new_collection("addressbook")
    cfg = link(srv, "carddav", "contact", coll)
    for n in range(70):
        hub.put("contact", f"p{n:03d}", {"name": f"Pat {n}",
                                         "emails": [{"address": f"pat{n}@ex.com"}]})
    from concord.connectors.dav import DavOptions

    cut = _CutAfterWrite(DavOptions.model_validate(cfg.options), link=cfg.name)
    with pytest.raises(TransientError):
        sync_link(hub, cfg, cut)
    cut.close()
    first = server_hrefs(srv, coll)
    assert 20 <= len(first) < 70  # the first batch (bulk) and the cut one landed
    r = sync_link(hub, cfg)
    assert r.ok, r.message
    after = server_hrefs(srv, coll)
    assert len(after) == 70
    # what was already there was found again, not rewritten
    assert all(after[h] == v for h, v in first.items())
    assert sync_link(hub, cfg).counts.get("create in spoke", 0) == 0


def test_unreachable_server_does_not_stop_other_links(radicale_server: DavServer,
                                                      hub: Hub) -> None:
    srv = radicale_server
    good = link(srv, "carddav", "contact", srv.new_collection("addressbook"))
    dead = LinkConfig(name="dead", connector="carddav", options={
        "url": f"http://127.0.0.1:{free_port()}/x/", "collections": {"contact": "/x/ab/"},
        "timeout": 2}, entities={"contact": EntityConfig()})
    hub.put("contact", "k1", {"name": "Kit"})
    results = {}
    for cfg in (dead, good):
        try:
            results[cfg.name] = sync_link(hub, cfg).status
        except TransientError as exc:
            results[cfg.name] = f"error: {exc}"
    assert results["dead"].startswith("error:") and "cannot reach" in results["dead"]
    assert results[good.name] == "ok"
    assert len(server_hrefs(srv, good.options["collections"]["contact"])) == 1
    row = hub.link_row("dead")
    assert row is not None and "cannot reach" in (row["last_error"] or "")



def test_cancelled_event_leaves_the_calendar_completed_is_not_synced(
        radicale_server: DavServer, hub: Hub) -> None:
    """Seed 003: an appointment whose event is cancelled is deleted from the calendar (the
    hub keeps the cancelled event); completing an event does not touch the appointment."""
    srv = radicale_server
    coll = srv.new_collection("calendar")
    statuses = {"Confirmed": "CONFIRMED", "Tentative": "TENTATIVE", "Completed": "CONFIRMED"}
    cfg = link(srv, "caldav", "event", coll, values={"status": statuses},
               remove_when={"status": ["Cancelled"]})
    for eid in ("e-cancel", "e-done"):
        hub.put("event", eid, {"summary": f"Meeting {eid}", "start": "2026-08-03T14:00:00Z",
                               "end": "2026-08-03T15:00:00Z", "all_day": False,
                               "status": "Confirmed"})
    assert sync_link(hub, cfg).ok
    base = httpx.URL(coll).path
    before = server_hrefs(srv, coll)
    assert set(before) == {f"{base}e-cancel.ics", f"{base}e-done.ics"}
    for eid, status in (("e-cancel", "Cancelled"), ("e-done", "Completed")):
        rec = hub.get("event", eid)
        assert rec is not None
        hub.put("event", eid, {**rec.fields, "status": status})
    r = sync_link(hub, cfg)
    assert r.ok, r.message
    after = server_hrefs(srv, coll)
    assert set(after) == {f"{base}e-done.ics"}
    assert after[f"{base}e-done.ics"] == before[f"{base}e-done.ics"]  # untouched
    cancelled, done = hub.get("event", "e-cancel"), hub.get("event", "e-done")
    assert cancelled is not None and not cancelled.deleted
    assert cancelled.fields["status"] == "Cancelled"
    assert done is not None and done.fields["status"] == "Completed"
    # the next runs neither re-create the appointment nor delete the hub event
    assert sync_link(hub, cfg).ok and sync_link(hub, cfg).ok
    assert set(server_hrefs(srv, coll)) == {f"{base}e-done.ics"}
    again = hub.get("event", "e-cancel")
    assert again is not None and not again.deleted


def test_first_migration_quarantines_a_bad_card_and_takes_the_rest(
        radicale_server: DavServer, hub: Hub) -> None:
    """An existing address book with one card Concord cannot read: the others reach the
    hub, the bad one is quarantined under its href, and fixing it on the server heals it."""
    srv = radicale_server
    coll = srv.new_collection("addressbook")
    base = httpx.URL(coll).path
    for n in range(25):
        put_raw(srv, f"{base}m{n}.vcf", f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m{n}\r\nFN:Moe {n}\r\n"
                "END:VCARD\r\n", None, "text/vcard")
    bad = "BEGIN:VCARD\r\nVERSION:5.0\r\nUID:bad\r\nFN:Five\r\nEND:VCARD\r\n"
    put_raw(srv, f"{base}bad.vcf", bad, None, "text/vcard")
    cfg = link(srv, "carddav", "contact", coll)
    r = sync_link(hub, cfg)
    assert r.ok, r.message
    assert {rec.id for rec in hub.list_records("contact", limit=100)} == {f"m{n}" for n in range(25)}
    q = hub.quarantined("carddav-contact")
    assert len(q) == 1 and q[0]["ref"] == f"{base}bad.vcf"
    assert f"{base}bad.vcf" in q[0]["error"] and "VERSION" in q[0]["error"]
    etag = server_hrefs(srv, coll)[f"{base}bad.vcf"]
    put_raw(srv, f"{base}bad.vcf", bad.replace("VERSION:5.0", "VERSION:3.0"), etag, "text/vcard")
    assert sync_link(hub, cfg).ok
    healed = hub.get("contact", "bad")
    assert healed is not None and healed.fields["name"] == "Five"
    assert hub.quarantined("carddav-contact") == []


def test_contact_refers_to_its_client_both_ways(radicale_server: DavServer, hub: Hub) -> None:
    """Clients and contacts in two address books on one link: a contact's client travels as
    the href of the client's card and comes back as the hub id."""
    srv = radicale_server
    clients, contacts = srv.new_collection("addressbook"), srv.new_collection("addressbook")
    cfg = LinkConfig(name="book", connector="carddav", options={
        "url": srv.url + srv.principal, "username": srv.username, "password": srv.password,
        "collections": {"client": clients, "contact": contacts}},
        entities={"client": EntityConfig(), "contact": EntityConfig(refs={"client": "client"})})
    hub.put("client", "acme", {"name": "Acme Ltd", "org": "Acme Ltd", "kind": "org"})
    hub.put("contact", "ann", {"name": "Ann Acme"}, {"client": "acme"})
    assert sync_link(hub, cfg).ok
    client_href = httpx.URL(clients).path + "acme.vcf"
    ann = server_text(srv, httpx.URL(contacts).path + "ann.vcf") or ""
    assert f"X-CONCORD-CLIENT:{client_href}" in ann
    # a contact made at the server, pointing at the same client
    put_raw(srv, httpx.URL(contacts).path + "bob.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob\r\n"
            f"FN:Bob Acme\r\nX-CONCORD-CLIENT:{client_href}\r\nEND:VCARD\r\n", None, "text/vcard")
    assert sync_link(hub, cfg).ok
    bob = hub.get("contact", "bob")
    assert bob is not None and bob.refs == {"client": "acme"}
