"""Records per entity type: list (filters, paging), get, create, update, delete, sync.

Writes go into the hub, and from there to every linked system that receives this entity
(a sync of those links is queued). Every update and delete must name the version it
expects (``If-Match`` with the ETag from a read): a stale one is refused with 412, so an
edit made elsewhere in the meantime is never silently overwritten.

``fields`` is the record's content in its entity type's canonical model (``docs/model.md``):
typed values such as ``emails: [{"address": ...}]``, practice fields as ``custom.<name>``.
The hub validates every write; fields that do not fit are refused with 422, each problem
naming the field and the fix (``refusal.py``), and nothing is written.
"""

from __future__ import annotations

import contextlib
import enum
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from concord.hub.store import RecordWrite, load_content
from concord.link.status import pending_ids
from concord.records import ENTITY_TYPES, Record, new_id
from concord.service.api.refusal import RESPONSES
from concord.service.auth import Principal
from concord.service.deps import ServiceState, require, state

Entity = enum.Enum("Entity", {e: e for e in ENTITY_TYPES}, type=str)  # type: ignore[misc]

router = APIRouter(prefix="/api/v1/records", tags=["records"])

Scalar = str | int | float | bool | None
FieldValue = Scalar | list[Any] | dict[str, Any]


def _check_values(value: Any, path: str) -> None:
    """Values the hub can store exactly: 64-bit integers, finite numbers."""
    import math

    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{path}: integer out of the 64-bit range; send it as a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value} is not a number the hub can store; send null "
                             f"or a string")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_values(v, f"{path}.{k}")


class _Content(BaseModel):
    @field_validator("fields", check_fields=False)
    @classmethod
    def _storable(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, val in v.items():
            _check_values(val, f"fields.{k}")
        return v


FIELDS_DOC = ("the record's fields, an object: model field -> value, in the canonical model of "
              "its entity type (docs/model.md). Typed values are objects or lists of them "
              "(emails: [{\"address\": \"ann@acme.example\", \"types\": [\"work\"]}], "
              "addresses: [{\"street\": ..., \"locality\": ..., \"postcode\": ...}]); the "
              "practice's own fields are custom.<name>, one scalar each. Fields that do not fit "
              "the model are refused with 422 naming the field and the fix.")
REFS_DOC = "references to other records: name -> hub id (client, partner, manager…); null clears"
EXAMPLE: dict[str, Any] = {
    "name": "Acme Pty Ltd", "kind": "org",
    "emails": [{"address": "accounts@acme.example", "types": ["work"], "pref": 1}],
    "phones": [{"number": "+61 2 9000 0000", "types": ["work"]}],
    "addresses": [{"street": "1 High St", "locality": "Sydney", "postcode": "2000"}],
    "categories": ["audit"], "custom.industry": "Retail"}


class RecordIn(_Content):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "acme", "fields": EXAMPLE}]})

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                           description="hub id; chosen by the hub when omitted")
    fields: dict[str, FieldValue] = Field(default_factory=dict, description=FIELDS_DOC)
    refs: dict[str, str | None] = Field(default_factory=dict, description=REFS_DOC)


class RecordPatch(_Content):
    model_config = ConfigDict(json_schema_extra={"examples": [{"fields": {
        "phones": [{"number": "+61 2 9000 0001", "types": ["work"]}], "note": None}}]})

    fields: dict[str, FieldValue] = Field(default_factory=dict, description=FIELDS_DOC + (
        " In a PATCH, the fields given replace those fields whole (a list is replaced, not "
        "appended to); null clears a field."))
    refs: dict[str, str | None] = Field(default_factory=dict, description=REFS_DOC)


class RecordOut(BaseModel):
    entity: str
    id: str
    fields: dict[str, Any] = Field(description="the record's fields in the canonical model "
                                               "(docs/model.md), empty parts left out")
    refs: dict[str, str | None]
    deleted: bool
    seq: int
    updated_at: float
    etag: str
    pending_sync: bool = Field(description="the hub holds content a linked system has not "
                                           "received yet, or a sync of this record is queued")
    pending_links: list[str] = Field(default_factory=list)


class RecordPage(BaseModel):
    items: list[RecordOut]
    offset: int
    limit: int
    total: int


class SyncRequested(BaseModel):
    accepted: bool
    state: str
    message: str
    links: list[str] = Field(default_factory=list)


def etag(rec: Record) -> str:
    return f'"{rec.seq}"'


def out(st: ServiceState, recs: list[Record]) -> list[RecordOut]:
    if not recs:
        return []
    entity = recs[0].entity
    pend = pending_ids(st.hub, st.links, entity, [r.id for r in recs])
    requested = st.scheduler.requested_records(entity)
    return [RecordOut(entity=r.entity, id=r.id, fields=r.fields, refs=r.refs, deleted=r.deleted,
                      seq=r.seq, updated_at=r.updated_at, etag=etag(r),
                      pending_sync=bool(pend.get(r.id)) or r.id in requested,
                      pending_links=pend.get(r.id, [])) for r in recs]


def parse_filters(filters: list[str]) -> dict[str, str]:
    where: dict[str, str] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"filter {f!r} is not field=value (e.g. filter=name=Acme)")
        where[key] = value
    return where


def _matches(rec: Record, where: dict[str, str]) -> bool:
    for k, v in where.items():
        have = rec.fields.get(k, rec.refs.get(k))
        if have is None or str(have) != v:
            return False
    return True


@router.get("/{entity}", response_model=RecordPage, summary="List records (records:read)")
def list_records(request: Request, entity: Entity, offset: int = Query(0, ge=0, le=10**9),
                 limit: int = Query(50, ge=1, le=500),
                 filter: list[str] = Query([], description="field=value, exact match; repeat "
                                                           "for AND"),
                 include_deleted: bool = False,
                 _p: Principal = require("records:read")) -> RecordPage:
    st = state(request)
    where = parse_filters(filter)
    if not where:
        recs = st.hub.list_records(entity.value, include_deleted=include_deleted,
                                   offset=offset, limit=limit)
        total = st.hub.count(entity.value, include_deleted=include_deleted)
        return RecordPage(items=out(st, recs), offset=offset, limit=limit, total=total)
    # Filters on fields inside the JSON content: scan in pages, count every match.
    matched: list[Record] = []
    total, pos = 0, 0
    while True:
        page = st.hub.list_records(entity.value, include_deleted=include_deleted,
                                   offset=pos, limit=1000)
        for r in page:
            if _matches(r, where):
                if offset <= total < offset + limit:
                    matched.append(r)
                total += 1
        if len(page) < 1000:
            break
        pos += 1000
    return RecordPage(items=out(st, matched), offset=offset, limit=limit, total=total)


def _get_or_404(st: ServiceState, entity: str, rid: str, conn: Connection | None = None) -> Record:
    rec = st.hub.get(entity, rid, conn=conn)
    if rec is None or rec.deleted:
        raise HTTPException(404, f"no {entity} with id {rid!r}"
                            + (" (it was deleted)" if rec is not None else ""))
    return rec


@router.get("/{entity}/{rid}", response_model=RecordOut, summary="Get one record (records:read)")
def get_record(request: Request, response: Response, entity: Entity, rid: str,
               _p: Principal = require("records:read")) -> RecordOut:
    st = state(request)
    rec = _get_or_404(st, entity.value, rid)
    response.headers["ETag"] = etag(rec)
    return out(st, [rec])[0]


def _check_match(rec: Record, if_match: str | None) -> None:
    if if_match is None:
        raise HTTPException(428, f"{rec.entity} {rec.id}: send If-Match with the ETag from a "
                                 f"GET (current: {etag(rec)}) so an edit made meanwhile is "
                                 f"not overwritten")
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and etag(rec) not in tags:
        raise HTTPException(412, f"{rec.entity} {rec.id} changed since it was read (now "
                                 f"{etag(rec)}, you sent {if_match}); read it again and "
                                 f"re-apply your edit")


def _after_write(st: ServiceState, entity: str, p: Principal) -> None:
    """Queue a push to every link carrying ``entity``. The write is already committed: a
    link that cannot take it now (paused, not activated yet) sends it when it can, so the
    answer is the saved record (pending sync), never an error."""
    from concord.errors import LinkUnavailable

    if st.push_on_write:
        for link in st.scheduler.links_for(entity):
            with contextlib.suppress(LinkUnavailable):
                st.scheduler.request(link, entity, trigger="api", by=p.actor,
                                     log_request=False, after_running=True)


def _written(st: ServiceState, response: Response, rec: Record) -> RecordOut:
    response.headers["ETag"] = etag(rec)
    return out(st, [rec])[0]


@router.post("/{entity}", response_model=RecordOut, status_code=201, responses=RESPONSES,
             summary="Create a record (records:write)")
def create_record(request: Request, response: Response, entity: Entity, body: RecordIn,
                  p: Principal = require("records:write")) -> RecordOut:
    st = state(request)
    rid = body.id or new_id()
    with st.hub.begin() as conn:
        st.hub.lock_feed(conn)  # the practice's write lock first, as every hub writer
        cur = st.hub.get(entity.value, rid, conn=conn)
        if cur is not None and not cur.deleted:
            raise HTTPException(409, f"{entity.value} {rid!r} already exists; update it with PUT")
        rec = st.hub.write(conn, [RecordWrite(entity.value, rid, body.fields, body.refs)],
                           by=p.actor)[0]
    response.headers["Location"] = f"/api/v1/records/{entity.value}/{rid}"
    _after_write(st, entity.value, p)
    return _written(st, response, rec)


def _update(st: ServiceState, entity: str, rid: str, if_match: str | None, p: Principal,
            fields: dict[str, Any], refs: dict[str, str | None], merge: bool) -> Record:
    with st.hub.begin() as conn:
        st.hub.lock_feed(conn)  # the practice's write lock first, as every hub writer
        cur = _get_or_404(st, entity, rid, conn)
        _check_match(cur, if_match)
        if merge:
            fields = {**cur.fields, **fields}
            refs = {**cur.refs, **refs}
        rec = st.hub.write(conn, [RecordWrite(entity, rid, fields, refs)], by=p.actor)[0]
    _after_write(st, entity, p)
    return rec


@router.put("/{entity}/{rid}", response_model=RecordOut, responses=RESPONSES,
            summary="Replace a record's content (records:write, If-Match required)")
def replace_record(request: Request, response: Response, entity: Entity, rid: str,
                   body: RecordPatch, if_match: str | None = Header(None),
                   p: Principal = require("records:write")) -> RecordOut:
    st = state(request)
    rec = _update(st, entity.value, rid, if_match, p, body.fields, body.refs, merge=False)
    return _written(st, response, rec)


@router.patch("/{entity}/{rid}", response_model=RecordOut, responses=RESPONSES,
              summary="Change some fields (records:write, If-Match required; null clears)")
def patch_record(request: Request, response: Response, entity: Entity, rid: str,
                 body: RecordPatch, if_match: str | None = Header(None),
                 p: Principal = require("records:write")) -> RecordOut:
    st = state(request)
    rec = _update(st, entity.value, rid, if_match, p, body.fields, body.refs, merge=True)
    return _written(st, response, rec)


@router.delete("/{entity}/{rid}", status_code=204,
               summary="Delete a record (records:write, If-Match required)")
def delete_record(request: Request, entity: Entity, rid: str, if_match: str | None = Header(None),
                  p: Principal = require("records:write")) -> Response:
    st = state(request)
    with st.hub.begin() as conn:
        st.hub.lock_feed(conn)  # the practice's write lock first, as every hub writer
        cur = _get_or_404(st, entity.value, rid, conn)
        _check_match(cur, if_match)
        st.hub.write(conn, [RecordWrite(entity.value, rid, cur.fields, cur.refs, True)], by=p.actor)
    _after_write(st, entity.value, p)
    return Response(status_code=204)


@router.post("/{entity}/{rid}/sync", response_model=SyncRequested, status_code=202,
             summary="Sync one record now with every link that carries it (sync:run)")
def sync_record(request: Request, entity: Entity, rid: str,
                p: Principal = require("sync:run")) -> SyncRequested:
    from concord.errors import LinkUnavailable
    from concord.link.status import directions

    st = state(request)
    _get_or_404(st, entity.value, rid)
    links = [n for n, cfg in st.links.items() if entity.value in directions(cfg)]
    if not links:
        raise HTTPException(409, f"no link carries {entity.value} records; nothing to sync")
    accepted, states, messages = False, [], []
    for link in links:
        try:
            o = st.scheduler.request(link, entity.value, record=rid, trigger="manual", by=p.actor,
                                     may_activate=p.has("admin"), after_running=True)
        except LinkUnavailable as exc:
            messages.append(str(exc))
            continue
        accepted |= o.accepted
        states.append(o.state)
        messages.append(f"{link}: {o.message}")
    if not states:
        raise HTTPException(409, "; ".join(messages))
    return SyncRequested(accepted=accepted, state="queued" if "queued" in states else states[0],
                         message="; ".join(messages), links=links)


def content_of(text: str | None) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A conflict side as stored (canonical JSON, or plain fields)."""
    import json

    if not text:
        return {}, {}
    doc = json.loads(text)
    if isinstance(doc, dict) and ("f" in doc or "r" in doc):
        return load_content(text)
    return (doc if isinstance(doc, dict) else {}), {}
