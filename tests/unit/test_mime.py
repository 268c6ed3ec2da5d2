"""The MIME codec (formats/mime.py): what a message says as an e-mail record, and back."""

from __future__ import annotations

import hashlib

import pytest

from concord import model
from concord.formats import mime

PDF = b"%PDF-1.4\x00\x01binary" * 300


def blobs_of(*datas: bytes) -> dict[str, bytes]:
    return {hashlib.sha256(d).hexdigest(): d for d in datas}


RECORD = {
    "message_id": "<x1@client.example>", "subject": "Réunion: accounts",
    "sender": {"address": "ann@client.example", "name": "Ann Bé"},
    "to": [{"address": "pat@firm.example"}, {"address": "kim@firm.example", "name": "Kim, K"}],
    "cc": [{"address": "c@client.example"}], "date": "2026-03-01T09:00:00Z",
    "in_reply_to": "<x0@firm.example>", "references": ["<x-1@firm.example>", "<x0@firm.example>"],
    "body_text": "Hello,\nsee attached.", "body_html": "<p>Hello</p>",
    "attachments": [{"filename": "accounts.pdf", "content_type": "application/pdf",
                     "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest()}],
}


def test_a_built_message_reads_back_to_the_same_record() -> None:
    store = blobs_of(PDF)
    raw = mime.build(RECORD, "hub-1", store.__getitem__)
    got = mime.parse(raw, name="m")
    assert got.ident == "hub-1"
    assert got.fields == RECORD  # no raw: a built message is all in its fields
    assert model.normalize("email", got.fields) == got.fields
    assert got.blobs == store


def test_a_received_message_keeps_its_bytes_and_is_written_back_unchanged() -> None:
    raw = (b"From: =?utf-8?q?Ann_B=C3=A9?= <Ann@Client.example>\r\nTo: pat@firm.example\r\n"
           b"Subject: =?utf-8?b?UsOpdW5pb24=?=\r\nMessage-ID: <r1@client.example>\r\n"
           b"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\nX-Mailer: Odd Client 1.0\r\n\r\n"
           b"Line one\r\nLine two\r\n")
    got = mime.parse(raw, name="m")
    assert got.fields["subject"] == "Réunion"
    assert got.fields["sender"] == {"address": "Ann@Client.example", "name": "Ann Bé"}
    assert got.fields["date"] == "2026-03-02T09:00:00Z"
    assert got.fields["body_text"] == "Line one\nLine two"
    assert got.fields["raw"] == hashlib.sha256(raw).hexdigest()
    store = dict(got.blobs)
    again = mime.build(got.fields, "hub-2", store.__getitem__)
    assert mime.strip_own_header(again) == (raw, "hub-2")  # byte for byte, plus our header
    # edited in the hub: built afresh, the edit carried, no X-Mailer of the old message
    edited = mime.build({**got.fields, "subject": "Réunion (2)"}, "hub-2", store.__getitem__)
    assert b"X-Concord-Built" in edited and b"Odd Client" not in edited
    assert mime.parse(edited, name="m").fields["subject"] == "Réunion (2)"


def test_the_same_attachment_is_one_blob() -> None:
    store = blobs_of(PDF)
    a = mime.parse(mime.build({**RECORD, "message_id": "<a@x>"}, "a", store.__getitem__), name="a")
    b = mime.parse(mime.build({**RECORD, "message_id": "<b@x>"}, "b", store.__getitem__), name="b")
    assert a.fields["attachments"][0]["sha256"] == b.fields["attachments"][0]["sha256"]
    assert set(a.blobs) == set(b.blobs) == {hashlib.sha256(PDF).hexdigest()}


@pytest.mark.parametrize("raw, defect", [
    (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n",
     "NoBoundaryInMultipartDefect"),
    (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n"
     b"\r\nno parts here\r\n", "StartBoundaryNotFoundDefect"),
    (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n"
     b"\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     b"JVBER!!!i0x\r\n--zz--\r\n", "InvalidBase64"),
    (b"\x00\x01\x02 not a message at all", "malformed"),
])
def test_malformed_mime_names_the_message_and_the_defect(raw: bytes, defect: str) -> None:
    with pytest.raises(mime.MimeError) as exc:
        mime.parse(raw, name="folder X UID 7")
    assert "folder X UID 7" in str(exc.value) and defect in str(exc.value)
    assert "fix:" in str(exc.value)


def test_an_attachment_over_the_limit_is_refused_with_the_limit_named() -> None:
    raw = mime.build(RECORD, "h", blobs_of(PDF).__getitem__)
    with pytest.raises(mime.MimeError, match=r"accounts\.pdf.*over the limit of 100 bytes"):
        mime.parse(raw, name="m", max_attachment=100)
    assert mime.parse(raw, name="m", max_attachment=len(PDF)).fields["attachments"]


def test_addresses_are_matched_normalised() -> None:
    assert mime.normalise_address(" <MAILTO:Ann@Client.Example> ") == "ann@client.example"


def _with_attachment(b64: bytes) -> bytes:
    return (b"From: a@b.example\r\nMessage-ID: <s@b.example>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
            b"Content-Type: text/plain\r\n\r\nhi\r\n--zz\r\nContent-Type: application/pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"\r\n--zz--\r\n")


@pytest.mark.parametrize("width", [76, 60, 72])
def test_a_raw_message_is_stored_without_its_attachment_and_restored_exactly(width: int) -> None:
    import base64

    text = base64.b64encode(PDF)
    raw = _with_attachment(b"\r\n".join(text[i:i + width] for i in range(0, len(text), width)))
    got = mime.parse(raw, name="m")
    stored = got.blobs[got.fields["raw"]]
    assert len(stored) < 1000 < len(raw)  # the attachment is its own blob, not in the message
    assert mime.restore(stored, got.blobs.__getitem__) == raw


def test_an_attachment_encoded_irregularly_stays_inside_the_stored_message() -> None:
    import base64

    text = base64.b64encode(PDF)
    lines = [text[:10], text[10:90], text[90:]]  # no fixed width: cannot be re-encoded
    raw = _with_attachment(b"\r\n".join(lines))
    got = mime.parse(raw, name="m")
    assert got.blobs[got.fields["raw"]] == raw
    assert mime.restore(raw, got.blobs.__getitem__) == raw


def test_non_ascii_attachment_names_survive_both_encodings() -> None:
    store = blobs_of(PDF)
    att = {**RECORD["attachments"][0], "filename": "résumé 2026.pdf"}
    built = mime.build({**RECORD, "attachments": [att]}, "h", store.__getitem__)  # RFC 2231
    assert mime.parse(built, name="m").fields["attachments"][0]["filename"] == "résumé 2026.pdf"
    raw = _with_attachment(b"JVBERi0xLjQ=").replace(
        b"Content-Type: application/pdf\r\n",
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; '
        b'filename="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\r\n')  # RFC 2047, as some mailers do
    assert mime.parse(raw, name="m").fields["attachments"][0]["filename"] == "résumé.pdf"
