"""A wrong PostgreSQL password, for the practice database or the hub, is terminal: the
scheduler stops the link red with the reason instead of retrying it for ever. The real
PostgreSQL test server, with password authentication turned on for one role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from concord.config import from_dict
from concord.demo.sample import ADMIN_EMAIL, default_entities, default_mapping
from concord.hub.store import Hub
from concord.link.retry import is_terminal
from concord.link.status import link_status
from concord.service.scheduler import Scheduler
from tests.service.conftest import free_port, wait_for

pytestmark = pytest.mark.postgres
ROLE = "concord_pw"


@pytest.fixture
def password_db(pg_database: str) -> Iterator[str]:
    """``pg_database`` reached as a role that must give its password ("right")."""
    import psycopg

    admin = pg_database.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'right'")
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
        line = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
        if line not in hba.read_text():  # first, so it comes before the cluster's trust lines
            hba.write_text(line + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
    yield pg_database.replace("postgresql://postgres@", f"postgresql://{ROLE}:wrong@")


def test_a_wrong_practice_database_password_stops_the_link(password_db: str,
                                                            tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    cfg = from_dict({"hub": {"url": url}, "links": {"practice": {
        "connector": "sql", "admin": ADMIN_EMAIL, "interval": 0.05,
        "options": {"url": password_db, "mapping": default_mapping()},
        "entities": {"client": default_entities("pull", "spoke")["client"]}}}})
    hub = Hub(url)
    hub.set_link("practice", "sql", state="active")
    sched = Scheduler(hub, cfg.links, watch=False, isolate=False, backoff_first=0.2)
    sched.start()
    try:
        wait_for(lambda: (hub.link_row("practice") or {}).get("parked"),
                 what="the link to stop")
        st = link_status(hub, "practice", cfg.link("practice"))
        assert st.color == "red" and "will not fix" in st.reason, st.reason
        assert "password authentication failed" in st.reason and "wrong" not in st.reason
        assert len(hub.runs("practice")) == 1  # not retried
    finally:
        sched.stop()


def test_a_wrong_hub_password_is_terminal(password_db: str) -> None:
    with pytest.raises(Exception) as got:
        Hub(password_db).link_row("any")
    assert "password authentication failed" in str(got.value)
    assert is_terminal(got.value)
    # a server away is not: the same driver error class, another cause
    with pytest.raises(Exception) as away:
        Hub(make_url(password_db).set(port=free_port()).render_as_string(
            hide_password=False)).link_row("any")
    assert not is_terminal(away.value), away.value
