"""Tokens and scopes: every API route refuses a missing token (401) and a token without
its scope (403); tokens are stored hashed and can be revoked."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from sqlalchemy import select

from concord.hub import schema as s
from concord.service.auth import list_tokens, revoke_token, token_hash
from tests.service.conftest import Served

# For each scope, a token holding every other non-admin scope: it must get 403.
OTHERS = {
    "records:read": ("records:write", "sync:run"),
    "records:write": ("records:read", "sync:run"),
    "sync:run": ("records:read", "records:write"),
    "admin": ("records:read", "records:write", "sync:run"),
}


def _scope_of(route: APIRoute) -> str | None:
    for dep in route.dependant.dependencies:
        scope = getattr(dep.call, "concord_scope", None)
        if scope:
            return str(scope)
    return None


def _routes(service: Served) -> list[tuple[str, str, str]]:
    from concord.service.api import conflicts, links, records

    out = []
    every = [*records.router.routes, *links.router.routes, *conflicts.router.routes,
             *service.app.routes]
    for r in every:
        if isinstance(r, APIRoute) and r.include_in_schema:
            path = re.sub(r"\{entity\}", "client", r.path)
            path = re.sub(r"\{name\}", "office", path)
            path = re.sub(r"\{cid\}", "1", path)
            path = re.sub(r"\{\w+\}", "x1", path)
            for m in r.methods:
                scope = _scope_of(r)
                assert scope, f"{m} {r.path} has no scope check"
                out.append((m, path, scope))
    return out


def test_every_route_needs_a_token_with_its_scope(service: Served) -> None:
    routes = _routes(service)
    assert len(routes) >= 20
    with service.client() as anon:
        for method, path, _scope in routes:
            r = anon.request(method, path, headers={"If-Match": "*"})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = anon.request(method, path, headers={"Authorization": "Bearer cct_forged_token"})
            assert r.status_code == 401, (method, path)
    for method, path, scope in routes:
        with service.client(*OTHERS[scope]) as c:
            r = c.request(method, path, headers={"If-Match": "*"})
            assert r.status_code == 403, (method, path, scope, r.status_code)
            assert scope in r.json()["detail"]


def test_standard_user_syncs_clients_but_not_jobs(make_service, hub_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import vdir_config

    cfg = vdir_config(hub_url, tmp_path / "office")
    cfg.links["office"].entities["staff"] = cfg.links["office"].entities["client"].model_copy()
    svc = make_service(cfg, start_scheduler=False)
    with svc.client("records:read", "sync:run") as std, svc.client("admin") as admin:
        r = std.post("/api/v1/links/office/sync/client")
        assert r.status_code == 409 and "administrator must activate" in r.json()["detail"]
        assert admin.post("/api/v1/links/office/activate").json()["status"]["state"] == "active"
        assert std.post("/api/v1/links/office/sync/client").status_code == 202
        r = std.post("/api/v1/links/office/sync/staff")
        assert r.status_code == 403 and "admin" in r.json()["detail"]
        assert std.post("/api/v1/links/office/sync").status_code == 403
        assert std.post("/api/v1/links/office/pause").status_code == 403
        assert admin.post("/api/v1/links/office/sync/staff").status_code == 202
        assert std.get("/api/v1/records/client").status_code == 200
        assert std.post("/api/v1/records/client", json={"fields": {"name": "A"}}).status_code == 403


def test_tokens_are_hashed_and_revocable(service: Served) -> None:
    token = service.token("records:read")
    with service.hub.engine.connect() as conn:
        stored = [r.hash for r in conn.execute(select(s.tokens.c.hash))]
    assert token_hash(token) in stored and token not in stored
    with service.client("records:read") as c:
        assert c.get("/api/v1/links").status_code == 200
        tid = next(t["id"] for t in list_tokens(service.hub) if token_hash(token) == token_hash(token)
                   and t["name"] == "user-0")
        assert list_tokens(service.hub)[0]["last_used_at"] is not None
        assert revoke_token(service.hub, tid)
        service.app.state.concord.verifier.forget()
        r = c.get("/api/v1/links")
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert not revoke_token(service.hub, tid)  # already revoked


def test_link_secrets_are_masked_and_never_logged(make_service, hub_url, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import vdir_config
    from tests.service.restspoke import RestSpoke

    with RestSpoke() as spoke:
        cfg = vdir_config(hub_url, tmp_path / "office", saas={
            "connector": "test-rest", "options": {"url": spoke.url, "api_key": "s3cr3t-key-value"},
            "entities": {"job": {"direction": "pull"}}, "interval": 3600})
        svc = make_service(cfg)
        with svc.client("admin") as admin:
            r = admin.get("/api/v1/links/saas/config")
            assert r.status_code == 200
            assert r.json()["options"]["api_key"] == "**********"
            assert r.json()["options"]["url"] == spoke.url
            assert admin.post("/api/v1/links/saas/sync/job").status_code == 202
            from tests.service.conftest import wait_for

            wait_for(lambda: svc.scheduler.idle(), what="the sync to finish")
            everything = [admin.get(p).text for p in (
                "/api/v1/links", "/api/v1/links/saas", "/api/v1/activity", "/api/v1/links/saas/runs",
                "/metrics", "/openapi.json")]
    assert not any("s3cr3t" in t for t in everything)
    assert "s3cr3t" not in caplog.text
