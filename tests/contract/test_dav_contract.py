"""The connector contract for CardDAV and CalDAV, on real Radicale and Xandikos servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from concord.connectors.base import Item
from concord.connectors.dav import CalDAVConnector, CardDAVConnector, DavOptions
from tests.contract.base import ConnectorContract
from tests.servers.dav import DavServer


def _options(server: DavServer, entity: str, url: str) -> DavOptions:
    return DavOptions(url=server.url + server.principal, username=server.username,
                      password=server.password, collections={entity: url})


def contact(n: int) -> Item:
    return Item("", "", {
        "name": f"Ada Client {n}", "given_name": "Ada", "family_name": f"Client {n}",
        "emails": [{"address": f"ada{n}@example.com", "types": ["work"], "pref": 1}],
        "phones": [{"number": f"+44 20 7946 {n:04d}", "types": ["cell"]}],
        "addresses": [{"street": f"{n} High St", "locality": "Leeds", "postcode": "LS1 1AA"}],
        "org": "Smith & Co; Accountants", "note": f"line one\nline two, {n}",
    })


def task(n: int) -> Item:
    return Item("", "", {
        "summary": f"File return {n}", "description": f"Year end, client {n}",
        "status": ["Not Started", "In Progress", "Waiting on Others", "Completed"][n % 4],
        "categories": ["Concord", f"c{n}"], "due": f"2026-04-{1 + n % 28:02d}",
        "priority": 1 + n % 9,
    })


def event(n: int) -> Item:
    return Item("", "", {
        "summary": f"Meeting {n}", "description": "Quarterly review", "location": "Office",
        "start": f"2026-05-{1 + n % 28:02d}T09:00:00Z", "end": f"2026-05-{1 + n % 28:02d}T10:00:00Z",
        "organizer": {"email": "boss@example.com", "name": "The Boss"}, "status": "CONFIRMED",
        "attendees": [{"email": f"guest{n}@example.com", "name": f"Guest {n}",
                       "role": "REQ-PARTICIPANT", "status": "NEEDS-ACTION", "rsvp": True}],
        "recurrence": {"rules": ["FREQ=WEEKLY;COUNT=4"],
                       "exdates": [f"2026-05-{8 + n % 20:02d}T09:00:00Z"]},
    })


class TestCardDAVRadicale(ConnectorContract):
    @pytest.fixture
    def entity(self) -> str:
        return "contact"

    @pytest.fixture
    def make_item(self) -> Callable[[int], Item]:
        return contact

    @pytest.fixture
    def connector(self, radicale_server: DavServer, radicale_addressbook: str
                  ) -> Iterator[CardDAVConnector]:
        with CardDAVConnector(_options(radicale_server, "contact", radicale_addressbook)) as c:
            yield c  # type: ignore[misc]


class TestCardDAVXandikos(TestCardDAVRadicale):
    @pytest.fixture
    def connector(self, xandikos_server: DavServer, xandikos_addressbook: str
                  ) -> Iterator[CardDAVConnector]:
        with CardDAVConnector(_options(xandikos_server, "contact", xandikos_addressbook)) as c:
            yield c  # type: ignore[misc]


class TestCalDAVTasksRadicale(ConnectorContract):
    @pytest.fixture
    def entity(self) -> str:
        return "task"

    @pytest.fixture
    def make_item(self) -> Callable[[int], Item]:
        return task

    @pytest.fixture
    def connector(self, radicale_server: DavServer, radicale_calendar: str
                  ) -> Iterator[CalDAVConnector]:
        with CalDAVConnector(_options(radicale_server, "task", radicale_calendar)) as c:
            yield c  # type: ignore[misc]


class TestCalDAVEventsXandikos(ConnectorContract):
    @pytest.fixture
    def entity(self) -> str:
        return "event"

    @pytest.fixture
    def make_item(self) -> Callable[[int], Item]:
        return event

    @pytest.fixture
    def connector(self, xandikos_server: DavServer, xandikos_calendar: str
                  ) -> Iterator[CalDAVConnector]:
        with CalDAVConnector(_options(xandikos_server, "event", xandikos_calendar)) as c:
            yield c  # type: ignore[misc]
