"""Xero Practice Manager linked to the hub, end to end through the engine.

Against the in-process XPM fake (``tests/servers/xpm.py``): no local XPM server exists, so a
stateful fake that validates every request and answer against the API 3.1 contract and
enforces the rate limits, the concurrency cap and token expiry stands in. Its clock is
simulated: rate-limit waits, Retry-After and token lifetimes pass without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import Config, from_dict
from concord.engine import sync_link
from concord.hub import schema as s
from concord.hub.store import Hub
from concord.link.status import link_status
from tests.servers.xpm import TOKEN_KEY, XpmFake, connect, connector, options

ALL = ["staff", "client", "contact", "custom_field", "job", "tax_return", "task"]


class Env:
    def __init__(self, root: Path, entities: dict[str, dict[str, Any]] | None = None,
                 **opts: Any) -> None:
        self.fake = XpmFake()
        self.hub = Hub(f"sqlite:///{root / 'hub.db'}")
        ents = entities if entities is not None else {e: {} for e in ALL}
        self.cfg: Config = from_dict({"hub": {"url": self.hub.url}, "links": {"xpm": {
            "connector": "xpm", "options": options(**opts), "entities": ents}}}, base=root)
        connect(self.fake, self.hub)
        self.conn = connector(self.fake, self.hub, **opts)

    def sync(self, **kw: Any) -> Any:
        return sync_link(self.hub, self.cfg.link("xpm"), self.conn, **kw)

    def records(self, entity: str) -> dict[str, Any]:
        return {r.fields.get("name") or r.fields.get("summary") or r.fields.get("form") or r.id: r
                for r in self.hub.list_records(entity)}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.conn.close()
    e.hub.close()


def seed(fake: XpmFake) -> dict[str, str]:
    fake.add_definition(name="Year End", type="Date", useClient=True)
    fake.add_definition(name="Tax Return Status", type="Text", useClient=True)
    fake.add_definition(name="Tax Year", type="Number", useClient=True)
    fake.add_definition(name="Priority", type="Text", useJob=True)
    ann = fake.add_staff(name="Ann Partner", email="ann@practice.example", payrollCode="A1")
    acme = fake.add_client(
        name="Acme Ltd", email="office@acme.example", phone="09 300 1000", fax="09 300 1001",
        address="1 Queen St", city="Auckland", postCode="1010", country="New Zealand",
        postalAddress="PO Box 9", postalCity="Auckland", clientCode="ACME", taxNumber="123-456-789",
        companyNumber="NZ123", balanceMonth=3, accountManager={"uuid": ann, "name": "Ann Partner"},
        prepareTaxReturn="Yes", returnType="IR4", taxAgent="Yes",
        contacts=[{"name": "Bob Director", "email": "bob@acme.example", "mobile": "021 555",
                   "isPrimary": "Yes", "position": "Director", "salutation": "Bob"}])
    fake.set_value("client", acme, "Year End", date="2026-03-31")
    fake.set_value("client", acme, "Tax Return Status", text="Lodged")
    fake.set_value("client", acme, "Tax Year", number=2026)
    zed = fake.add_client(name="Zed Trust", isProspect="Yes")
    job = fake.add_job(acme, name="Annual accounts", startDate="2026-04-01", dueDate="2026-06-30",
                       budget=2500.0, manager={"uuid": ann, "name": "Ann Partner"},
                       tasks=[{"name": "Prepare", "completed": False, "estimatedMinutes": 120,
                               "assigned": [{"uuid": ann, "name": "Ann Partner"}]}])
    fake.set_value("job", job, "Priority", text="high")
    return {"ann": ann, "acme": acme, "zed": zed, "job": job}


def test_first_sync_maps_every_entity_onto_the_model(env: Env) -> None:
    ids = seed(env.fake)
    res = env.sync()
    assert res.ok, res.message
    staff = env.records("staff")["Ann Partner"]
    assert staff.fields["emails"] == [{"address": "ann@practice.example"}]
    assert staff.fields["code"] == "A1"
    acme = env.records("client")["Acme Ltd"]
    f = acme.fields
    assert f["emails"] == [{"address": "office@acme.example"}]
    assert f["phones"] == [{"number": "09 300 1000", "types": ["work"]},
                           {"number": "09 300 1001", "types": ["fax"]}]
    assert f["addresses"] == [
        {"street": "1 Queen St", "locality": "Auckland", "postcode": "1010",
         "country": "New Zealand", "types": ["work"]},
        {"street": "PO Box 9", "locality": "Auckland", "types": ["postal"]}]
    assert f["code"] == "ACME" and f["tax_number"] == "123-456-789" and f["status"] == "active"
    assert f["custom.Year End"] == "2026-03-31"
    assert "custom.Tax Return Status" not in f  # it belongs to the tax return
    props = {p["name"]: p["value"] for p in f["extras"]["props"]}
    assert props == {"companyNumber": "NZ123", "balanceMonth": "3"}
    assert acme.refs["manager"] == staff.id
    assert env.records("client")["Zed Trust"].fields["status"] == "prospect"
    bob = env.records("contact")["Bob Director"]
    assert bob.refs["client"] == acme.id and bob.fields["primary"] is True
    assert bob.fields["phones"] == [{"number": "021 555", "types": ["cell"]}]
    assert bob.fields["extras"]["props"] == [{"name": "salutation", "value": "Bob"}]
    job = env.records("job")["Annual accounts"]
    assert job.refs == {"client": acme.id, "manager": staff.id}
    assert job.fields["code"] == ids["job"] and job.fields["budget"] == 2500.0
    assert job.fields["custom.Priority"] == "high"
    task = env.records("task")["Prepare"]
    assert task.refs == {"job": job.id, "assignee": staff.id}
    assert task.fields["status"] == "NEEDS-ACTION"
    assert {"name": "estimatedMinutes", "value": "120"} in task.fields["extras"]["props"]
    tax = env.records("tax_return")["IR4"]
    assert tax.refs == {"client": acme.id}
    assert tax.fields["status"] == "Lodged" and tax.fields["year"] == 2026
    defs = env.records("custom_field")
    assert defs["Year End"].fields == {"name": "Year End", "type": "date", "applies_to": ["client"]}
    assert not env.hub.quarantined("xpm")


def test_hub_edits_reach_xpm_and_xpm_edits_reach_the_hub(env: Env) -> None:
    ids = seed(env.fake)
    assert env.sync().ok
    acme = env.records("client")["Acme Ltd"]
    fields = dict(acme.fields)
    fields["emails"] = [{"address": "accounts@acme.example"}]
    fields["custom.Year End"] = "2026-06-30"
    env.hub.put("client", acme.id, fields, acme.refs)
    job = env.records("job")["Annual accounts"]
    env.hub.put("job", job.id, {**job.fields, "state": "In Progress", "custom.Priority": "low"},
                job.refs)
    env.fake.edit_client(ids["zed"], phone="07 111")
    env.fake.clock.advance(60)
    res = env.sync()
    assert res.ok, res.message
    xacme = env.fake.practice.clients[ids["acme"]]
    assert xacme["email"] == "accounts@acme.example"
    assert xacme["companyNumber"] == "NZ123" and xacme["taxAgent"] == "Yes"  # kept
    assert env.fake.practice.values[("client", ids["acme"])]["Year End"]["date"] == "2026-06-30"
    assert env.fake.practice.values[("client", ids["acme"])]["Tax Return Status"]["text"] == "Lodged"
    assert env.fake.practice.jobs[ids["job"]]["state"] == "In Progress"
    assert env.fake.practice.values[("job", ids["job"])]["Priority"]["text"] == "low"
    assert env.records("client")["Zed Trust"].fields["phones"] == [{"number": "07 111", "types": ["work"]}]
    # and a third run finds nothing to do
    env.fake.clock.advance(60)
    again = env.sync()
    assert again.ok and not again.counts, again.counts


def test_a_new_hub_client_job_and_contact_are_created_in_xpm(env: Env) -> None:
    seed(env.fake)
    assert env.sync().ok
    env.hub.put("client", "c-new", {"name": "New Co", "emails": [{"address": "hi@new.example"}],
                                    "status": "active", "custom.Year End": "2027-01-31"})
    env.hub.put("contact", "p-new", {"name": "Nia", "phones": [{"number": "022", "types": ["cell"]}]},
                {"client": "c-new"})
    env.hub.put("job", "j-new", {"name": "Set-up", "state": "Planned"}, {"client": "c-new"})
    env.fake.clock.advance(60)
    assert env.sync().ok
    p = env.fake.practice
    new = next(c for c in p.clients.values() if c["name"] == "New Co")
    assert new["email"] == "hi@new.example"
    assert p.values[("client", new["uuid"])]["Year End"]["date"] == "2027-01-31"
    assert any(c["name"] == "Nia" and p.contact_client[c["uuid"]] == new["uuid"]
               for c in p.contacts.values())
    assert any(j["name"] == "Set-up" and j["client"]["uuid"] == new["uuid"] for j in p.jobs.values())
    env.fake.clock.advance(60)
    assert not env.sync().counts


def test_incremental_runs_read_custom_values_only_for_what_changed(env: Env) -> None:
    ids = seed(env.fake)
    for n in range(20):
        env.fake.add_client(name=f"Client {n}")
    env.fake.clock.advance(10)
    assert env.sync().ok
    env.fake.clock.advance(120)
    env.fake.calls.clear()
    assert not env.sync().counts
    # nothing changed: one listing per family, no custom field values read
    assert env.fake.calls["CustomFieldV31_GetClientByIdentifier"] == 0
    assert env.fake.calls["CustomFieldV31_GetJob"] == 0
    # clients: what changed since the last run; contacts and tax returns: one full listing
    assert env.fake.calls["ClientV31_List"] == 2
    env.fake.set_value("client", ids["zed"], "Year End", date="2027-12-31")  # XPM: modified now
    env.fake.clock.advance(120)
    env.fake.calls.clear()
    res = env.sync(entities=["client"])
    assert res.ok
    assert env.fake.calls["CustomFieldV31_GetClientByIdentifier"] == 1
    assert env.records("client")["Zed Trust"].fields["custom.Year End"] == "2027-12-31"


def test_deletions_are_found_by_the_full_listing(tmp_path: Path) -> None:
    e = Env(tmp_path, full_every=0)
    ids = seed(e.fake)
    assert e.sync().ok
    e.fake.practice.clients.pop(ids["zed"])
    e.fake.clock.advance(60)
    assert e.sync(entities=["client"]).ok
    assert e.hub.get("client", e.records("client")["Acme Ltd"].id) is not None
    zed = [r for r in e.hub.list_records("client", include_deleted=True) if r.fields["name"] == "Zed Trust"]
    assert zed and zed[0].deleted


def test_pending_local_edit_is_protected_from_a_pull_and_the_tag_clears(tmp_path: Path) -> None:
    """XPM primary with the seed's rule: a local edit is Pending Sync until written; an XPM
    edit of the same client meanwhile does not overwrite it (its value is kept in the
    conflicts log), and once written the record is no longer pending."""
    e = Env(tmp_path, {"staff": {}, "client": {"direction": "two-way", "authority": "hub"}})
    ids = seed(e.fake)
    assert e.sync().ok
    acme = e.records("client")["Acme Ltd"]
    e.hub.put("client", acme.id, {**acme.fields, "tax_number": "999-000-111"}, acme.refs)
    assert link_status(e.hub, "xpm", e.cfg.link("xpm")).pending == 1
    e.fake.edit_client(ids["acme"], taxNumber="555-555-555")
    e.fake.clock.advance(60)
    assert e.sync().ok
    assert e.fake.practice.clients[ids["acme"]]["taxNumber"] == "999-000-111"
    assert any("555-555-555" in str(c) for c in e.hub.conflicts(link="xpm"))
    assert link_status(e.hub, "xpm", e.cfg.link("xpm")).pending == 0


# -- limits and faults ---------------------------------------------------------------------------
def test_the_minute_limit_is_waited_out_in_simulated_time(env: Env) -> None:
    env.fake.add_definition(name="Year End", type="Date", useClient=True)
    for n in range(150):
        env.fake.add_client(name=f"Client {n:03d}")
    res = env.sync(entities=["client"])
    assert res.ok, res.message
    assert env.hub.count("client") == 150
    assert env.fake.limited["minute"] == 0  # the gate kept under the limit, XPM never refused
    assert env.fake.clock.slept >= 120  # 152 calls at 60 a minute
    assert env.conn.gate.waited > 0


def test_a_day_limit_429_pauses_the_link_and_it_resumes_by_itself(env: Env, monkeypatch) -> None:
    seed(env.fake)
    env.fake.fail_next("429-day", match="client.api/list")
    res = env.sync(entities=["staff", "client"])
    assert res.status == "paused" and "Sync paused until" in res.message
    st = link_status(env.hub, "xpm", env.cfg.link("xpm"))
    assert st.color == "red" and st.reason.startswith("Sync paused until")
    until = env.hub.link_row("xpm")["paused_until"]
    assert until > time.time()
    later = until + 1
    assert "paused" not in link_status(env.hub, "xpm", env.cfg.link("xpm"), now=later).reason
    import concord.engine as engine

    monkeypatch.setattr(engine.time, "time", lambda: later)
    env.conn.gate.day_remaining = None  # a new day at XPM
    res = env.sync(entities=["staff", "client"])
    assert res.ok, res.message
    assert set(env.records("client")) == {"Acme Ltd", "Zed Trust"}


def test_a_minute_429_is_waited_out_and_a_long_one_pauses(env: Env) -> None:
    seed(env.fake)
    env.fake.fail_next("429-minute", match="staff.api/list")
    assert env.sync(entities=["staff"]).ok
    assert env.fake.limited["minute"] == 1
    env.fake.add_staff(name="Late Starter")
    env.conn.gate.max_wait = 0.5  # a wait longer than the link may spend in a run
    env.fake.fail_next("429-minute", match="staff.api/list")
    res = env.sync(entities=["staff"])
    assert res.status == "paused"
    assert "Late Starter" not in env.records("staff")


def test_server_errors_and_timeouts_on_reads_are_retried(env: Env) -> None:
    seed(env.fake)
    env.fake.fail_next("500", match="client.api/list")
    env.fake.fail_next("timeout", match="job.api/list")
    res = env.sync()
    assert res.ok, res.message
    assert {"Acme Ltd", "Zed Trust"} == set(env.records("client"))
    assert "Annual accounts" in env.records("job")


def test_a_create_whose_answer_was_lost_is_not_duplicated(env: Env) -> None:
    seed(env.fake)
    assert env.sync().ok
    env.hub.put("client", "c-lost", {"name": "Lost Answer Ltd", "status": "active"})
    env.fake.fail_next("timeout-after", match="client.api/add")
    env.fake.clock.advance(60)
    first = env.sync(entities=["client"])
    made = [c for c in env.fake.practice.clients.values() if c["name"] == "Lost Answer Ltd"]
    assert len(made) == 1  # XPM made it; Concord never heard
    env.fake.clock.advance(60)
    second = env.sync(entities=["client"])
    assert second.ok, second.message
    made = [c for c in env.fake.practice.clients.values() if c["name"] == "Lost Answer Ltd"]
    assert len(made) == 1, "the retry made a second client"
    assert first.status in ("ok", "error")
    linked = {a.spoke_ref for a in env.hub.archive("xpm", "client").values()}
    assert made[0]["uuid"] in linked


def test_a_server_error_on_a_write_loses_nothing(env: Env) -> None:
    ids = seed(env.fake)
    assert env.sync().ok
    acme = env.records("client")["Acme Ltd"]
    env.hub.put("client", acme.id, {**acme.fields, "code": "ACME-2"}, acme.refs)
    env.fake.fail_next("500", match="client.api/update", count=10)
    env.fake.clock.advance(60)
    env.sync(entities=["client"])
    assert env.fake.practice.clients[ids["acme"]]["clientCode"] == "ACME"
    assert env.hub.get("client", acme.id).fields["code"] == "ACME-2"  # still in the hub
    env.fake.faults.clear()
    env.fake.clock.advance(60)
    assert env.sync(entities=["client"]).ok
    assert env.fake.practice.clients[ids["acme"]]["clientCode"] == "ACME-2"


# -- OAuth ---------------------------------------------------------------------------------------
def _token_rows(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(s.oauth_tokens)))


def test_expired_access_tokens_are_refreshed_and_one_token_set_is_kept(env: Env) -> None:
    seed(env.fake)
    assert env.sync(entities=["staff"]).ok
    before = _token_rows(env.hub)
    assert len(before) == 1
    env.fake.clock.advance(31 * 60)  # past the 30 minutes an access token lives
    assert env.sync(entities=["staff"]).ok
    env.fake.fail_next("expire", match="staff.api")  # revoked early: the API answers 401
    assert env.sync(entities=["staff"]).ok
    after = _token_rows(env.hub)
    assert len(after) == 1 and after[0].generation == before[0].generation + 2
    assert env.fake.refreshes == 2
    # secrets are stored as secrets: nothing in the row reads as a token XPM issued
    issued = set(env.fake.access) | set(env.fake.refresh)
    assert not any(t in str(tuple(after[0])) for t in issued)


def test_a_lost_refresh_answer_is_retried_with_the_same_refresh_token(env: Env) -> None:
    seed(env.fake)
    assert env.sync(entities=["staff"]).ok
    env.fake.clock.advance(31 * 60)
    env.fake.fail_next("timeout-after", match="/connect/token")  # rotated, answer lost
    assert env.sync(entities=["staff"]).ok
    env.fake.clock.advance(31 * 60)
    assert env.sync(entities=["staff"]).ok  # the stored refresh token is the newest one
    assert len(_token_rows(env.hub)) == 1


def test_a_refused_refresh_says_to_connect_again(env: Env) -> None:
    seed(env.fake)
    assert env.sync(entities=["staff"]).ok
    env.fake.refresh.clear()  # the practice revoked Concord's access
    env.fake.clock.advance(31 * 60)
    with pytest.raises(Exception, match="connect again"):
        env.sync(entities=["staff"])


def test_a_wrong_token_key_is_a_clear_error(env: Env) -> None:
    from cryptography.fernet import Fernet

    other = connector(env.fake, env.hub, token_key=Fernet.generate_key().decode())
    with pytest.raises(Exception, match="token_key"):
        list(other.list("staff"))
    assert other.opts.token_key.get_secret_value() != TOKEN_KEY


def test_never_more_than_five_calls_in_flight(env: Env) -> None:
    seed(env.fake)
    list(env.conn.list("staff"))
    started = threading.Barrier(12)
    env.fake.on_call = lambda op: time.sleep(0.01)

    def work() -> None:
        started.wait()
        for _ in range(3):
            env.conn.call("GET", "staff.api/list")

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 < env.fake.max_in_flight <= 5
    assert env.fake.limited["concurrent"] == 0


# -- the call budget ---------------------------------------------------------------------------
def test_a_low_day_budget_syncs_the_most_recent_first_and_defers_the_rest(env: Env) -> None:
    env.fake.add_definition(name="Year End", type="Date", useClient=True)
    old = [env.fake.add_client(name=f"Old {n}") for n in range(10)]
    assert env.sync(entities=["client"]).ok
    env.fake.clock.advance(2 * 3600)
    for uid in old[:6]:
        env.fake.edit_client(uid, phone="1")  # changed two hours ago
    env.fake.clock.advance(2 * 3600 - 600)
    for uid in old[6:]:
        env.fake.edit_client(uid, phone="2")  # changed ten minutes ago
    env.fake.clock.advance(60)
    env.conn.opts.day_reserve = 0
    # ten calls left today: the estimate and the run list three times each, four remain
    env.fake.DAY_LIMIT = len(env.fake.day) + 10
    est = env.conn.estimate("client", env.hub.checkpoint("xpm", "client").spoke_token)
    assert (est.listing, est.custom_values, est.deferred) == (3, 7, 3)
    res = env.sync(entities=["client"])
    assert res.ok, res.message
    phones = {r.fields["name"]: r.fields.get("phones") for r in env.hub.list_records("client")}
    recent = [f"Old {n}" for n in range(6, 10)]
    assert all(phones[n] for n in recent), phones  # the most recently changed went first
    assert sum(1 for n in phones if phones[n]) == 4  # the rest deferred, not failed
    env.fake.clock.advance(86400)  # the next day
    env.fake.DAY_LIMIT = 5000
    assert env.sync(entities=["client"]).ok
    phones = {r.fields["name"]: r.fields.get("phones") for r in env.hub.list_records("client")}
    assert all(phones.values()), phones
