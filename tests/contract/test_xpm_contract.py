"""The connector contract on Xero Practice Manager, against the in-process XPM fake
(``tests/servers/xpm.py``: no local XPM server exists, so a stateful fake that validates
every request and answer against the API 3.1 contract and enforces its limits stands in).

Each entity type XPM lets Concord create, edit and delete runs the whole contract: clients,
their contacts, staff, jobs and custom field definitions. (Job tasks cannot be deleted
through XPM's API, so they run the reading and writing tests in ``test_xpm_sync.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.connectors.base import Item
from concord.hub.store import Hub
from tests.contract.base import ConnectorContract
from tests.servers.xpm import XpmFake, connect, connector


@pytest.fixture
def fake() -> XpmFake:
    return XpmFake()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    yield h
    h.close()


class _Xpm(ConnectorContract):
    @pytest.fixture
    def connector(self, fake: XpmFake, hub: Hub) -> Iterator[Any]:
        connect(fake, hub)
        conn = connector(fake, hub, full_every=0)
        yield conn
        conn.close()


class TestXpmClientContract(_Xpm):
    @pytest.fixture
    def entity(self) -> str:
        return "client"

    @pytest.fixture
    def make_item(self, fake: XpmFake):  # type: ignore[no-untyped-def]
        fake.add_definition(name="Year End", type="Date", useClient=True)

        def make(n: int) -> Item:
            return Item(ref="", version="", fields={
                "name": f"Client {n} Ltd", "status": "prospect" if n % 2 else "active",
                "emails": [{"address": f"office{n}@client{n}.example"}],
                "phones": [{"number": f"+64 9 300 {n:04d}", "types": ["work"]}],
                "addresses": [{"street": f"{n} Queen St", "locality": "Auckland",
                               "postcode": "1010", "types": ["work"]}],
                "code": f"C{n:03d}", "tax_number": f"123-456-{n:03d}",
                "extras": {"format": "xpm", "props": [{"name": "companyNumber", "value": f"NZ{n}"}]},
                "custom.Year End": f"2026-03-{n % 28 + 1:02d}"})
        return make


class TestXpmContactContract(_Xpm):
    @pytest.fixture
    def entity(self) -> str:
        return "contact"

    @pytest.fixture
    def make_item(self, fake: XpmFake):  # type: ignore[no-untyped-def]
        client = fake.add_client(name="Owner Ltd")
        fake.practice.modified[client] = 0.0

        def make(n: int) -> Item:
            return Item(ref="", version="", fields={
                "name": f"Person {n}", "title": "Director" if n % 2 else "Bookkeeper",
                "primary": n == 1, "emails": [{"address": f"p{n}@owner.example"}],
                "phones": [{"number": f"021 {n:04d}", "types": ["cell"]}]},
                refs={"client": client})
        return make

    def test_empty_lists_nothing(self, connector, entity) -> None:  # type: ignore[no-untyped-def]
        assert list(connector.list(entity)) == []


class TestXpmStaffContract(_Xpm):
    @pytest.fixture
    def entity(self) -> str:
        return "staff"

    @pytest.fixture
    def make_item(self):  # type: ignore[no-untyped-def]
        def make(n: int) -> Item:
            return Item(ref="", version="", fields={
                "name": f"Staff {n}", "code": f"P{n}", "emails": [{"address": f"s{n}@practice.example"}],
                "phones": [{"number": f"09 {n:04d}", "types": ["work"]}],
                "addresses": [{"street": f"{n} Office Rd"}]})
        return make


class TestXpmJobContract(_Xpm):
    spoke_assigned = ("code",)  # the job number: XPM's, given on create, never changed

    @pytest.fixture
    def entity(self) -> str:
        return "job"

    @pytest.fixture
    def make_item(self, fake: XpmFake):  # type: ignore[no-untyped-def]
        client = fake.add_client(name="Job Owner Ltd")
        fake.add_definition(name="Priority", type="Text", useJob=True)

        def make(n: int) -> Item:
            return Item(ref="", version="", fields={
                "name": f"Annual accounts {n}", "description": f"Year {2020 + n}",
                "state": "In Progress" if n % 2 else "Planned",
                "start_date": f"2026-0{n % 9 + 1}-01", "due_date": f"2026-1{n % 3}-15",
                "budget": 1000.0 + n, "custom.Priority": "high" if n % 2 else "low"},
                refs={"client": client})
        return make


class TestXpmCustomFieldContract(_Xpm):
    @pytest.fixture
    def entity(self) -> str:
        return "custom_field"

    @pytest.fixture
    def make_item(self):  # type: ignore[no-untyped-def]
        def make(n: int) -> Item:
            fields: dict[str, Any] = {"name": f"Field {n}", "type": "select" if n % 2 else "text",
                                      "applies_to": ["client", "job"][: n % 2 + 1]}
            if n % 2:
                fields["options"] = ["a", "b"]
            return Item(ref="", version="", fields=fields)
        return make
