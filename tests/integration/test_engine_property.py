"""A state machine over the engine: the hub, two vdir folders and direct hub writes.

Random creates, edits (random fields, set or cleared) and deletes on every side, interleaved
with syncs of random links. At the end every link is synced until nothing moves, then:

- convergence: the hub and both folders hold the same records with the same fields;
- no edit is lost: every value ever written is either the record's final value, or was
  knowingly replaced (the side that replaced or deleted it held it at that moment), or is in
  the conflicts table's ``kept`` values for that record and field;
- so a record deleted on one side while edited on another survives with the edit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from concord.formats import vcard
from tests.integration.vdirenv import VdirEnv

pytestmark = pytest.mark.slow

SIDES = ("a", "b", "hub")
LINKS = ("a", "b")
EDITABLE = ("name", "title", "org", "note", "phones")


class EngineMachine(RuleBasedStateMachine):
    editable = EDITABLE  # the fields the writers set (``name`` first: never cleared)

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="concord-prop-"))
        self.env: VdirEnv | None = None
        self.n = 0
        # every value written: (uid, field, value, side, step)
        self.writes: list[tuple[str, str, Any, str, int]] = []
        # (uid, field, json value) a side held when it replaced or deleted it
        self.superseded: set[tuple[str, str, str]] = set()
        self.mtime_floor = time.time_ns()

    @initialize(auth_a=st.sampled_from(["hub", "spoke", "newest"]),
                auth_b=st.sampled_from(["hub", "spoke", "newest"]),
                batch=st.sampled_from([1000, 2]))
    def setup(self, auth_a: str, auth_b: str, batch: int) -> None:
        """Random authorities per link; small batches exercise the chunked paths."""
        self.env = VdirEnv(self.tmp, f"sqlite:///{self.tmp / 'hub.db'}",
                           {"a": {"authority": auth_a}, "b": {"authority": auth_b}},
                           batch_size=batch)

    # -- helpers ----------------------------------------------------------------------
    def held(self, side: str) -> dict[str, dict[str, Any]]:
        assert self.env is not None
        if side == "hub":
            return self.env.hub_records()
        return self.env.cards(side)

    def value(self, field: str) -> Any:
        self.n += 1
        if field == "phones":
            phone = {"number": f"+44 {self.n}"}
            return [{**phone, "types": ["cell"]} if self.n % 2 else phone]
        return f"{field}-{self.n}"

    def write_card(self, side: str, uid: str, fields: dict[str, Any]) -> None:
        """Save the way an editor does: a new file moved into place, with a fresh mtime."""
        assert self.env is not None
        folder = self.env.folder(side)
        files = self.env.files(side)
        path = files.get(uid, folder / f"{uid}.vcf")
        text = (vcard.patch(path.read_bytes().decode(), fields) if path.exists()
                else vcard.build(fields, uid))
        tmp = folder / f".edit-{self.n}.tmp"
        tmp.write_text(text)
        self.mtime_floor = max(self.mtime_floor + 1_000_000, time.time_ns())
        if path.exists():
            self.mtime_floor = max(self.mtime_floor, path.stat().st_mtime_ns + 1_000_000)
        os.utime(tmp, ns=(self.mtime_floor, self.mtime_floor))
        os.replace(tmp, path)

    def put(self, side: str, uid: str, fields: dict[str, Any]) -> None:
        assert self.env is not None
        fields = {k: v for k, v in fields.items() if v is not None}
        if side == "hub":
            self.env.hub.put("contact", uid, fields, by="test")
        else:
            self.write_card(side, uid, fields)

    def record_write(self, side: str, uid: str, fields: dict[str, Any]) -> None:
        for f, v in fields.items():
            if v is not None:
                self.writes.append((uid, f, v, side, self.n))

    def supersede(self, uid: str, fields: dict[str, Any]) -> None:
        for f, v in fields.items():
            self.superseded.add((uid, f, json.dumps(v)))

    def new_fields(self, draw: Any) -> dict[str, Any]:
        fields = {"name": self.value("name")}
        for f in draw(st.lists(st.sampled_from(self.editable[1:]), unique=True, max_size=3)):
            fields[f] = self.value(f)
        return fields

    # -- rules --------------------------------------------------------------------------
    @rule(side=st.sampled_from(SIDES), data=st.data())
    def create(self, side: str, data: st.DataObject) -> None:
        uid = f"c{self.n}"
        fields = self.new_fields(data.draw)
        self.put(side, uid, fields)
        self.record_write(side, uid, fields)

    @rule(sides=st.lists(st.sampled_from(SIDES), min_size=2, max_size=2, unique=True),
          data=st.data())
    def create_same_identity_on_two_sides(self, sides: list[str], data: st.DataObject) -> None:
        uid = f"t{self.n}"
        for side in sides:
            fields = self.new_fields(data.draw)
            self.put(side, uid, fields)
            self.record_write(side, uid, fields)

    @rule(side=st.sampled_from(SIDES), data=st.data())
    def edit(self, side: str, data: st.DataObject) -> None:
        held = self.held(side)
        if not held:
            return
        uid = data.draw(st.sampled_from(sorted(held)))
        old = held[uid]
        changes: dict[str, Any] = {}
        for f in data.draw(st.lists(st.sampled_from(self.editable), unique=True, min_size=1,
                                    max_size=3)):
            clear = f != "name" and data.draw(st.integers(0, 3)) == 0  # a quarter are clears
            changes[f] = None if clear else self.value(f)
        self.supersede(uid, {f: old[f] for f in changes if f in old})
        self.put(side, uid, {**old, **changes})
        self.record_write(side, uid, changes)

    @rule(side=st.sampled_from(SIDES), data=st.data())
    def delete(self, side: str, data: st.DataObject) -> None:
        assert self.env is not None
        held = self.held(side)
        if not held:
            return
        uid = data.draw(st.sampled_from(sorted(held)))
        self.supersede(uid, held[uid])
        if side == "hub":
            self.env.hub.remove("contact", uid, by="test")
        else:
            self.env.files(side)[uid].unlink()

    @rule(link=st.sampled_from(LINKS))
    def sync(self, link: str) -> None:
        assert self.env is not None
        r = self.env.sync(link, confirm_deletes=True)
        assert r.status == "ok", r.message
        assert not r.entities["contact"].errors, r.entities["contact"].errors

    # -- the end --------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if self.env is not None:
                self.check_final()
        finally:
            if self.env is not None:
                self.env.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def settle(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Sync every link until nothing moves (checked); returns what hub, a and b hold."""
        env = self.env
        assert env is not None
        for _ in range(4):
            for link in LINKS:
                r = env.sync(link, confirm_deletes=True)
                assert r.status == "ok", r.message
        quiet = [env.sync(link, confirm_deletes=True).counts for link in LINKS]
        assert quiet == [{}, {}], f"still moving after the final syncs: {quiet}"
        return self.held("hub"), self.held("a"), self.held("b")

    def check_final(self) -> None:
        env = self.env
        assert env is not None
        hub, a, b = self.settle()
        assert a == hub, "folder a and the hub disagree"
        assert b == hub, "folder b and the hub disagree"
        assert env.hub.quarantined() == []

        self.check_nothing_lost([hub])

    def check_nothing_lost(self, finals: list[dict[str, dict[str, Any]]]) -> None:
        """Every value written is in a final state, was knowingly replaced, or is kept."""
        assert self.env is not None
        kept: dict[str, list[dict[str, Any]]] = {}
        for c in self.env.hub.conflicts(open_only=False):
            kept.setdefault(c["hub_id"], []).append(json.loads(c["kept"]))
        lost = []
        for uid, f, v, side, step in self.writes:
            if (uid, f, json.dumps(v)) in self.superseded:
                continue
            if any(final.get(uid, {}).get(f) == v for final in finals):
                continue
            if any(k.get(f) == v for k in kept.get(uid, [])):
                continue
            lost.append((uid, f, v, side, step, [final.get(uid) for final in finals]))
        assert not lost, f"edits lost (uid, field, value, side, step, finals): {lost}"


EngineMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_engine_never_loses_an_edit = EngineMachine.TestCase


class OneWayMachine(EngineMachine):
    """The same writers over a pipeline: folder a --pull--> hub --push--> folder b.

    Hub edits never reach a (pending); b's edits to hub records are overwritten by the hub
    (their values kept as conflicts); records created in b are not carried. At the end b holds
    exactly the hub's records (plus its own), and no value written anywhere is lost.
    """

    @initialize(auth_a=st.sampled_from(["hub", "spoke", "newest"]), batch=st.sampled_from([1000, 2]))
    def setup(self, auth_a: str, batch: int) -> None:  # type: ignore[override]
        self.env = VdirEnv(self.tmp, f"sqlite:///{self.tmp / 'hub.db'}",
                           {"a": {"direction": "pull", "authority": auth_a},
                            "b": {"direction": "push"}}, batch_size=batch)

    def check_final(self) -> None:
        env = self.env
        assert env is not None
        for _ in range(3):
            for link in LINKS:
                assert env.sync(link, confirm_deletes=True).status == "ok"
        moving = [{k: v for k, v in env.sync(link, confirm_deletes=True).counts.items()
                   if k != "pending"} for link in LINKS]
        assert moving == [{}, {}], f"still moving after the final syncs: {moving}"
        hub, a, b = self.held("hub"), self.held("a"), self.held("b")
        assert {u: b[u] for u in hub if u in b} == hub, "folder b differs from the hub"
        # records only in b were created there (a push link does not carry them): no value
        # that another side wrote, and still held, may end up only in b
        elsewhere = {u for u, f, v, side, _ in self.writes
                     if side != "b" and (u, f, json.dumps(v)) not in self.superseded}
        assert not (set(b) - set(hub)) & elsewhere, "records written elsewhere are only in b"
        assert env.hub.quarantined() == []
        self.check_nothing_lost([hub, a, b])


OneWayMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_one_way_pipeline_never_loses_an_edit = OneWayMachine.TestCase


class SelectionMachine(EngineMachine):
    """The two-way links again, but link a carries individuals only (its value map has no
    entry for an organisation), and the writers set a contact's kind too: records move in and
    out of a's selection on every side, a's cards as well (a card edited out of it is not
    synced either way while it stays out).

    At the end nothing moves; b holds exactly the hub's records; every card a holds inside
    its selection is the hub's record, and every hub record inside it is at a (as the hub
    holds it, or held out of the selection by a's own edit); no value written anywhere is
    lost."""

    editable = (*EDITABLE, "kind")

    @initialize(auth_a=st.sampled_from(["hub", "spoke", "newest"]),
                auth_b=st.sampled_from(["hub", "spoke", "newest"]),
                batch=st.sampled_from([1000, 2]))
    def setup(self, auth_a: str, auth_b: str, batch: int) -> None:
        self.env = VdirEnv(self.tmp, f"sqlite:///{self.tmp / 'hub.db'}",
                           {"a": {"authority": auth_a,
                                  "values": {"kind": {"individual": "individual"}}},
                            "b": {"authority": auth_b}}, batch_size=batch)

    def value(self, field: str) -> Any:
        if field == "kind":
            self.n += 1
            return "org" if self.n % 2 else "individual"
        return super().value(field)

    def check_final(self) -> None:
        env = self.env
        assert env is not None
        hub, a, b = self.settle()
        assert b == hub, "folder b and the hub disagree"
        for uid, card in a.items():
            if card.get("kind") != "org":
                assert hub.get(uid) == card, f"{uid}: a card inside a's selection is not the hub's"
        for uid, rec in hub.items():
            if rec.get("kind") != "org":
                assert uid in a, f"{uid}: a hub record inside a's selection is not at a"
        assert env.hub.quarantined() == []
        self.check_nothing_lost([hub, a, b])


# no shrinking: a failure prints its steps as found (shrinking these runs outlasts the
# suite's time limit)
SelectionMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_a_value_mapped_link_never_loses_an_edit = SelectionMachine.TestCase
