"""Conflicts: list them, and resolve one by choosing a side or giving merged values.

The resolution is written to the hub (from there to every linked system) and the conflict
row is marked resolved in the same transaction, so a resolution is never half applied.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, model_validator

from concord.service.api.records import FieldValue, _check_values, content_of
from concord.service.api.refusal import RESPONSES
from concord.service.auth import Principal
from concord.service.deps import ServiceState, require, state

router = APIRouter(prefix="/api/v1/conflicts", tags=["conflicts"])

ConflictId = Annotated[int, Path(ge=1, le=2**62, description="the conflict's id")]


class ConflictOut(BaseModel):
    id: int
    link: str
    entity: str
    hub_id: str
    kind: str
    fields: list[str]
    winner: str
    hub: dict[str, Any] = Field(description="the hub side's fields")
    spoke: dict[str, Any] = Field(description="the spoke side's fields")
    base: dict[str, Any] = Field(description="the fields last synced (common ancestor)")
    kept: Any
    at: float
    resolved_at: float | None
    resolved_by: str | None
    resolution: str | None


class Resolution(BaseModel):
    choose: Literal["hub", "spoke"] | None = Field(None, description="keep this side's content")
    fields: dict[str, FieldValue] | None = Field(None, description=(
        "merged field values in the canonical model (docs/model.md); null clears a field"))

    @model_validator(mode="after")
    def one_of(self) -> Resolution:
        if (self.choose is None) == (self.fields is None):
            raise ValueError("give exactly one of 'choose' (hub or spoke) or 'fields'")
        for k, v in (self.fields or {}).items():
            _check_values(v, f"fields.{k}")
        return self


def conflict_out(row: dict[str, Any]) -> ConflictOut:
    def js(text: str | None) -> Any:
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text
    names = js(row.get("fields"))
    return ConflictOut(
        id=row["id"], link=row["link"], entity=row["entity"], hub_id=row["hub_id"],
        kind=row["kind"], fields=list(names) if isinstance(names, list) else [],
        winner=row["winner"], hub=content_of(row.get("hub_content"))[0],
        spoke=content_of(row.get("spoke_content"))[0], base=content_of(row.get("base_content"))[0],
        kept=js(row.get("kept")), at=row["at"], resolved_at=row.get("resolved_at"),
        resolved_by=row.get("resolved_by"), resolution=row.get("resolution"))


def _row(st: ServiceState, cid: int) -> dict[str, Any]:
    row = st.hub.conflict(cid)
    if row is None:
        raise HTTPException(404, f"no conflict {cid}")
    return row


def load(st: ServiceState, cid: int) -> ConflictOut:
    """One conflict of this practice (404 when there is none)."""
    return conflict_out(_row(st, cid))


@router.get("", response_model=list[ConflictOut], summary="Conflicts (records:read)")
def list_conflicts(request: Request, open_only: bool = True, link: str | None = None,
                   limit: int = Query(100, ge=1, le=1000),
                   _p: Principal = require("records:read")) -> list[ConflictOut]:
    rows = state(request).hub.conflicts(open_only=open_only, link=link, limit=limit)
    return [conflict_out(r) for r in rows]


@router.get("/{cid}", response_model=ConflictOut, summary="One conflict (records:read)")
def get_conflict(request: Request, cid: ConflictId, _p: Principal = require("records:read")) -> ConflictOut:
    return conflict_out(_row(state(request), cid))


def resolve(st: ServiceState, cid: int, res: Resolution, p: Principal) -> ConflictOut:
    """Keep a side (the run's winner stands, or the loser's kept values are written back)
    or write merged values; then queue a sync so every linked system receives it."""
    from concord.errors import ConcordError
    from concord.link.resolve import resolve_conflict

    row = _row(st, cid)
    if row.get("resolved_at"):
        raise HTTPException(409, f"conflict {cid} was already resolved by {row['resolved_by']}")
    if res.choose is not None:
        take = "winner" if row["winner"] == res.choose else "loser"
        values = None
    else:
        take, values = "merged", dict(res.fields or {})
    try:
        resolve_conflict(st.hub, cid, take=take, by=p.actor, values=values)
    except ConcordError as exc:
        raise HTTPException(409, str(exc)) from exc
    if st.push_on_write and row["link"] in st.links:
        # A paused link sends it when resumed; the hub already holds it.
        with contextlib.suppress(ConcordError):
            st.scheduler.request(row["link"], row["entity"], trigger="api", by=p.actor,
                                 log_request=False, after_running=True)
    return conflict_out(_row(st, cid))


@router.post("/{cid}/resolve", response_model=ConflictOut, responses=RESPONSES,
             summary="Resolve a conflict by choosing a side or giving merged values "
                     "(records:write)")
def resolve_conflict(request: Request, cid: ConflictId, body: Resolution,
                     p: Principal = require("records:write")) -> ConflictOut:
    return resolve(state(request), cid, body, p)
