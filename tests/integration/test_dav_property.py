"""Property: hub + a vdir folder + a CardDAV address book (real Radicale), edited in any
order on any side with syncs in between, converge, and no edit is silently lost.

An edit counts as accounted for when its value is the final one, or it is kept in the
conflicts log, or a later write (or delete) of the same contact superseded it: on the
same side, or anywhere after the edit had reached the hub.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concord.config import EntityConfig, LinkConfig
from concord.engine import sync_link
from concord.formats import vcard
from concord.hub.store import Hub
from tests.servers.dav import DavServer

KEYS = ["k0", "k1", "k2"]
SIDES = ["hub", "vdir", "dav"]

ops_strategy = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(SIDES), st.sampled_from(KEYS)),
    st.tuples(st.just("delete"), st.sampled_from(SIDES), st.sampled_from(KEYS)),
    st.tuples(st.just("sync"), st.sampled_from(["vdir", "dav"]), st.just("")),
), min_size=1, max_size=8)


class World:
    def __init__(self, server: DavServer, root: Path) -> None:
        self.srv = server
        self.coll = server.new_collection("addressbook")
        self.base = httpx.URL(self.coll).path
        self.folder = root / "vdir"
        self.folder.mkdir()
        self.hub = Hub(f"sqlite:///{root / 'hub.db'}")
        self.links = {
            "vdir": LinkConfig(name="vdir", connector="vdir", options={"path": str(self.folder)},
                               entities={"contact": EntityConfig()}),
            "dav": LinkConfig(name="dav", connector="carddav", options={
                "url": self.coll, "username": server.username, "password": server.password,
                "collections": {"contact": self.coll}}, entities={"contact": EntityConfig()}),
        }
        self.http = httpx.Client(auth=server.auth)

    def close(self) -> None:
        self.http.close()
        self.hub.close()

    # -- each side's view: uid -> name -------------------------------------------
    def vdir_files(self) -> dict[str, Path]:
        out = {}
        for p in self.folder.glob("*.vcf"):
            uid = vcard.parse(p.read_text()).uid
            assert uid is not None and uid not in out, f"UID {uid} twice in the vdir"
            out[uid] = p
        return out

    def dav_items(self) -> dict[str, tuple[str, str, str]]:
        """uid -> (href, etag, text)."""
        r = self.http.request("PROPFIND", self.coll, headers={"Depth": "1"})
        from concord.connectors.dav.xml import parse_multistatus

        out = {}
        for resp, _ in [parse_multistatus(r.content)]:
            for x in resp:
                if not x.href.endswith(".vcf"):
                    continue
                g = self.http.get(self.srv.url + x.href)
                uid = vcard.parse(g.text).uid
                assert uid is not None and uid not in out, f"UID {uid} twice on the server"
                out[uid] = (x.href, g.headers["etag"], g.text)
        return out

    def state(self, side: str) -> dict[str, str | None]:
        if side == "hub":
            return {r.id: r.fields.get("name") for r in self.hub.list_records("contact", limit=100)}
        if side == "vdir":
            return {u: vcard.parse(p.read_text()).fields().get("name")
                    for u, p in self.vdir_files().items()}
        return {u: vcard.parse(t).fields().get("name") for u, (_, _, t) in self.dav_items().items()}

    # -- edits ----------------------------------------------------------------------
    def write(self, side: str, key: str, value: str) -> None:
        if side == "hub":
            rec = self.hub.get("contact", key)
            fields = dict(rec.fields) if rec is not None and not rec.deleted else {}
            self.hub.put("contact", key, {**fields, "name": value})
        elif side == "vdir":
            files = self.vdir_files()
            if key in files:
                files[key].write_text(vcard.patch(files[key].read_text(), {
                    **vcard.parse(files[key].read_text()).fields(), "name": value}))
            else:
                (self.folder / f"{key}.vcf").write_text(vcard.build({"name": value}, key))
        else:
            items = self.dav_items()
            if key in items:
                href, etag, text = items[key]
                body = vcard.patch(text, {**vcard.parse(text).fields(), "name": value})
                r = self.http.put(self.srv.url + href, content=body,
                                  headers={"If-Match": etag, "Content-Type": "text/vcard"})
            else:
                r = self.http.put(f"{self.coll}{key}.vcf", content=vcard.build({"name": value}, key),
                                  headers={"If-None-Match": "*", "Content-Type": "text/vcard"})
            assert r.status_code in (201, 204), r.text

    def delete(self, side: str, key: str) -> bool:
        if side == "hub":
            return self.hub.remove("contact", key) is not None
        if side == "vdir":
            files = self.vdir_files()
            if key in files:
                files[key].unlink()
                return True
            return False
        items = self.dav_items()
        if key in items:
            assert self.http.delete(self.srv.url + items[key][0]).status_code in (200, 204)
            return True
        return False

    def sync(self, name: str) -> None:
        # deletes confirmed: the delete guard (a side emptied at once) is tested elsewhere
        r = sync_link(self.hub, self.links[name], confirm_deletes=True)
        assert r.status == "ok", r.message

    def conflicts_text(self) -> str:
        return json.dumps(self.hub.conflicts(open_only=False), default=str)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=ops_strategy)
def test_hub_vdir_dav_converge_and_lose_no_edit(radicale_server: DavServer,
                                                ops: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="concord-prop-") as tmp:
        w = World(radicale_server, Path(tmp))
        try:
            _run(w, ops)
        finally:
            w.close()


def _run(w: World, ops: list[tuple[str, str, str]]) -> None:
    writes: list[tuple[int, str, str, str]] = []  # (time, side, key, value)
    later: list[tuple[int, str, str]] = []  # (time, side, key) of every write or delete
    reached: dict[str, int] = {}  # value -> first time the hub held it

    def note_hub(t: int) -> None:
        for v in w.state("hub").values():
            if v is not None:
                reached.setdefault(v, t)

    for t, (kind, side, key) in enumerate(ops):
        if kind == "write":
            value = f"v{t}-{side}-{key}"
            w.write(side, key, value)
            writes.append((t, side, key, value))
            later.append((t, side, key))
        elif kind == "delete":
            if w.delete(side, key):
                later.append((t, side, key))
        else:
            w.sync(side)
        note_hub(t)
    end = len(ops)
    for r in range(2):
        for name in ("vdir", "dav"):
            w.sync(name)
            note_hub(end + r)

    hub, vdir, dav = w.state("hub"), w.state("vdir"), w.state("dav")
    assert hub == vdir == dav, f"not converged: hub={hub} vdir={vdir} dav={dav}; ops={ops}"
    conflicts = w.conflicts_text()
    for t, side, key, value in writes:
        if hub.get(key) == value or value in conflicts:
            continue
        seen_at = reached.get(value, math.inf)
        superseded = any(k == key and t2 > t and (s2 == side or t2 > seen_at)
                         for t2, s2, k in later)
        assert superseded, (f"edit {value!r} ({side}, op {t}) was lost: final {hub.get(key)!r}; "
                            f"ops={[op for op in _ops_of(writes)]}")


def _ops_of(writes: list[tuple[int, str, str, str]]) -> list[Any]:
    return [(t, s, k, v) for t, s, k, v in writes]
