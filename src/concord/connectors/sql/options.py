"""Options of the practice-database link: where the database is and how its tables and
columns map to Concord's entity types and fields.

A mapping names, per entity type, the table, its key column, the columns carried as fields,
the foreign-key columns carried as references (a job's client), and optionally a custom-field
table (name/value rows pivoted onto the owner as ``custom.<name>`` fields) and list tables
(e.g. an event's attendees). Nothing here is specific to one database product.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from concord.connectors.base import ConnectorOptions

CUSTOM_PREFIX = "custom."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefMap(_Strict):
    """A foreign-key column carried as a reference to another entity type."""

    column: str
    entity: str


class CustomFieldMap(_Strict):
    """Rows ``(owner, definition, value)`` pivoted onto the owner as ``custom.<name>``."""

    table: str
    owner: str
    value: str
    definition: str
    definitions: str
    definition_key: str
    definition_name: str


class ListMap(_Strict):
    """Rows ``(owner, value)`` carried as a sorted list field; ``lookup`` renders the value
    through another table (e.g. a staff id as the staff member's e-mail)."""

    table: str
    owner: str
    value: str
    lookup_table: str | None = None
    lookup_key: str | None = None
    lookup_column: str | None = None


class EntityMap(_Strict):
    table: str
    key: str
    columns: list[str] | dict[str, str] = Field(default_factory=list)
    refs: dict[str, RefMap] = Field(default_factory=dict)
    emails: list[str] = Field(default_factory=list)
    custom_fields: CustomFieldMap | None = None
    lists: dict[str, ListMap] = Field(default_factory=dict)
    watermark: str | None = None  # updated-at column, for the read-only fallback
    max_length: int = 4000  # for text columns with no declared length

    def column_map(self) -> dict[str, str]:
        """field -> column."""
        if isinstance(self.columns, dict):
            return dict(self.columns)
        return {c: c for c in self.columns}


class AdminCheck(_Strict):
    """How to tell that the configured admin contact is an active administrator."""

    entity: str = "staff"
    email: str = "email"
    active: str = "active"
    role: str = "role"
    admin_roles: list[str] = Field(default_factory=lambda: ["admin", "administrator", "superuser"])


class SQLOptions(ConnectorOptions):
    url: SecretStr
    mapping: dict[str, EntityMap]
    capture: Literal["triggers", "watermark"] = "triggers"
    read_only: bool = False
    admin_email: str | None = None
    admin: AdminCheck = Field(default_factory=AdminCheck)
    #: seconds between wake-up polls where the database has no notification: SQLite's
    #: ``PRAGMA data_version`` (a read of the file header: 0.02 s by default, so a change
    #: waits 10 ms on average before it is read), another database's changelog head
    #: (a query: 0.1 s by default); PostgreSQL is woken by NOTIFY and does not poll
    poll_interval: float | None = Field(default=None, gt=0)
    #: drop changelog entries once a committed checkpoint covers them (turn off when two
    #: links read the same practice database)
    prune_changelog: bool = True

    @field_validator("mapping")
    @classmethod
    def _known_entities(cls, value: dict[str, EntityMap]) -> dict[str, EntityMap]:
        from concord.records import ENTITY_ORDER

        for name in value:
            if name not in ENTITY_ORDER:
                raise ValueError(f"unknown entity type {name!r} in mapping")
        return value


def sql_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver Concord ships with)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
