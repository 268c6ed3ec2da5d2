"""Concord's configuration: one TOML file, validated by pydantic.

Errors name the file, the key and the fix. Relative paths (the hub's SQLite file, a link's
``path`` or ``sqlite:///`` url) are taken relative to the config file, so a config works from
any working directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from concord.errors import ConfigError
from concord.records import ENTITY_TYPES

Direction = Literal["pull", "push", "two-way"]
Authority = Literal["hub", "spoke", "newest"]


class FieldRule(BaseModel):
    """How a spoke field of another shape than the model's field travels (a single ``email``
    column for the ``emails`` list, three address columns for one of the ``addresses``).

    - ``field``: the spoke field. A single value there is one element of the list (rule i of
      a list of rules is element i); with ``split`` it holds every element, separated; a
      spoke field that is a list holds every element.
    - ``parts``: typed-value key -> spoke field, for one element made of several spoke
      fields (``{ street = "street", locality = "city" }``).
    - ``key``: which key of the typed value the spoke value fills (default: its main one,
      e.g. ``address`` of an e-mail, ``email`` of an attendee).
    - ``types``: the kinds an element made from this spoke field gets (``["work"]``).
    """

    model_config = ConfigDict(extra="forbid")

    field: str | None = None
    parts: dict[str, str] | None = None
    split: str | None = Field(default=None, min_length=1)
    key: str | None = None
    types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        if (self.field is None) == (self.parts is None):
            raise ValueError("give either field (one spoke field) or parts (several)")
        if self.parts is not None and self.split is not None:
            raise ValueError("split goes with field, not with parts")
        return self

    @property
    def spoke_fields(self) -> list[str]:
        return [self.field] if self.field is not None else list((self.parts or {}).values())


FieldTarget = str | FieldRule | list[FieldRule]


class EntityConfig(BaseModel):
    """How one entity type travels over a link."""

    model_config = ConfigDict(extra="forbid")

    direction: Direction = "two-way"
    authority: Authority = "hub"
    #: model field -> spoke field, or a rule converting between shapes (``FieldRule``).
    #: None: the identity over the fields the connector knows.
    fields: dict[str, FieldTarget] | None = None
    #: hub field -> {hub value: spoke value}. A value with no entry means "not synced".
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: hub field -> allowed values; a record whose value is not listed is not synced.
    filter: dict[str, list[Any]] = Field(default_factory=dict)
    #: hub field -> values for which the record is taken off the spoke while the hub keeps
    #: it (a cancelled event's appointment is deleted from the calendar).
    remove_when: dict[str, list[Any]] = Field(default_factory=dict)
    #: reference field -> entity type referenced (defaults from the connector).
    refs: dict[str, str] | None = None
    #: the delete guard: hold a plan deleting more than this share of a side...
    delete_threshold: float = Field(0.2, ge=0, le=1)
    #: ...and more than this many records.
    delete_min: int = Field(10, ge=0)


class LinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    connector: str
    options: dict[str, Any] = Field(default_factory=dict)
    entities: dict[str, EntityConfig]
    #: seconds between runs when running continuously (change notifications wake it sooner)
    interval: float = Field(1.0, gt=0)
    batch_size: int = Field(1000, ge=1, le=100_000)
    #: a first migration of 10,000 rows or more is prepared by two more processes while
    #: this one commits (engine/aside.py): about twice as fast on two cores, for about
    #: 60-90 MB more memory while it runs; false keeps it in one process
    prepare_aside: bool = True
    #: who may activate this link: the e-mail of an active administrator at the spoke
    admin: str | None = None

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, v: dict[str, EntityConfig]) -> dict[str, EntityConfig]:
        for name in v:
            if name not in ENTITY_TYPES:
                raise ValueError(f"unknown entity type {name!r}; use one of: {', '.join(ENTITY_TYPES)}")
        return dict(sorted(v.items(), key=lambda kv: ENTITY_TYPES.index(kv[0])))


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///concord.db"
    tenant: str = "default"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub: HubConfig = Field(default_factory=HubConfig)
    links: dict[str, LinkConfig] = Field(default_factory=dict)
    source: str = ""

    def link(self, name: str) -> LinkConfig:
        try:
            return self.links[name]
        except KeyError:
            known = ", ".join(self.links) or "none"
            raise ConfigError(f"no link named {name!r} (links: {known})", source=self.source,
                              fix="check the name, or add a [links.NAME] table") from None


def _resolve(value: str, base: Path) -> str:
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rel = value[len("sqlite:///"):]
        if rel and rel != ":memory:":
            return "sqlite:///" + str((base / rel).resolve())
    return value


def from_dict(data: dict[str, Any], *, source: str = "<config>", base: Path | None = None) -> Config:
    base = base or Path.cwd()
    try:
        cfg = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(err["msg"], source=source, key=key,
                          fix="see the commented example written by `concord init`") from exc
    cfg.hub.url = _resolve(cfg.hub.url, base)
    from concord.engine.mapping import check_fields

    for name, link in cfg.links.items():
        link.name = name
        for entity, ec in link.entities.items():
            # every mapped field is a field of the model, and every rule fits its shape:
            # checked now, before anything is read or written
            if ec.fields is not None:
                check_fields(entity, ec.fields, source=source,
                             where=f"links.{name}.entities.{entity}.fields")
        if link.connector == "xpm":  # its token set lives in this hub
            link.options.setdefault("hub_url", cfg.hub.url)
            link.options.setdefault("tenant", cfg.hub.tenant)
        for k, v in list(link.options.items()):
            if isinstance(v, str) and k in ("path", "url", "folder") and not (
                    k == "folder" and link.connector == "imap"):  # a mail folder's name
                if k == "url":
                    link.options[k] = _resolve(v, base)
                elif not Path(v).is_absolute():
                    link.options[k] = str((base / v).resolve())
    return cfg


def load_config(path: str | Path) -> Config:
    p = Path(path)
    if not p.exists():
        raise ConfigError("file not found", source=str(p),
                          fix="run `concord init` to write a commented example, or pass --config")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(p), fix="correct the syntax at that line") from exc
    return from_dict(data, source=str(p), base=p.parent.resolve())


EXAMPLE = '''\
# Concord configuration. Paths are relative to this file.

[hub]
# The hub: every record of the practice, with its change feed. The embedded default is a
# SQLite file; for many practices or many workers use PostgreSQL:
#   url = "postgresql://concord@db.example/concord"
url = "sqlite:///concord.db"
tenant = "default"

# A link joins the hub to one system (a "spoke"). Each entity type it carries has:
#   direction  = "two-way" | "pull" (spoke -> hub) | "push" (hub -> spoke)
#   authority  = who wins a true conflict: "hub" | "spoke" | "newest" (the loser is kept)
#   fields     = { hub_field = "spoke_field", ... }   (default: every field the spoke knows)
#   values     = { status = { "Open" = "Not Started", ... } }  (unmapped value = not synced)
#   filter     = { category = ["Practice"] }          (only these records sync)

[links.contacts]
connector = "vdir"
options = { path = "contacts" }           # a folder of .vcf files (khard, vdirsyncer layout)

[links.contacts.entities.contact]
direction = "two-way"
authority = "hub"
'''
