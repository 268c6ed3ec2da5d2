"""IMAP benchmark: Concord against mbsync (Debian isync), same folder, same fresh Dovecot.

A folder on a Dovecot started on 127.0.0.1 for the run is filled with generated messages
(a tenth of them with a PDF attachment). Concord pulls it into a fresh hub (first sync), then
runs a sync with nothing to do (no-op). mbsync, the baseline measured in the same run, pulls
the same folder into a fresh Maildir (first sync), then runs again with nothing to do. Each
run is checked: the hub, or the Maildir, holds every message, else the bench stops with the
failing run named. mbsync is installed with apt when it is missing.

    python bench/imap_bench.py [--small]     # --small: 1,000 messages, a quick check

Prints a table and writes bench/results/imap.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.dav import stop  # noqa: E402
from tests.servers.imap import ImapServer, start_dovecot  # noqa: E402

from bench import write_results  # noqa: E402
from concord.config import from_dict  # noqa: E402
from concord.engine import sync_link  # noqa: E402
from concord.hub.store import Hub  # noqa: E402

PDF = b"%PDF-1.4 quarterly statement\n" * 400


def fail(msg: str) -> None:
    print(f"imap bench: {msg}", file=sys.stderr)
    raise SystemExit(1)


def message(i: int) -> bytes:
    head = (f"From: Client {i} <client{i % 500}@client.example>\r\nTo: partner@firm.example\r\n"
            f"Subject: Statement {i}\r\nMessage-ID: <st{i}@client.example>\r\n"
            "Date: Tue, 03 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    text = f"Dear partner,\r\n\r\nplease find statement {i}.\r\n\r\nRegards\r\n"
    if i % 10:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    import base64

    b64 = base64.encodebytes(PDF).decode().replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="bb"\r\n\r\n--bb\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "--bb\r\n"
            'Content-Type: application/pdf\r\nContent-Disposition: attachment; '
            'filename="statement.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + b64 + "--bb--\r\n").encode()


def fill(server: ImapServer, folder: str, n: int) -> None:
    with server.client() as c:
        for i in range(0, n, 500):
            c.multiappend(folder, [message(j) for j in range(i, min(n, i + 500))])
        got = int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
    if got != n:
        fail(f"filling the folder: {got} of {n} messages appended")


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ensure_mbsync() -> str | None:
    exe = shutil.which("mbsync")
    if exe is None and os.geteuid() == 0:
        print("imap bench: installing isync (mbsync) with apt", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            "isync"], capture_output=True, env=env)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            "isync"], capture_output=True, env=env)
        exe = shutil.which("mbsync")
    return exe


class ConcordSide:
    def __init__(self, server: ImapServer, work: Path, folder: str, n: int) -> None:
        self.n = n
        self.hub = Hub(f"sqlite:///{work / 'concord-hub.db'}")
        self.link = from_dict({"links": {"mail": {
            "connector": "imap", "batch_size": 1000,
            "options": server.options(folder, new_contacts="off"),
            "entities": {"email": {"direction": "pull"}}}}}).link("mail")

    def sync(self) -> None:
        r = sync_link(self.hub, self.link)
        if r.status != "ok":
            fail(f"Concord sync: {r.status}: {r.message}")
        have = self.hub.count("email")
        if have != self.n:
            fail(f"Concord sync: the hub holds {have} of {self.n} e-mails ({dict(r.counts)})")


class MbsyncSide:
    def __init__(self, exe: str, server: ImapServer, work: Path, folder: str, n: int) -> None:
        self.exe, self.n = exe, n
        self.maildir = work / "maildir"
        self.maildir.mkdir()
        self.rc = work / "mbsyncrc"
        self.rc.write_text(
            f"IMAPAccount bench\nHost {server.host}\nPort {server.port}\nUser {server.username}\n"
            f"Pass {server.password}\nSSLType None\nAuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount bench\n\n"
            f"MaildirStore local\nPath {self.maildir}/\nInbox {self.maildir}/inbox\n\n"
            f"Channel bench\nFar :remote:{folder}\nNear :local:bench\nSync Pull\n"
            "Create Near\nExpunge None\nSyncState *\n")

    def sync(self) -> None:
        r = subprocess.run([self.exe, "-c", str(self.rc), "-q", "bench"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            fail(f"mbsync exited {r.returncode}: {r.stderr.strip()[-500:]}")
        have = sum(len(os.listdir(self.maildir / "bench" / sub)) for sub in ("cur", "new"))
        if have != self.n:
            fail(f"mbsync: the Maildir holds {have} of {self.n} messages")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="1,000 messages")
    ap.add_argument("--no-mbsync", action="store_true")
    args = ap.parse_args()
    n = 1000 if args.small else 10_000
    work = Path(tempfile.mkdtemp(prefix="concord-imapbench-"))
    work.chmod(0o755)  # Dovecot's processes run as other users
    try:
        proc, server = start_dovecot(work / "dovecot")
    except RuntimeError as exc:
        fail(f"cannot start Dovecot: {exc}")
    res: dict[str, Any] = {}
    try:
        folder = server.new_folder("bench")
        fill(server, folder, n)
        exe = None if args.no_mbsync else ensure_mbsync()
        if exe is None and not args.no_mbsync:
            fail("mbsync is not installed (fix: apt-get install isync, or pass --no-mbsync)")
        # interleaved: baseline, Concord, baseline again on the no-op
        if exe is not None:
            m = MbsyncSide(exe, server, work, folder, n)
            res["first_mbsync_s"] = timed(m.sync)
        c = ConcordSide(server, work, folder, n)
        res["first_concord_s"] = timed(c.sync)
        res["noop_concord_s"] = timed(c.sync)
        if exe is not None:
            res["noop_mbsync_s"] = timed(m.sync)
        c.hub.close()
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    res = {k: round(v, 3) for k, v in res.items()}
    print(f"\n{'sync':<14}{'messages':>10}{'Concord s':>12}{'mbsync s':>12}{'Concord/mbsync':>16}")
    for label, ck, mk in (("first sync", "first_concord_s", "first_mbsync_s"),
                          ("no-op sync", "noop_concord_s", "noop_mbsync_s")):
        cv, mv = res.get(ck), res.get(mk)
        ratio = f"{cv / mv:.1f}x" if cv and mv else "-"
        print(f"{label:<14}{n:>10,}{cv if cv is not None else '-':>12}"
              f"{mv if mv is not None else '-':>12}{ratio:>16}")
    write_results("imap", {**res, "messages": n, "small": args.small}, machine=True)


if __name__ == "__main__":
    main()
