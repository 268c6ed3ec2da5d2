"""Versions of files that stay honest where timestamps are coarse.

(mtime, inode, size) is cheap to read and changes with nearly every write, but not with a
rewrite in place, at the same size, within the same tick of the file system's clock (2 s on
FAT). Such a rewrite can only follow Concord's read or write of the file by less than the file
system's resolution, so a file that was that recent when Concord saw it gets a version holding
a hash of its content too ("racy", as git calls its index entries of the same kind). A listing
hashes only files modified within the window; once a file is older, its version is the plain
stamp again, which differs from the hashed one, so the next run reads the file once more and
settles it. (A tool that rewrites a file in place at the same size and then puts an older
mtime back, long after Concord read it, is not caught.)
"""

from __future__ import annotations

import os
import time
from hashlib import blake2b
from pathlib import Path

#: ns: how recently modified a file must be for a same-size rewrite in place to keep its
#: (mtime, inode, size), where the file system's resolution is not known to be finer: 2 s
#: covers the coarsest common ones (FAT 2 s; ext3, HFS+ 1 s)
RACY_NS = 2_000_000_000
#: ns: the least window on a file system with fine timestamps (ext4, XFS, btrfs, APFS, NTFS:
#: their tick is the kernel's coarse clock, at most 10 ms)
FINE_NS = 50_000_000
_WINDOWS: dict[str, int] = {}


def window_of(root: Path) -> int:
    """The racy window of the folder at ``root``, probed once per process with a hidden
    temporary file: its mtime is set to "now" until two ticks of the file system's clock are
    seen (at most 50 ms). Fine ticks give ``FINE_NS`` (or ten ticks, if longer); none seen, or
    ticks of a second or more, give ``RACY_NS``. Either is widened by how far the file
    system's clock lags this machine's (a network share). A folder where the probe cannot be
    written keeps ``RACY_NS``."""
    key = str(root)
    got = _WINDOWS.get(key)
    if got is None:
        got = RACY_NS
        probe = root / f".concord-probe-{os.getpid()}-{os.urandom(4).hex()}.tmp"
        try:
            before = time.time_ns()
            probe.open("xb").close()
            try:
                last = probe.stat().st_mtime_ns
                lag = max(0, min(before - last, 3600 * 10**9))
                ticks: list[int] = []
                deadline = time.monotonic() + 0.05
                while len(ticks) < 2 and time.monotonic() < deadline:
                    os.utime(probe)
                    m = probe.stat().st_mtime_ns
                    if m > last:
                        ticks.append(m - last)
                    last = m
            finally:
                probe.unlink()
            if len(ticks) == 2 and max(ticks) < 1_000_000_000:
                got = max(FINE_NS, 10 * max(ticks))
            got += lag
        except OSError:
            pass
        _WINDOWS[key] = got
    return got


def stamp(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_ino}-{st.st_size}"


def version(st: os.stat_result, data: bytes, window: int) -> str:
    """(mtime, inode, size), and the content's hash when the file is recent: within the window
    a same-size rewrite in place may keep the stamp (mtime restored or within the same tick)."""
    if st.st_mtime_ns + window < time.time_ns():
        return stamp(st)
    return f"{stamp(st)}:{digest(data)}"


def digest(data: bytes) -> str:
    return blake2b(data, digest_size=8).hexdigest()


def read_version(path: str, window: int) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    return version(st, data, window)
