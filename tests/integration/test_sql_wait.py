"""The live loop's wake-up on a SQLite practice database: a commit by another program wakes
the watcher; the poll interval defaults to a fast, cheap one and can be set per link."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from concord.connectors.sql import SQLConnector, SQLOptions
from concord.sample import create_sample, default_mapping
from tests.integration.sql_helpers import db_exec


def _connector(url: str, **extra: object) -> SQLConnector:
    opts = SQLOptions.model_validate({"url": url, "mapping": default_mapping(), **extra})
    return SQLConnector(opts, link="practice")


def test_a_commit_elsewhere_wakes_the_watcher(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=20)
    conn = _connector(url)
    try:
        # polls the file's change counter; the default is 50 times a second
        assert conn.capture.poll_interval == pytest.approx(0.02)
        assert conn.wait_for_change(0.05) is False  # first look: nothing new since
        db_exec(url, "UPDATE clients SET name = 'Woken' WHERE client_id = 1")
        assert conn.wait_for_change(10) is True
        assert conn.wait_for_change(0.05) is False  # that change was reported once
    finally:
        conn.close()


def test_the_poll_interval_is_a_link_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    create_sample(url, clients_n=5)
    conn = _connector(url, poll_interval=0.25)
    try:
        assert conn.capture.poll_interval == pytest.approx(0.25)
    finally:
        conn.close()
    with pytest.raises(ValidationError, match="poll_interval"):
        SQLOptions.model_validate({"url": url, "mapping": default_mapping(), "poll_interval": 0})
