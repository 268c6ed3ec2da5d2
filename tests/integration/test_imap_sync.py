"""A mail folder on a real Dovecot (127.0.0.1, tests/servers/imap.py) linked to the hub's
e-mails: both ways, incremental, flags only, malformed MIME, a rebuilt folder (new
UIDVALIDITY), e-mails linked to contacts and new recipients made contacts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.config import from_dict
from concord.engine import RunResult, sync_link
from concord.engine.addresses import contact_candidates, contact_id
from concord.formats import mime
from concord.hub.store import Hub
from tests.servers.imap import ImapServer

PDF = b"%PDF-1.4 engagement letter\n" * 40


def message(n: int, *, to: str = "partner@firm.example", attach: bool = False,
            sender: str | None = None) -> bytes:
    """A message as a mail client would file it (no Concord header)."""
    lines = [f"From: Client {n} <{sender or f'client{n}@client.example'}>", f"To: {to}",
             f"Subject: Question {n}", f"Message-ID: <q{n}@client.example>",
             "Date: Mon, 02 Mar 2026 10:00:00 +0100", "MIME-Version: 1.0"]
    if not attach:
        return ("\r\n".join([*lines, "Content-Type: text/plain; charset=utf-8", "",
                             f"Hello {n}", ""])).encode()
    import base64

    b64 = base64.encodebytes(PDF).decode().replace("\n", "\r\n")
    return ("\r\n".join([*lines, 'Content-Type: multipart/mixed; boundary="b1"', "", "--b1",
                         "Content-Type: text/plain; charset=utf-8", "", f"Hello {n}", "--b1",
                         'Content-Type: application/pdf; name="letter.pdf"',
                         'Content-Disposition: attachment; filename="letter.pdf"',
                         "Content-Transfer-Encoding: base64", "", b64 + "--b1--", ""])).encode()


class Env:
    def __init__(self, server: ImapServer, tmp: Path, **options: Any) -> None:
        self.server = server
        self.folder = server.new_folder()
        self.hub_url = f"sqlite:///{tmp / 'hub.db'}"
        self.options = options
        self.hub = Hub(self.hub_url)

    def link(self, name: str = "mail", **options: Any) -> Any:
        data = {"hub": {"url": self.hub_url}, "links": {name: {
            "connector": "imap", "options": self.server.options(
                options.pop("folder", self.folder), **{**self.options, **options}),
            "entities": {"email": {}}}}}
        return from_dict(data).link(name)

    def sync(self, name: str = "mail", **options: Any) -> RunResult:
        r = sync_link(self.hub, self.link(name, **options))
        assert r.status == "ok", r.message
        return r

    def append(self, raw: bytes, flags: tuple[bytes, ...] = ()) -> int:
        with self.server.client() as c:
            got = c.append(self.folder, raw, flags=flags)
        return int(got.split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))

    def folder_messages(self) -> dict[int, dict[bytes, Any]]:
        with self.server.client() as c:
            c.select_folder(self.folder, readonly=True)
            uids = c.search(["ALL"])
            return dict(c.fetch(uids, ["FLAGS", "BODY.PEEK[]"])) if uids else {}

    def emails(self) -> list[Any]:
        return self.hub.list_records("email", limit=100_000)


@pytest.fixture
def env(dovecot_server: ImapServer, tmp_path: Path) -> Iterator[Env]:
    e = Env(dovecot_server, tmp_path, new_contacts="off")
    yield e
    e.hub.close()


def test_folder_to_hub_and_back_is_byte_exact_and_idempotent(env: Env) -> None:
    env.append(message(1, attach=True), (b"\\Seen",))
    env.append(message(2))
    r = env.sync()
    assert r.counts["create in hub"] == 2, r.counts
    recs = {r.fields["subject"]: r for r in env.emails()}
    one = recs["Question 1"].fields
    assert one["flags"] == ["seen"] and one["sender"]["address"] == "client1@client.example"
    (att,) = one["attachments"]
    assert att["filename"] == "letter.pdf" and att["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert env.hub.blob(att["sha256"]) == PDF
    stored = env.hub.blob(one["raw"])  # the message without the attachment's bytes...
    assert len(stored) < len(PDF) and mime.restore(stored, env.hub.blob) == message(1, attach=True)
    assert env.sync().counts == {}, "a second run finds nothing to do"

    # the same e-mails reach a second folder byte for byte (with Concord's header on top)
    other = env.server.new_folder()
    r2 = env.sync("copy", folder=other)
    assert r2.counts["create in spoke"] == 2, r2.counts
    with env.server.client() as c:
        c.select_folder(other, readonly=True)
        bodies = [d[b"BODY[]"] for d in c.fetch(c.search(["ALL"]), ["BODY.PEEK[]"]).values()]
    stripped = sorted(mime.strip_own_header(b)[0] for b in bodies)
    assert stripped == sorted([message(1, attach=True), message(2)])
    assert env.sync("copy", folder=other).counts == {}
    assert env.sync().counts == {}
    assert len(env.emails()) == 2


def test_hub_email_is_appended_once_and_a_flag_edit_syncs_flags_only(env: Env) -> None:
    sha = hashlib.sha256(PDF).hexdigest()
    env.hub.put_blobs({sha: PDF})
    env.hub.put("email", "e1", {
        "subject": "Your tax return", "sender": {"address": "partner@firm.example"},
        "to": [{"address": "client9@client.example", "name": "Client Nine"}],
        "body_text": "Attached.", "date": "2026-03-03T08:00:00Z",
        "attachments": [{"filename": "return.pdf", "content_type": "application/pdf",
                         "size": len(PDF), "sha256": sha}]})
    r = env.sync()
    assert r.counts["create in spoke"] == 1, r.counts
    (uid, got), = env.folder_messages().items()
    parsed = mime.parse(got[b"BODY[]"], name="t")
    assert parsed.ident == "e1" and parsed.fields["attachments"][0]["sha256"] == sha
    assert env.sync().counts == {}

    # a flag set in a mail client reaches the hub; the message keeps its bytes and UID
    with env.server.client() as c:
        c.select_folder(env.folder)
        c.add_flags([uid], [b"\\Flagged"])
    assert env.sync().counts["spoke -> hub"] == 1
    assert env.hub.get("email", "e1").fields["flags"] == ["flagged"]
    # a flag set in the hub reaches the folder by STORE: same UID, same bytes
    rec = env.hub.get("email", "e1")
    env.hub.put("email", "e1", {**rec.fields, "flags": ["flagged", "seen"]})
    assert env.sync().counts["hub -> spoke"] == 1
    (uid2, got2), = env.folder_messages().items()
    assert uid2 == uid and got2[b"BODY[]"] == got[b"BODY[]"]
    assert set(got2[b"FLAGS"]) >= {b"\\Flagged", b"\\Seen"}
    assert env.sync().counts == {}


def test_a_hub_content_edit_replaces_the_message_and_an_expunge_deletes(env: Env) -> None:
    env.append(message(1))
    env.sync()
    (rec,) = env.emails()
    env.hub.put("email", rec.id, {**rec.fields, "subject": "Question 1 (answered)"})
    assert env.sync().counts["hub -> spoke"] == 1
    (uid, got), = env.folder_messages().items()
    assert b"Subject: Question 1 (answered)" in got[b"BODY[]"]
    assert env.sync().counts == {}
    with env.server.client() as c:  # expunged in a mail client
        c.select_folder(env.folder)
        c.delete_messages([uid])
        c.uid_expunge([uid])
    assert env.sync().counts["delete in hub"] == 1
    assert env.hub.get("email", rec.id).deleted


def test_malformed_mime_is_quarantined_by_uid_and_the_rest_syncs(env: Env) -> None:
    env.append(message(1))
    bad = env.append(b"From: x@y.example\r\nContent-Type: multipart/mixed\r\n"
                     b"MIME-Version: 1.0\r\n\r\nno boundary\r\n")
    env.append(message(3))
    r = env.sync()
    assert r.counts["create in hub"] == 2 and r.counts["quarantined"] == 1, r.counts
    (q,) = env.hub.quarantined("mail")
    assert q["ref"].endswith(f":{bad}") and f"UID {bad}" in q["error"]
    assert "malformed MIME" in q["error"]


def test_a_rebuilt_folder_new_uidvalidity_relinks_without_duplicates(env: Env) -> None:
    for n in range(5):
        env.append(message(n))
    env.sync()
    ids = sorted(r.id for r in env.emails())
    with env.server.client() as c:  # the folder is deleted and filed again from a backup
        c.delete_folder(env.folder)
        c.create_folder(env.folder)
    for n in range(5):
        env.append(message(n))
    r = env.sync()
    assert r.counts["relinked (new UIDVALIDITY)"] == 5, r.counts
    assert not r.counts["delete in hub"] and not r.counts["create in hub"], r.counts
    assert sorted(r.id for r in env.emails() if not r.deleted) == ids
    assert env.sync().counts == {}


def test_emails_link_to_contacts_and_new_recipients(env: Env) -> None:
    env.hub.put("client", "acme", {"name": "Acme Ltd"})
    env.hub.put("contact", "c1", {"name": "Client One",
                                  "emails": [{"address": "Client1@Client.Example"}]},
                {"client": "acme"})
    env.hub.put("staff", "s1", {"name": "Pat", "emails": [{"address": "partner@firm.example"}]})
    env.append(message(1))  # from a known contact (address in another case)
    env.append(message(2, to="partner@firm.example, New Person <new.person@other.example>"))
    r = env.sync("mail", new_contacts="review")
    assert r.counts["e-mails linked to contacts"] == 1, r.counts
    by_subject = {e.fields["subject"]: e for e in env.emails()}
    assert by_subject["Question 1"].refs == {"contact": "c1", "client": "acme"}
    review = {c["address"] for c in contact_candidates(env.hub)}
    assert review == {"client2@client.example", "new.person@other.example"}
    assert env.hub.count("contact") == 1

    r = env.sync("mail", new_contacts="create")  # nothing new in the folder: nothing to link
    assert env.hub.count("contact") == 1
    env.append(message(3, sender="new.person@Other.example"))
    env.append(message(4, to="New Person <NEW.PERSON@other.example>"))
    r = env.sync("mail", new_contacts="create")
    made = env.hub.get("contact", contact_id("new.person@other.example"))
    assert made is not None and made.fields["emails"] == [{"address": "new.person@other.example"}]
    addresses = [e["address"] for c in env.hub.list_records("contact") for e in c.fields["emails"]]
    assert sorted(addresses) == sorted({"Client1@Client.Example", "client4@client.example",
                                        "new.person@other.example"})
    by_subject = {e.fields["subject"]: e for e in env.emails()}
    assert by_subject["Question 3"].refs["contact"] == made.id
    assert "partner@firm.example" not in addresses  # staff are never contacts
    assert env.sync("mail", new_contacts="create").counts == {}


def test_addresses_for_review_are_accepted_or_dismissed_from_the_command_line(
        env: Env, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from concord.cli import app

    env.append(message(1))
    env.append(message(2))
    env.sync("mail", new_contacts="review", own_addresses=["@firm.example"])
    cfg = tmp_path / "concord.toml"
    cfg.write_text(f'[hub]\nurl = "{env.hub_url}"\n')

    def cli(*args: str) -> str:
        res = CliRunner().invoke(app, [*args, "--config", str(cfg)], env={"COLUMNS": "250"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    listed = cli("contacts", "review")
    assert "client1@client.example" in listed and "client2@client.example" in listed
    assert "dismissed" in cli("contacts", "dismiss", "Client2@client.example")
    made = cli("contacts", "accept", "client1@client.example")
    assert contact_id("client1@client.example") in made
    assert "no addresses waiting for review" in cli("contacts", "review")
    bad = CliRunner().invoke(app, ["contacts", "accept", "nobody@x.example", "--config", str(cfg)])
    assert bad.exit_code == 2 and "not listed for review" in bad.output
    # the e-mail already synced from the accepted address is linked on the next run
    env.sync("mail", new_contacts="review", own_addresses=["@firm.example"])
    by_subject = {e.fields["subject"]: e for e in env.emails()}
    assert by_subject["Question 1"].refs == {"contact": contact_id("client1@client.example")}
    assert "contact" not in by_subject["Question 2"].refs
    env.append(message(22, sender="client2@client.example"))  # dismissed: never listed again
    env.sync("mail", new_contacts="review", own_addresses=["@firm.example"])
    assert contact_candidates(env.hub) == []
