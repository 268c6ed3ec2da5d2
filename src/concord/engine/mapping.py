"""Field mapping, value maps and filters between hub fields and a spoke's fields.

A value map is a table (hub value -> spoke value). A value with no entry means "this record is
not synced" (the seed systems' rule for task statuses), so ``to_spoke``/``to_hub`` return None
for it. When several hub values map to one spoke value (Canceled and Completed both become
Completed), the way back takes the first listed.
"""

from __future__ import annotations

from typing import Any

from concord.config import EntityConfig
from concord.records import Fields


class Mapping:
    def __init__(self, cfg: EntityConfig, spoke_fields: tuple[str, ...] | None,
                 ref_fields: dict[str, str]) -> None:
        if cfg.fields is not None:
            self.fields: dict[str, str] | None = dict(cfg.fields)
        elif spoke_fields is not None:
            self.fields = {f: f for f in spoke_fields}
        else:
            self.fields = None  # every field, as is
        self.refs: dict[str, str] = dict(cfg.refs if cfg.refs is not None else ref_fields)
        self.values = cfg.values
        self.reverse: dict[str, dict[str, str]] = {}
        for hf, table in cfg.values.items():
            back: dict[str, str] = {}
            for hv, sv in table.items():
                back.setdefault(sv, hv)
            self.reverse[hf] = back
        self.filter = {k: {str(x) for x in v} for k, v in cfg.filter.items()}
        self.hub_names: frozenset[str] | None = (
            frozenset(self.fields) if self.fields is not None else None)

    # -- hub side --------------------------------------------------------------------
    def project(self, fields: Fields, refs: dict[str, Any]) -> tuple[Fields, dict[str, Any]]:
        """The part of a hub record this link carries (hub field names)."""
        if self.fields is None:
            f = {k: v for k, v in fields.items() if v is not None}
        else:
            f = {k: fields[k] for k in self.fields if fields.get(k) is not None}
        r = {k: refs[k] for k in self.refs if refs.get(k) is not None}
        return f, r

    def overlay(self, current: Fields, new: Fields) -> Fields:
        """A hub record's fields after writing the mapped ``new`` values into ``current``:
        fields this link does not carry are kept as they were."""
        if self.fields is None:
            return dict(new)
        out = {k: v for k, v in current.items() if k not in self.fields}
        out.update({k: v for k, v in new.items() if v is not None})
        return out

    def passes(self, hub_fields: Fields) -> bool:
        """Filters and value maps: False means this record is not synced over this link."""
        if not self._filter_ok(hub_fields):
            return False
        for hf, table in self.values.items():
            v = hub_fields.get(hf)
            if v is not None and str(v) not in table:
                return False
        return True

    def _filter_ok(self, hub_fields: Fields) -> bool:
        return all(_allowed(hub_fields.get(k), allowed) for k, allowed in self.filter.items())

    # -- spoke side ------------------------------------------------------------------
    def to_hub(self, spoke_fields: Fields) -> Fields | None:
        """Spoke fields -> hub fields; None when a value has no mapping (not synced)."""
        if self.fields is None:
            out = {k: v for k, v in spoke_fields.items() if v is not None}
        else:
            out = {}
            for hf, sf in self.fields.items():
                v = spoke_fields.get(sf)
                if v is not None:
                    out[hf] = v
        for hf, back in self.reverse.items():
            v = out.get(hf)
            if v is not None:
                if str(v) not in back:
                    return None
                out[hf] = back[str(v)]
        if not self._filter_ok(out):
            return None
        return out

    def settle(self, spoke_fields_as_hub: Fields, base: Fields) -> Fields:
        """Where several hub values share one spoke value, keep the value last synced if
        it still maps to what the spoke holds: a Canceled task the groupware shows as
        Completed stays Canceled, instead of turning into the first value listed."""
        out = spoke_fields_as_hub
        for hf, table in self.values.items():
            v, b = out.get(hf), base.get(hf)
            if (v is not None and b is not None and v != b and str(b) in table
                    and table.get(str(b)) == table.get(str(v))):
                out = {**out, hf: b}
        return out

    def to_spoke(self, hub_fields: Fields) -> Fields | None:
        if not self.passes(hub_fields):
            return None
        out: Fields = {}
        if self.fields is None:
            out = dict(hub_fields)
        else:
            # every mapped field is present (None when empty): a spoke rewrites exactly these
            # and keeps everything else it holds
            for hf, sf in self.fields.items():
                out[sf] = hub_fields.get(hf)
        for hf, table in self.values.items():
            sf = self.fields.get(hf, hf) if self.fields is not None else hf
            v = out.get(sf)
            if v is not None:
                out[sf] = table[str(v)]
        return out


def _allowed(value: Any, allowed: set[str]) -> bool:
    """A list value (categories) passes when any member is allowed."""
    if value is None:
        return False
    if isinstance(value, list | tuple):
        return any(str(x) in allowed for x in value)
    return str(value) in allowed
