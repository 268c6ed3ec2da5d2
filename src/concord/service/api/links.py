"""Links: status light, runs, manual sync, and an administrator's pause / resume / activate.

A link's configuration is shown only to administrators, and with its secrets masked: a
``SecretStr`` option is dumped as ``**********``, never as its value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from concord.errors import ConcordError, LinkUnavailable
from concord.link.status import directions, link_status, quarantine_entry
from concord.records import ENTITY_TYPES
from concord.service.auth import Principal
from concord.service.deps import ServiceState, require, state, sync_scope

router = APIRouter(prefix="/api/v1", tags=["links"])


class StatusOut(BaseModel):
    link: str
    color: str = Field(description="green | amber (in sync; records quarantined or conflicts "
                                   "open) | blue | red")
    reason: str
    fix: str
    state: str
    running: list[str]
    queued: list[str]
    progress_done: int | None
    progress_total: int | None
    eta_s: float | None = Field(description="seconds left in a running migration, estimated")
    paused_until: float | None
    pending: int
    excluded: int = Field(0, description="hub records this link's filters, value maps or "
                                         "remove_when leave out on purpose (not pending)")
    spoke_excluded: int = Field(0, description="spoke items they leave out (not taken into "
                                               "the hub; read again when they change)")
    quarantined: int
    conflicts: int
    last_run_at: float | None
    retry_at: float | None = Field(None, description="after a transient error: when the "
                                                     "scheduler tries again")
    stopped: str | None = Field(None, description="after a terminal error: why the scheduler "
                                                  "stopped (a person's sync starts it again)")


class LinkOut(BaseModel):
    name: str
    connector: str
    entities: dict[str, str]
    schedule: str | None
    status: StatusOut


class RunOut(BaseModel):
    id: int
    link: str
    entity: str | None
    record: str | None
    trigger: str
    requested_by: str | None
    status: str
    started_at: float | None
    finished_at: float | None
    counts: dict[str, Any]
    message: str | None
    progress_done: int | None
    progress_total: int | None


class SyncOut(BaseModel):
    accepted: bool = Field(description="false: a sync of this link and entity was already "
                                       "queued or running, and none was started twice")
    state: str
    message: str


class ActivityOut(BaseModel):
    id: int
    at: float
    actor: str
    action: str
    link: str | None
    entity: str | None
    detail: str | None
    outcome: str | None


def _cfg(st: ServiceState, name: str) -> Any:
    cfg = st.links.get(name)
    if cfg is None:
        raise HTTPException(404, f"no link named {name!r}; known: {', '.join(st.links) or 'none'}")
    return cfg


def status_out(st: ServiceState, name: str) -> StatusOut:
    """The shared light, plus what only this process knows: its scheduler's queue."""
    busy = st.scheduler.busy(name)
    s = link_status(st.hub, name, st.links.get(name), queued=list(busy))
    d = s.as_dict()
    d["queued"] = sorted(e for e, v in busy.items() if v == "queued")
    d["running"] = sorted(set(d["running"]) | {e for e, v in busy.items() if v == "running"})
    return StatusOut(**d)


SECRET_KEYS = ("password", "secret", "token", "api_key", "apikey", "key", "credentials", "dsn")


def mask_secrets(value: Any, key: str = "") -> Any:
    """Options as shown to an administrator: every secret replaced by ``**********``."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr) or (
            key and any(k in key.lower() for k in SECRET_KEYS) and value not in (None, "")):
        return "**********"
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        from sqlalchemy.engine import make_url

        try:
            return make_url(value).render_as_string(hide_password=True)
        except Exception:
            return "**********"
    return value


def link_out(st: ServiceState, name: str) -> LinkOut:
    cfg = _cfg(st, name)
    sched = getattr(cfg, "schedule", None) or getattr(cfg, "interval", None)
    return LinkOut(name=name, connector=str(getattr(cfg, "connector", "")),
                   entities=directions(cfg), schedule=None if sched is None else str(sched),
                   status=status_out(st, name))


@router.get("/links", response_model=list[LinkOut], summary="Every link with its status light "
                                                            "(records:read)")
def list_links(request: Request, _p: Principal = require("records:read")) -> list[LinkOut]:
    st = state(request)
    return [link_out(st, n) for n in st.links]


@router.get("/links/{name}", response_model=LinkOut, summary="One link's status (records:read)")
def get_link(request: Request, name: str, _p: Principal = require("records:read")) -> LinkOut:
    return link_out(state(request), name)


@router.get("/links/{name}/config", summary="A link's configuration, secrets masked (admin)")
def get_link_config(request: Request, name: str, _p: Principal = require("admin")) -> dict[str, Any]:
    cfg = _cfg(state(request), name)
    if hasattr(cfg, "model_dump"):
        dumped = cfg.model_dump()
    else:
        dumped = {"connector": str(getattr(cfg, "connector", "")), "entities": directions(cfg),
                  "options": dict(getattr(cfg, "options", {}) or {})}
    masked: dict[str, Any] = mask_secrets(dumped)
    return masked


@router.get("/links/{name}/runs", response_model=list[RunOut], summary="Recent runs (records:read)")
def list_runs(request: Request, name: str, limit: int = Query(50, ge=1, le=1000),
              _p: Principal = require("records:read")) -> list[RunOut]:
    st = state(request)
    _cfg(st, name)
    return [RunOut.model_validate({k: r.get(k) for k in RunOut.model_fields})
            for r in st.hub.runs(name, limit)]


class QuarantinedOut(BaseModel):
    entity: str
    side: str = Field(description="spoke: the spoke's item could not be read into the hub; "
                                  "hub: the hub's record could not be written to the spoke")
    ref: str = Field(description="the spoke ref (side spoke) or the hub id (side hub)")
    hub_id: str | None = Field(description="the hub record, when the hub holds it")
    record: str | None = Field(description="the record's name, when the hub holds it")
    error: str = Field(description="why, naming the field and the fix")
    since: float = Field(description="when it was (last) quarantined")
    attempts: int
    retry_at: float | None = Field(description="when the next run tries it again (sooner if "
                                               "it changes)")


@router.get("/links/{name}/quarantine", response_model=list[QuarantinedOut],
            summary="A link's quarantined records with their errors (records:read)")
def list_quarantine(request: Request, name: str,
                    _p: Principal = require("records:read")) -> list[QuarantinedOut]:
    st = state(request)
    _cfg(st, name)
    return [QuarantinedOut(**quarantine_entry(q)) for q in st.hub.quarantine_list(name)]


def request_sync(st: ServiceState, name: str, entity: str | None, p: Principal) -> SyncOut:
    cfg = _cfg(st, name)
    if entity is not None and entity not in directions(cfg):
        raise HTTPException(404, f"link {name!r} does not carry {entity!r} records; it carries: "
                                 f"{', '.join(directions(cfg)) or 'none'}")
    scope = sync_scope(entity)
    if not p.has(scope):
        raise HTTPException(403, f"syncing {entity or 'every entity'} needs the scope {scope!r}; "
                                 f"any user may sync the client list")
    try:
        o = st.scheduler.request(name, entity, trigger="manual", by=p.actor,
                                 may_activate=p.has("admin"))
    except LinkUnavailable as exc:
        raise HTTPException(409, str(exc)) from exc
    return SyncOut(accepted=o.accepted, state=o.state, message=o.message)


@router.post("/links/{name}/sync", response_model=SyncOut, status_code=202,
             summary="Sync every entity of a link now (admin)")
def sync_all(request: Request, name: str, p: Principal = require("sync:run")) -> SyncOut:
    return request_sync(state(request), name, None, p)


@router.post("/links/{name}/sync/{entity}", response_model=SyncOut, status_code=202,
             summary="Sync one entity type of a link now (client: sync:run; others: admin)")
def sync_entity(request: Request, name: str, entity: str,
                p: Principal = require("sync:run")) -> SyncOut:
    if entity not in ENTITY_TYPES:
        raise HTTPException(404, f"unknown entity type {entity!r}; use one of: "
                                 f"{', '.join(ENTITY_TYPES)}")
    return request_sync(state(request), name, entity, p)


class LinkActionIn(BaseModel):
    as_: str | None = Field(None, alias="as", max_length=320,
                            description="who is activating (the e-mail of an active "
                                        "administrator at the spoke, where it checks); "
                                        "default: the token's name")
    reason: str | None = Field(None, max_length=500, description="why (shown while paused)")


class LinkActionOut(BaseModel):
    changed: bool = Field(description="false: nothing to do (e.g. already activated)")
    message: str
    link: LinkOut


def _action(st: ServiceState, name: str, outcome: Any) -> LinkActionOut:
    return LinkActionOut(changed=outcome.changed, message=outcome.message,
                         link=link_out(st, name))


@router.post("/links/{name}/pause", response_model=LinkActionOut, summary="Pause a link (admin)")
def pause(request: Request, name: str, p: Principal = require("admin"),
          body: LinkActionIn | None = None) -> LinkActionOut:
    from concord.link import activation

    st = state(request)
    _cfg(st, name)
    return _action(st, name, activation.pause(st.hub, name, by=p.actor,
                                              reason=body.reason if body else None))


@router.post("/links/{name}/resume", response_model=LinkActionOut,
             summary="Resume a paused link, ending any rate-limit pause (admin)")
def resume(request: Request, name: str, p: Principal = require("admin")) -> LinkActionOut:
    from concord.link import activation

    st = state(request)
    _cfg(st, name)
    row = st.hub.link_row(name)
    if row is not None and row["state"] == "active" and row.get("paused_until"):
        st.hub.set_link(name, paused_until=None, pause_reason=None)
        st.hub.log_activity(p.actor, "resume", link=name, outcome="ok",
                            detail="rate-limit pause ended early by an administrator")
        from concord.link.activation import Outcome

        return _action(st, name, Outcome(True, f"Link {name!r} resumed."))
    return _action(st, name, activation.resume(st.hub, name, by=p.actor))


@router.post("/links/{name}/activate", response_model=LinkActionOut,
             summary="Activate a link (prerequisites checked) and start its first migration "
                     "(admin)")
def activate(request: Request, name: str, p: Principal = require("admin"),
             body: LinkActionIn | None = None) -> LinkActionOut:
    from concord.link import activation

    st = state(request)
    cfg = _cfg(st, name)
    by = (body.as_ if body else None) or p.name
    try:
        outcome = activation.activate(st.hub, cfg, by=by)
    except activation.ActivationRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    except ConcordError as exc:
        raise HTTPException(409, f"link {name!r} cannot be activated: {exc}") from exc
    if outcome.changed:
        st.scheduler.request(name, None, trigger="manual", by=p.actor)
    return _action(st, name, outcome)


@router.post("/links/{name}/deactivate", response_model=LinkActionOut,
             summary="Deactivate a link: no more runs until activated; records are kept (admin)")
def deactivate(request: Request, name: str, p: Principal = require("admin")) -> LinkActionOut:
    from concord.link import activation

    st = state(request)
    cfg = _cfg(st, name)
    try:
        return _action(st, name, activation.deactivate(st.hub, cfg, by=p.actor))
    except ConcordError as exc:
        raise HTTPException(409, f"link {name!r} cannot be deactivated: {exc}") from exc


@router.get("/activity", response_model=list[ActivityOut],
            summary="The activity log: every manual sync request and every run (records:read)")
def activity(request: Request, limit: int = Query(100, ge=1, le=1000),
             _p: Principal = require("records:read")) -> list[ActivityOut]:
    return [ActivityOut.model_validate({k: a.get(k) for k in ActivityOut.model_fields})
            for a in state(request).hub.activity(limit)]


class MeOut(BaseModel):
    name: str
    token_id: str
    scopes: list[str]


@router.get("/me", response_model=MeOut, summary="Who this token is (records:read)")
def me(p: Principal = require("records:read")) -> MeOut:
    return MeOut(name=p.name, token_id=p.token_id, scopes=sorted(p.scopes))
