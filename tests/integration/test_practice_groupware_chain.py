"""The seed-003 job end to end: the practice database (the sample generator) → hub → a real
Radicale CardDAV address book and CalDAV calendars, with the configuration `concord init
--example practice-groupware` writes. Every contact, client, task and event arrives intact
(compared field by field with the practice rows, through vobject and icalendar as the
third-party parsers), nothing is quarantined, every light is green; then edits made on the
server come back to the practice database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
import vobject

from concord import examples
from concord.config import from_dict
from concord.connectors.dav import DEFAULT_TASK_STATUS_MAP
from concord.demo.sample import ADMIN_EMAIL, create_sample
from concord.engine import sync_link
from concord.formats.ical import TASK_STATUS_TO_VTODO
from concord.hub.store import Checkpoint, Hub
from concord.link.activation import activate
from concord.link.status import link_status
from tests.integration.sql_helpers import db_exec, db_rows
from tests.servers.dav import DavServer


def _get(server: DavServer, path: str) -> tuple[str, str]:
    with httpx.Client(auth=server.auth) as c:
        r = c.get(server.url + path)
    assert r.status_code == 200, (path, r.status_code)
    return r.headers.get("etag", ""), r.text


def _put(server: DavServer, path: str, text: str, etag: str) -> None:
    with httpx.Client(auth=server.auth) as c:
        r = c.put(server.url + path, content=text.encode(), headers={
            "If-Match": etag, "Content-Type": "text/calendar" if path.endswith(".ics")
            else "text/vcard"})
    assert r.status_code in (201, 204), r.text


def _tel(value: str) -> str:
    return value.replace(" ", "")


@pytest.fixture
def chain(tmp_path: Path, radicale_server: DavServer) -> dict[str, Any]:
    practice = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(practice, clients_n=60, seed=7)
    colls = {e: radicale_server.new_collection("addressbook" if e in ("client", "contact") else "calendar")
             for e in ("client", "contact", "task", "event")}
    data = examples.practice_groupware(
        practice, radicale_server.url + radicale_server.principal,
        username=radicale_server.username, password=radicale_server.password,
        hub_url=f"sqlite:///{tmp_path / 'hub.db'}", collections=colls)
    cfg = from_dict(data, source="practice-groupware example", base=tmp_path)
    hub = Hub(cfg.hub.url)
    activate(hub, cfg.links["practice"], by=ADMIN_EMAIL)
    for name in ("practice", "addressbook", "calendar"):
        r = sync_link(hub, cfg.links[name])
        assert r.ok, (name, r.message, r.counts)
    yield {"cfg": cfg, "hub": hub, "practice": practice, "colls": colls}
    hub.close()


def _href(hub: Hub, link: str, entity: str, practice_key: Any) -> str:
    by_row = {a.spoke_ref: a.hub_id for a in hub.archive("practice", entity).values()}
    hub_id = by_row[str(practice_key)]
    return hub.archive(link, entity)[hub_id].spoke_ref


def test_every_record_arrives_intact_and_green(chain: dict[str, Any],
                                               radicale_server: DavServer) -> None:
    hub, practice, cfg = chain["hub"], chain["practice"], chain["cfg"]
    assert hub.quarantined() == []

    # clients: FN, N, EMAIL, TEL, ADR, kind — read with vobject
    for row in db_rows(practice, "SELECT client_id, kind, name, first_name, last_name, email, "
                                 "phone, street, city, postcode FROM clients"):
        _, text = _get(radicale_server, _href(hub, "addressbook", "client", row.client_id))
        card = vobject.readOne(text)
        assert card.fn.value == row.name
        if row.kind == "company":
            assert card.contents["x-addressbookserver-kind"][0].value == "org"
        else:
            assert (card.n.value.family, card.n.value.given) == (row.last_name, row.first_name)
        assert [e.value for e in card.contents["email"]] == [row.email]
        assert [_tel(t.value) for t in card.contents["tel"]] == [_tel(row.phone)]
        adr = card.adr.value
        assert (adr.street, adr.city, adr.code) == (row.street, row.city, row.postcode)

    # contacts, with their client's card as X-CONCORD-CLIENT
    for row in db_rows(practice, "SELECT contact_id, client_id, first_name, last_name, email, "
                                 "phone, position FROM contacts"):
        _, text = _get(radicale_server, _href(hub, "addressbook", "contact", row.contact_id))
        card = vobject.readOne(text)
        assert card.fn.value == f"{row.first_name} {row.last_name}"
        assert (card.n.value.family, card.n.value.given) == (row.last_name, row.first_name)
        assert [e.value for e in card.contents["email"]] == [row.email]
        assert [_tel(t.value) for t in card.contents["tel"]] == [_tel(row.phone)]
        assert card.title.value == row.position
        client_href = _href(hub, "addressbook", "client", row.client_id)
        assert card.contents["x-concord-client"][0].value == client_href

    # tasks: the seed's status table; a status it does not list (Draft, Rejected) is not
    # synced, and is not pending either
    tasks = db_rows(practice, "SELECT task_id, subject, status, category, due_date FROM tasks")
    synced = [t for t in tasks if t.status in DEFAULT_TASK_STATUS_MAP]
    assert len(hub.archive("calendar", "task")) == len(synced) > 0
    for row in synced:
        _, text = _get(radicale_server, _href(hub, "calendar", "task", row.task_id))
        todo = icalendar.Calendar.from_ical(text).walk("VTODO")[0]
        assert str(todo["SUMMARY"]) == row.subject
        groupware = DEFAULT_TASK_STATUS_MAP[row.status]
        assert str(todo["STATUS"]) == TASK_STATUS_TO_VTODO[groupware]
        assert [str(c) for c in todo["CATEGORIES"].cats] == [row.category]  # not one per letter
        assert todo["DUE"].dt == dt.date.fromisoformat(str(row.due_date))

    # events: times, location, every attendee (the practice's staff e-mails)
    attendees: dict[int, set[str]] = {}
    for ev_id, email in db_rows(practice, "SELECT a.event_id, s.email FROM event_attendees a "
                                          "JOIN staff s ON s.staff_id = a.staff_id"):
        attendees.setdefault(ev_id, set()).add(email)
    events = db_rows(practice, "SELECT event_id, title, starts_at, ends_at, location FROM events")
    assert events
    for row in events:
        _, text = _get(radicale_server, _href(hub, "calendar", "event", row.event_id))
        ev = icalendar.Calendar.from_ical(text).walk("VEVENT")[0]
        assert str(ev["SUMMARY"]) == row.title
        assert ev["DTSTART"].dt == dt.datetime.fromisoformat(str(row.starts_at))
        assert ev["DTEND"].dt == dt.datetime.fromisoformat(str(row.ends_at))
        assert str(ev["LOCATION"]) == row.location
        got = ev.get("ATTENDEE")
        got = got if isinstance(got, list) else [got]
        assert {str(a).removeprefix("mailto:") for a in got} == attendees[row.event_id]

    for name in cfg.links:
        st = link_status(hub, name, cfg.links[name])
        assert st.color == "green", (name, st.reason)
        assert st.pending == 0
    # a second pass finds nothing to do anywhere: nothing came back as a new version; nor
    # does a full listing of the groupware (as after a lost sync token)
    for name in cfg.links:
        again = sync_link(hub, cfg.links[name])
        assert again.ok and not again.counts, (name, again.counts)
    for name in ("addressbook", "calendar"):
        for entity in cfg.links[name].entities:
            cp = hub.checkpoint(name, entity)
            with hub.begin() as conn:
                hub.save_checkpoint(conn, name, entity, Checkpoint(cp.hub_seq, None, None))
        relisted = sync_link(hub, cfg.links[name])
        assert relisted.ok and not relisted.counts, (name, relisted.counts)


def test_edits_on_the_server_come_back_to_the_practice_database(
        chain: dict[str, Any], radicale_server: DavServer) -> None:
    hub, practice, cfg = chain["hub"], chain["practice"], chain["cfg"]
    contact = db_rows(practice, "SELECT contact_id FROM contacts ORDER BY contact_id LIMIT 1")[0]
    path = _href(hub, "addressbook", "contact", contact.contact_id)
    etag, text = _get(radicale_server, path)
    card = vobject.readOne(text)
    card.email.value = "moved.on@example.org"
    card.title.value = "Finance Director"
    card.add("nickname").value = "Robbie"  # a field the practice database has no column for
    _put(radicale_server, path, card.serialize(), etag)

    task = db_rows(practice, "SELECT task_id FROM tasks WHERE status = 'Open' "
                             "ORDER BY task_id LIMIT 1")[0]
    tpath = _href(hub, "calendar", "task", task.task_id)
    etag, text = _get(radicale_server, tpath)
    cal = icalendar.Calendar.from_ical(text)
    todo = cal.walk("VTODO")[0]
    todo["STATUS"] = "IN-PROCESS"
    _put(radicale_server, tpath, cal.to_ical().decode(), etag)

    for name in ("addressbook", "calendar", "practice"):
        r = sync_link(hub, cfg.links[name])
        assert r.ok, (name, r.message)
    row = db_rows(practice, f"SELECT email, position FROM contacts "
                            f"WHERE contact_id = {contact.contact_id}")[0]
    assert (row.email, row.position) == ("moved.on@example.org", "Finance Director")
    assert db_rows(practice, f"SELECT status FROM tasks WHERE task_id = {task.task_id}")[0][0] \
        == "In Process"
    # the nickname the database cannot hold stays in the hub, and on the card
    hub_id = hub.archive("addressbook", "contact")
    rec = next(hub.get("contact", h) for h, a in hub_id.items() if a.spoke_ref == path)
    assert rec is not None and rec.fields["nicknames"] == ["Robbie"]

    # and an edit in the practice database keeps the nickname on the card
    db_exec(practice, "UPDATE contacts SET phone = '+61 2 5550 1234' "
                      f"WHERE contact_id = {contact.contact_id}")
    for name in ("practice", "addressbook"):
        assert sync_link(hub, cfg.links[name]).ok
    card = vobject.readOne(_get(radicale_server, path)[1])
    assert card.nickname.value == "Robbie"
    assert [t.value for t in card.contents["tel"]] == ["+61 2 5550 1234"]
    for name in cfg.links:
        assert link_status(hub, name, cfg.links[name]).color == "green"

    # a practice edit of what the groupware does not carry (a client's tax number) changes
    # no card, and leaves no link pending once it has run
    client = db_rows(practice, "SELECT client_id FROM clients ORDER BY client_id LIMIT 1")[0]
    cpath = _href(hub, "addressbook", "client", client.client_id)
    etag_before, _ = _get(radicale_server, cpath)
    db_exec(practice, "UPDATE clients SET tax_number = '999888777' "
                      f"WHERE client_id = {client.client_id}")
    for name in ("practice", "addressbook"):
        assert sync_link(hub, cfg.links[name]).ok
    assert _get(radicale_server, cpath)[0] == etag_before
    for name in cfg.links:
        st = link_status(hub, name, cfg.links[name])
        assert (st.color, st.pending) == ("green", 0), (name, st.reason)
