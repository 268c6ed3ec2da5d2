"""Dovecot IMAP test server fixture (session-scoped, loopback).

Dovecot (Debian ``dovecot-imapd``, installed by scripts/test.sh) is started once per session in
the foreground on 127.0.0.1 and a free port, with a temporary base, state and mail directory and
a passwd-file with one user, and stopped by PID at the end. It advertises CONDSTORE, QRESYNC,
UIDPLUS, MOVE and IDLE. Tests get a fresh, empty folder each (``new_folder``), never a shared one.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.dav import free_port, served, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


@dataclass(frozen=True)
class ImapServer:
    host: str
    port: int
    username: str
    password: str
    pid: int
    base: Path
    tls_port: int = 0  # implicit TLS (imaps), when started with a certificate

    def client(self):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient

        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        c.login(self.username, self.password)
        return c

    def new_folder(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        with self.client() as c:
            c.create_folder(name)
        return name

    def options(self, folder: str, **extra: object) -> dict[str, object]:
        """Options of an ``imap`` link on ``folder`` of this server."""
        return {"host": self.host, "port": self.port, "username": self.username,
                "password": self.password, "folder": folder, "tls": False, **extra}


CONF = """\
base_dir = {d}/run
state_dir = {d}/state
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/log
mail_location = maildir:{d}/mail/%u/Maildir
first_valid_uid = 1
mail_max_userip_connections = 200
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _self_signed(base: Path) -> tuple[Path, Path]:
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)  # read by Dovecot's login processes
    return cert, key


def start_dovecot(base: Path, user: str = "alice", password: str = "secret", *,
                  tls: bool = False) -> tuple[subprocess.Popen[bytes], ImapServer]:
    """Dovecot on 127.0.0.1; with ``tls``, a self-signed certificate (``base/cert.pem``)
    for STARTTLS on the plain port and implicit TLS on ``extra_port``."""
    if not Path(DOVECOT).exists():
        raise RuntimeError("dovecot is not installed (fix: apt-get install -y dovecot-imapd, "
                           "or run scripts/test.sh which installs it)")
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # Dovecot's auth and mail processes run as other users (and the
    # folders above ``base`` must let them through)
    for sub in ("run", "state", "mail"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    shutil.chown(base / "mail", "nobody", "nogroup")
    (base / "users").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    ssl_conf, imaps = "ssl = no", 0
    if tls:
        cert, key = _self_signed(base)
        ssl_conf, imaps = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}", free_port()
    (base / "dovecot.conf").write_text(CONF.format(d=base, port=port, ssl=ssl_conf,
                                                   imaps=imaps))
    out = base / "stdout"
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(base / "dovecot.conf")],
                            stdout=out.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, out)
    except RuntimeError:
        log = base / "log"
        raise RuntimeError(f"dovecot did not start: {log.read_text()[-2000:] if log.exists() else ''}"
                           ) from None
    if imaps:
        wait_for_port(imaps, proc, out)
    return proc, ImapServer("127.0.0.1", port, user, password, proc.pid, base, imaps)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[ImapServer]:
    with served("concord-dovecot-", start_dovecot) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_tls_server() -> Iterator[ImapServer]:
    """A second Dovecot with a self-signed certificate: STARTTLS and implicit TLS."""
    with served("concord-dovecot-tls-", start_dovecot, tls=True) as server:
        yield server


@pytest.fixture
def imap_folder(dovecot_server: ImapServer) -> str:
    return dovecot_server.new_folder()
