"""Ready configurations that `concord init --example NAME` writes, built from the same
defaults the code and the tests use, so what a user starts from is what is tested.

- ``practice-groupware``: the practice database (the sample schema of ``concord.demo.sample``)
  linked to the hub, and the hub linked to a CardDAV address book (clients and contacts)
  and a CalDAV server (tasks with the practice → groupware status table, events whose
  cancelled appointments are taken off the calendar).
"""

from __future__ import annotations

from typing import Any

from concord.demo.sample import ADMIN_EMAIL, default_entities, default_mapping


def groupware_links(url: str, username: str | None = None, password: str | None = None,
                    *, collections: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The two groupware links of the seed's practice ↔ groupware job: every field of the
    model travels (vCard and iCalendar speak it), the task status through the seed's table."""
    from concord.connectors.dav import DEFAULT_TASK_STATUS_MAP

    colls = collections or {}
    auth: dict[str, Any] = {"url": url}
    if username is not None:
        auth["username"] = username
    if password is not None:
        auth["password"] = password
    return {
        "addressbook": {
            "connector": "carddav",
            "options": {**auth, "create_collection": True, "collections": {
                "client": colls.get("client", "practice-clients"),
                "contact": colls.get("contact", "practice-contacts")}},
            "entities": {
                "client": {"direction": "two-way", "authority": "hub"},
                "contact": {"direction": "two-way", "authority": "hub",
                            "refs": {"client": "client"}},
            },
        },
        "calendar": {
            "connector": "caldav",
            "options": {**auth, "create_collection": True, "collections": {
                "task": colls.get("task", "practice-tasks"),
                "event": colls.get("event", "practice-events")}},
            "entities": {
                "task": {"direction": "two-way", "authority": "hub",
                         "values": {"status": dict(DEFAULT_TASK_STATUS_MAP)}},
                "event": {"direction": "two-way", "authority": "hub",
                          "remove_when": {"status": ["CANCELLED"]}},
            },
        },
    }


def practice_groupware(practice_url: str = "sqlite:///practice.db",
                       dav_url: str = "https://dav.example.com/", *,
                       username: str | None = "reception", password: str | None = "secret",
                       hub_url: str = "sqlite:///concord.db",
                       collections: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "hub": {"url": hub_url, "tenant": "default"},
        "links": {
            "practice": {
                "connector": "sql", "admin": ADMIN_EMAIL,
                "options": {"url": practice_url, "mapping": default_mapping()},
                "entities": default_entities(authority="spoke"),
            },
            **groupware_links(dav_url, username, password, collections=collections),
        },
    }


HEADER = """\
# Concord: the practice database kept in agreement with groupware (CardDAV / CalDAV).
# Paths are relative to this file. The practice link maps the database's columns to the
# model's fields (docs/model.md): one `email` column is one element of `emails`, three
# address columns are one address. The groupware links carry every field of the model.

"""


def render(name: str) -> str:
    from concord.cli.demo import to_toml

    if name != "practice-groupware":
        raise KeyError(name)
    return HEADER + to_toml(practice_groupware())


NAMES = ("practice-groupware",)
