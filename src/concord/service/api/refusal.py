"""The API's answer to a write whose fields do not fit the entity's model: 422, field by field.

The hub validates every write (``model.ModelError``); the API turns that into the same body
FastAPI gives a malformed request, so a client reads one shape for every 422: ``detail`` is
a list of problems, each naming where (``loc``, and ``field`` as a model path such as
``emails.0.address``) and what to send instead (``msg`` ends with the fix). ``message`` is
the whole refusal in one sentence.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from concord.model import CUSTOM_PREFIX, MODELS, ModelError, field_names, shape

#: Field names of older Concord versions (and of practice databases), and the model field
#: that holds the same content now.
FORMER_NAMES = {
    "first_name": "given_name", "last_name": "family_name", "email": "emails",
    "email_address": "emails", "phone": "phones", "mobile": "phones", "fax": "phones",
    "address": "addresses", "address_street": "addresses", "street": "addresses",
    "city": "addresses", "postcode": "addresses", "url": "urls", "website": "urls",
    "tags": "categories", "position": "title", "company": "org", "notes": "note",
    "title": "summary", "subject": "summary", "starts_at": "start", "ends_at": "end",
}


class Problem(BaseModel):
    loc: list[str | int] = Field(description="where: body, fields, then the model field")
    msg: str = Field(description="what is wrong, and the fix")
    type: str = Field(description="'model' for a field the entity's model refuses")
    field: str | None = Field(None, description="the model field, as a path (emails.0.address)")


class Refusal(BaseModel):
    """422: the request does not fit; every problem names its field and the fix."""

    detail: list[Problem]
    message: str | None = Field(None, description="the whole refusal in one sentence, with the "
                                                  "fix (for fields the model refuses)")
    entity: str | None = None
    record: str | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Refusal, "description": "The body is malformed, or its fields do not fit the "
                                           "entity's model (docs/model.md): each problem names "
                                           "the field and the fix; nothing was written"},
}


def _is_value_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _inner(annotation: Any) -> Any:
    """The model class inside ``X | None``, ``list[X]``, ``dict[str, X]``; else the type."""
    if _is_value_model(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner(arg)
        if _is_value_model(found):
            return found
    return annotation


def _owner(entity: str, parts: list[str]) -> type[BaseModel] | None:
    """The model class that holds the last part of a nested path (emails.0.adress: the
    EmailAddress); None when the path leaves the typed values."""
    cur: Any = MODELS.get(entity)
    for part in parts[:-1]:
        if (part.isascii() and part.isdigit()) or not _is_value_model(cur):
            continue
        f = cur.model_fields.get(part)
        if f is None:
            return None
        cur = _inner(f.annotation)
    return cur if _is_value_model(cur) else None


def _what(entity: str, top: str) -> str | None:
    """What field ``top`` holds, as an example of what to send."""
    sh = shape(entity, top)
    if sh is None:
        return None
    if sh.kind == "custom":
        return (f'send {top} as one value: text, a number, a date as text ("2026-03-01") or '
                f"true/false")
    item = sh.item
    if item is None and sh.kind in ("list", "object"):  # a model that is not a Value
        found = _inner(MODELS[entity].model_fields[top].annotation)
        item = found if _is_value_model(found) else None
    if sh.kind == "list" and item is not None:
        required = [n for n, f in item.model_fields.items() if f.is_required()]
        key = sh.main_key or (required or list(item.model_fields))[0]
        return f'{top} is a list of {item.__name__} objects, e.g. [{{"{key}": "…"}}]'
    if sh.kind == "list":
        return f'{top} is a list of text, e.g. ["…"]'
    if sh.kind == "object" and item is not None:
        return f"{top} is a {item.__name__} object"
    return {"text": f'{top} is text, e.g. "…"', "int": f"{top} is a whole number",
            "number": f"{top} is a number", "bool": f"{top} is true or false"}.get(
        sh.kind, f"{top} is {sh.kind}")


def _unknown(entity: str, name: str) -> str:
    """The fix for a field the model does not have: the field meant, or a custom field."""
    names = field_names(entity)
    meant = FORMER_NAMES.get(name)
    if meant not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        meant = close[0] if close else None
    hint = f"did you mean {meant!r}? {_what(entity, meant)}; " if meant else ""
    return (f"{name!r} is not a field of the {entity} model (fix: {hint}send one of its fields "
            f"(docs/model.md), or {CUSTOM_PREFIX}{name} for a practice-specific value)")


def problem(entity: str, key: str, msg: str) -> Problem:
    """One problem of a ModelError, with the fix for that field."""
    # A custom field's name may hold dots; it is one scalar, so its key is the whole path.
    parts = [key] if key.startswith(CUSTOM_PREFIX) else key.split(".") if key else []
    loc: list[str | int] = ["body", "fields", *(int(p) if p.isascii() and p.isdigit() else p for p in parts)]
    top = parts[0] if parts else ""
    if top and shape(entity, top) is None:
        text = _unknown(entity, top)
    elif len(parts) > 1 and msg.startswith("is not a field of the"):
        # A misspelt key inside a typed value (emails.0.adress): name that value's keys.
        owner = _owner(entity, parts)
        keys = ", ".join(sorted(owner.model_fields, key=lambda n: not owner.model_fields[n]
                                .is_required())) if owner is not None else ""
        name = owner.__name__ if owner is not None else "this value"
        text = (f"{parts[-1]!r} is not a key of {name} (fix: use its keys"
                f"{': ' + keys if keys else ''})")
    else:
        what = _what(entity, top) if top else None
        text = f"{msg} (fix: {what})" if what else msg
    return Problem(loc=loc, msg=text, type="model", field=key or None)


def refusal(exc: ModelError) -> Refusal:
    return Refusal(detail=[problem(exc.entity, k, m) for k, m in exc.problems],
                   message=str(exc), entity=exc.entity, record=exc.record)


async def model_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Fields that do not fit the model: 422 naming each field and its fix, never a 500."""
    assert isinstance(exc, ModelError)
    return JSONResponse(refusal(exc).model_dump(), status_code=422)
