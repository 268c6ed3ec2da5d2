"""The live loop on a SQLite practice database: a commit by another program wakes the
watcher (the poll interval defaults to a fast, cheap one and can be set per link), and a
connector kept open prunes the changelog now and then, not on every change it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from concord.connectors.sql import SQLConnector, SQLOptions
from concord.connectors.sql import connector as sql_connector
from concord.demo.sample import create_sample, default_mapping
from concord.engine import sync_link
from tests.integration.sql_helpers import connector, db_exec, db_rows, practice


def _connector(url: str, **extra: object) -> SQLConnector:
    opts = SQLOptions.model_validate({"url": url, "mapping": default_mapping(), **extra})
    return SQLConnector(opts, link="practice")


def test_a_commit_elsewhere_wakes_the_watcher(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=20)
    conn = _connector(url)
    try:
        # polls the file's change counter; the default is 50 times a second
        assert conn.capture.poll_interval == pytest.approx(0.02)
        assert conn.wait_for_change(0.05) is False  # first look: nothing new since
        db_exec(url, "UPDATE clients SET name = 'Woken' WHERE client_id = 1")
        assert conn.wait_for_change(10) is True
        assert conn.wait_for_change(0.05) is False  # that change was reported once
    finally:
        conn.close()


def test_the_poll_interval_is_a_link_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=5)
    conn = _connector(url, poll_interval=0.25)
    try:
        assert conn.capture.poll_interval == pytest.approx(0.25)
    finally:
        conn.close()
    with pytest.raises(ValidationError, match="poll_interval"):
        SQLOptions.model_validate({"url": url, "mapping": default_mapping(), "poll_interval": 0})


def test_a_live_connector_prunes_the_changelog_at_most_once_a_minute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=30)
    assert sync_link(hub, link).status == "ok"
    clock = [1000.0]
    monkeypatch.setattr(sql_connector.time, "monotonic", lambda: clock[0])
    live = connector(link)
    try:
        def edit_and_sync(n: int) -> None:
            db_exec(url, "UPDATE clients SET name = :n WHERE client_id = 2", n=f"Edit {n}")
            r = sync_link(hub, link, live)
            assert r.status == "ok", r.message
            assert r.entities["client"].counts["spoke -> hub"] == 1

        edit_and_sync(1)  # the first pass prunes what the migration's checkpoint covered
        edit_and_sync(2)
        edit_and_sync(3)
        # covered by committed checkpoints, but kept: no write transaction per change
        logged = db_rows(url, "SELECT count(*) FROM concord_changelog")[0][0]
        assert logged >= 2
        clock[0] += sql_connector.PRUNE_EVERY
        edit_and_sync(4)  # a minute on: pruned up to the last committed checkpoint
        assert db_rows(url, "SELECT count(*) FROM concord_changelog")[0][0] < logged
        client = hub.get_many("client", [a.hub_id for a in hub.archive_select(
            "practice", "client", spoke_refs=["2"])])
        assert [c.fields["name"] for c in client.values()] == ["Edit 4"]
    finally:
        live.close()


@pytest.mark.parametrize("recent", [2000, 2])
def test_a_changed_row_is_read_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            recent: int) -> None:
    """The change read takes each changed row whole (its version is its content's hash) and
    keeps it for the run's read that follows, so a row edited once is read once; past
    ``RECENT`` rows, the rest is read again in the run's chunks. Every edit arrives either
    way."""
    from concord.connectors.sql.reader import Reader

    monkeypatch.setattr(sql_connector, "RECENT", recent)
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    link, hub = practice(url, tmp_path, clients=20)
    live = connector(link)
    try:
        assert sync_link(hub, link, live).status == "ok"
        read: list[object] = []
        real = Reader.by_keys

        def counting(self: Reader, conn: object, keys: list[object], **kw: object) -> object:
            if self.res.spec.table == "clients":
                read.extend(keys)
            return real(self, conn, keys, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(Reader, "by_keys", counting)
        for i in (2, 3, 5, 7, 11):
            db_exec(url, "UPDATE clients SET name = :n WHERE client_id = :i", n=f"Edited {i}", i=i)
        r = sync_link(hub, link, live)
        assert r.status == "ok", r.message
        edited = sorted(k for k in read if k in (2, 3, 5, 7, 11))
        if recent > 5:
            assert edited == [2, 3, 5, 7, 11]  # each once
        else:  # two kept, three read again
            assert len(edited) == 8 and set(edited) == {2, 3, 5, 7, 11}
        names = {rec.fields["name"] for rec in hub.list_records("client", limit=1000)}
        assert {f"Edited {i}" for i in (2, 3, 5, 7, 11)} <= names
        assert r.entities["client"].counts["spoke -> hub"] == 5
    finally:
        live.close()
