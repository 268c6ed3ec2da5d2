"""The read-only fallback, for a practice database where triggers cannot be installed:
an updated-at watermark column finds edits, a key scan finds deletes, nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.config import LinkConfig
from concord.demo.sample import ADMIN_EMAIL, create_sample, default_entities, default_mapping
from concord.engine import sync_link
from concord.hub.store import Hub
from concord.link.activation import activate
from tests.integration.sql_helpers import connector, db_exec, db_rows


def _link(url: str) -> LinkConfig:
    full = default_mapping()
    client = {k: v for k, v in full["client"].items() if k != "refs"}
    # the staff table has no updated-at column, so staff (and client.partner) are not carried
    mapping = {"client": client, "contact": full["contact"]}
    return LinkConfig(name="office", connector="sql", admin=ADMIN_EMAIL,
                      options={"url": url, "mapping": mapping, "capture": "watermark",
                               "read_only": True},
                      entities={e: {**default_entities("pull")[e]} for e in mapping})


def test_watermark_fallback_reads_edits_and_deletes_without_touching_the_database(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=40)
    link = _link(url)
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    hub.set_link("office", "sql", state="active")
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert hub.count("client") == 40
    assert db_rows(url, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'concord%'")[0][0] == 0

    db_exec(url, "UPDATE clients SET name = 'Watermarked', updated_at = '2027-01-01 00:00:00' "
                 "WHERE client_id = 5")
    db_exec(url, "DELETE FROM contacts WHERE contact_id = 2")
    r = sync_link(hub, link)
    assert r.status == "ok", r.message
    assert "Watermarked" in {c.fields["name"] for c in hub.list_records("client", limit=100)}
    assert hub.count("contact") == db_rows(url, "SELECT count(*) FROM contacts")[0][0]

    with connector(link) as conn:  # writes are refused: the source is read-only
        from concord.connectors.base import Item, WriteOp
        res = conn.apply("client", [WriteOp("create", None, Item("", "", {"name": "x"}), ident="i")])
        assert res[0].error is not None and "read-only" in str(res[0].error)


def test_watermark_mode_names_a_missing_watermark_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=3)
    link = _link(url)
    link.options["mapping"]["client"]["watermark"] = "modified_on"
    with connector(link) as conn:
        problems = conn.check()
    assert any("clients.modified_on" in p for p in problems)
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    with pytest.raises(Exception, match="modified_on"):
        activate(hub, link, by=ADMIN_EMAIL)
