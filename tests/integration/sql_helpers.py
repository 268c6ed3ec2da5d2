"""Shared set-up for the practice-database link tests: a sample practice database, a hub
in a temporary SQLite file, and the link configuration a user would write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from concord.config import LinkConfig
from concord.connectors.sql import SQLConnector, SQLOptions
from concord.connectors.sql.options import sql_url
from concord.demo.sample import (
    ADMIN_EMAIL,
    create_sample,
    default_entities,
    default_mapping,
)
from concord.hub.store import Hub
from concord.link.activation import activate

ENTITY_TABLES = {e: m["table"] for e, m in default_mapping().items()}


def link_config(url: str, *, batch: int = 500, direction: str = "pull") -> LinkConfig:
    return LinkConfig(
        name="practice", connector="sql", batch_size=batch, admin=ADMIN_EMAIL,
        options={"url": url, "mapping": default_mapping()},
        entities=default_entities(direction=direction, authority="spoke"),
    )


def connector(link: LinkConfig) -> SQLConnector:
    return SQLConnector(SQLOptions.model_validate(link.options), link=link.name)


def practice(url: str, tmp: Path, clients: int = 200, *, batch: int = 500,
             activated: bool = True) -> tuple[LinkConfig, Hub]:
    create_sample(url, clients_n=clients)
    link = link_config(url, batch=batch)
    hub = Hub(f"sqlite:///{tmp / 'hub.db'}")
    if activated:
        activate(hub, link, by=ADMIN_EMAIL)
    return link, hub


def db_exec(url: str, sql: str, **params: Any) -> None:
    engine = sa.create_engine(sql_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def db_rows(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(sql_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def table_count(url: str, table: str) -> int:
    return int(db_rows(url, f"SELECT count(*) FROM {table}")[0][0])


def hub_live(hub: Hub, entity: str) -> int:
    return hub.count(entity)


def assert_mirrors(url: str, link: LinkConfig, hub: Hub) -> None:
    """Every practice row is in the hub exactly once, with no extra live records, and the
    link state maps each row key to its own hub record."""
    for entity, table in ENTITY_TABLES.items():
        rows = table_count(url, table)
        quarantined = len([q for q in hub.quarantined(link.name) if q["entity"] == entity])
        assert hub_live(hub, entity) == rows - quarantined, entity
        arch = hub.archive(link.name, entity)
        refs = [a.spoke_ref for a in arch.values()]
        assert len(refs) == len(set(refs)), f"{entity}: a row linked twice"
