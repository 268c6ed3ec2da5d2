"""The connector seam: what every spoke (practice database, vdir, CardDAV, IMAP, REST) offers.

Two methods are required, ``list`` (references with versions) and ``get`` (items by
reference). Writes are optional and declared as data in ``Capabilities``; a read-only
connector refuses them once, here in the base class. Every write passes the version it
expects: a mismatch raises ``PreconditionFailed`` and the engine treats it as a conflict,
never as an overwrite.

Items carry *spoke-native* field names; the link's mapping translates them to hub fields.
References to other records (a contact's client) are spoke references in ``Item.refs``;
the engine translates them to hub ids through the link state.
"""

from __future__ import annotations

import builtins
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from concord.errors import ConcordError, ConfigError, TerminalError
from concord.records import Fields, Refs


@dataclass(slots=True)
class Item:
    """One record as a spoke holds it."""

    ref: str  # the spoke's own reference: href, primary key, file name
    version: str  # etag, row version, MODSEQ, (mtime, inode, size)...
    fields: Fields = field(default_factory=dict)
    refs: Refs = field(default_factory=dict)  # field -> spoke ref of the referenced record
    ident: str | None = None  # UID or client-chosen id; lets a lost create be found again
    modified: float | None = None  # seconds since the epoch, for authority "newest"


@dataclass(slots=True)
class ItemError:
    """An item the spoke holds but that cannot be read: quarantined, the run goes on."""

    ref: str
    error: str
    payload: str | None = None


@dataclass(slots=True)
class Changes:
    """What changed at a spoke since ``token``.

    ``complete`` means ``changed`` is a full listing: every reference the link knows
    that is missing from it was deleted at the spoke.
    """

    changed: dict[str, str]  # ref -> version
    deleted: set[str] = field(default_factory=set)
    token: str | None = None
    complete: bool = False


@dataclass(slots=True)
class WriteOp:
    kind: Literal["create", "update", "delete"]
    ref: str | None  # None for create
    item: Item | None  # None for delete
    expected_version: str | None = None
    ident: str | None = None  # for create: the id Concord chose (UID, file name...)


@dataclass(slots=True)
class WriteResult:
    ref: str | None = None
    version: str | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    entities: tuple[str, ...]
    read_only: bool = False
    incremental: bool = False  # ``changes`` uses a token rather than a full listing
    notifies: bool = False  # ``wait_for_change`` wakes on a real notification
    batch_writes: bool = False  # ``apply`` does better than one write at a time
    concurrent_reads: bool = False  # ``get`` may run in another thread while writes go on


class ConnectorOptions(BaseModel):
    """Base for each connector's own options model (secrets as ``SecretStr``)."""

    model_config = ConfigDict(extra="forbid")


class Connector(ABC):
    """Base class of every connector."""

    name: ClassVar[str] = "connector"
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions

    def __init__(self, options: ConnectorOptions, *, link: str = "") -> None:
        self.options = options
        self.link = link

    # -- reading -----------------------------------------------------------------
    @abstractmethod
    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        """Every (ref, version) the spoke holds for ``entity``."""

    @abstractmethod
    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        """The items at ``refs``; a ref that has vanished is simply not yielded."""

    def changes(self, entity: str, token: str | None) -> Changes:
        """Changes since ``token``; the default is a full listing."""
        return Changes(changed=dict(self.list(entity)), token=None, complete=True)

    def current_token(self, entity: str) -> str | None:
        """The change token as of now, without listing (taken before a first migration's
        ``scan`` so that edits made during it are caught afterwards). Connectors that stream
        a first migration also define ``scan(entity, after, batch)``, yielding lists of
        items in ref order after ref ``after``."""
        return None

    def fields(self, entity: str) -> tuple[str, ...] | None:
        """The spoke-native fields this connector can represent for ``entity``
        (None: any field). The default mapping is the identity over these."""
        return None

    def field_shapes(self, entity: str) -> dict[str, str] | None:
        """What each spoke-native field holds (``text``, ``int``, ``list``, ``custom``…), for
        checking a link's mapping against the model; None when the connector speaks the
        canonical model itself (vCard, iCalendar)."""
        return None

    def ref_fields(self, entity: str) -> dict[str, str]:
        """Reference fields of ``entity``: field -> entity type referenced."""
        return {}

    # -- writing -----------------------------------------------------------------
    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        """Create ``item`` using ``ident`` as its UID/file name where the spoke allows;
        returns (ref, version)."""
        raise TerminalError(f"{self.name}: creating {entity} records is not supported")

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        """Replace the mapped content at ``ref`` if it is still at ``expected_version``;
        returns the new version."""
        raise TerminalError(f"{self.name}: updating {entity} records is not supported")

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        raise TerminalError(f"{self.name}: deleting {entity} records is not supported")

    def apply(self, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        """Apply a batch of writes; the default does them one at a time. Each op gets
        its own result, so one failed write never hides the others."""
        if self.capabilities.read_only:
            err = TerminalError(f"{self.name} link {self.link!r} is read-only")
            return [WriteResult(error=err) for _ in ops]
        results: builtins.list[WriteResult] = []
        for op in ops:
            try:
                if op.kind == "create":
                    assert op.item is not None and op.ident is not None
                    ref, version = self.create(entity, op.item, op.ident)
                    results.append(WriteResult(ref=ref, version=version))
                elif op.kind == "update":
                    assert op.item is not None and op.ref is not None
                    version = self.update(entity, op.ref, op.item, op.expected_version)
                    results.append(WriteResult(ref=op.ref, version=version))
                else:
                    assert op.ref is not None
                    self.delete(entity, op.ref, op.expected_version)
                    results.append(WriteResult(ref=op.ref))
            except ConcordError as exc:
                results.append(WriteResult(ref=op.ref, error=exc))
        return results

    # -- lifecycle -----------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> bool:
        """Block until the spoke may have changed, or ``timeout`` seconds. Connectors
        with a real notification (PostgreSQL NOTIFY, IMAP IDLE) override this."""
        time.sleep(timeout)
        return True

    def check(self) -> builtins.list[str]:
        """Prerequisite problems, each a sentence with the fix; empty when ready."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


#: Connectors by name, imported lazily so one connector's dependencies never
#: burden another's users.
REGISTRY: dict[str, str] = {
    "vdir": "concord.connectors.vdir:VdirConnector",
    "sql": "concord.connectors.sql:SQLConnector",
    "carddav": "concord.connectors.dav:CardDAVConnector",
    "caldav": "concord.connectors.dav:CalDAVConnector",
}


def connector_class(name: str) -> type[Connector]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown connector {name!r}",
            key="connector",
            fix=f"use one of: {', '.join(sorted(REGISTRY))}",
        ) from None
    module, _, cls = target.partition(":")
    klass: type[Connector] = getattr(importlib.import_module(module), cls)
    return klass


def make_connector(name: str, options: dict[str, Any], *, link: str = "") -> Connector:
    from pydantic import ValidationError

    klass = connector_class(name)
    try:
        opts = klass.Options.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            first["msg"], source=f"link {link!r}", key=f"options.{key}",
            fix=f"see the options of the {name} connector in the README",
        ) from exc
    return klass(opts, link=link)
