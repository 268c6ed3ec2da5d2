"""vdir: a folder with one file per record, the layout khard, khal and vdirsyncer use: vCards
(``.vcf``) for clients, contacts and staff, iCalendar objects (``.ics``) for tasks and events.

Versions come from (mtime, inode, size): cheap to list, and a write changes them, except one
that lands within the same timestamp tick as the write Concord saw, in place and at the same
size. So a file modified within the racy window of the moment Concord reads or writes it (see
``filestamps``: probed once per folder, 50 ms where timestamps are fine, 2 s where they are coarse
or unknown) gets a version that also holds a hash of its content: listings read and hash such
recent files, and writes compare the hash too. Once the file is older than the window, the
next run reads it once more and its version is the plain stamp again. The engine compares
content hashes when a version changes, so a file that was touched but not changed is not a
change. Writes are atomic (write a temporary file, then link or rename it into place) and check
the expected version first; properties Concord does not map are kept as they were.
"""

from __future__ import annotations

import atexit
import bisect
import builtins
import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from concord.connectors import filestamps as fs
from concord.connectors.base import (
    Capabilities,
    Connector,
    ConnectorOptions,
    Item,
    ItemError,
    StreamedMigration,
)
from concord.errors import ConfigError, ItemInvalid, PreconditionFailed, TerminalError
from concord.formats import ical, vcard

log = logging.getLogger("concord.vdir")

_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class VdirOptions(ConnectorOptions):
    path: str
    fileext: str | None = None  # default: .vcf for clients, contacts, staff; .ics for the rest
    #: create the folder if it does not exist; off by default, so a mistyped path is an
    #: error naming it rather than a new, empty folder that the sync then fills
    create: bool = False


#: the calendar component of an entity kept as iCalendar (the others are vCards)
_COMPONENT = {"task": "VTODO", "event": "VEVENT"}


class VdirConnector(Connector, StreamedMigration):
    name = "vdir"
    capabilities = Capabilities(entities=("client", "contact", "staff", "task", "event"),
                                concurrent_reads=True)

    Options = VdirOptions

    def __init__(self, options: ConnectorOptions, *, link: str = "") -> None:
        super().__init__(options, link=link)
        assert isinstance(options, VdirOptions)
        self.root = Path(options.path)
        self.fileext = options.fileext
        if not self.root.is_dir():
            if not options.create:
                raise ConfigError(f"folder {str(self.root)!r} does not exist",
                                  source=f"link {link!r}", key="options.path",
                                  fix="correct the path, or create the folder (or set "
                                      "options.create = true to have Concord create it)")
            self.root.mkdir(parents=True, exist_ok=True)
        self.window = fs.window_of(self.root)
        #: the sorted file names of one extension, as ``scan_range`` last listed them
        self._names: tuple[str, builtins.list[str]] | None = None

    def ext(self, entity: str) -> str:
        return self.fileext or (".ics" if entity in _COMPONENT else ".vcf")

    def fields(self, entity: str) -> tuple[str, ...]:
        if entity in _COMPONENT:
            return ical.TASK_FIELDS if entity == "task" else ical.EVENT_FIELDS
        return vcard.FIELDS

    # -- reading -------------------------------------------------------------------
    def list(self, entity: str) -> Iterator[tuple[str, str]]:
        listed = self._scan_folder(self.ext(entity))
        if len(listed) >= 4 * PARALLEL_FROM:
            _start_pool()  # a big folder: parse files on the other cores as well
        return iter(listed)

    def _scan_folder(self, ext: str) -> builtins.list[tuple[str, str]]:
        out: builtins.list[tuple[str, str]] = []
        window = self.window
        since = time.time_ns() - window  # files modified after this are read and hashed
        with os.scandir(self.root) as it:
            for e in it:
                if e.name.endswith(ext) and not e.name.startswith("."):
                    try:
                        st = e.stat()
                    except FileNotFoundError:
                        continue
                    version = fs.stamp(st)
                    if st.st_mtime_ns >= since:
                        try:
                            version = fs.read_version(e.path, window)
                        except FileNotFoundError:
                            continue
                        except OSError:  # unreadable: reading it reports why
                            pass
                    out.append((e.name, version))
        return out

    # -- a first migration, streamed in file-name order ----------------------------
    # A big folder's first migration takes the engine's streamed path: resumable after its
    # last committed chunk, and cut into ranges of names that other processes read, parse
    # and map side by side (``engine/aside.py``). The names come from one ``listdir`` (no
    # stat: the versions are taken as each file is read). A file added during the
    # migration is found by the run's listing right after it, like any edit made meanwhile.
    def _sorted(self, entity: str, fresh: bool = True) -> builtins.list[str]:
        ext = self.ext(entity)
        if fresh or self._names is None or self._names[0] != ext:
            names = sorted(n for n in os.listdir(self.root)
                           if n.endswith(ext) and not n.startswith("."))
            self._names = (ext, names)
        return self._names[1]

    def count(self, entity: str) -> int:
        return len(self._sorted(entity))

    def scan(self, entity: str, after: str | None = None,
             batch: int = 2000) -> Iterator[builtins.list[Item | ItemError]]:
        names = self._sorted(entity)
        lo = bisect.bisect_right(names, after) if after is not None else 0
        if len(names) - lo >= 4 * PARALLEL_FROM:
            _start_pool()  # migrated in this process: parse on the other cores as well
        for i in range(lo, len(names), batch):
            yield builtins.list(self.get(entity, names[i:i + batch]))

    def bounds(self, entity: str, after: str | None, batch: int) -> Iterator[str]:
        names = self._sorted(entity)
        lo = bisect.bisect_right(names, after) if after is not None else 0
        return iter(names[lo + batch - 1::batch])

    def before_fork(self) -> None:
        shutdown_pool()  # the preparing processes parse side by side instead

    def scan_range(self, entity: str, after: str | None,
                   upto: str | None) -> builtins.list[Item | ItemError]:
        names = self._sorted(entity, fresh=False)
        lo = bisect.bisect_right(names, after) if after is not None else 0
        hi = bisect.bisect_right(names, upto) if upto is not None else len(names)
        return _read_many(str(self.root), names[lo:hi], self.window, _COMPONENT.get(entity))

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        pool = _POOL if len(refs) >= PARALLEL_FROM else None
        comp = _COMPONENT.get(entity)
        if pool is None:
            return _read_many(str(self.root), refs, self.window, comp)
        step = -(-len(refs) // (2 * _WORKERS))
        parts = [refs[i:i + step] for i in range(0, len(refs), step)]
        out: builtins.list[Item | ItemError] = []
        try:
            for part in pool.map(_read_many, [str(self.root)] * len(parts), parts,
                                 [self.window] * len(parts), [comp] * len(parts)):
                out.extend(part)
        except (BrokenProcessPool, AssertionError, OSError) as exc:
            # the pool could not run here (a worker died, or no children are allowed):
            # stop using it and parse in this process, so the sync goes on
            _drop_pool(exc)
            return _read_many(str(self.root), refs, self.window, comp)
        return out

    # -- writing -------------------------------------------------------------------
    def _path(self, ref: str) -> Path:
        if "/" in ref or ref.startswith("."):
            raise ItemInvalid(ref, "not a file name in this folder")
        return self.root / ref

    def _check(self, ref: str, expected: str | None) -> Path:
        """The file at ``ref`` if it is still at ``expected``. A version with a content hash
        (the file was recent when Concord saw it) is checked by content as well: a same-size
        rewrite within the same timestamp tick is a precondition failure, not overwritten."""
        path = self._path(ref)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise PreconditionFailed(ref, expected, None) from None
        if expected is None:
            return path
        stamp, _, digest = expected.partition(":")
        actual = fs.stamp(st)
        if actual != stamp:
            raise PreconditionFailed(ref, expected, actual)
        if digest:
            try:
                now = fs.digest(path.read_bytes())
            except FileNotFoundError:
                raise PreconditionFailed(ref, expected, None) from None
            if now != digest:
                raise PreconditionFailed(ref, expected, f"{actual}:{now}")
        return path

    def _write_tmp(self, text: str) -> tuple[Path, bytes]:
        tmp = self.root / f".concord-{os.getpid()}-{os.urandom(6).hex()}.tmp"
        data = text.encode("utf-8")
        with open(tmp, "wb") as f:
            f.write(data)
        return tmp, data

    def _written(self, path: Path, data: bytes) -> str:
        """The version of a file Concord has just written with ``data`` (the hash of what
        Concord wrote, so a rewrite by someone else right after it is not taken for ours)."""
        return fs.version(path.stat(), data, self.window)

    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        ref = _SAFE.sub("_", ident) + self.ext(entity)
        path = self._path(ref)
        tmp, data = self._write_tmp(_render(entity, item, ident, ref))
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing file
        except FileExistsError:
            # a retried create (its answer lost) finds exactly what it writes: found again,
            # not duplicated. Anything else there is someone's own item under that name (a
            # card made at the spoke with the same UID): left alone, and the engine reads it
            # (the next run's listing) before it decides anything about the two
            try:
                same = path.read_bytes() == data
            except OSError:  # gone again meanwhile: the next run sees what is there
                same = False
            if same:
                existing = next(iter(self.get(entity, [ref])), None)
                if isinstance(existing, Item):
                    return ref, existing.version
            raise PreconditionFailed(ref, None, "exists") from None
        finally:
            tmp.unlink(missing_ok=True)
        return ref, self._written(path, data)

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        path = self._check(ref, expected_version)
        old = vcard.decode_bytes(path.read_bytes(), name=str(path))
        comp = _COMPONENT.get(entity)
        try:
            new = (ical.patch(old, comp, item.fields, mapped=item.fields.keys(), name=str(path))
                   if comp else
                   vcard.patch(old, item.fields, mapped=item.fields.keys(), name=str(path)))
        except (vcard.VCardError, ical.ICalError):
            # the file on disk is unreadable: replace it with a fresh one (the engine only
            # writes here when the hub's version won)
            new = _render(entity, item, item.ident or ref.rsplit(".", 1)[0], ref)
        if new == old:
            return fs.read_version(str(path), self.window)
        tmp, data = self._write_tmp(new)
        try:
            self._check(ref, expected_version)
        except PreconditionFailed:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        return self._written(path, data)

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        path = self._check(ref, expected_version)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TerminalError(f"{path}: cannot delete ({exc})") from exc


def _render(entity: str, item: Item, ident: str, ref: str) -> str:
    """A new file's text for ``item``: a vCard, or an iCalendar object for tasks and events;
    content no codec can write (an event with no start) is ItemInvalid, quarantined."""
    fields = {k: v for k, v in item.fields.items() if v is not None}
    comp = _COMPONENT.get(entity)
    try:
        return ical.build(comp, fields, ident) if comp else vcard.build(fields, ident)
    except ValueError as exc:
        raise ItemInvalid(ref, str(exc)) from exc


def _read_many(folder: str, refs: Sequence[str], window: int, comp: str | None = None
               ) -> list[Item | ItemError]:
    """Read and parse the files at ``refs``: vCards, or iCalendar objects holding ``comp``."""
    root = folder + os.sep
    out: list[Item | ItemError] = []
    for ref in refs:
        path = root + ref
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                raw = f.read()
        except FileNotFoundError:
            continue
        try:
            text = vcard.decode_bytes(raw, name=path)
            if comp is None:
                uid, fields = vcard.read(text, name=path)
            else:
                uid, fields = ical.read(text, comp, name=path)
        except (vcard.VCardError, ical.ICalError) as exc:
            out.append(ItemError(ref, str(exc), raw[:2000].decode("utf-8", "replace"),
                                 fs.version(st, raw, window)))
            continue
        out.append(Item(ref, fs.version(st, raw, window), fields, {}, uid, st.st_mtime))
    return out


#: batches of at least this many files are parsed by worker processes, where a pool runs
PARALLEL_FROM = 500
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_POOL: ProcessPoolExecutor | None = None


def _start_pool() -> None:
    """Start the parsing workers once, from a process with no other thread yet (forking
    beside running threads is not safe), and only where there is more than one core."""
    global _POOL
    if (_POOL is None and _WORKERS > 1 and threading.active_count() == 1
            and not multiprocessing.current_process().daemon):  # a daemon may have no children
        try:
            _POOL = ProcessPoolExecutor(_WORKERS, mp_context=multiprocessing.get_context("fork"))
        except (OSError, ValueError) as exc:  # no processes to be had: parse in this one
            log.warning("parsing in one process: the parsing pool did not start (%s)", exc)
            return
        atexit.register(_POOL.shutdown)


def _drop_pool(exc: BaseException) -> None:
    log.warning("parsing in one process from now on: the parsing pool failed (%r)", exc)
    shutdown_pool(wait=False)


def shutdown_pool(wait: bool = True) -> None:
    """Stop the parsing workers. A multiprocessing child (the service's sync worker) runs no
    atexit handlers and would wait for them forever when it ends, so it calls this."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)
