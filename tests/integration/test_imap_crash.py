"""Crash safety over IMAP: `concord sync` killed with SIGKILL during a first sync of 2,000
messages, then run to the end.

A folder on a real Dovecot (127.0.0.1) holds 2,000 messages; link ``src`` brings them into the
hub and link ``dst`` appends them to a second folder, in batches of 200 (many commit points).
Each round starts `concord sync` and kills it at a random point within the first half of the work
still left (progress observed in the hub's change counter and the second folder's message
count) or at a random early instant, so the first sync is interrupted again and again. After every kill nothing is duplicated, in the hub or in either folder;
after a final uninterrupted run every message is in the hub once and in the second folder once,
and a further run finds nothing to do.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from concord.formats import mime
from concord.hub.store import Hub
from tests.integration.test_crash import concord_env, hub_seq
from tests.servers.imap import ImapServer

pytestmark = pytest.mark.slow

N = 2000
ROUNDS = 6


def message(i: int) -> bytes:
    return (f"From: Client {i} <client{i}@client.example>\r\nTo: partner@firm.example\r\n"
            f"Subject: Invoice {i}\r\nMessage-ID: <inv{i}@client.example>\r\n"
            "Date: Tue, 03 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nInvoice number {i}.\r\n").encode()


def config(server: ImapServer, src: str, dst: str) -> str:
    def link(name: str, folder: str) -> str:
        return (f'[links.{name}]\nconnector = "imap"\nbatch_size = 200\n'
                f'options = {{ host = "{server.host}", port = {server.port}, '
                f'username = "{server.username}", password = "{server.password}", '
                f'folder = "{folder}", tls = false, new_contacts = "off" }}\n'
                f"[links.{name}.entities.email]\n")
    return '[hub]\nurl = "sqlite:///hub.db"\n\n' + link("src", src) + link("dst", dst)


def message_ids(server: ImapServer, folder: str) -> list[str]:
    with server.client() as c:
        c.select_folder(folder, readonly=True)
        uids = c.search(["ALL"])
        if not uids:
            return []
        key = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        got = c.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return [d[key].decode().split(":", 1)[1].strip() for d in got.values()]


def hub_emails(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM records WHERE entity = 'email'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def dupes(values: list[str]) -> list[str]:
    return [v for v, n in Counter(values).items() if n > 1]


def check_no_duplicates(root: Path, server: ImapServer, src: str, dst: str) -> None:
    assert dupes(message_ids(server, src)) == []
    assert dupes(message_ids(server, dst)) == []
    hub = Hub(f"sqlite:///{root / 'hub.db'}")
    try:
        recs = hub.list_records("email", limit=10 * N)
        assert len(recs) <= N
        assert dupes([r.fields["message_id"] for r in recs]) == []
    finally:
        hub.close()


def test_first_sync_killed_at_random_points_loses_and_duplicates_nothing(
        tmp_path: Path, dovecot_server: ImapServer) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    src, dst = dovecot_server.new_folder("src"), dovecot_server.new_folder("dst")
    with dovecot_server.client() as c:
        for i in range(0, N, 250):
            c.multiappend(src, [message(j) for j in range(i, min(N, i + 250))])
    (tmp_path / "concord.toml").write_text(config(dovecot_server, src, dst))
    watch = dovecot_server.client()

    def dst_count() -> int:
        return int(watch.folder_status(dst, [b"MESSAGES"])[b"MESSAGES"])

    kills = 0
    try:
        for _ in range(ROUNDS):
            proc = subprocess.Popen(
                [sys.executable, "-m", "concord.cli", "sync", "--config",
                 str(tmp_path / "concord.toml")], cwd=tmp_path, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, env=concord_env())
            # the first sync is still under way: kill it within the first half of what is left
            # (or at a random early instant), so every round interrupts it somewhere new
            left = 2 * N - hub_emails(tmp_path / "hub.db") - dst_count()
            if rnd.random() < 0.25:
                target, deadline = None, time.monotonic() + rnd.uniform(0.0, 1.5)
            else:
                target, deadline = rnd.randint(1, max(1, left // 2)), None
            seq0, n0 = hub_seq(tmp_path / "hub.db"), dst_count()
            while proc.poll() is None:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if target is not None:
                    done = hub_seq(tmp_path / "hub.db") - seq0 + dst_count() - n0
                    if done >= target:
                        time.sleep(rnd.uniform(0, 0.03))
                        break
                time.sleep(0.005)
            out = b""
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
            else:
                out = proc.stdout.read() if proc.stdout else b""
                assert proc.returncode == 0, f"seed {seed}: {out.decode()}"
            if proc.stdout:
                proc.stdout.close()
            check_no_duplicates(tmp_path, dovecot_server, src, dst)
    finally:
        watch.logout()
    assert kills >= ROUNDS - 2, f"seed {seed}: only {kills} runs were interrupted"

    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "concord.cli", "sync", "--config",
                               str(tmp_path / "concord.toml")], cwd=tmp_path,
                              capture_output=True, timeout=300, env=concord_env())
        assert done.returncode == 0, f"seed {seed}: {done.stdout.decode()}{done.stderr.decode()}"
    last = " ".join(done.stdout.decode().split())
    assert "src: ok — nothing to do" in last and "dst: ok — nothing to do" in last, last

    check_no_duplicates(tmp_path, dovecot_server, src, dst)
    want = sorted(f"<inv{i}@client.example>" for i in range(N))
    assert sorted(message_ids(dovecot_server, src)) == want
    assert sorted(message_ids(dovecot_server, dst)) == want, f"seed {seed}"
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        recs = hub.list_records("email", limit=10 * N)
        assert sorted(r.fields["message_id"] for r in recs) == want, f"seed {seed}"
        assert hub.quarantined() == []
        assert hub.conflicts(open_only=False) == []
    finally:
        hub.close()
    with dovecot_server.client() as c:  # each copy in dst is the source message, byte for byte
        c.select_folder(dst, readonly=True)
        bodies = {mime.strip_own_header(d[b"BODY[]"])[0]
                  for d in c.fetch(c.search(["ALL"])[:50], [b"BODY.PEEK[]"]).values()}
    assert bodies <= {message(i) for i in range(N)}
