"""The dashboard: server-rendered pages (Jinja2) with a few lines of fetch() in app.js.

Per link: the status light with its reason and fix, the progress of a running migration,
the Sync buttons (disabled, "Syncing…", while that entity is queued or running), a
per-record Sync with the Pending Sync badge, conflicts side by side, and the activity log.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from concord.errors import LinkUnavailable
from concord.link.status import directions, quarantine_entry
from concord.model import ModelError
from concord.records import ENTITY_TYPES
from concord.service import render
from concord.service.api.conflicts import ConflictOut, Resolution, conflict_out, load, resolve
from concord.service.api.links import request_sync, status_out
from concord.service.api.records import out as records_out
from concord.service.auth import Principal
from concord.service.deps import COOKIE, ServiceState, principal_from, state, sync_scope

LABELS = {"client": "Clients", "staff": "Staff", "job": "Jobs", "tax_return": "Tax Returns",
          "custom_field": "Custom Fields", "contact": "Contacts", "task": "Tasks",
          "event": "Events", "email": "E-mails"}

templates = Jinja2Templates(directory=FsPath(__file__).parent / "templates")
templates.env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S",
                                                         time.localtime(ts)) if ts else ""
templates.env.globals["LABELS"] = LABELS
# Typed values readably (render.py): addresses as addresses, extras as a short summary.
templates.env.filters["show"] = render.show
templates.env.globals["extras_view"] = render.extras_view
templates.env.globals["record_title"] = render.title

router = APIRouter(include_in_schema=False)


def _who(request: Request) -> Principal | None:
    try:
        return principal_from(request, None)
    except HTTPException:
        return None


def _part_user(request: Request) -> Principal:
    """A signed-in user, for the page fragments the dashboard fetches (401 otherwise)."""
    p = _who(request)
    if p is None:
        raise HTTPException(status_code=401)
    return p


def _page_user(request: Request) -> Principal:
    """A signed-in user, for whole pages (to the sign-in page otherwise)."""
    p = _who(request)
    if p is None:
        raise HTTPException(status_code=303, headers={"Location": "/login"})
    return p


PartUser = Annotated[Principal, Depends(_part_user)]
PageUser = Annotated[Principal, Depends(_page_user)]


def _page(request: Request, name: str, p: Principal, **ctx: Any) -> HTMLResponse:
    ctx.update(request=request, me=p, entities=ENTITY_TYPES)
    return templates.TemplateResponse(request, name, ctx)


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


_UI_FIXES = (("`concord sync", "press Sync below (or run {cmd})"),
             ("`concord link resume", "press Resume below (or run {cmd})"),
             ("`concord link activate", "press Activate below (or run {cmd})"))


def _ui_fix(fix: str) -> str:
    """The shared fix names a CLI command; on the dashboard, name the button first."""
    for marker, text in _UI_FIXES:
        start = fix.find(marker)
        if start >= 0:
            end = fix.find("`", start + 1)
            return text.format(cmd=fix[start:end + 1]) + fix[end + 1:]
    return fix


def sync_hidden(cfg: Any, entity: str) -> bool:
    """A Sync button the link's settings make meaningless, as in practice managers' own
    XPM links: with Concord primary for client maintenance (clients pushed to XPM), the
    custom field definitions are maintained in Concord too, so fetching them is hidden."""
    return (getattr(cfg, "connector", "") == "xpm" and entity == "custom_field"
            and directions(cfg).get("client") == "push")


def sync_label(cfg: Any, entity: str) -> str:
    if getattr(cfg, "connector", "") == "xpm" and entity == "custom_field":
        return "Field Definitions"
    return LABELS[entity]


def card_ctx(st: ServiceState, name: str, p: Principal, flash: str | None = None) -> dict[str, Any]:
    cfg = st.links[name]
    busy = st.scheduler.busy(name)
    status = status_out(st, name)
    status.fix = _ui_fix(status.fix)
    running = set(status.running) | set(status.queued) | set(busy)
    buttons = []
    for entity in (e for e in ENTITY_TYPES if e in directions(cfg)):
        if not p.has(sync_scope(entity)) or sync_hidden(cfg, entity):
            continue
        syncing = entity in running or "all" in running
        queued = entity in status.queued and entity not in status.running
        buttons.append({"entity": entity, "label": f"Sync {sync_label(cfg, entity)}",
                        "syncing": syncing, "queued": queued})
    if p.has("admin") and len(directions(cfg)) > 1:  # the whole link: its first migration
        buttons.append({"entity": "all", "label": "Sync All", "syncing": bool(running)})
    actions: list[tuple[str, str]] = []
    if p.has("admin"):
        if status.state in ("unknown", "inactive"):
            actions.append(("activate", "Activate"))
        elif status.state == "paused" or status.paused_until:
            actions.append(("resume", "Resume"))
        else:
            actions.append(("pause", "Pause"))
    return {"name": name, "cfg": cfg, "status": status, "buttons": buttons, "flash": flash,
            "entities": directions(cfg), "actions": actions}


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, error: str | None = None) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
def login(request: Request, token: str = Form(...)) -> Response:
    p = state(request).verifier.verify(token.strip())
    if p is None:
        return templates.TemplateResponse(request, "login.html",
                                          {"error": "That token is unknown or revoked."},
                                          status_code=401)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", max_age=12 * 3600)
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = _login_redirect()
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/", response_class=HTMLResponse)
def index(request: Request, p: PageUser) -> Response:
    st = state(request)
    cards = [card_ctx(st, n, p) for n in st.links]
    return _page(request, "index.html", p, cards=cards, activity=st.hub.activity(15),
                 conflicts=len(st.hub.conflicts(limit=1000)))


@router.get("/ui/links/{name}/card", response_class=HTMLResponse)
def card(request: Request, name: str, p: PartUser) -> Response:
    st = state(request)
    if name not in st.links:
        return Response(status_code=404)
    return _page(request, "_card.html", p, c=card_ctx(st, name, p))


@router.post("/ui/links/{name}/sync/{entity}", response_class=HTMLResponse)
def ui_sync(request: Request, name: str, entity: str, p: PartUser) -> Response:
    st = state(request)
    if name not in st.links:
        return Response(status_code=404)
    flash = None
    try:
        o = request_sync(st, name, None if entity == "all" else entity, p)
        flash = None if o.accepted else o.message
    except HTTPException as exc:
        flash = str(exc.detail)
    return _page(request, "_card.html", p, c=card_ctx(st, name, p, flash))


@router.post("/ui/links/{name}/{action}", response_class=HTMLResponse)
def ui_link_action(request: Request, name: str, action: str, p: PartUser) -> Response:
    """An administrator's Activate / Pause / Resume, from the link's card."""
    from concord.service.api import links as links_api

    st = state(request)
    if name not in st.links or action not in ("activate", "pause", "resume"):
        return Response(status_code=404)
    if not p.has("admin"):
        return Response("only an administrator may do that", status_code=403)
    flash = None
    try:
        if action == "resume":
            flash = links_api.resume(request, name, p).message
        else:
            flash = getattr(links_api, action)(request, name, p, None).message
    except HTTPException as exc:
        flash = str(exc.detail)
    return _page(request, "_card.html", p, c=card_ctx(st, name, p, flash))


def _list_sync(st: ServiceState, entity: str, p: Principal,
               flash: str | None = None) -> dict[str, Any]:
    """The Sync button of a records list: every link carrying ``entity``, as one button."""
    links = [n for n, cfg in st.links.items() if entity in directions(cfg)]
    busy = any(entity in st.scheduler.busy(n) or "all" in st.scheduler.busy(n) for n in links)
    return {"entity": entity, "links": links, "busy": busy, "flash": flash,
            "allowed": bool(links) and p.has(sync_scope(entity))}


@router.get("/ui/records/{entity}/sync", response_class=HTMLResponse)
def list_sync_state(request: Request, entity: str, p: PartUser) -> Response:
    return _page(request, "_listsync.html", p, s=_list_sync(state(request), entity, p))


@router.post("/ui/records/{entity}/sync", response_class=HTMLResponse)
def list_sync(request: Request, entity: str, p: PartUser) -> Response:
    """From a records list, any user may sync the client list (other lists: admin)."""
    st = state(request)
    if entity not in ENTITY_TYPES:
        return Response(status_code=404)
    flashes = []
    for name in _list_sync(st, entity, p)["links"]:
        try:
            o = request_sync(st, name, entity, p)
            if not o.accepted:
                flashes.append(o.message)
        except HTTPException as exc:
            flashes.append(str(exc.detail))
    return _page(request, "_listsync.html", p,
                 s=_list_sync(st, entity, p, "; ".join(flashes) or None))


def _rows(st: ServiceState, entity: str, offset: int, limit: int) -> list[Any]:
    return records_out(st, st.hub.list_records(entity, offset=offset, limit=limit))


@router.get("/records/{entity}", response_class=HTMLResponse)
def records_page(request: Request, entity: str, p: PageUser, offset: int = 0,
                 id: str | None = None) -> Response:
    """A page of a records list; ``?id=`` shows that one record (a quarantine entry's link)."""
    if entity not in ENTITY_TYPES:
        return Response(f"unknown entity type {entity!r}", status_code=404)
    st = state(request)
    offset = max(0, offset)
    if id is not None:
        one = st.hub.get(entity, id)
        rows = records_out(st, [one]) if one is not None and not one.deleted else []
    else:
        rows = _rows(st, entity, offset, 50)
    return _page(request, "records.html", p, entity=entity, rows=rows, one=id,
                 s=_list_sync(st, entity, p),
                 offset=offset, total=st.hub.count(entity),
                 can_sync=p.has("sync:run") and bool(st.scheduler.links_for(entity)
                                                     or any(entity in directions(c)
                                                            for c in st.links.values())))


def _row_response(request: Request, p: Principal, entity: str, rid: str,
                  flash: str | None = None) -> Response:
    st = state(request)
    rec = st.hub.get(entity, rid)
    if rec is None:
        return Response(status_code=404)
    return _page(request, "_row.html", p, entity=entity, r=records_out(st, [rec])[0],
                 can_sync=p.has("sync:run"), flash=flash)


@router.get("/ui/records/{entity}/{rid}/row", response_class=HTMLResponse)
def record_row(request: Request, entity: str, rid: str, p: PartUser) -> Response:
    return _row_response(request, p, entity, rid)


@router.post("/ui/records/{entity}/{rid}/sync", response_class=HTMLResponse)
def record_sync(request: Request, entity: str, rid: str, p: PartUser) -> Response:
    if not p.has("sync:run") or entity not in ENTITY_TYPES:
        return Response("this token may not sync records", status_code=403)
    st = state(request)
    flash = None
    for name, cfg in st.links.items():
        if entity in directions(cfg):
            try:
                st.scheduler.request(name, entity, record=rid, trigger="manual", by=p.actor,
                                     may_activate=p.has("admin"), after_running=True)
            except LinkUnavailable as exc:
                flash = str(exc)
    return _row_response(request, p, entity, rid, flash)


@router.get("/conflicts", response_class=HTMLResponse)
def conflicts_page(request: Request, p: PageUser) -> Response:
    st = state(request)
    items = []
    for row in st.hub.conflicts(limit=200):
        c = conflict_out(row)
        rows = [render.field_row(c.entity, n, c.hub.get(n), c.spoke.get(n))
                for n in sorted(set(c.hub) | set(c.spoke))]
        for r in rows:
            if not r["typed"]:
                r["merged"] = _as_text(c.hub.get(r["name"], c.spoke.get(r["name"])))
        items.append({"c": c, "rows": rows,
                      "differing": [r["name"] for r in rows if r["differs"]]})
    return _page(request, "conflicts.html", p, items=items)


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine_page(request: Request, p: PageUser, link: str | None = None) -> Response:
    """Each link's quarantined records with their errors (``link`` shows one)."""
    st = state(request)
    names = [link] if link in st.links else list(st.links)
    groups = [(n, [quarantine_entry(q) for q in st.hub.quarantine_list(n)]) for n in names]
    return _page(request, "quarantine.html", p, groups=groups)


def _as_text(v: Any) -> str:
    """A scalar for the merged column's text box (read back by ``_from_text``)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _from_text(text: str, sides: list[Any]) -> Any:
    """The merged column's text as the type the two sides hold (a number stays a number)."""
    if text == "":
        return None
    word = text.strip().lower()
    for v in sides:
        if isinstance(v, bool):
            if word in ("true", "yes"):
                return True
            if word in ("false", "no"):
                return False
        elif isinstance(v, int):
            try:
                return int(word)
            except ValueError:
                pass
        elif isinstance(v, float):
            try:
                return float(word)
            except ValueError:
                pass
    return text


def _merged(c: ConflictOut, form: Any) -> dict[str, Any]:
    """The merged values of the side-by-side form: text boxes for plain values, a choice of
    side for typed values (lists of e-mail addresses, extras…)."""
    fields: dict[str, Any] = {}
    for k in form:
        if not isinstance(k, str):
            continue
        if k.startswith("f:"):
            n = k[2:]
            fields[n] = _from_text(str(form[k]), [c.hub.get(n), c.spoke.get(n)])
        elif k.startswith("p:"):
            n = k[2:]
            fields[n] = (c.spoke if str(form[k]) == "spoke" else c.hub).get(n)
    return fields


@router.post("/ui/conflicts/{cid}/resolve", response_class=HTMLResponse)
async def ui_resolve(request: Request, cid: Annotated[int, Path(ge=1, le=2**62)], p: PartUser) -> Response:
    if not p.has("records:write"):
        return Response("resolving a conflict needs the scope records:write", status_code=403)
    form = await request.form()
    st = state(request)
    choose = form.get("choose")
    try:
        if choose in ("hub", "spoke"):
            res = Resolution.model_validate({"choose": str(choose)})
        else:
            res = Resolution.model_validate({"fields": _merged(load(st, cid), form)})
        c = resolve(st, cid, res, p)
    except HTTPException as exc:
        return Response(str(exc.detail), status_code=exc.status_code)
    except ModelError as exc:  # merged values that do not fit the model: named, nothing written
        return Response(str(exc), status_code=422)
    except ValidationError as exc:
        return Response("; ".join(str(e["msg"]) for e in exc.errors()), status_code=422)
    return HTMLResponse(f'<div class="resolved" data-resolved="{c.id}">Conflict {c.id} resolved: '
                        f"{escape(c.resolution or '')}</div>")


@router.get("/ui/activity", response_class=HTMLResponse)
def activity_part(request: Request, p: PartUser) -> Response:
    return _page(request, "_activity.html", p, activity=state(request).hub.activity(15), live=True)


@router.get("/activity", response_class=HTMLResponse)
def activity_page(request: Request, p: PageUser) -> Response:
    return _page(request, "activity.html", p, activity=state(request).hub.activity(300))
