"""Discovery (principal -> home set -> collections), creating a collection when asked,
and the two ways of authenticating."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from concord.connectors.base import Item
from concord.connectors.dav import CalDAVConnector, CardDAVConnector, DavOptions
from concord.errors import ConfigError
from concord.records import new_id
from tests.servers.dav import DavServer


def test_discovers_an_address_book_from_the_server_root(dav_server: DavServer) -> None:
    coll = dav_server.new_collection("addressbook")
    opts = DavOptions(url=dav_server.url + "/", username=dav_server.username,
                      password=dav_server.password,
                      collections={"contact": httpx.URL(coll).path.rstrip("/").rsplit("/", 1)[-1]})
    with CardDAVConnector(opts) as conn:
        assert conn.collection("contact") == httpx.URL(coll).path
        ref, _ = conn.create("contact", Item("", "", {"name": "Found"}), new_id())
        assert ref.startswith(httpx.URL(coll).path)


def test_creates_a_named_collection_when_asked(radicale_server: DavServer) -> None:
    srv = radicale_server
    name = f"practice-tasks-{new_id()[-8:]}"
    base = {"url": srv.url + srv.principal, "username": srv.username, "password": srv.password,
            "collections": {"task": name}}
    with CalDAVConnector(DavOptions.model_validate(base)) as conn, pytest.raises(ConfigError) as exc:
        conn.collection("task")
    assert name in str(exc.value) and "create_collection" in str(exc.value)
    with CalDAVConnector(DavOptions.model_validate({**base, "create_collection": True})) as conn:
        path = conn.collection("task")
        assert path == f"{srv.principal}{name}/"
        conn.create("task", Item("", "", {"summary": "First", "status": "Not Started"}), new_id())
        assert len(list(conn.list("task"))) == 1
    # found again by name, not created twice
    with CalDAVConnector(DavOptions.model_validate({**base, "create_collection": True})) as conn:
        assert conn.collection("task") == path and len(list(conn.list("task"))) == 1


def test_tls_verification_is_on_by_default() -> None:
    opts = DavOptions(url="https://dav.example/")
    assert opts.verify_tls is True


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback WebDAV stub that answers an empty multistatus and records the
    Authorization header: no local DAV server takes bearer tokens."""

    seen: list[str | None] = []
    status = 207

    def do_PROPFIND(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'<?xml version="1.0"?><multistatus xmlns="DAV:"></multistatus>'
        self.send_response(type(self).status)
        if type(self).status == 503:
            self.send_header("Retry-After", "120")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_bearer_token_is_sent(recorder: str) -> None:
    _Recorder.seen.clear()
    opts = DavOptions(url=recorder + "/ab/", token="tok-123", collections={"contact": "/ab/"})
    with CardDAVConnector(opts) as conn:
        assert list(conn.list("contact")) == []
    assert _Recorder.seen and all(h == "Bearer tok-123" for h in _Recorder.seen)


def test_basic_auth_is_sent(recorder: str) -> None:
    _Recorder.seen.clear()
    opts = DavOptions(url=recorder + "/ab/", username="alice", password="secret",
                      collections={"contact": "/ab/"})
    with CardDAVConnector(opts) as conn:
        list(conn.list("contact"))
    assert _Recorder.seen and all(h == "Basic YWxpY2U6c2VjcmV0" for h in _Recorder.seen)


def test_watching_wakes_only_on_a_change(radicale_server: DavServer) -> None:
    srv = radicale_server
    coll = srv.new_collection("addressbook")
    opts = DavOptions(url=coll, username=srv.username, password=srv.password,
                      collections={"contact": coll}, poll_interval=0.05)
    with CardDAVConnector(opts) as conn:
        assert conn.wait_for_change(0.1) is True  # first call: sync once
        assert conn.wait_for_change(0.2) is False  # nothing happened
        with httpx.Client(auth=srv.auth) as c:
            r = c.put(coll + "new.vcf", content="BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new\r\n"
                      "FN:New\r\nEND:VCARD\r\n", headers={"Content-Type": "text/vcard"})
            assert r.status_code == 201
        assert conn.wait_for_change(10) is True
        assert conn.wait_for_change(0.1) is False


def test_busy_server_pauses_the_link_until_retry_after(recorder: str) -> None:
    """503 with Retry-After becomes RateLimited with its time, so the link is paused.
    A loopback stub: neither Radicale nor Xandikos can be made to answer 503."""
    from concord.errors import RateLimited

    _Recorder.status = 503
    try:
        opts = DavOptions(url=recorder + "/ab/", collections={"contact": "/ab/"})
        with CardDAVConnector(opts) as conn, pytest.raises(RateLimited) as exc:
            conn.list("contact")
    finally:
        _Recorder.status = 207
    import time

    assert exc.value.until > time.time() + 60  # the server asked for 120 s


class _SlowPut(_Recorder):
    """Answers PUTs slowly and counts how many are in flight at once."""

    lock = threading.Lock()
    inflight = 0
    peak = 0

    def do_PUT(self) -> None:
        import time

        cls = type(self)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with cls.lock:
            cls.inflight += 1
            cls.peak = max(cls.peak, cls.inflight)
        time.sleep(0.05)
        with cls.lock:
            cls.inflight -= 1
        self.send_response(201)
        self.send_header("ETag", f'"{self.path}"')
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_writes_are_pipelined_within_the_per_server_cap() -> None:
    """A loopback stub server, because Radicale and Xandikos cannot report how many
    writes were in flight at once."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowPut)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        opts = DavOptions(url=url + "/ab/", collections={"contact": "/ab/"}, max_connections=3,
                          bulk_upload=False)
        from concord.connectors.base import WriteOp

        with CardDAVConnector(opts) as conn:
            res = conn.apply("contact", [WriteOp("create", None, Item("", "", {"name": f"n{i}"}),
                                                 ident=f"id{i}") for i in range(12)])
        assert all(r.error is None for r in res)
        assert [r.ref for r in res] == [f"/ab/id{i}.vcf" for i in range(12)]
        assert 1 < _SlowPut.peak <= 3
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def tls_recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An HTTPS loopback stub with a self-signed certificate for 127.0.0.1 (made with the
    openssl command); yields (url, path of the certificate)."""
    import shutil
    import ssl
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}", str(d / "cert.pem")
    finally:
        srv.shutdown()
        srv.server_close()


def test_tls_is_verified_and_a_private_ca_can_be_given(tls_recorder: tuple[str, str]) -> None:
    from concord.errors import TransientError

    url, cert = tls_recorder
    opts = DavOptions(url=url + "/ab/", collections={"contact": "/ab/"}, timeout=5)
    with CardDAVConnector(opts) as conn, pytest.raises(TransientError) as exc:
        conn.list("contact")
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value) or "certificate" in str(exc.value)
    ok = DavOptions(url=url + "/ab/", collections={"contact": "/ab/"}, verify_tls=cert)
    with CardDAVConnector(ok) as conn:
        assert list(conn.list("contact")) == []
