"""The scheduler runs a link when its spoke notifies a change: a practice database (SQLite,
with Concord's change capture installed at activation) edited by another program reaches
the hub, and the API, with nobody pressing Sync and no schedule due."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from concord.config import from_dict
from concord.demo.sample import ADMIN_EMAIL, create_sample, default_entities, default_mapping
from tests.integration.sql_helpers import db_exec
from tests.service.conftest import wait_for


def test_a_change_in_the_practice_database_wakes_the_link(make_service: Any, tmp_path: Path) -> None:
    practice = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(practice, clients_n=12)
    cfg = from_dict({"hub": {"url": f"sqlite:///{tmp_path / 'hub.db'}"}, "links": {"practice": {
        "connector": "sql", "admin": ADMIN_EMAIL, "interval": 3600,
        "options": {"url": practice, "mapping": default_mapping()},
        "entities": {e: default_entities("pull", "spoke")[e] for e in ("staff", "client")}}}})
    svc = make_service(cfg)
    with svc.client("admin") as admin:
        r = admin.post("/api/v1/links/practice/activate", json={"as": "nobody@example.com"})
        assert r.status_code == 409 and "administrator" in r.json()["detail"]
        r = admin.post("/api/v1/links/practice/activate", json={"as": ADMIN_EMAIL})
        assert r.status_code == 200 and r.json()["changed"], r.text
        wait_for(lambda: admin.get("/api/v1/links/practice").json()["status"]["color"] == "green",
                 what="the first migration")
        assert admin.get("/api/v1/records/client").json()["total"] == 12, (
            admin.get("/api/v1/links/practice/runs").text, admin.get("/api/v1/activity").text,
            admin.get("/api/v1/links/practice").text)
        runs_before = len(admin.get("/api/v1/links/practice/runs").json())

        db_exec(practice, "UPDATE clients SET name = 'Renamed by the office' WHERE client_id = 7")
        wait_for(lambda: admin.get("/api/v1/records/client",
                                   params={"filter": "name=Renamed by the office"}).json()["total"],
                 what="the change notification to run the link")
        runs = admin.get("/api/v1/links/practice/runs").json()
        assert len(runs) > runs_before and runs[0]["trigger"] == "watch"
