"""Field mapping, shape rules, value maps and filters between hub fields and a spoke's fields.

Hub fields are the canonical model's (``concord.model``). A link maps each to a spoke field
of the same shape by name, or through a declared rule (``config.FieldRule``) when the shapes
differ: a single ``email`` column is one element of the ``emails`` list, three address columns
are the parts of one address. A rule is a *lens*: ``get`` reads the spoke's view out of a hub
value, ``put`` writes an edited view back into it, keeping what the spoke cannot hold (the
second e-mail address, an address's kinds and parameters). So a narrower spoke never erases
what a wider one added, and a shape mismatch with no rule is refused when the configuration
loads, instead of writing one character per value.

A value map is a table (hub value -> spoke value). A value with no entry means "this record is
not synced" (the seed systems' rule for task statuses), so ``to_spoke``/``to_hub`` return None
for it. When several hub values map to one spoke value (Canceled and Completed both become
Completed), the way back takes the first listed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping as MappingABC
from typing import Any

from concord import model
from concord.config import EntityConfig, FieldRule, FieldTarget
from concord.errors import ConfigError
from concord.records import Fields


def _close(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {near[0]!r}? " if near else ""


def check_fields(entity: str, fields: MappingABC[str, FieldTarget], *, source: str | None = None,
                 where: str = "fields", spoke_shapes: dict[str, str] | None = None) -> None:
    """Refuse a mapping that does not fit the model: an unknown model field, a rule on a
    field of the wrong shape, or (when the spoke's shapes are known) a list field mapped to a
    single-valued spoke field with no rule, or the reverse."""
    names = list(model.field_names(entity))
    for hub, target in fields.items():
        key = f"{where}.{hub}"
        sh = model.shape(entity, hub)
        if sh is None:
            raise ConfigError(
                f"{hub!r} is not a field of the {entity} model", source=source, key=key,
                fix=f"{_close(hub, names)}use one of its fields (docs/model.md), or "
                    f"custom.{hub} for a practice-specific value")
        rules = [target] if isinstance(target, FieldRule) else (
            target if isinstance(target, list) else [])
        if not rules:
            spoke = str(target)
            kind = (spoke_shapes or {}).get(spoke)
            if kind is None:
                continue
            if sh.kind in ("list", "object") and kind not in ("list", "object", "any"):
                what = "a list" if sh.is_list else "a structured value"
                main = sh.main_key
                example = (f'{hub} = {{ field = "{spoke}" }}' if main or sh.item is None
                           else f'{hub} = {{ parts = {{ ... = "{spoke}" }} }}')
                raise ConfigError(
                    f"the spoke field {spoke!r} holds a single value, but {hub} is {what}"
                    + (f" of {sh.item.__name__}" if sh.item else " of texts"),
                    source=source, key=key,
                    fix=f"declare how they convert: {example} makes it one element; add "
                        'split = "," if it holds several separated by commas')
            if kind == "list" and sh.kind not in ("list", "custom"):
                raise ConfigError(
                    f"the spoke field {spoke!r} holds a list, but {hub} is a single {sh.kind}",
                    source=source, key=key,
                    fix=f"map {spoke!r} to a list field, or map a single-valued spoke field here")
            continue
        if sh.kind not in ("list", "object"):
            raise ConfigError(
                f"{hub} is a single {sh.kind}; a rule converts to a list or structured field",
                source=source, key=key, fix=f'map it by name: {hub} = "<spoke field>"')
        if len(rules) > 1 and any(r.split or (r.parts is None and _spoke_is_list(r, spoke_shapes))
                                  for r in rules):
            raise ConfigError(
                f"{hub}: a rule with split (or a list spoke field) holds every element, so it "
                "must be the only rule", source=source, key=key, fix="keep one rule")
        if sh.kind == "object" and (len(rules) > 1 or rules[0].split):
            raise ConfigError(f"{hub} is one structured value: one rule without split",
                              source=source, key=key, fix="keep one rule, without split")
        item_keys = set(sh.item.model_fields) if sh.item is not None else set()
        for r in rules:
            if r.parts is not None:
                if sh.item is None:
                    raise ConfigError(f"{hub} holds texts: parts do not apply", source=source,
                                      key=key, fix=f'use field = "<spoke field>" for {hub}')
                bad = [k for k in r.parts if k not in item_keys]
                if bad:
                    raise ConfigError(
                        f"{bad[0]!r} is not a part of {sh.item.__name__}", source=source,
                        key=key, fix=f"use some of: {', '.join(sorted(item_keys))}")
            if r.key is not None and r.key not in item_keys:
                raise ConfigError(
                    f"{r.key!r} is not a key of "
                    f"{sh.item.__name__ if sh.item else 'a text'}", source=source, key=key,
                    fix=f"use one of: {', '.join(sorted(item_keys)) or '(none: leave key out)'}")
            if sh.item is not None and r.parts is None and (r.key or sh.main_key) is None:
                raise ConfigError(f"{hub}: say which key of {sh.item.__name__} the spoke field "
                                  "fills", source=source, key=key,
                                  fix=f"add key = one of {', '.join(sorted(item_keys))}")
            for sf in r.spoke_fields:
                kind = (spoke_shapes or {}).get(sf)
                if kind in ("list", "object") and (r.split or r.parts is not None):
                    raise ConfigError(
                        f"the spoke field {sf!r} is a list already: split and parts do not "
                        "apply", source=source, key=key, fix=f'write {hub} = {{ field = "{sf}" }}')


def _spoke_is_list(rule: FieldRule, shapes: dict[str, str] | None) -> bool:
    return rule.field is not None and (shapes or {}).get(rule.field) == "list"


class Lens:
    """One model field of list (or structured) shape against one or more spoke fields."""

    def __init__(self, entity: str, hub: str, rules: list[FieldRule],
                 spoke_shapes: dict[str, str] | None) -> None:
        sh = model.shape(entity, hub)
        assert sh is not None
        self.rules = rules
        self.is_object = sh.kind == "object"
        self.typed = sh.item is not None
        self.key = sh.main_key
        #: one rule holding every element (split text, or a list at the spoke)
        self.whole = len(rules) == 1 and (rules[0].split is not None
                                          or _spoke_is_list(rules[0], spoke_shapes))
        #: the common rule, one spoke field filling one element's key (an ``email`` column
        #: as ``emails[0].address``): (spoke field, key, types), read without the general walk
        r0 = rules[0]
        self.single: tuple[str, str, list[str]] | None = (
            (r0.field, str(r0.key or self.key), list(r0.types or ()))
            if len(rules) == 1 and not self.whole and r0.parts is None and self.typed
            and r0.field is not None else None)

    # elements ---------------------------------------------------------------------------
    def _elements(self, value: Any) -> list[Any]:
        if value is None:
            return []
        if self.is_object:
            return [value]
        return list(value)

    def _value(self, rule: FieldRule, e: Any) -> Any:
        if not self.typed:
            return e
        return e.get(rule.key or self.key) if isinstance(e, dict) else None

    def _make(self, rule: FieldRule, v: Any) -> Any:
        if not self.typed:
            return str(v)
        e: dict[str, Any] = {rule.key or str(self.key): str(v)}
        if rule.types:
            e["types"] = list(rule.types)
        return e

    def _same(self, rule: FieldRule, h: Any, v: Any) -> bool:
        if not self.typed:
            return bool(h == v)
        if rule.parts is not None:
            return all((h or {}).get(k) == v.get(k) for k in rule.parts)
        k = rule.key or self.key
        return isinstance(h, dict) and h.get(k) == v.get(k)

    # the lens -------------------------------------------------------------------------------
    def get(self, value: Any) -> dict[str, Any]:
        """The spoke fields' values for the hub value (None: clear the spoke field)."""
        elems = self._elements(value)
        out: dict[str, Any] = {}
        if self.whole:
            r = self.rules[0]
            vals = [self._value(r, e) for e in elems]
            vals = [str(v) for v in vals if v not in (None, "")]
            assert r.field is not None
            out[r.field] = (r.split.join(vals) if r.split is not None else vals) or None
            return out
        for i, r in enumerate(self.rules):
            e = elems[i] if i < len(elems) else None
            if r.parts is not None:
                for k, sf in r.parts.items():
                    out[sf] = e.get(k) if isinstance(e, dict) else None
            else:
                assert r.field is not None
                out[r.field] = self._value(r, e) if e is not None else None
        return out

    def view(self, spoke: MappingABC[str, Any]) -> Any:
        """The hub-space value of what the spoke fields hold (None when empty)."""
        if self.single is not None:
            sf, key, types = self.single
            v = spoke.get(sf)
            if v is None or v == "":
                return None
            return _one(v, key, types, self.is_object)
        elems: list[Any] = []
        if self.whole:
            r = self.rules[0]
            assert r.field is not None
            raw = spoke.get(r.field)
            if raw is None:
                vals: list[Any] = []
            elif r.split is not None:
                vals = [x.strip() for x in str(raw).split(r.split) if x.strip()]
            elif isinstance(raw, list | tuple):
                vals = [x for x in raw if x not in (None, "")]
            else:
                vals = [raw] if raw != "" else []
            elems = [self._make(r, v) for v in vals]
        else:
            for r in self.rules:
                if r.parts is not None:
                    e: dict[str, Any] = {k: str(spoke[sf]) for k, sf in r.parts.items()
                                         if spoke.get(sf) not in (None, "")}
                    if e:
                        if r.types:
                            e["types"] = list(r.types)
                        elems.append(e)
                else:
                    assert r.field is not None
                    v = spoke.get(r.field)
                    if v not in (None, ""):
                        elems.append(self._make(r, v))
        if self.is_object:
            return elems[0] if elems else None
        return elems or None

    def put(self, current: Any, view: Any) -> Any:
        """``current`` with the spoke's ``view`` written in: unchanged elements keep what the
        spoke does not show; elements beyond the rules are kept."""
        hub = self._elements(current)
        new = self._elements(view)
        out: list[Any] = []
        if self.whole:
            r = self.rules[0]
            for v in new:
                match = next((h for h in hub if self._same(r, h, v)), None)
                out.append(match if match is not None else v)
        else:
            n = len(self.rules)
            head, used = hub[:n], set()
            for i, v in enumerate(new[:n]):
                r = self.rules[i]
                match = next((j for j, h in enumerate(head)
                              if j not in used and self._same(r, h, v)), None)
                if match is None and i < len(head) and i not in used:
                    match = i  # the same position, edited: keep what the spoke cannot show
                    h = head[i]
                    if isinstance(h, dict) and isinstance(v, dict):
                        keys = r.parts.keys() if r.parts is not None else [r.key or self.key]
                        v = {**{k: x for k, x in h.items() if k not in keys},
                             **{k: v[k] for k in keys if k in v}}
                    used.add(i)
                    out.append(v)
                    continue
                if match is not None:
                    used.add(match)
                    out.append(head[match])
                else:
                    out.append(v)
            out.extend(hub[n:])
        if self.is_object:
            return out[0] if out else None
        return out or None


class Mapping:
    def __init__(self, cfg: EntityConfig, spoke_fields: tuple[str, ...] | None,
                 ref_fields: dict[str, str], *, entity: str | None = None,
                 spoke_shapes: dict[str, str] | None = None, link: str = "") -> None:
        self.entity = entity
        self.lenses: dict[str, Lens] = {}
        plain: dict[str, str] | None
        if cfg.fields is not None:
            if entity is not None:
                check_fields(entity, cfg.fields, source=f"link {link!r}",
                             where=f"entities.{entity}.fields", spoke_shapes=spoke_shapes)
            plain = {}
            for hub, target in cfg.fields.items():
                if isinstance(target, str):
                    plain[hub] = target
                else:
                    assert entity is not None, "rules need the entity's model"
                    rules = [target] if isinstance(target, FieldRule) else list(target)
                    self.lenses[hub] = Lens(entity, hub, rules, spoke_shapes)
            if spoke_shapes and entity is not None:
                for sf, kind in spoke_shapes.items():  # the practice's custom fields travel
                    if kind == "custom" and sf not in plain.values():
                        plain[sf] = sf
        elif spoke_fields is not None:
            plain = {f: f for f in spoke_fields}
            if entity is not None:
                unknown = [f for f in spoke_fields if model.shape(entity, f) is None]
                if unknown:
                    raise ConfigError(
                        f"the spoke's fields {', '.join(map(repr, unknown[:5]))} are not fields "
                        f"of the {entity} model", source=f"link {link!r}",
                        key=f"entities.{entity}.fields",
                        fix="map them to model fields, e.g. fields = { given_name = "
                            '"first_name", emails = { field = "email" } } (docs/model.md)')
        else:
            plain = None  # every field, as is
        self.fields: dict[str, str] | None = plain
        self.refs: dict[str, str] = dict(cfg.refs if cfg.refs is not None else ref_fields)
        self.values = cfg.values
        self.reverse: dict[str, dict[str, str]] = {}
        for hf, table in cfg.values.items():
            back: dict[str, str] = {}
            for hv, sv in table.items():
                back.setdefault(sv, hv)
            self.reverse[hf] = back
        self.filter = {k: {str(x) for x in v} for k, v in cfg.filter.items()}
        self.remove_when = {k: {str(x) for x in v} for k, v in cfg.remove_when.items()}
        self._identity: frozenset[str] | None = (
            frozenset(self.fields) if self.fields is not None and not self.lenses
            and all(h == s for h, s in self.fields.items()) else None)
        # what ``to_hub`` walks for every item, worked out once: the plain fields as pairs,
        # the one-field lenses (an ``email`` column as ``emails[0].address``) read inline as
        # (hub field, spoke field, key, types, one object or a list), and the other lenses
        self._pairs = tuple(self.fields.items()) if self.fields is not None else ()
        self._singles = tuple((hub, *lens.single, lens.is_object)
                              for hub, lens in self.lenses.items() if lens.single is not None)
        self._walked = tuple((hub, lens) for hub, lens in self.lenses.items() if lens.single is None)

    # -- hub side --------------------------------------------------------------------
    def project(self, fields: Fields, refs: dict[str, Any]) -> tuple[Fields, dict[str, Any]]:
        """The part of a hub record this link carries (hub field names), as the spoke would
        show it."""
        if self.fields is None:
            f = {k: v for k, v in fields.items() if v is not None}
        else:
            f = {k: fields[k] for k in self.fields if fields.get(k) is not None}
            for hub, _sf, key, types, is_object in self._singles:  # view(get(.)), inline
                x = fields.get(hub)
                if x:
                    e = x if is_object else x[0]
                    v = e.get(key) if isinstance(e, dict) else None
                    if v is not None and v != "":
                        f[hub] = _one(v, key, types, is_object)
            for hub, lens in self._walked:
                v = lens.view(lens.get(fields.get(hub)))
                if v is not None:
                    f[hub] = v
        r = {k: refs[k] for k in self.refs if refs.get(k) is not None}
        return f, r

    def overlay(self, current: Fields, new: Fields) -> Fields:
        """A hub record's fields after writing the mapped ``new`` values into ``current``:
        fields this link does not carry are kept as they were, and a rule-mapped field keeps
        what the spoke cannot show."""
        if self.fields is None:
            return dict(new)
        if not current:  # a new record: a lens puts a view into nothing as the view itself
            return {k: v for k, v in new.items() if v is not None}
        out = {k: v for k, v in current.items() if k not in self.fields and k not in self.lenses}
        out.update({k: v for k, v in new.items() if v is not None and k not in self.lenses})
        for hub, lens in self.lenses.items():
            was, now = current.get(hub), new.get(hub)
            # the spoke shows what the hub holds (most edits leave a lens's field alone):
            # putting a value into itself gives it back (tests/unit/test_lens_property.py)
            v = was if was == now else lens.put(was, now)
            if v is not None:
                out[hub] = v
        return out

    def removed(self, hub_fields: Fields) -> bool:
        """Does the record match ``remove_when`` (to be taken off the spoke)?"""
        return any(hub_fields.get(k) is not None and str(hub_fields[k]) in vals
                   for k, vals in self.remove_when.items())

    def passes(self, hub_fields: Fields) -> bool:
        """Filters and value maps: False means this record is not synced over this link."""
        if not self._filter_ok(hub_fields) or self.removed(hub_fields):
            return False
        for hf, table in self.values.items():
            v = hub_fields.get(hf)
            if v is not None and str(v) not in table:
                return False
        return True

    def _filter_ok(self, hub_fields: Fields) -> bool:
        if not self.filter:
            return True
        return all(_allowed(hub_fields.get(k), allowed) for k, allowed in self.filter.items())

    # -- spoke side ------------------------------------------------------------------
    def to_hub(self, spoke_fields: Fields, *, record: str | None = None) -> Fields | None:
        """Spoke fields -> hub fields, checked against the model (``model.ModelError`` when
        they do not fit it); None when a value has no mapping (not synced). Codecs and lenses
        build their typed values without empty parts, so only the top level is cleaned."""
        if self.fields is None:
            out = {k: v for k, v in spoke_fields.items() if v is not None}
        elif self._identity is not None:  # same names both sides: walk the item's own fields
            names = self._identity
            out = {k: v for k, v in spoke_fields.items() if v is not None and k in names}
        else:
            out = {}
            get = spoke_fields.get
            for hf, sf in self._pairs:
                v = get(sf)
                if v is not None:
                    out[hf] = v
            for hub, sf, key, types, is_object in self._singles:  # Lens.view, inline
                v = get(sf)
                if v is not None and v != "":
                    out[hub] = _one(v, key, types, is_object)
            for hub, lens in self._walked:
                v = lens.view(spoke_fields)
                if v is not None:
                    out[hub] = v
        for hf, back in self.reverse.items():
            v = out.get(hf)
            if v is not None:
                if str(v) not in back:
                    return None
                out[hf] = back[str(v)]
        if not self._filter_ok(out):
            return None
        if self.entity is not None:
            out = model.normalize(self.entity, out, record=record, compacted=True)
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
            for hub, lens in self.lenses.items():
                out.update(lens.get(hub_fields.get(hub)))
        for hf, table in self.values.items():
            sf = self.fields.get(hf, hf) if self.fields is not None else hf
            v = out.get(sf)
            if v is not None:
                out[sf] = table[str(v)]
        return out


def _one(v: Any, key: str, types: list[str], is_object: bool) -> Any:
    """The hub value of a one-field lens (``Lens.single``) for a spoke value that is not
    empty."""
    one: dict[str, Any] = {key: v if type(v) is str else str(v)}
    if types:
        one["types"] = list(types)
    return one if is_object else [one]


def _allowed(value: Any, allowed: set[str]) -> bool:
    """A list value (categories) passes when any member is allowed."""
    if value is None:
        return False
    if isinstance(value, list | tuple):
        return any(str(x) in allowed for x in value)
    return str(value) in allowed
