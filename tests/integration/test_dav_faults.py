"""CardDAV/CalDAV connector behaviour on real Radicale and Xandikos: expired tokens,
conflicting writes, bad items, an unreachable server, unmapped properties."""

from __future__ import annotations

import re

import httpx
import pytest

from concord.connectors.base import Item, ItemError, WriteOp
from concord.connectors.dav import CalDAVConnector, CardDAVConnector, DavOptions
from concord.errors import PreconditionFailed, TransientError
from concord.records import new_id
from tests.servers.dav import DavServer, free_port


def card_connector(server: DavServer, coll: str, **opts: object) -> CardDAVConnector:
    return CardDAVConnector(DavOptions(url=server.url + server.principal, username=server.username,
                                       password=server.password, collections={"contact": coll},
                                       **opts))  # type: ignore[arg-type]


def contact(n: int) -> Item:
    return Item("", "", {"name": f"Bea Partner {n}", "given_name": "Bea",
                         "family_name": f"Partner {n}",
                         "emails": [{"address": f"bea{n}@example.com"}]})


def raw_put(server: DavServer, url: str, text: str, ctype: str = "text/vcard") -> httpx.Response:
    with httpx.Client(auth=server.auth) as c:
        return c.put(url, content=text, headers={"Content-Type": ctype})


def test_expired_sync_token_falls_back_to_full_listing(dav_server: DavServer) -> None:
    """Radicale refuses a stale token with 403, Xandikos with 412: both become a full
    etag listing with a fresh token, never an error."""
    coll = dav_server.new_collection("addressbook")
    with card_connector(dav_server, coll) as conn:
        refs = [conn.create("contact", contact(n), new_id())[0] for n in range(3)]
        first = conn.changes("contact", None)
        assert first.complete and set(first.changed) == set(refs) and first.token
        sync = first.token.rsplit("|", 1)[-1]
        bogus = re.sub(r"[0-9a-f]{32,}$", lambda m: "0" * len(m.group()), sync)
        assert bogus != sync
        ch = conn.changes("contact", bogus)  # a bare sync-token the server no longer knows
        assert ch.complete
        assert set(ch.changed) == set(refs)
        assert ch.token
        # and the fresh token works incrementally
        assert conn.changes("contact", ch.token).changed == {}


def test_write_on_changed_item_is_a_conflict_not_an_overwrite(dav_server: DavServer) -> None:
    coll = dav_server.new_collection("addressbook")
    with card_connector(dav_server, coll) as conn:
        ref, v1 = conn.create("contact", contact(1), "uid-one")
        other = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:uid-one\r\nFN:Changed Elsewhere\r\n"
                 "N:Elsewhere;Changed;;;\r\nEND:VCARD\r\n")
        assert raw_put(dav_server, dav_server.url + ref, other).status_code in (201, 204)
        with pytest.raises(PreconditionFailed):
            conn.update("contact", ref, contact(2), v1)
        res = conn.apply("contact", [WriteOp("update", ref, contact(3), expected_version=v1),
                                     WriteOp("delete", ref, None, expected_version=v1)])
        assert all(isinstance(r.error, PreconditionFailed) for r in res)
        got = [i for i in conn.get("contact", [ref]) if isinstance(i, Item)]
        assert got[0].fields["name"] == "Changed Elsewhere"


def test_bad_items_are_quarantined_by_href_and_the_rest_syncs(radicale_server: DavServer) -> None:
    """A vCard 5.0 (Radicale stores it, Concord cannot read it), a huge card: each comes back as an
    ItemError naming its href; the good cards still come through."""
    srv = radicale_server
    coll = srv.new_collection("addressbook")
    with card_connector(srv, coll, max_item_bytes=20_000) as conn:
        good = [conn.create("contact", contact(n), new_id())[0] for n in range(3)]
        bad_href = coll + "version-five.vcf"
        assert raw_put(srv, bad_href, "BEGIN:VCARD\r\nVERSION:5.0\r\nUID:v5\r\nFN:Five\r\n"
                       "END:VCARD\r\n").status_code == 201
        huge_href = coll + "huge.vcf"
        note = "x" * 60_000
        assert raw_put(srv, huge_href, "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:huge\r\nFN:Huge\r\n"
                       f"NOTE:{note}\r\nEND:VCARD\r\n").status_code == 201
        listed = dict(conn.list("contact"))
        got = list(conn.get("contact", sorted(listed)))
        items = {g.ref for g in got if isinstance(g, Item)}
        errors = {g.ref: g.error for g in got if isinstance(g, ItemError)}
        assert items == set(good)
        path = httpx.URL(bad_href).path
        assert set(errors) == {path, httpx.URL(huge_href).path}
        assert path in errors[path] and "VERSION" in errors[path]
        assert "limit" in errors[httpx.URL(huge_href).path]


def test_duplicate_uids_are_quarantined(xandikos_server: DavServer) -> None:
    """Xandikos stores two resources with one UID; the second read is quarantined."""
    srv = xandikos_server
    coll = srv.new_collection("addressbook")
    with card_connector(srv, coll) as conn:
        for name in ("a", "b"):
            r = raw_put(srv, f"{coll}{name}.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:same\r\n"
                        f"FN:Dup {name}\r\nN:{name};Dup;;;\r\nEND:VCARD\r\n")
            assert r.status_code == 201
        got = list(conn.get("contact", sorted(dict(conn.list("contact")))))
        assert len([g for g in got if isinstance(g, Item)]) == 1
        errs = [g for g in got if isinstance(g, ItemError)]
        assert len(errs) == 1 and "duplicate UID" in errs[0].error and errs[0].ref in errs[0].error


def test_bad_icalendar_is_quarantined(radicale_server: DavServer) -> None:
    """Radicale stores PRIORITY:high, which is not iCalendar: that task is an ItemError
    naming its href; an event in the same calendar is not a task and is skipped quietly."""
    srv = radicale_server
    coll = srv.new_collection("calendar")
    opts = DavOptions(url=srv.url + srv.principal, username=srv.username, password=srv.password,
                      collections={"task": coll})
    with CalDAVConnector(opts) as conn:
        ok, _ = conn.create("task", Item("", "", {"summary": "Fine", "status": "Not Started"}),
                            new_id())
        bad = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t2\r\n"
               "SUMMARY:odd\r\nDTSTAMP:20260101T000000Z\r\nPRIORITY:high\r\nEND:VTODO\r\n"
               "END:VCALENDAR\r\n")
        assert raw_put(srv, coll + "odd.ics", bad, "text/calendar").status_code == 201
        ev = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:e1\r\n"
              "SUMMARY:lunch\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T120000Z\r\n"
              "END:VEVENT\r\nEND:VCALENDAR\r\n")
        assert raw_put(srv, coll + "lunch.ics", ev, "text/calendar").status_code == 201
        ch = conn.changes("task", None)
        assert set(ch.changed) == {ok, httpx.URL(coll + "odd.ics").path}  # tasks only
        got = list(conn.get("task", [*ch.changed, httpx.URL(coll + "lunch.ics").path]))
        assert {g.ref for g in got if isinstance(g, Item)} == {ok}
        errors = [g for g in got if isinstance(g, ItemError)]
        assert len(errors) == 1 and errors[0].ref.endswith("odd.ics")
        assert errors[0].ref in errors[0].error and "fix:" in errors[0].error


def test_unreachable_server_is_a_clear_transient_error() -> None:
    port = free_port()  # nothing listens there
    opts = DavOptions(url=f"http://127.0.0.1:{port}/alice/", collections={"contact": "/alice/ab/"},
                      timeout=2)
    with CardDAVConnector(opts) as conn, pytest.raises(TransientError) as exc:
        conn.changes("contact", None)
    assert f"127.0.0.1:{port}" in str(exc.value) and "fix:" in str(exc.value)


def test_wrong_password_is_terminal_with_the_fix(radicale_server: DavServer) -> None:
    coll = radicale_server.new_collection("addressbook")
    opts = DavOptions(url=coll, username=radicale_server.username, password="wrong",
                      collections={"contact": coll})
    with CardDAVConnector(opts) as conn, pytest.raises(Exception) as exc:
        conn.list("contact")
    assert "401" in str(exc.value) and "password" in str(exc.value)


def test_update_keeps_properties_concord_does_not_map(dav_server: DavServer) -> None:
    coll = dav_server.new_collection("addressbook")
    original = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:keep-me\r\nFN:Cy Keeper\r\nN:Keeper;Cy;;;\r\n"
                "X-CUSTOM-FLAG;X-PARAM=yes:kept exactly\r\nitem1.X-ABLABEL:Assistant\r\n"
                "PHOTO:data:image/png;base64,iVBORw0KGgo=\r\nTITLE:Partner\r\nEND:VCARD\r\n")
    href = coll + "keep-me.vcf"
    assert raw_put(dav_server, href, original).status_code == 201
    with httpx.Client(auth=dav_server.auth) as c:
        before = c.get(href).text  # as the server stores it (servers may normalise)
    with card_connector(dav_server, coll) as conn:
        ref = httpx.URL(href).path
        item = next(i for i in conn.get("contact", [ref]) if isinstance(i, Item))
        assert item.fields["title"] == "Partner"
        conn.update("contact", ref, Item(ref, "", {**item.fields, "title": "Senior Partner"}),
                    item.version)
    with httpx.Client(auth=dav_server.auth) as c:
        text = c.get(href).text
    assert "TITLE:Senior Partner" in text
    kept = [ln for ln in before.splitlines() if not ln.startswith("TITLE")]
    assert [ln for ln in text.splitlines() if not ln.startswith("TITLE")] == kept
    assert "X-CUSTOM-FLAG;X-PARAM=yes:kept exactly" in text and "X-ABLABEL:Assistant" in text


def test_bulk_first_upload_then_item_by_item(radicale_server: DavServer) -> None:
    """An empty Radicale collection takes the whole first batch in one PUT; the refs are
    the usual <uid>.vcf hrefs, and a later batch goes item by item."""
    coll = radicale_server.new_collection("addressbook")
    with card_connector(radicale_server, coll) as conn:
        ids = [new_id() for _ in range(30)]
        res = conn.apply("contact", [WriteOp("create", None, contact(n), ident=i)
                                     for n, i in enumerate(ids)])
        assert all(r.error is None for r in res)
        assert [r.ref for r in res] == [httpx.URL(coll).path + f"{i}.vcf" for i in ids]
        listed = dict(conn.list("contact"))
        assert {r.ref: r.version for r in res} == listed
        more = conn.apply("contact", [WriteOp("create", None, contact(100 + n), ident=new_id())
                                      for n in range(25)])
        assert all(r.error is None for r in more)
        assert len(dict(conn.list("contact"))) == 55
        # display name survived the whole-collection PUT
        with httpx.Client(auth=radicale_server.auth) as c:
            r = c.request("PROPFIND", coll, headers={"Depth": "0"})
        assert "test addressbook" in r.text


def test_multiget_in_chunks_returns_every_item(xandikos_server: DavServer) -> None:
    coll = xandikos_server.new_collection("addressbook")
    with card_connector(xandikos_server, coll, multiget_chunk=4) as conn:
        res = conn.apply("contact", [WriteOp("create", None, contact(n), ident=f"mg{n}")
                                     for n in range(11)])
        assert all(r.error is None for r in res)
        batches = list(conn.scan("contact", None, 5))
        assert [len(b) for b in batches] == [5, 5, 1]
        got = [i for b in batches for i in b if isinstance(i, Item)]
        assert sorted(i.ident for i in got) == sorted(f"mg{n}" for n in range(11))
        # and scanning resumes after a given ref
        after = sorted(r.ref for r in res if r.ref)[5]
        rest = [i for b in conn.scan("contact", after, 100) for i in b]
        assert len(rest) == 5
