"""Concord's canonical model: one typed model per entity type (``entities.py``) made of typed
values (``values.py``), and the functions the rest of Concord uses to check and describe it.

- ``normalize(entity, fields)``: validate a record's fields against its model and return
  the stored form (types lower case, empty parts left out); ``ModelError`` names the field
  and the fix. The engine normalizes what it reads from a spoke; the hub refuses a write
  that does not validate.
- ``shape(entity, field)``: what a field holds (``text``, ``list``, ``object``…), used to
  check a link's mapping when its configuration loads.

See ``docs/model.md`` for one table per entity type and how each connector maps it.
"""

from __future__ import annotations

import types as _types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, NotRequired, Required, cast

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11

from concord.model.entities import MODELS, Entity, EventOverride
from concord.model.values import (
    Address,
    Attachment,
    Attendee,
    EmailAddress,
    Extras,
    Mailbox,
    Phone,
    Prop,
    Recurrence,
    Uri,
    Value,
)

__all__ = [
    "CUSTOM_PREFIX",
    "MODELS",
    "Address",
    "Attachment",
    "Attendee",
    "EmailAddress",
    "Entity",
    "EventOverride",
    "Extras",
    "FieldShape",
    "Mailbox",
    "ModelError",
    "Phone",
    "Prop",
    "Recurrence",
    "Uri",
    "compact",
    "field_names",
    "normalize",
    "shape",
    "written_uid",
]

CUSTOM_PREFIX = "custom."

#: The key of a typed list item that a single text value fills (an ``email`` column holds
#: an ``EmailAddress.address``).
MAIN_KEY: dict[type[Value], str] = {
    EmailAddress: "address", Phone: "number", Uri: "value", Attendee: "email",
    Mailbox: "address", Address: "street",
}


class ModelError(ValueError):
    """Fields that do not fit the entity's model; the message names the field and the fix."""

    def __init__(self, entity: str, problems: list[tuple[str, str]], *, record: str | None = None
                 ) -> None:
        self.entity, self.problems, self.record = entity, problems, record
        who = f"{entity} {record}" if record else entity
        text = "; ".join(f"field {key!r}: {msg}" for key, msg in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{who}: {text}{more} (fix: correct the value at its source, or map "
                         "the field to the right model field; see docs/model.md)")


@dataclass(frozen=True, slots=True)
class FieldShape:
    """What one field of the model holds."""

    kind: str  # text | int | number | bool | list | object | custom
    item: type[Value] | None = None  # for list/object: the typed value (None: plain text)

    @property
    def is_list(self) -> bool:
        return self.kind == "list"

    @property
    def main_key(self) -> str | None:
        return MAIN_KEY.get(self.item) if self.item is not None else None


def _shape_of(annotation: Any) -> FieldShape:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, _types.UnionType) and len(args) == 1:
        return _shape_of(args[0])
    if origin is list:
        inner = typing.get_args(annotation)[0]
        return FieldShape("list", inner if isinstance(inner, type) and issubclass(inner, Value)
                          else None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return FieldShape("object", annotation if issubclass(annotation, Value) else None)
    name = {str: "text", int: "int", float: "number", bool: "bool"}.get(annotation, "text")
    return FieldShape(name)


@cache
def _shapes(entity: str) -> dict[str, FieldShape]:
    model = MODELS[entity]
    return {name: _shape_of(f.annotation) for name, f in model.model_fields.items()}


def field_names(entity: str) -> tuple[str, ...]:
    """The model's named fields of ``entity`` (without ``custom.*``)."""
    return tuple(_shapes(entity))


def shape(entity: str, name: str) -> FieldShape | None:
    """The shape of ``entity``'s field ``name``; None when the model has no such field."""
    if name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX):
        return FieldShape("custom")
    return _shapes(entity).get(name)


@cache
def _typed_dict(model: type[BaseModel], top: bool = False) -> Any:
    """The model as a TypedDict with the same fields, types and constraints: pydantic-core
    validates a dict against it without building model instances (on the hot path of every
    record read from a spoke). ``top``: the entity itself, whose ``None`` values ``normalize``
    leaves out before validating, so its optional fields are declared without ``None``
    (pydantic-core's nullable check costs more than the string check it wraps: 8 µs against
    4 µs for a typical client)."""
    fields: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        ann = _as_dicts(_without_none(f.annotation) if top else f.annotation)
        if f.metadata:
            ann = Annotated[(ann, *f.metadata)]
        fields[name] = Required[ann] if f.is_required() else NotRequired[ann]
    td: Any = cast(Any, TypedDict)(model.__name__, fields)
    td.__pydantic_config__ = ConfigDict(extra="forbid")
    return td


def _without_none(annotation: Any) -> Any:
    """``X | None`` as ``X`` (other annotations as they are)."""
    if typing.get_origin(annotation) in (typing.Union, _types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        if len(args) == 1:
            return args[0]
    return annotation


def _as_dicts(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _typed_dict(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    generic: Any = {list: list, dict: dict}.get(origin) if origin in (list, dict) else (
        typing.Union if origin in (typing.Union, _types.UnionType) else None)
    if generic is None:
        return annotation
    if origin is dict:
        return generic[args[0], _as_dicts(args[1])]
    return generic[tuple(_as_dicts(a) for a in args)] if origin is not list else generic[
        _as_dicts(args[0])]


@cache
def _validator(entity: str) -> Any:
    return TypeAdapter(_typed_dict(MODELS[entity], top=True)).validator


@cache
def _names(entity: str) -> frozenset[str]:
    return frozenset(MODELS[entity].model_fields)


def compact(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with empty parts (None, [], {}) left out, recursively. On the hot path (every
    record read from a spoke), so it dispatches on exact types."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        t = type(v)
        if v is None:
            continue
        if t is dict:
            v = compact(v)
            if not v:
                continue
        elif t is list:
            if not v:
                continue
            v = _compact_list(v)
            if not v:
                continue
        out[k] = v
    return out


def _compact_list(items: list[Any]) -> list[Any]:
    out = []
    for v in items:
        if v is None:
            continue
        t = type(v)
        if t is dict:
            v = compact(v)
            if not v:
                continue
        elif t is list:
            v = _compact_list(v)
        out.append(v)
    return out


_SCALARS = (str, int, float, bool)


def normalize(entity: str, fields: dict[str, Any], *, record: str | None = None,
              compacted: bool = False) -> dict[str, Any]:
    """``fields`` validated against ``entity``'s model, in stored form; ModelError if not.
    ``compacted``: the values hold no empty parts already (codec output), so only the top
    level is cleaned (the full walk costs as much as the validation)."""
    if compacted and all(fields.values()) and fields.keys() <= _names(entity):
        # the common case, told by whole-dict checks: model fields only, none empty
        try:
            _validator(entity).validate_python(fields, strict=True)
            return fields
        except ValidationError:
            pass  # the full walk below names every problem
    named: dict[str, Any] = {}
    custom: dict[str, Any] | None = None
    problems: list[tuple[str, str]] = []
    empty = False  # an empty list or dict among the named values (left out after validation)
    for k, v in fields.items():
        if v is None:
            continue
        if k.startswith(CUSTOM_PREFIX):
            if not isinstance(v, _SCALARS):
                problems.append((k, f"a custom field holds one text, number, date or yes/no "
                                    f"value, not {type(v).__name__}"))
            if custom is None:
                custom = {}
            custom[k] = v
        else:
            named[k] = v
            if not v and isinstance(v, list | dict):
                empty = True
    try:
        # validation only: the model transforms nothing, so the input is the stored form
        _validator(entity).validate_python(named, strict=True)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                msg = (f"is not a field of the {entity} model (use one of its fields, or "
                       f"custom.{loc} for a practice-specific value)")
            elif err["type"] == "extra_forbidden":
                top = shape(entity, str(err["loc"][0]))
                item = top.item if top is not None else None
                keys = ", ".join(item.model_fields) if item is not None and len(
                    err["loc"]) <= 3 else ""
                msg = (f"is not a key of {item.__name__ if keys and item else 'this value'}"
                       + (f" (its keys: {keys})" if keys else ""))
            problems.append((loc, msg))
    if problems:
        raise ModelError(entity, problems, record=record)
    if not compacted:
        out = compact(named)
    elif empty:
        out = {k: v for k, v in named.items() if v or not isinstance(v, list | dict)}
    else:
        out = named
    if custom:
        out.update(custom)
    return out


def written_uid(fields: dict[str, Any], ident: str) -> str:
    """The UID a writer gives a record: the source's own ``uid`` when the hub id could not be
    it, else the hub id (``ident``), in the ``urn:uuid:`` form when the source wrote it so."""
    uid = str(fields.get("uid") or ident)
    forms = (fields.get("extras") or {}).get("forms") or {}
    if uid and forms.get("UID") == "urn:uuid" and not uid.lower().startswith("urn:"):
        return f"urn:uuid:{uid}"
    return uid
