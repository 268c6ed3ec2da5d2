"""The groupware link's configuration: the documented example loads, bad options are
clear errors naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from concord.config import from_dict
from concord.connectors.base import make_connector
from concord.connectors.dav import DEFAULT_TASK_STATUS_MAP
from concord.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "groupware.md"


def test_documented_example_loads_and_uses_the_default_status_table() -> None:
    block = DOC.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = from_dict(tomllib.loads(block))
    task = cfg.links["calendar"].entities["task"]
    assert task.values["status"] == DEFAULT_TASK_STATUS_MAP
    # an event's status is the iCalendar STATUS (the model keeps it as the calendar says it)
    assert cfg.links["calendar"].entities["event"].remove_when == {"status": ["CANCELLED"]}
    for name in ("addressbook", "calendar"):
        link = cfg.links[name]
        make_connector(link.connector, link.options, link=name).close()


def test_default_status_table_follows_the_seed() -> None:
    assert "Draft" not in DEFAULT_TASK_STATUS_MAP and "Rejected" not in DEFAULT_TASK_STATUS_MAP
    assert DEFAULT_TASK_STATUS_MAP["Canceled"] == DEFAULT_TASK_STATUS_MAP["Completed"] == "Completed"
    # the way back takes the first listed: Completed, not Canceled; In Process, not Approved
    back: dict[str, str] = {}
    for practice, groupware in DEFAULT_TASK_STATUS_MAP.items():
        back.setdefault(groupware, practice)
    assert back == {"Not Started": "Open", "In Progress": "In Process", "Completed": "Completed",
                    "Waiting on Others": "Pending Approval"}


@pytest.mark.parametrize(("options", "key"), [
    ({"url": "https://dav.example/", "token": "t\u2026"}, "options.token"),
    ({"url": "https://dav.example/", "max_connections": 0}, "options.max_connections"),
    ({"url": "https://dav.example/", "colections": {}}, "options.colections"),
])
def test_bad_options_name_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make_connector("carddav", options, link="groupware")
    assert key in str(exc.value)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        make_connector("caldav", {"url": "dav.example.com/cal"})
