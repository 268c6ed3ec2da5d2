"""Reference translation for one link: hub ids <-> the spoke's own references.

A contact's client is a hub id in the hub and a primary key, href or file name at the spoke;
the link state (archive) of the referenced entity maps one to the other. Look-ups are cached
per run and batched (one query per referenced entity for a whole chunk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from concord.connectors.base import Item
from concord.engine.decide import Content
from concord.engine.mapping import Mapping
from concord.errors import ConcordError
from concord.hub.store import Hub


class RefMissing(ConcordError):
    """A spoke item refers to a record that is not synced over this link (yet)."""


class References:
    def __init__(self, hub: Hub, link: str, entity: str, mapping: Mapping,
                 planned: dict[str, dict[str, str]] | None = None) -> None:
        self.hub, self.link, self.entity, self.map = hub, link, entity, mapping
        # a dry run writes no link state: the records it would link earlier in the same run
        # (target entity -> spoke ref -> hub id) stand in for it, so a contact whose client
        # the run would create is planned, not taken for an unresolved reference
        self.planned = planned
        self.by_ref: dict[str, dict[str, str]] = {}  # target entity -> spoke ref -> hub id
        self.by_id: dict[str, dict[str, str]] = {}  # target entity -> hub id -> spoke ref

    def look_up(self, target: str, *, refs: Sequence[str] = (), ids: Sequence[str] = ()) -> None:
        """Load the translations of ``refs`` / ``ids`` of ``target`` not cached yet."""
        by_ref = self.by_ref.setdefault(target, {})
        by_id = self.by_id.setdefault(target, {})
        need_refs = [r for r in refs if r not in by_ref]
        need_ids = [i for i in ids if i not in by_id]
        if need_refs or need_ids:
            for hub_id, spoke_ref in self.hub.linked_ids(self.link, target, hub_ids=need_ids,
                                                         spoke_refs=need_refs):
                by_ref[spoke_ref] = hub_id
                by_id[hub_id] = spoke_ref

    def remember(self, entity: str, spoke_ref: str, hub_id: str) -> None:
        self.by_ref.setdefault(entity, {})[spoke_ref] = hub_id
        self.by_id.setdefault(entity, {})[hub_id] = spoke_ref

    def forget(self, entity: str) -> None:
        self.by_ref.pop(entity, None)
        self.by_id.pop(entity, None)

    def clear(self) -> None:
        """Forget every translation (each chunk looks its own up in one query a target)."""
        self.by_ref.clear()
        self.by_id.clear()

    def to_hub(self, it: Item) -> Content | None:
        """A spoke item in hub space; None when the link does not carry it (value map,
        filter); raises RefMissing when it refers to a record the link has not synced."""
        fields = self.map.to_hub(it.fields, record=it.ref)
        if fields is None:
            return None
        refs: dict[str, Any] = {}
        for rf, target in self.map.refs.items():
            sref = it.refs.get(rf)
            if sref is None:
                continue
            key = str(sref)
            hid = self.by_ref.get(target, {}).get(key)
            if hid is None:  # not in the chunk's batched look-up: ask once
                self.look_up(target, refs=[key])
                hid = self.by_ref[target].get(key)
            if hid is None and self.planned is not None:
                hid = self.planned.get(target, {}).get(key)
            if hid is None:
                raise RefMissing(f"{it.ref}: refers to {target} {sref!r} ({rf}), which is not "
                                 f"synced over link {self.link!r} (fix: sync that {target} "
                                 "first, or correct the reference)")
            refs[rf] = hid
        return fields, refs

    def to_spoke(self, hub_id: str, c: Content) -> Item | str:
        """Hub content as an item to write at the spoke, or the reason it cannot be."""
        fields = self.map.to_spoke(c[0])
        if fields is None:
            return f"{hub_id}: not synced over this link (value map or filter)"
        refs: dict[str, str | None] = {}
        for rf, target in self.map.refs.items():
            hid = c[1].get(rf)
            if hid is None:
                continue
            self.look_up(target, ids=[str(hid)])
            sref = self.by_id[target].get(str(hid))
            if sref is None:
                return (f"{self.entity} {hub_id}: its {rf} ({target} {hid}) is not at the spoke "
                        f"of link {self.link!r} (fix: sync {target} first, or check that "
                        f"link's {target} filter)")
            refs[rf] = sref
        return Item(ref="", version="", fields=fields, refs=refs, ident=hub_id)
