"""What every route shares: the service state and the scope check.

Tokens arrive as ``Authorization: Bearer …`` (the API) or as the dashboard's session cookie.
A cookie-authenticated write must also carry the ``X-Concord-UI`` header, which a page on
another site cannot add: that is the dashboard's whole defence against cross-site requests,
together with the SameSite=Strict cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from concord.hub.store import Hub
from concord.service.auth import Principal, TokenVerifier
from concord.service.scheduler import Scheduler

COOKIE = "concord_token"
UI_HEADER = "X-Concord-UI"

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An API token from `concord token create` (scopes: "
                                "records:read, records:write, sync:run, admin).")


@dataclass
class ServiceState:
    hub: Hub
    links: dict[str, Any]  # link name -> link config
    scheduler: Scheduler
    verifier: TokenVerifier
    push_on_write: bool = True


def state(request: Request) -> ServiceState:
    st: ServiceState = request.app.state.concord
    return st


def principal_from(request: Request, cred: HTTPAuthorizationCredentials | None) -> Principal | None:
    st = state(request)
    if cred is not None:
        return st.verifier.verify(cred.credentials)
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    if request.method not in ("GET", "HEAD") and request.headers.get(UI_HEADER) != "1":
        raise HTTPException(403, f"a dashboard request that changes something must carry the "
                                 f"{UI_HEADER} header")
    return st.verifier.verify(token)


def require(scope: str) -> Any:
    """Dependency: the caller's Principal, if its token has ``scope`` (admin has all)."""

    def dep(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if cred is None and not request.cookies.get(COOKIE):
            raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                                     "(create one with `concord token create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        p = principal_from(request, cred)
        if p is None:
            raise HTTPException(401, "invalid or revoked token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not p.has(scope):
            raise HTTPException(403, f"this token lacks the scope {scope!r}",
                                headers={"WWW-Authenticate":
                                         f'Bearer error="insufficient_scope" scope="{scope}"'})
        return p

    dep.concord_scope = scope  # type: ignore[attr-defined]  # read by the route audit test
    return Depends(dep)


def sync_scope(entity: str | None) -> str:
    """Any user may sync the client list; every other entity type (or a whole link) is
    an administrator's."""
    return "sync:run" if entity == "client" else "admin"
