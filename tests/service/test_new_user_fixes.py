"""Service fixes found trying Concord as a new user would (real service on 127.0.0.1, real
SQLite / PostgreSQL hub, real vdir folder)."""

from __future__ import annotations

from pathlib import Path

from concord import activation
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
