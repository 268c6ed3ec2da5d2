"""The hub on PostgreSQL: out-of-order commits, concurrent writers, readers and syncs.

The vdir sync scenarios of test_vdir_sync.py run on PostgreSQL too (``hub_url`` is
parametrised over SQLite and PostgreSQL in conftest.py). Here: what only concurrency shows.

A change feed read with a plain sequence skips changes: writers take seq 7 and 8, 8 commits
first, a reader checkpoints at 8, then 7 commits and is never read. The hub serialises the
writers of one practice with a row lock on ``tenants`` (``Hub._take_seqs``), so a writer that
took a seq commits before any later seq can be taken; these tests prove a reader never skips.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from concord.errors import LinkLocked
from concord.hub.store import Hub, RecordWrite
from tests.integration.vdirenv import VdirEnv, card

pytestmark = pytest.mark.postgres


@pytest.fixture
def hub(pg_database: str) -> Iterator[Hub]:
    h = Hub(pg_database)
    yield h
    h.close()


def wait_for_lock_waiters(url: str, n: int = 1, timeout: float = 30.0) -> None:
    """Block until ``n`` backends of this database wait on a lock (a writer is queued)."""
    end = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < end:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()
            if row and row[0] >= n:
                return
            time.sleep(0.01)
    pytest.fail(f"no writer queued on a lock within {timeout}s")


class FeedReader:
    """Reads the feed the way the engine does: note ``last_seq``, read everything after the
    checkpoint, then checkpoint at the noted value."""

    def __init__(self, hub: Hub, checkpoint: int) -> None:
        self.hub, self.checkpoint = hub, checkpoint
        self.seen: set[int] = set()
        self.checkpoints: list[int] = [checkpoint]

    def read(self) -> list[int]:
        now = self.hub.last_seq()
        got = [seq for page in self.hub.feed_head("contact", self.checkpoint) for _, seq, _ in page]
        self.seen.update(got)
        self.checkpoint = max(self.checkpoint, now)
        self.checkpoints.append(self.checkpoint)
        return got


def test_out_of_order_commits(hub: Hub, pg_database: str) -> None:
    """Writer A takes a seq and holds its transaction open; writer B tries to write and commit
    first; a reader reads in between. B cannot take a seq until A commits, so the reader never
    checkpoints past a seq that is still to commit."""
    hub.put("contact", "seed", {"name": "seed"})
    reader = FeedReader(hub, hub.last_seq())
    a_took_seq, release_a = threading.Event(), threading.Event()
    seqs: dict[str, int] = {}
    errors: list[BaseException] = []

    def writer(name: str, hold: bool) -> None:
        try:
            with hub.begin() as conn:
                [rec] = hub.write(conn, [RecordWrite("contact", name, {"name": name}, {})])
                seqs[name] = rec.seq
                if hold:
                    a_took_seq.set()
                    assert release_a.wait(30)
        except BaseException as exc:
            errors.append(exc)
            a_took_seq.set()

    ta = threading.Thread(target=writer, args=("A", True))
    ta.start()
    assert a_took_seq.wait(30) and not errors
    tb = threading.Thread(target=writer, args=("B", False))
    tb.start()
    wait_for_lock_waiters(pg_database)  # B is queued behind A's tenant row lock
    assert "B" not in seqs  # ...before taking a seq, so it cannot commit one first

    assert reader.read() == []  # nothing committed above the checkpoint
    assert reader.checkpoint == seqs["A"] - 1  # and the checkpoint did not pass A's seq

    release_a.set()
    ta.join(30)
    tb.join(30)
    assert not errors
    assert seqs["B"] == seqs["A"] + 1
    assert reader.read() == [seqs["A"], seqs["B"]]
    assert reader.checkpoint == seqs["B"]


def test_a_plain_sequence_would_skip_a_change(pg_database: str) -> None:
    """The control: the same interleaving with a plain sequence makes a reader skip a change.
    (This is what the tenant row lock prevents; it shows the reader check above can fail.)"""
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE feed (seq bigserial PRIMARY KEY, id text)")
    a = psycopg.connect(pg_database)
    b = psycopg.connect(pg_database)
    r = psycopg.connect(pg_database, autocommit=True)
    try:
        a.execute("INSERT INTO feed (id) VALUES ('A')")  # takes seq 1, not committed
        b.execute("INSERT INTO feed (id) VALUES ('B')")  # takes seq 2
        b.commit()  # ...and commits first
        checkpoint = r.execute("SELECT max(seq) FROM feed").fetchone()[0]
        first = [s for (s,) in r.execute("SELECT seq FROM feed WHERE seq > 0 ORDER BY seq")]
        a.commit()
        later = [s for (s,) in r.execute("SELECT seq FROM feed WHERE seq > %s", (checkpoint,))]
        every = [s for (s,) in r.execute("SELECT seq FROM feed ORDER BY seq")]
        assert checkpoint == 2 and first == [2] and later == []
        assert set(every) - set(first) - set(later) == {1}  # seq 1 was never read
    finally:
        for conn in (a, b, r):
            conn.close()


def test_concurrent_writers_and_a_reader_never_skip_a_change(hub: Hub) -> None:
    """Writers commit at random moments (holding their transaction a random while); a reader
    keeps reading. Every seq at or below any checkpoint the reader took was read."""
    start = hub.last_seq()
    reader = FeedReader(hub, start)
    done = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        rnd = random.Random(w)
        try:
            for i in range(25):
                with hub.begin() as conn:
                    hub.write(conn, [RecordWrite("contact", f"w{w}-{i}", {"name": f"{w}/{i}"}, {})])
                    time.sleep(rnd.uniform(0, 0.004))
        except BaseException as exc:
            errors.append(exc)

    def read_loop() -> None:
        try:
            while not done.is_set():
                reader.read()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    rt = threading.Thread(target=read_loop)
    rt.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    rt.join(60)
    reader.read()
    assert not errors
    all_seqs = {r.seq for r in hub.feed("contact", start)}
    assert len(all_seqs) == 100 and all_seqs == set(range(start + 1, start + 101))
    for cp in reader.checkpoints:
        missed = {s for s in all_seqs if s <= cp} - reader.seen
        assert not missed, f"checkpointed at {cp} without reading {sorted(missed)}"
    assert reader.seen == all_seqs


def test_lock_race_between_two_acquirers_is_link_locked(hub: Hub, pg_database: str) -> None:
    """Two workers take the same link lock at the same instant: both see no lock row, both
    insert; the second must get LinkLocked, not a database error."""
    other = psycopg.connect(pg_database)
    got: list[BaseException | None] = []
    try:
        other.execute("INSERT INTO locks (name, owner, acquired_at, heartbeat) "
                      "VALUES ('default:sync:a:contact', 'elsewhere:1:x', 0, %s)", (time.time(),))

        def take() -> None:
            try:
                with hub.lock("sync:a:contact"):
                    got.append(None)
            except BaseException as exc:
                got.append(exc)

        t = threading.Thread(target=take)
        t.start()
        wait_for_lock_waiters(pg_database)  # its insert waits on the uncommitted row
        other.commit()
        t.join(30)
    finally:
        other.close()
    assert len(got) == 1 and isinstance(got[0], LinkLocked), got


def test_concurrent_syncs_and_hub_writes_converge(tmp_path: Path, pg_database: str) -> None:
    """Two links syncing in parallel threads (and a third thread trying the same link as the
    first) while the hub is edited: after a final sync all agree and the last edits won."""
    env = VdirEnv(tmp_path, pg_database)
    try:
        for i in range(40):
            env.write("a", f"c{i}.vcf", card(f"Person {i}", f"u{i}", phones=[str(i)]))
        env.sync_all()
        errors: list[BaseException] = []
        last: dict[str, str] = {}
        stop = threading.Event()

        def syncing(link: str) -> Callable[[], None]:
            def loop() -> None:
                try:
                    while not stop.is_set():
                        try:
                            r = env.sync(link)
                        except LinkLocked:
                            continue
                        assert r.status == "ok", r.message
                except BaseException as exc:
                    errors.append(exc)
            return loop

        threads = [threading.Thread(target=syncing(n)) for n in ("a", "b", "a")]
        for t in threads:
            t.start()
        rnd = random.Random(7)
        try:
            for n in range(60):
                uid = f"u{rnd.randrange(40)}"
                rec = env.hub.get("contact", uid)
                assert rec is not None
                env.hub.put("contact", uid, {**rec.fields, "title": f"t{n}"})
                last[uid] = f"t{n}"
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not errors, errors
        env.sync_all()
        hub = env.hub_records()
        assert env.cards("a") == hub and env.cards("b") == hub
        for uid, title in last.items():
            assert hub[uid]["title"] == title
        assert env.conflicts() == []
    finally:
        env.close()
