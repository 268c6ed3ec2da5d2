"""Reading practice-database rows into items, and items back into column values.

Rows are selected *untyped* (no driver-side conversion), so one malformed value (a date
column holding ``31/02/2024``, a number column holding text) fails that row alone, with a
message naming the table, key, column and fix, instead of aborting the batch. The expected
kind of each column comes from the database's own declared types.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


class BadValue(ValueError):
    def __init__(self, column: str, problem: str, fix: str) -> None:
        self.column, self.problem, self.fix = column, problem, fix
        super().__init__(f"column {column}: {problem}")


@dataclass(frozen=True, slots=True)
class Kind:
    """What a column holds, from its declared SQL type."""

    name: str  # int | number | bool | date | datetime | text
    length: int | None = None


def kind_of(sql_type: Any, default_length: int) -> Kind:
    if isinstance(sql_type, sa.Boolean):
        return Kind("bool")
    if isinstance(sql_type, sa.Integer):
        return Kind("int")
    if isinstance(sql_type, sa.Float | sa.Numeric):
        return Kind("number")
    if isinstance(sql_type, sa.DateTime):
        return Kind("datetime")
    if isinstance(sql_type, sa.Date):
        return Kind("date")
    length = getattr(sql_type, "length", None)
    return Kind("text", length if isinstance(length, int) and length > 0 else default_length)


def to_field(value: Any, kind: Kind, column: str) -> Any:
    """A column value as a plain JSON-able field value; BadValue when it is not of its kind."""
    if value is None:
        return None
    k = kind.name
    if k == "text":
        if isinstance(value, bytes):
            raise BadValue(column, "holds binary data in a text column",
                           "store text, or leave this column out of the mapping")
        text = value if isinstance(value, str) else str(value)
        if kind.length is not None and len(text) > kind.length:
            raise BadValue(column, f"is {len(text)} characters long, over the limit of {kind.length}",
                           f"shorten it to at most {kind.length} characters")
        return text
    if k == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float | decimal.Decimal) and value == int(value):
            return int(value)
        raise BadValue(column, f"holds {value!r}, not a whole number", "enter a whole number")
    if k == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            raise BadValue(column, f"holds {value!r}, not a number", "enter a number")
        return int(value) if value == int(value) else float(value)
    if k == "bool":
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise BadValue(column, f"holds {value!r}, not yes/no", "set it to 1 (yes) or 0 (no)")
    if k == "date":
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value)[:10]).isoformat() if len(str(value)) >= 10 \
                else dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise BadValue(column, f"holds {value!r}, not a date",
                           "enter the date as YYYY-MM-DD") from None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    try:
        return dt.datetime.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise BadValue(column, f"holds {value!r}, not a date and time",
                       "enter it as YYYY-MM-DD HH:MM:SS") from None


def to_column(value: Any, kind: Kind, dialect: str) -> Any:
    """A field value as the column expects it (the reverse of ``to_field``)."""
    if value is None:
        return None
    k = kind.name
    if k == "int":
        return int(value)
    if k == "number":
        return float(value)
    if k == "bool":
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if k == "date":
        d = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
        return d.isoformat() if dialect == "sqlite" else d
    if k == "datetime":
        t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return t.isoformat(sep=" ") if dialect == "sqlite" else t
    return str(value)


def check_email(value: Any, column: str) -> None:
    if value and not EMAIL.match(str(value)):
        raise BadValue(column, f"holds {value!r}, not a valid e-mail address",
                       "correct the address (name@domain.tld) or clear it")


def version_of(fields: dict[str, Any], refs: dict[str, str | None]) -> str:
    """A row's version: a hash of exactly what Concord reads from it, so any change to a
    mapped column (or custom field, or list) moves it and nothing else does."""
    return sorted_version(dict(sorted(fields.items())), dict(sorted(refs.items())))


def sorted_version(fields: dict[str, Any], refs: dict[str, str | None]) -> str:
    """``version_of`` for dicts whose keys are in sorted order already (the reader's)."""
    parts = orjson.dumps((list(fields.items()), list(refs.items())), default=str)
    return hashlib.blake2b(parts, digest_size=10).hexdigest()
