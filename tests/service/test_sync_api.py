"""Manual sync over the API on real links: not started twice, rate limits pause the link
"until …" and it resumes by itself, every request and run is in the activity log,
conflicts are resolved, metrics are exported."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx

from concord.engine import sync_link
from tests.service.conftest import Served, vdir_config, wait_for, write_vcard
from tests.service.restspoke import RestSpoke


def test_manual_sync_is_not_started_twice_and_is_logged(hub_url, make_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()

    def gated(*a: Any, **kw: Any) -> Any:  # the real engine, held until the test lets it go
        gate.wait(20)
        return sync_link(*a, **kw)

    for i in range(3):
        write_vcard(tmp_path / "office", f"u{i}", f"Client {i}")
    svc: Served = make_service(vdir_config(hub_url, tmp_path / "office"), sync_fn=gated)
    svc.hub.set_link("office", "vdir", state="active")  # activated by an administrator
    with svc.client("records:read", "sync:run") as std:
        first = std.post("/api/v1/links/office/sync/client").json()
        second = std.post("/api/v1/links/office/sync/client").json()
        assert first["accepted"] is True
        assert second["accepted"] is False and "not" in second["message"]
        st = std.get("/api/v1/links/office").json()["status"]
        assert st["color"] == "blue" and "client" in st["running"] + st["queued"]
        gate.set()
        wait_for(lambda: std.get("/api/v1/links/office").json()["status"]["color"] == "green",
                 what="the link to turn green")
        assert std.get("/api/v1/records/client").json()["total"] == 3
        runs = std.get("/api/v1/links/office/runs").json()
        assert len(runs) == 1 and runs[0]["status"] == "ok" and runs[0]["trigger"] == "manual"
        log = std.get("/api/v1/activity").json()
        kinds = [(a["action"], a["outcome"]) for a in log]
        assert ("sync requested", "queued") in kinds
        assert {("sync requested", "already running"), ("sync requested", "already queued")} & set(kinds)
        done = next(a for a in log if a["action"] == "sync run")
        assert done["outcome"] == "ok" and "3" in done["detail"] and "user-" in done["actor"]


def test_rate_limit_pauses_until_then_resumes_by_itself(hub_url, make_service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with RestSpoke(retry_after=2) as spoke:
        spoke.records["job"] = [{"id": "J1", "version": "1", "fields": {"name": "Audit 2026"}}]
        spoke.limited = 1
        cfg = vdir_config(hub_url, tmp_path / "office", saas={
            "connector": "test-rest", "options": {"url": spoke.url, "api_key": "k"},
            "entities": {"job": {"direction": "pull"}}, "interval": 3600})
        svc = make_service(cfg)
        with svc.client("admin") as admin:
            assert admin.post("/api/v1/links/saas/sync/job").status_code == 202
            paused = wait_for(lambda: (s := admin.get("/api/v1/links/saas").json()["status"])
                              ["reason"].startswith("Sync paused until") and s, what="the pause")
            assert paused["color"] == "red" and paused["paused_until"] and "resumes" in paused["fix"]
            # While paused, another request is not started twice: it waits in the queue.
            assert admin.post("/api/v1/links/saas/sync/job").json()["accepted"] is False
            wait_for(lambda: admin.get("/api/v1/links/saas").json()["status"]["color"] == "green",
                     what="the link to resume by itself")
            assert admin.get("/api/v1/records/job").json()["items"][0]["fields"]["name"] == "Audit 2026"
            outcomes = [a["outcome"] for a in admin.get("/api/v1/activity").json()
                        if a["action"] == "sync run"]
            assert outcomes[:2] == ["ok", "paused"]


def test_conflict_resolved_by_choosing_a_side(service: Served, tmp_path: Path) -> None:
    folder = tmp_path / "office"
    cfg = service.cfg.links["office"]
    write_vcard(folder, "c1", "Acme")
    sync_link(service.hub, cfg)
    rec = service.hub.list_records("client")[0]
    service.hub.put("client", rec.id, {**rec.fields, "name": "Acme Hub"})
    write_vcard(folder, "c1", "Acme Office")
    sync_link(service.hub, cfg)
    with service.client("records:read", "records:write") as c:
        conflicts = c.get("/api/v1/conflicts").json()
        assert len(conflicts) == 1
        k = conflicts[0]
        assert k["hub"]["name"] == "Acme Hub" and k["spoke"]["name"] == "Acme Office"
        r = c.post(f"/api/v1/conflicts/{k['id']}/resolve", json={"choose": "spoke"})
        assert r.status_code == 200 and r.json()["resolved_at"]
        assert c.get(f"/api/v1/records/client/{rec.id}").json()["fields"]["name"] == "Acme Office"
        assert c.post(f"/api/v1/conflicts/{k['id']}/resolve",
                      json={"choose": "hub"}).status_code == 409
        assert c.post(f"/api/v1/conflicts/{k['id']}/resolve", json={}).status_code == 422
        assert c.get("/api/v1/conflicts").json() == []
        log = c.get("/api/v1/activity").json()
        assert any("conflict" in a["action"] for a in log)

        # Both sides edited again: this time resolved with merged values.
        cur = service.hub.get("client", rec.id)
        assert cur is not None
        sync_link(service.hub, cfg)
        service.hub.put("client", rec.id, {**cur.fields, "name": "Acme Hub 2"})
        write_vcard(folder, "c1", "Acme Office 2")
        sync_link(service.hub, cfg)
        (k,) = c.get("/api/v1/conflicts").json()
        r = c.post(f"/api/v1/conflicts/{k['id']}/resolve",
                   json={"fields": {"name": "Acme Merged Pty"}})
        assert r.status_code == 200 and "merged" in r.json()["resolution"]
        assert c.get(f"/api/v1/records/client/{rec.id}").json()["fields"]["name"] == "Acme Merged Pty"


def test_metrics_in_prometheus_format(service: Served, tmp_path: Path) -> None:
    write_vcard(tmp_path / "office", "c1", "Acme")
    sync_link(service.hub, service.cfg.links["office"])
    service.hub.put("client", "new1", {"name": "Pending Co"})
    with service.client("admin") as c:
        text = c.get("/metrics").text
    assert 'concord_runs_total{link="office",entity="client",status="ok"} 1' in text
    assert 'concord_records_synced_total{link="office",entity="client"}' in text
    assert 'concord_pending_records{link="office",entity="client"} 1' in text
    lag = next(line for line in text.splitlines()
               if line.startswith('concord_lag_seconds{link="office",entity="client"}'))
    assert float(lag.split()[-1]) > 0
    assert 'concord_link_up{link="office"} 1' in text
    assert "# TYPE concord_conflicts_open gauge" in text


def test_one_entity_asked_for_during_a_sync_of_all_is_queued_behind_it(  # type: ignore[no-untyped-def]
        hub_url, make_service, tmp_path: Path) -> None:
    gate, started = threading.Event(), threading.Event()

    def gated(*a: Any, **kw: Any) -> Any:  # the real engine, held until the test lets it go
        started.set()
        gate.wait(20)
        return sync_link(*a, **kw)

    write_vcard(tmp_path / "office", "u1", "Client 1")
    svc: Served = make_service(vdir_config(hub_url, tmp_path / "office"), sync_fn=gated)
    with svc.client("admin") as admin, httpx.Client(
            base_url=svc.url, timeout=30, headers={"X-Concord-UI": "1"}) as ui:
        assert ui.post("/login", data={"token": svc.token("admin")},
                       follow_redirects=False).status_code == 303
        assert admin.post("/api/v1/links/office/sync").json()["accepted"] is True
        assert started.wait(20)
        r = admin.post("/api/v1/links/office/sync/client")
        assert r.status_code == 202 and r.json()["accepted"] is True, r.json()
        assert r.json()["state"] == "queued", r.json()
        st = admin.get("/api/v1/links/office").json()["status"]
        assert st["running"] == ["all"] and st["queued"] == ["client"], st
        card = ui.get("/ui/links/office/card").text
        assert re.search(r'data-entity="client"[^>]*disabled>Queued…<', card), card
        again = admin.post("/api/v1/links/office/sync/client").json()
        assert again["accepted"] is False and again["state"] == "queued", again
        gate.set()
        wait_for(lambda: len([r for r in admin.get("/api/v1/links/office/runs").json()
                              if r["status"] == "ok"]) == 2, what="both runs to finish")
        runs = sorted(admin.get("/api/v1/links/office/runs").json(), key=lambda r: r["id"])
        # the journal names each entity type a run synced; the queued one ran after the other
        assert runs[1]["started_at"] >= runs[0]["finished_at"], runs
