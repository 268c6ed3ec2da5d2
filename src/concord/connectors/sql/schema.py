"""The mapping resolved against the live database: tables reflected, column kinds known.

Resolution is where a mapping meets reality, so it is also where prerequisites are
checked: a missing table or column becomes one sentence naming it and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from concord.connectors.sql.options import CustomFieldMap, EntityMap, ListMap, SQLOptions
from concord.connectors.sql.rows import Kind, kind_of


@dataclass(slots=True)
class RefCol:
    column: str
    entity: str
    kind: Kind
    parent_table: str | None  # for the broken-reference check; None: target not mapped
    parent_key: str | None


@dataclass(slots=True)
class Resolved:
    entity: str
    spec: EntityMap
    table: sa.Table  # reflected (typed): used for writes
    key: str
    key_kind: Kind
    cols: dict[str, tuple[str, Kind]] = field(default_factory=dict)  # field -> (column, kind)
    refs: dict[str, RefCol] = field(default_factory=dict)
    custom: CustomFieldMap | None = None
    custom_table: sa.Table | None = None
    custom_defs: dict[str, Any] = field(default_factory=dict)  # name -> definition key
    custom_length: int | None = None
    lists: dict[str, tuple[ListMap, sa.Table]] = field(default_factory=dict)

    def key_value(self, ref: str) -> Any:
        """A ref as the key column's value; ValueError when it cannot be one."""
        return int(ref) if self.key_kind.name == "int" else ref


class Problems(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def resolve(engine: Engine, options: SQLOptions) -> dict[str, Resolved]:
    """Reflect every mapped table; raise ``Problems`` listing everything missing."""
    insp = sa.inspect(engine)
    md = sa.MetaData()
    tables: dict[str, sa.Table] = {}
    problems: list[str] = []

    def table(name: str, entity: str) -> sa.Table | None:
        if name in tables:
            return tables[name]
        if not insp.has_table(name):
            problems.append(f"table {name!r} (mapped for {entity}) does not exist in the practice "
                            f"database: correct mapping.{entity} or create the table")
            return None
        tables[name] = sa.Table(name, md, autoload_with=engine)
        return tables[name]

    def column(t: sa.Table, name: str, entity: str, what: str) -> sa.Column[Any] | None:
        if name not in t.c:
            problems.append(f"column {t.name}.{name} ({what} of {entity}) does not exist: "
                            f"correct mapping.{entity} or add the column")
            return None
        return t.c[name]

    out: dict[str, Resolved] = {}
    for entity, spec in options.mapping.items():
        t = table(spec.table, entity)
        if t is None:
            continue
        kc = column(t, spec.key, entity, "key")
        if kc is None:
            continue
        res = Resolved(entity, spec, t, spec.key, kind_of(kc.type, spec.max_length))
        for fname, cname in spec.column_map().items():
            c = column(t, cname, entity, f"field {fname!r}")
            if c is not None:
                res.cols[fname] = (cname, kind_of(c.type, spec.max_length))
        for fname, ref in spec.refs.items():
            rcol = column(t, ref.column, entity, f"reference {fname!r}")
            if rcol is None:
                continue
            target = options.mapping.get(ref.entity)
            res.refs[fname] = RefCol(ref.column, ref.entity, kind_of(rcol.type, spec.max_length),
                                     target.table if target else None, target.key if target else None)
        if options.capture == "watermark" and spec.watermark:
            column(t, spec.watermark, entity, "watermark")
        elif options.capture == "watermark":
            problems.append(f"mapping.{entity} has no watermark column, needed when capture is "
                            "'watermark': name its updated-at column in mapping.{entity}.watermark")
        if spec.custom_fields is not None:
            cf = spec.custom_fields
            ct, dt_ = table(cf.table, entity), table(cf.definitions, entity)
            if ct is not None and dt_ is not None:
                for cname, tb in ((cf.owner, ct), (cf.value, ct), (cf.definition, ct),
                                  (cf.definition_key, dt_), (cf.definition_name, dt_)):
                    column(tb, cname, entity, "custom fields")
                if cf.value in ct.c:
                    res.custom, res.custom_table = cf, ct
                    res.custom_length = kind_of(ct.c[cf.value].type, spec.max_length).length
        for fname, lm in spec.lists.items():
            lt = table(lm.table, entity)
            if lt is not None and column(lt, lm.owner, entity, f"list {fname!r}") is not None \
                    and column(lt, lm.value, entity, f"list {fname!r}") is not None:
                if lm.lookup_table:
                    lk = table(lm.lookup_table, entity)
                    if lk is not None:
                        column(lk, lm.lookup_key or "", entity, f"list {fname!r} lookup")
                        column(lk, lm.lookup_column or "", entity, f"list {fname!r} lookup")
                res.lists[fname] = (lm, lt)
        out[entity] = res
    if problems:
        raise Problems(problems)
    return out
