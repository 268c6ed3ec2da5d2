"""The hub's Alembic migrations: a hub created by an older Concord upgrades in place."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from concord.hub.migrations import upgrade
from concord.hub.store import Hub, make_engine


def test_a_hub_at_revision_0001_upgrades_and_keeps_its_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    assert {"intents", "exclusions"}.isdisjoint(inspect(engine).get_table_names())
    hub = Hub(url, migrate=False, engine=engine)
    with engine.begin() as conn:  # what an older Concord wrote
        from concord.hub import schema as s

        conn.execute(s.tenants.insert().values(id="default", last_seq=0, created_at=0.0))
    hub.put("client", "c1", {"name": "Acme"})
    upgraded = Hub(url)  # opening it runs the newer migrations
    assert {"intents", "exclusions"} <= set(inspect(upgraded.engine).get_table_names())
    got = upgraded.get("client", "c1")
    assert got is not None and got.fields == {"name": "Acme"}
    assert not upgraded.has_intents("office", "client")


def test_a_hub_at_revision_0002_gains_the_exclusions_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0002")
    assert "exclusions" not in inspect(engine).get_table_names()
    upgraded = Hub(url)
    insp = inspect(upgraded.engine)
    assert "exclusions" in insp.get_table_names()
    assert {"ix_exclusions_selection"} <= {i["name"] for i in insp.get_indexes("exclusions")}
    assert not upgraded.has_exclusions("office", "task")


def test_a_hub_at_revision_0005_gains_the_token_and_ident_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0005")
    assert {"oauth_tokens", "spoke_idents"}.isdisjoint(inspect(engine).get_table_names())
    upgraded = Hub(url)
    insp = inspect(upgraded.engine)
    assert {"oauth_tokens", "spoke_idents"} <= set(insp.get_table_names())
    assert [c["name"] for c in insp.get_pk_constraint("oauth_tokens")["constrained_columns"] and
            insp.get_columns("oauth_tokens")][:2] == ["tenant", "provider"]
    assert {"ix_spoke_idents_ref"} <= {i["name"] for i in insp.get_indexes("spoke_idents")}


def test_a_hub_at_revision_0008_gains_the_spoke_left_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0008")
    assert "spoke_left" not in inspect(engine).get_table_names()
    upgraded = Hub(url)
    insp = inspect(upgraded.engine)
    assert insp.get_pk_constraint("spoke_left")["constrained_columns"] == [
        "tenant", "link", "entity", "ref"]
    assert upgraded.spoke_left("office", "task") == {}
    assert upgraded.entity_flags("office", "task")[4] is False


def test_the_migrations_build_the_schema_the_code_declares(tmp_path: Path) -> None:
    """Alembic's comparison of a hub built by the migrations with ``hub/schema.py`` finds
    nothing: no table, column, index or constraint one has that the other lacks."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from concord.hub import schema as s

    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), s.metadata)
    assert [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table"
                                    and d[1].name == "alembic_version")] == []
