"""The connector seam: what every spoke (practice database, vdir, CardDAV, IMAP, REST) offers.

Two methods are required, ``list`` (references with versions) and ``get`` (items by
reference). Writes (``create``, ``update``, ``delete``, batched by ``apply``) are optional;
what a spoke accepts is declared as data in ``Capabilities`` and refused once, here in the
base class, on every write path (a read-only link, or a kind of write the spoke lacks).
Every write passes the version it expects: a mismatch raises ``PreconditionFailed`` and the
engine treats it as a conflict, never as an overwrite.

The optional capabilities are small mixins a connector lists in its bases:
``StreamedMigration`` (``scan``/``count``: a first migration in key order, resumable),
``ChangeCapture`` (``current_token``/``token_after_writes``: changes from a token) and
``ActivationHooks`` (``admin_problem``/``install``/``uninstall``: ``concord link activate``)
and ``HubBound`` (``bind_hub``/``after_sync``: a connector keeping blobs in the hub, or
working on hub records after a run).
Each sets its flag in the class's ``capabilities``; the engine and the link commands ask
``connector.streamed_migration()`` and the like, never ``getattr``.

Items carry *spoke-native* field names; the link's mapping translates them to hub fields.
References to other records (a contact's client) are spoke references in ``Item.refs``;
the engine translates them to hub ids through the link state.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.metadata
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeVar, cast

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
    #: the version of what could not be read, where the spoke knows it: quarantined at
    #: that version, the item is not tried again until it changes (or its backoff ends)
    version: str | None = None


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
    #: ref -> identity (the ``ident`` its item would have), given when every reference of
    #: the spoke changed at once (an IMAP folder's new UIDVALIDITY): the engine moves each
    #: linked record whose hub id is that identity to its new reference, so nothing is
    #: deleted and created again
    idents: dict[str, str] = field(default_factory=dict)


WriteKind = Literal["create", "update", "delete"]
ALL_WRITES: frozenset[WriteKind] = frozenset(("create", "update", "delete"))


@dataclass(slots=True)
class WriteOp:
    kind: WriteKind
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
    """What a connector can do, as data: the engine, the scheduler, the activation commands
    and the contract suite read it instead of probing for methods.

    A connector declares ``entities`` and the flags it can vouch for (``read_only``,
    ``writes``, ``notifies``, ``concurrent_reads``). The other four are filled in by the
    base class from the optional capabilities the class declares (mixins below), so they
    can never disagree with the methods: ``streamed`` from ``StreamedMigration``,
    ``incremental`` from ``ChangeCapture``, ``activation`` from ``ActivationHooks``,
    ``hub_bound`` from ``HubBound``.
    Declaring one of them without its mixin is an error when the class is defined.
    """

    entities: tuple[str, ...]
    read_only: bool = False  # no write is ever sent (``writes`` is then ignored)
    writes: frozenset[WriteKind] = ALL_WRITES  # the write kinds the spoke accepts
    notifies: bool = False  # ``wait_for_change`` wakes on a real notification
    concurrent_reads: bool = False  # ``get`` may run in another thread while writes go on
    incremental: bool = False  # ChangeCapture: ``changes`` answers from a token
    streamed: bool = False  # StreamedMigration: a first migration streams in key order
    activation: bool = False  # ActivationHooks: installed and checked by ``link activate``
    hub_bound: bool = False  # HubBound: bound to the hub, called after each entity's run

    def allows(self, kind: WriteKind) -> bool:
        return not self.read_only and kind in self.writes


class ConnectorOptions(BaseModel):
    """Base for each connector's own options model (secrets as ``SecretStr``)."""

    model_config = ConfigDict(extra="forbid")


_F = TypeVar("_F", bound=Callable[..., Any])


def _refusing(kind: WriteKind, method: _F) -> _F:
    """``method`` (create, update or delete), refused where the connector does not allow
    ``kind``: the one read-only check, put around every override by ``__init_subclass__``."""

    @functools.wraps(method)
    def guarded(self: Connector, entity: str, *args: Any, **kwargs: Any) -> Any:
        refusal = self.refusal(kind, entity)
        if refusal is not None:
            raise refusal
        return method(self, entity, *args, **kwargs)

    guarded.__concord_guarded__ = True  # type: ignore[attr-defined]
    return cast(_F, guarded)


def _refusing_batch(method: _F) -> _F:
    """``apply``, with each op the connector does not allow answered by its refusal (the
    others are still applied, so one refused write never hides the rest)."""

    @functools.wraps(method)
    def guarded(self: Connector, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        refused = {n: r for n, op in enumerate(ops)
                   if (r := self.refusal(op.kind, entity)) is not None}
        if not refused:
            out: builtins.list[WriteResult] = method(self, entity, ops)
            return out
        allowed = [op for n, op in enumerate(ops) if n not in refused]
        done = iter(method(self, entity, allowed) if allowed else [])
        return [WriteResult(ref=op.ref, error=refused[n]) if n in refused else next(done)
                for n, op in enumerate(ops)]

    guarded.__concord_guarded__ = True  # type: ignore[attr-defined]
    return cast(_F, guarded)


#: method names that belong to an optional capability: a connector defining one must
#: declare the capability (its mixin), so nothing is found by probing
_CAPABILITY_METHODS = {
    "scan": "StreamedMigration", "count": "StreamedMigration", "bounds": "StreamedMigration",
    "scan_range": "StreamedMigration", "before_fork": "StreamedMigration",
    "current_token": "ChangeCapture", "token_after_writes": "ChangeCapture",
    "admin_problem": "ActivationHooks", "install": "ActivationHooks",
    "uninstall": "ActivationHooks", "capture_installed": "ActivationHooks",
    "bind_hub": "HubBound", "after_sync": "HubBound",
}


class Connector(ABC):
    """Base class of every connector."""

    name: ClassVar[str] = "connector"
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # 1. every write path of every connector passes the one read-only check
        for kind in ("create", "update", "delete"):
            m = cls.__dict__.get(kind)
            if m is not None and not getattr(m, "__concord_guarded__", False):
                setattr(cls, kind, _refusing(kind, m))
        m = cls.__dict__.get("apply")
        if m is not None and not getattr(m, "__concord_guarded__", False):
            cls.apply = _refusing_batch(m)  # type: ignore[method-assign]
        # 2. optional capabilities are declared, never discovered
        mixins = {"StreamedMigration": StreamedMigration, "ChangeCapture": ChangeCapture,
                  "ActivationHooks": ActivationHooks, "HubBound": HubBound}
        for meth, mixin in _CAPABILITY_METHODS.items():
            if meth in cls.__dict__ and not issubclass(cls, mixins[mixin]):
                raise TypeError(f"connector {cls.__qualname__} defines {meth}() but does not "
                                f"declare the capability: add {mixin} to its bases "
                                "(concord.connectors.base)")
        # a subclass that declares no capabilities of its own inherits its base's, with the
        # derived flags taken again from its own bases (a mixin it adds counts)
        caps = cls.__dict__.get("capabilities", getattr(cls, "capabilities", None))
        if caps is None:
            return
        if not isinstance(caps, Capabilities):
            raise TypeError(f"connector {cls.__qualname__}: capabilities must be a Capabilities")
        derived = {"streamed": issubclass(cls, StreamedMigration),
                   "incremental": issubclass(cls, ChangeCapture),
                   "activation": issubclass(cls, ActivationHooks),
                   "hub_bound": issubclass(cls, HubBound)}
        for flag, has in derived.items():
            if getattr(caps, flag) and not has:
                mixin = {"streamed": "StreamedMigration", "incremental": "ChangeCapture",
                         "activation": "ActivationHooks", "hub_bound": "HubBound"}[flag]
                raise TypeError(f"connector {cls.__qualname__} declares {flag}=True but is not "
                                f"a {mixin}: add the mixin to its bases or drop the flag")
        cls.capabilities = replace(caps, streamed=derived["streamed"],
                                   incremental=derived["incremental"],
                                   activation=derived["activation"],
                                   hub_bound=derived["hub_bound"])

    def __init__(self, options: ConnectorOptions, *, link: str = "") -> None:
        self.options = options
        self.link = link

    # -- what this instance allows ------------------------------------------------
    @property
    def read_only(self) -> bool:
        """True when this connector, as configured, sends no writes. The class's
        capabilities say what the spoke can do; a connector whose options can make one
        link read-only (the practice database's ``read_only``) overrides this."""
        return self.capabilities.read_only

    def refusal(self, kind: WriteKind, entity: str) -> TerminalError | None:
        """The error a write of ``kind`` gets here, or None when it is allowed."""
        if self.read_only:
            return TerminalError(f"{self.name} link {self.link!r} is read-only: the {kind} of "
                                 f"a {entity} record was refused (fix: make the entity's "
                                 "direction pull, or allow writes in the link's options)")
        if kind not in self.capabilities.writes:
            return TerminalError(f"{self.name} link {self.link!r}: the spoke does not support "
                                 f"the {kind} of {entity} records (fix: choose a direction or "
                                 "remove_when rule that does not need it)")
        return None

    # -- the optional capabilities, typed, as the capabilities data says ------------
    def streamed_migration(self) -> StreamedMigration | None:
        return cast(StreamedMigration, self) if self.capabilities.streamed else None

    def change_capture(self) -> ChangeCapture | None:
        return cast(ChangeCapture, self) if self.capabilities.incremental else None

    def activation_hooks(self) -> ActivationHooks | None:
        return cast(ActivationHooks, self) if self.capabilities.activation else None

    def hub_binding(self) -> HubBound | None:
        return cast(HubBound, self) if self.capabilities.hub_bound else None

    # -- reading -----------------------------------------------------------------
    @abstractmethod
    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        """Every (ref, version) the spoke holds for ``entity``."""

    @abstractmethod
    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        """The items at ``refs``; a ref that has vanished is simply not yielded."""

    def changes(self, entity: str, token: str | None) -> Changes:
        """Changes since ``token``; the default is a full listing. A ``ChangeCapture``
        connector answers from the token instead."""
        return Changes(changed=dict(self.list(entity)), token=None, complete=True)

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
    # A connector overrides the writes it supports; the base class refuses the rest, and
    # refuses every write of a read-only connector before the override runs.
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
        its own result, so one failed write never hides the others. Connectors that do
        better (one transaction, pipelined requests) override it."""
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
        with a real notification (PostgreSQL NOTIFY, IMAP IDLE) override this and set
        ``notifies``."""
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


# The base's own write methods pass the same check (a connector that overrides none of
# them still refuses writes when read-only, with the clearer message).
for _kind in ("create", "update", "delete"):
    setattr(Connector, _kind, _refusing(_kind, Connector.__dict__[_kind]))
Connector.apply = _refusing_batch(Connector.__dict__["apply"])  # type: ignore[method-assign]


# -- optional capabilities ------------------------------------------------------------
# Small mixins, listed in a connector's bases next to ``Connector``. Each sets its flag in
# the class's capabilities; callers ask ``connector.streamed_migration()`` (and the like),
# which answers from those capabilities.

class StreamedMigration(ABC):
    """A first migration streamed in key order, resumable after the last committed ref."""

    @abstractmethod
    def scan(self, entity: str, after: str | None = None,
             batch: int = 2000) -> Iterator[builtins.list[Item | ItemError]]:
        """Every item of ``entity`` in ref order after ref ``after``, ``batch`` at a time."""

    def count(self, entity: str) -> int | None:
        """How many items a migration will read (the progress bar's total), or None
        when counting would cost a scan of its own."""
        return None

    def bounds(self, entity: str, after: str | None, batch: int) -> Iterator[str] | None:
        """Optional: the refs that cut the items after ``after`` into chunks of about
        ``batch`` (each the last ref of its chunk, in ref order), read cheaply (keys only),
        so that several processes can scan chunks side by side with ``scan_range``; None
        (the default) when the spoke cannot."""
        return None

    def scan_range(self, entity: str, after: str | None,
                   upto: str | None) -> builtins.list[Item | ItemError]:
        """The items with ``after`` < ref <= ``upto`` (no upper bound when None), in ref
        order; needed where ``bounds`` gives refs."""
        raise NotImplementedError

    def before_fork(self) -> None:
        """Optional: stop the connector's own helper threads and processes (a parsing
        pool), called before a migration is prepared in forked processes, which forking
        beside a running thread would make unsafe; the connector starts them again when it
        next needs them. The default has none."""
        return None


class ChangeCapture(ABC):
    """``changes`` answers from a change token rather than a full listing."""

    @abstractmethod
    def current_token(self, entity: str) -> str | None:
        """The change token as of now, without listing (taken before a first migration's
        ``scan``, so that edits made during it are caught afterwards)."""

    def token_after_writes(self, entity: str, token: str,
                           written: dict[str, str | None]) -> str:
        """A token past Concord's own writes (``written``: ref -> version written, None
        for a delete), if nothing but those writes happened since ``token``; the default
        keeps ``token``, so the next run reads those writes back once and finds them
        already in agreement."""
        return token


class ActivationHooks(ABC):
    """A spoke that is activated by an administrator: prerequisites, an admin check,
    and change capture installed in (and removed from) the spoke itself."""

    @abstractmethod
    def admin_problem(self, email: str | None) -> str | None:
        """Why ``email`` is not an active administrator at the spoke (None: it is)."""

    @abstractmethod
    def install(self) -> None:
        """Install change capture (idempotent)."""

    @abstractmethod
    def uninstall(self) -> None:
        """Remove everything ``install`` added; the spoke's own data is untouched."""

    def capture_installed(self) -> bool:
        """Is change capture in place? (``link status`` shows it.)"""
        return True


class HubBound(ABC):
    """A connector that keeps part of what it syncs in the hub itself (the IMAP connector's
    attachments and raw messages in the blob store) or works on hub records after a run
    (e-mails linked to contacts by address). ``sync_link`` binds the hub before the run and
    calls ``after_sync`` after each entity type's run."""

    @abstractmethod
    def bind_hub(self, hub: Any) -> None:
        """The hub this connector's runs sync with."""

    def after_sync(self, hub: Any, entity: str) -> dict[str, int]:
        """Work on the hub's records of ``entity`` after the run (from a checkpoint of its
        own); returns counts for the run's summary."""
        return {}


def iter_chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


#: Connectors by name ("module:Class"), imported lazily so one connector's dependencies
#: never burden another's users. Third-party connectors are found through the
#: ``concord.connectors`` entry point group (``[project.entry-points."concord.connectors"]``
#: ``xpm = "mypackage.xpm:XPMConnector"``) or added with ``register``.
REGISTRY: dict[str, str] = {
    "vdir": "concord.connectors.vdir:VdirConnector",
    "sql": "concord.connectors.sql:SQLConnector",
    "carddav": "concord.connectors.dav:CardDAVConnector",
    "caldav": "concord.connectors.dav:CalDAVConnector",
    "imap": "concord.connectors.imap:ImapConnector",
    "xpm": "concord.connectors.xpm:XpmConnector",
}
ENTRY_POINT_GROUP = "concord.connectors"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_name(name: str, *, source: str = "connector registry") -> None:
    """A connector name is what a link's ``connector`` key says: lower case letters,
    digits, ``-`` and ``_``, starting with a letter."""
    if not _NAME.match(name):
        raise ConfigError(f"connector name {name!r} is not valid", source=source,
                          key="connector",
                          fix="use lower case letters, digits, '-' or '_', starting with a letter "
                              "(at most 40 characters)")


def register(name: str, target: str, *, overwrite: bool = False) -> None:
    """Add a connector under ``name``; ``target`` is ``"module:Class"``. A name already taken
    by another target is refused unless ``overwrite``."""
    check_name(name)
    if not _TARGET.match(target):
        raise ConfigError(f"connector {name!r}: target {target!r} is not 'module:Class'",
                          source="connector registry", key=name,
                          fix="give the module path and the class name, e.g. "
                              "'mypackage.xpm:XPMConnector'")
    old = REGISTRY.get(name)
    if old is not None and old != target and not overwrite:
        raise ConfigError(f"connector name {name!r} is already taken by {old}",
                          source="connector registry", key=name,
                          fix="choose another name for the connector")
    REGISTRY[name] = target


def _entry_points() -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def known_connectors() -> dict[str, str]:
    """Every connector name -> target: the built-in ones, those added with ``register``,
    and the installed packages' entry points (a built-in name is never shadowed)."""
    return {**_entry_points(), **REGISTRY}


def connector_class(name: str) -> type[Connector]:
    target = REGISTRY.get(name)
    source = "connector registry"
    if target is None:
        eps = _entry_points()
        target = eps.get(name)
        source = f"entry point {name!r} in group {ENTRY_POINT_GROUP}"
    if target is None:
        raise ConfigError(
            f"unknown connector {name!r}",
            key="connector",
            fix=f"use one of: {', '.join(sorted(known_connectors()))}, or install the package "
                f"that provides it (entry point group {ENTRY_POINT_GROUP})",
        ) from None
    check_name(name, source=source)
    module, _, cls = target.partition(":")
    try:
        klass = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"connector {name!r} cannot be loaded from {target}: {exc}",
                          source=source, key="connector",
                          fix="install the package that provides it, or correct the target"
                          ) from exc
    if not (isinstance(klass, type) and issubclass(klass, Connector)):
        raise ConfigError(f"connector {name!r}: {target} is not a Connector subclass",
                          source=source, key="connector",
                          fix="point the entry point at a subclass of "
                              "concord.connectors.base.Connector")
    if getattr(klass, "capabilities", None) is None:
        raise ConfigError(f"connector {name!r}: {target} declares no capabilities",
                          source=source, key="connector",
                          fix="set capabilities = Capabilities(entities=(...)) on the class")
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
