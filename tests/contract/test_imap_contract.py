"""The connector contract on IMAP: a real Dovecot on 127.0.0.1 (tests/servers/imap.py), a
fresh folder per test, the hub's blob store on a SQLite hub under tmp_path.

IMAP messages are immutable: an update that changes a message's content appends the new
message and expunges the old one, so its reference (UID) changes. The two contract tests
that assume an update keeps its reference are restated here with the reference ``apply``
reports; everything else is the shared contract.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from concord.connectors.base import Item, ItemError, WriteOp
from concord.connectors.imap import ImapConnector, ImapOptions
from concord.errors import ConfigError, PreconditionFailed
from concord.formats import mime
from concord.hub.store import Hub
from concord.records import new_id
from tests.contract.base import ConnectorContract, _content
from tests.servers.imap import ImapServer

PDF = b"%PDF-1.4 fake report\n" * 50


def make_email(n: int, *, attach: bool = True) -> Item:
    fields = {
        "message_id": f"<m{n}@client.example>", "subject": f"Year-end accounts {n}",
        "sender": {"address": f"client{n}@client.example", "name": f"Client {n}"},
        "to": [{"address": "partner@firm.example", "name": "Pat Partner"}],
        "date": "2026-03-01T09:00:00Z", "body_text": f"Please find attached, {n}.\nThanks",
        "flags": ["seen"] if n % 2 else [],
    }
    if attach:
        fields["attachments"] = [{"filename": "accounts.pdf", "content_type": "application/pdf",
                                  "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest()}]
    return Item(ref="", version="", fields={k: v for k, v in fields.items() if v != []})


@pytest.fixture
def imap_hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    hub.put_blobs({hashlib.sha256(PDF).hexdigest(): PDF})
    yield hub
    hub.close()


@pytest.fixture
def imap_connector(dovecot_server: ImapServer, imap_hub: Hub) -> Iterator[ImapConnector]:
    folder = dovecot_server.new_folder()
    conn = ImapConnector(ImapOptions.model_validate(dovecot_server.options(folder)), link="t")
    conn.bind_hub(imap_hub)
    yield conn
    conn.close()


class TestImapContract(ConnectorContract):
    @pytest.fixture
    def connector(self, imap_connector: ImapConnector) -> ImapConnector:
        return imap_connector

    @pytest.fixture
    def entity(self) -> str:
        return "email"

    @pytest.fixture
    def make_item(self):
        return make_email

    def test_update_with_current_version(self, connector, entity, make_item) -> None:
        """A content update is a new message (new UID) holding the new content."""
        ref, v1 = connector.create(entity, make_item(1), new_id())
        r = connector.apply(entity, [WriteOp("update", ref, make_item(2), expected_version=v1)])[0]
        assert r.error is None and r.ref and r.ref != ref
        assert dict(connector.list(entity)) == {r.ref: r.version}
        names = connector.fields(entity)
        assert _content(self._get_one(connector, entity, r.ref), names) == \
            _content(make_item(2), names)

    def test_update_with_stale_version_is_a_conflict(self, connector, entity, make_item) -> None:
        ref, v1 = connector.create(entity, make_item(1), new_id())
        flagged = Item("", "", {**make_item(1).fields, "flags": ["flagged"]})
        connector.update(entity, ref, flagged, v1)  # same content: flags only, same UID
        r = connector.apply(entity, [WriteOp("update", ref, make_item(3), expected_version=v1)])
        assert isinstance(r[0].error, PreconditionFailed)
        names = connector.fields(entity)
        assert _content(self._get_one(connector, entity, ref), names) == _content(flagged, names)

    def test_delete_with_stale_version_is_a_conflict(self, connector, entity, make_item) -> None:
        ref, v1 = connector.create(entity, make_item(1), new_id())
        flagged = Item("", "", {**make_item(1).fields, "flags": ["flagged"]})
        connector.update(entity, ref, flagged, v1)  # a flag change: same UID, new MODSEQ
        with pytest.raises(PreconditionFailed):
            connector.delete(entity, ref, v1)
        assert ref in dict(connector.list(entity))

    def test_changes_report_new_changed_and_deleted(self, connector, entity, make_item) -> None:
        token = connector.changes(entity, None).token
        ref_a, va = connector.create(entity, make_item(1), new_id())
        ref_b, vb = connector.create(entity, make_item(2), new_id())
        ch = connector.changes(entity, token)
        assert {ref_a, ref_b} <= set(ch.changed)
        r = connector.apply(entity, [WriteOp("update", ref_a, make_item(3), expected_version=va)])
        connector.delete(entity, ref_b, vb)
        ch = connector.changes(entity, ch.token)
        assert set(ch.changed) == {r[0].ref} and ch.deleted == {ref_a, ref_b}

    def test_change_capture_token_catches_later_edits(self, connector, entity,
                                                      make_item) -> None:
        """The shared test with flag edits, which keep the message's UID."""
        def flagged(*flags: str) -> Item:
            return Item("", "", {**make_item(1).fields, "flags": list(flags)})

        capture = connector.change_capture()
        assert capture is not None and connector.capabilities.incremental
        ref, v1 = connector.create(entity, make_item(1), new_id())
        token = capture.current_token(entity)
        connector.update(entity, ref, flagged("flagged"), v1)
        ch = connector.changes(entity, token)
        assert ref in ch.changed and not ch.complete
        v3 = connector.update(entity, ref, flagged("answered"), ch.changed[ref])
        settled = capture.token_after_writes(entity, ch.token, {ref: v3})
        v4 = connector.update(entity, ref, flagged("answered", "seen"), v3)
        assert connector.changes(entity, settled).changed.get(ref) == v4

    # -- IMAP specifics beyond the contract ---------------------------------------------
    def test_flags_only_edit_keeps_the_message_and_its_uid(self, connector, entity,
                                                           dovecot_server) -> None:
        item = make_email(2)  # unseen
        ref, v1 = connector.create(entity, item, "hub-1")
        uid = int(ref.split(":")[1])
        with dovecot_server.client() as c:
            c.select_folder(connector.folder)
            before = c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        seen = Item("", "", {**item.fields, "flags": ["flagged", "seen"]})
        v2 = connector.update(entity, ref, seen, v1)
        assert v2 != v1 and dict(connector.list(entity)) == {ref: v2}
        with dovecot_server.client() as c:
            c.select_folder(connector.folder)
            got = c.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
        assert got[b"BODY[]"] == before
        assert set(got[b"FLAGS"]) >= {b"\\Seen", b"\\Flagged"}
        with pytest.raises(PreconditionFailed):  # a stale flag write is refused by the server
            connector.update(entity, ref, Item("", "", {**item.fields, "flags": []}), v1)

    def test_a_lost_append_answer_is_found_by_its_header(self, connector, entity,
                                                         dovecot_server) -> None:
        raw = mime.build(make_email(1).fields, "hub-lost", connector._blob)
        with dovecot_server.client() as c:  # the append reached the server, the answer did not
            c.append(connector.folder, raw)
        ref, _ = connector.create(entity, make_email(1), "hub-lost")
        assert list(dict(connector.list(entity))) == [ref]
        assert self._get_one(connector, entity, ref).ident == "hub-lost"

    def test_malformed_mime_is_an_item_error_naming_the_uid(self, connector, entity,
                                                             dovecot_server) -> None:
        bad = (b"From: a@b.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n")
        with dovecot_server.client() as c:
            c.append(connector.folder, bad)
            c.append(connector.folder, mime.build(make_email(5, attach=False).fields, "ok-1",
                                                  connector._blob))
        refs = sorted(dict(connector.list(entity)))
        got = list(connector.get(entity, refs))
        errors = [g for g in got if isinstance(g, ItemError)]
        items = [g for g in got if isinstance(g, Item)]
        assert len(errors) == 1 and len(items) == 1
        uid = errors[0].ref.split(":")[1]
        assert f"UID {uid}" in errors[0].error and "malformed MIME" in errors[0].error
        assert "fix:" in errors[0].error
        assert items[0].ident == "ok-1"

    def test_attachment_over_the_limit_is_refused_naming_message_and_limit(
            self, dovecot_server, imap_hub) -> None:
        folder = dovecot_server.new_folder()
        conn = ImapConnector(ImapOptions.model_validate(
            dovecot_server.options(folder, max_attachment_bytes=100)), link="t")
        conn.bind_hub(imap_hub)
        try:
            ref, _ = conn.create("email", make_email(1), "big-1")
            (got,) = conn.get("email", [ref])
            assert isinstance(got, ItemError)
            assert "accounts.pdf" in got.error and "100 bytes" in got.error
            assert "max_attachment_bytes" in got.error
        finally:
            conn.close()

    def test_attachments_are_stored_once(self, connector, entity, imap_hub) -> None:
        before = imap_hub.has_blobs([hashlib.sha256(PDF).hexdigest()])
        refs = [connector.create(entity, make_email(i), f"h{i}")[0] for i in range(3)]
        got = [g for g in connector.get(entity, refs) if isinstance(g, Item)]
        shas = {a["sha256"] for g in got for a in g.fields["attachments"]}
        assert shas == {hashlib.sha256(PDF).hexdigest()} and before == shas
        assert imap_hub.blob(shas.pop()) == PDF

    def test_changes_report_expunges_through_vanished(self, connector, entity,
                                                      dovecot_server) -> None:
        token = connector.changes(entity, None).token
        ref, _ = connector.create(entity, make_email(1), "x1")
        ch = connector.changes(entity, token)
        assert not ch.complete and set(ch.changed) == {ref}
        uid = int(ref.split(":")[1])
        with dovecot_server.client() as c:  # expunged by another client
            c.select_folder(connector.folder)
            c.delete_messages([uid])
            c.uid_expunge([uid])
        ch2 = connector.changes(entity, ch.token)
        assert not ch2.complete and ch2.deleted == {ref} and ch2.changed == {}
        assert connector.changes(entity, ch2.token).changed == {}

    def test_idle_wakes_on_a_new_message(self, connector, entity, dovecot_server) -> None:
        import threading

        assert connector.wait_for_change(0) is False
        woke: list[bool] = []
        t = threading.Thread(target=lambda: woke.append(connector.wait_for_change(60)))
        t.start()
        raw = mime.build(make_email(1, attach=False).fields, "idle-1", connector._blob)
        while t.is_alive():  # append until the watcher wakes (it may start IDLE late)
            with dovecot_server.client() as c:
                c.append(connector.folder, raw)
            t.join(0.2)
        assert woke == [True]

    def test_reads_are_grouped_by_size(self, connector, entity, monkeypatch) -> None:
        from concord.connectors import imap

        refs = [connector.create(entity, make_email(i), f"g{i}")[0] for i in range(3)]
        uids = [int(r.split(":")[1]) for r in refs]
        monkeypatch.setattr(imap, "_FETCH_BYTES", len(PDF) * 2)  # about one message a group
        groups = list(connector._groups(uids))
        assert sorted(u for g in groups for u in g) == uids and len(groups) >= 2
        monkeypatch.setattr(imap, "_FETCH_BYTES", 1)  # each message alone, still all read
        assert [len(g) for g in connector._groups(uids)] == [1, 1, 1]
        got = [g for g in connector.get(entity, refs) if isinstance(g, Item)]
        assert sorted(g.ident for g in got) == ["g0", "g1", "g2"]


# -- connecting securely (a second Dovecot with a self-signed certificate) --------------------
def _tls_connector(server: ImapServer, hub: Hub, **opts: object) -> ImapConnector:
    folder = server.new_folder()
    conn = ImapConnector(ImapOptions.model_validate(server.options(folder, **opts)), link="t")
    conn.bind_hub(hub)
    return conn


@pytest.mark.parametrize("how", ["imaps", "starttls"])
def test_tls_with_the_server_certificate_trusted(dovecot_tls_server: ImapServer, imap_hub: Hub,
                                                 how: str) -> None:
    cert = str(dovecot_tls_server.base / "cert.pem")
    opts: dict[str, object] = ({"tls": True, "port": dovecot_tls_server.tls_port}
                               if how == "imaps" else {"tls": False, "starttls": True})
    conn = _tls_connector(dovecot_tls_server, imap_hub, ca_file=cert, **opts)
    try:
        ref, _ = conn.create("email", make_email(1, attach=False), "tls-1")
        assert list(dict(conn.list("email"))) == [ref]
        sock = conn.client()._imap.sock
        assert isinstance(sock, ssl.SSLSocket) and sock.version() is not None
    finally:
        conn.close()


def test_an_untrusted_certificate_is_a_config_error_naming_ca_file(
        dovecot_tls_server: ImapServer, imap_hub: Hub) -> None:
    conn = _tls_connector(dovecot_tls_server, imap_hub, tls=True,
                          port=dovecot_tls_server.tls_port)
    with pytest.raises(ConfigError, match="not trusted") as exc:
        conn.list("email")
    assert exc.value.key == "options.ca_file"


def test_a_clear_text_password_to_another_host_is_refused() -> None:
    opts = ImapOptions(host="imap.firm.example", tls=False, username="u", password="p")
    with pytest.raises(ConfigError, match="in clear") as exc:
        ImapConnector(opts, link="t")
    assert exc.value.key == "options.tls"
    ImapConnector(ImapOptions(host="imap.firm.example", tls=False, allow_plaintext=True,
                              username="u", password="p"), link="t")
