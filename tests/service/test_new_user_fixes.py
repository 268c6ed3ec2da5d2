"""Service fixes found trying Concord as a new user would (real service on 127.0.0.1, real
SQLite / PostgreSQL hub, real vdir folder)."""

from __future__ import annotations

from pathlib import Path

from concord.link import activation
from tests.service.conftest import Served, write_vcard


def test_a_write_while_the_link_is_paused_is_saved_and_answered_2xx(service: Served,
                                                                     tmp_path: Path) -> None:
    write_vcard(tmp_path / "office", "c0", "Zero")
    activation.activate(service.hub, service.cfg.link("office"), by="admin@example.com")
    assert activation.pause(service.hub, "office", by="admin@example.com",
                            reason="month end").changed
    with service.client("admin") as c:
        assert c.post("/api/v1/records/client", json={"id": "c1", "fields": {"name": "Acme"}}
                      ).status_code == 201
        r = c.get("/api/v1/records/client/c1")
        etag = r.headers["ETag"]
        r = c.patch("/api/v1/records/client/c1", json={"fields": {"name": "Acme Pty"}},
                    headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        assert r.json()["fields"]["name"] == "Acme Pty" and r.json()["pending_sync"] is True
        r = c.post("/api/v1/records/client", json={"id": "c2", "fields": {"name": "Beta"}})
        assert r.status_code == 201, r.text
        etag = c.get("/api/v1/records/client/c2").headers["ETag"]
        assert c.delete("/api/v1/records/client/c2", headers={"If-Match": etag}).status_code == 204
    assert service.hub.get("client", "c1").fields["name"] == "Acme Pty"  # type: ignore[union-attr]


def test_the_service_worker_process_syncs_a_folder_big_enough_for_the_parsing_pool(
        tmp_path: Path) -> None:
    """``concord serve`` runs syncs in a worker process; a folder large enough for the vdir
    connector's parsing pool must sync there too (it once failed: a daemonic process may
    not have children)."""
    from concord.connectors import vdir
    from concord.hub.store import Hub
    from concord.service.worker import ProcessSync
    from tests.service.conftest import vdir_config

    folder = tmp_path / "office"
    n = 4 * vdir.PARALLEL_FROM
    for i in range(n):
        write_vcard(folder, f"c{i:05}", f"Client {i}")
    cfg = vdir_config(f"sqlite:///{tmp_path / 'hub.db'}", folder)
    hub = Hub(cfg.hub.url, cfg.hub.tenant)
    sync = ProcessSync()
    try:
        result = sync(hub, cfg.link("office"), trigger="manual", requested_by="admin")
        assert result.status == "ok", result.message
        assert hub.count("client") == n
    finally:
        sync.close()
        hub.close()
