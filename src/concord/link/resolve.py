"""Resolving a conflict: keep the winner, restore the loser's values, or give merged values."""

from __future__ import annotations

import json
from typing import Any

from concord.errors import ConcordError
from concord.hub.store import Hub, RecordWrite


def resolve_conflict(hub: Hub, cid: int, *, take: str = "winner", by: str = "",
                     values: dict[str, Any] | None = None) -> str:
    """``take``: 'winner' (the result stands), 'loser' (write the kept values back into the
    hub), or 'merged' (write ``values``). The next sync carries hub changes to every link."""
    if take not in ("winner", "loser", "merged"):
        raise ConcordError(f"take must be winner, loser or merged, not {take!r}")
    with hub.begin() as conn:
        row = hub.conflict(cid, conn=conn)
        if row is None:
            raise ConcordError(f"no conflict with id {cid} (see `concord conflicts`)")
        if row["resolved_at"] is not None:
            raise ConcordError(f"conflict {cid} was already resolved ({row['resolution']})")
        if take == "winner":
            hub.resolve_conflict_row(conn, cid, by, "kept the winner")
            return f"conflict {cid}: kept the winner"
        kept = json.loads(row["kept"]) if take == "loser" else dict(values or {})
        hub.lock_feed(conn)
        rec = hub.get(row["entity"], row["hub_id"], conn=conn)
        fields = dict(rec.fields) if rec is not None else {}
        refs = dict(rec.refs) if rec is not None else {}
        for k, v in kept.items():
            if k == "deleted_at":
                continue
            target = refs if k.startswith("@") else fields
            key = k[1:] if k.startswith("@") else k
            if v is None:
                target.pop(key, None)
            else:
                target[key] = v
        hub.write(conn, [RecordWrite(row["entity"], row["hub_id"], fields, refs)], by=f"resolve:{by}")
        hub.resolve_conflict_row(conn, cid, by, f"took the {take} values")
    hub.log_activity(by or "cli", "resolve conflict", link=row["link"], entity=row["entity"],
                     detail=f"conflict {cid}: {take}", outcome="ok")
    return f"conflict {cid}: wrote the {take} values into the hub; the next sync carries them"
