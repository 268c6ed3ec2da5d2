"""First migration and live sync from the practice database to the hub, on a real SQLite
file and on the real PostgreSQL server: everything arrives once, references resolve,
edits and deletes made during the migration are caught."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from concord.demo.sample import ADMIN_EMAIL, create_sample
from concord.engine import sync_link
from concord.hub.store import Hub
from concord.link.activation import activate
from tests.integration.sql_helpers import (
    ENTITY_TABLES,
    assert_mirrors,
    connector,
    db_exec,
    db_rows,
    link_config,
    practice,
    table_count,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def practice_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'practice.db'}"
    else:
        yield request.getfixturevalue("pg_database")


def _by_field(hub: Hub, entity: str, name: str, value: object) -> list:  # type: ignore[type-arg]
    return [r for r in hub.list_records(entity, limit=100000) if r.fields.get(name) == value]


def test_first_migration_then_live_changes(practice_url: str, tmp_path: Path) -> None:
    link, hub = practice(practice_url, tmp_path, clients=150, batch=100)
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert_mirrors(practice_url, link, hub)
    assert hub.link_row("practice")["migrated"]

    # references resolve to hub ids, custom fields and attendees travel with their owner
    (client,) = _by_field(hub, "client", "code", "C000007")
    contacts = [c for c in hub.list_records("contact", limit=100000) if c.refs.get("client") == client.id]
    with connector(link) as conn:
        practice_contacts = conn.get("contact", [str(k) for k in range(1, 400)])
        expected = [i for i in practice_contacts if i.refs.get("client") == "7"]  # type: ignore[union-attr]
    assert len(contacts) == len(expected)
    assert any(k.startswith("custom.") for k in client.fields)
    events = [e for e in hub.list_records("event", limit=100000) if e.fields.get("attendees")]
    # the attendee list (staff ids rendered as e-mail addresses) fills each attendee's e-mail
    assert events and all("@" in a["email"] for a in events[0].fields["attendees"])

    # a second run with nothing changed does nothing
    assert not sync_link(hub, link).counts

    # live: an edit, a delete, an insert and a custom-field change in the practice database
    db_exec(practice_url, "UPDATE clients SET name = 'Renamed Pty Ltd' WHERE client_id = 7")
    db_exec(practice_url, "DELETE FROM tasks WHERE task_id = 3")
    db_exec(practice_url, "INSERT INTO contacts (contact_id, client_id, first_name, last_name, email, "
                          "updated_at) VALUES (90001, 7, 'New', 'Person', 'new.person@example.com', "
                          "'2026-02-01 10:00:00')")
    db_exec(practice_url, "UPDATE custom_field_values SET value = 'Mining' "
                          "WHERE client_id = 7 AND definition_id = 1")
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    client = hub.get("client", client.id)
    assert client is not None and client.fields["name"] == "Renamed Pty Ltd"
    assert client.fields.get("custom.Industry") in ("Mining", None)
    assert _by_field(hub, "contact", "emails", [{"address": "new.person@example.com"}]
                     )[0].refs["client"] == client.id
    assert_mirrors(practice_url, link, hub)

    # a bulk edit larger than a batch is read chunk by chunk (reads overlap writes)
    db_exec(practice_url, "UPDATE contacts SET position = 'Partner'")
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert {c.fields.get("title") for c in hub.list_records("contact", limit=100000)} == {"Partner"}

    # once a committed checkpoint covers them, the changelog's entries are pruned
    assert db_rows(practice_url, "SELECT count(*) FROM concord_changelog")[0][0] > 0
    assert not sync_link(hub, link).counts
    assert db_rows(practice_url, "SELECT count(*) FROM concord_changelog")[0][0] == 0


def test_edits_and_deletes_during_migration_are_caught(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=300, batch=50)
    edited = {"done": False}

    def meanwhile(entity: str, done: int, total: int) -> None:
        # while tasks migrate: change one already migrated, delete one already migrated,
        # delete one not reached yet, add a new one
        if entity == "task" and not edited["done"] and 0 < done < total:
            edited["done"] = True
            db_exec(url, "UPDATE tasks SET subject = 'Edited during migration' WHERE task_id = 1")
            db_exec(url, "DELETE FROM tasks WHERE task_id = 2")
            db_exec(url, "DELETE FROM tasks WHERE task_id = (SELECT max(task_id) FROM tasks)")
            db_exec(url, "INSERT INTO tasks (task_id, client_id, subject, status, category, "
                         "updated_at) VALUES (99999, 1, 'Added during migration', 'Open', 'Tax', "
                         "'2026-02-01 10:00:00')")

    r = sync_link(hub, link, progress=meanwhile)
    assert r.status == "ok" and edited["done"]
    subjects = {t.fields["summary"] for t in hub.list_records("task", limit=100000)}
    assert "Edited during migration" in subjects and "Added during migration" in subjects
    assert_mirrors(url, link, hub)


@pytest.mark.postgres
def test_postgres_changes_committed_out_of_order_are_not_skipped(pg_database: str,
                                                                   tmp_path: Path) -> None:
    """Two writers: the later one commits first and a reader moves its token; the earlier
    one commits afterwards and must still be read."""
    import psycopg

    link, hub = practice(pg_database, tmp_path, clients=20)
    assert sync_link(hub, link).status == "ok"
    with connector(link) as conn:
        token = conn.current_token("client")
        first = psycopg.connect(pg_database)
        first.execute("UPDATE clients SET name = 'Slow writer' WHERE client_id = 1")
        db_exec(pg_database, "UPDATE clients SET name = 'Fast writer' WHERE client_id = 2")
        ch = conn.changes("client", token)
        assert "2" in ch.changed
        first.commit()
        first.close()
        ch2 = conn.changes("client", ch.token)
        assert "1" in ch2.changed


def test_hub_records_from_before_a_two_way_migration_reach_the_practice(tmp_path: Path) -> None:
    """The first migration skips walking its own hub writes, never what the hub held
    before it began: a staff member already in the hub is written to the practice."""
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=20)
    link = link_config(url, direction="two-way")
    link.entities = {"staff": link.entities["staff"]}
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    hub.put("staff", "hub-staff-1", {"given_name": "New", "family_name": "Partner",
                                     "emails": [{"address": "new.partner@example.com"}],
                                     "role": "partner", "active": True})
    before = table_count(url, ENTITY_TABLES["staff"])
    activate(hub, link, by=ADMIN_EMAIL)
    r = sync_link(hub, link)
    assert r.ok, r.message
    assert table_count(url, ENTITY_TABLES["staff"]) == before + 1
    assert hub.archive(link.name, "staff")["hub-staff-1"].spoke_ref
