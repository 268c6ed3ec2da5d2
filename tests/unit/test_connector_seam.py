"""The connector seam: optional capabilities are declared (never discovered), the capability
flags follow the declaration, every write path is refused once for a read-only link, and the
registry checks names and finds third-party connectors through their entry points (a real
installed distribution's metadata on ``sys.path``, as pip leaves it)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from concord.connectors import base
from concord.connectors.base import (
    ActivationHooks,
    Capabilities,
    ChangeCapture,
    Connector,
    StreamedMigration,
    WriteOp,
    connector_class,
    register,
)
from concord.connectors.dav import CalDAVConnector, CardDAVConnector
from concord.connectors.sql import SQLConnector, SQLOptions
from concord.connectors.vdir import VdirConnector, VdirOptions
from concord.errors import ConfigError, TerminalError
from concord.records import new_id


class _Listing(Connector):
    """A connector with no optional capability: it only lists and reads (nothing)."""

    capabilities = Capabilities(entities=("contact",))

    def list(self, entity: str) -> Iterator[tuple[str, str]]:
        return iter(())

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[base.Item | base.ItemError]:
        return []


def test_the_built_in_connectors_declare_what_the_engine_uses() -> None:
    assert SQLConnector.capabilities.streamed and SQLConnector.capabilities.incremental
    assert SQLConnector.capabilities.activation
    for dav in (CardDAVConnector, CalDAVConnector):
        caps = dav.capabilities
        assert caps.streamed and caps.incremental and not caps.activation
    caps = VdirConnector.capabilities  # a folder: streamed in name order, listed in full
    assert caps.streamed and not (caps.incremental or caps.activation)


def test_a_capability_method_without_its_declaration_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="StreamedMigration"):
        class Probed(_Listing):
            def scan(self, entity: str, after: str | None = None, batch: int = 2000):  # type: ignore[no-untyped-def]
                return iter(())
    with pytest.raises(TypeError, match="ActivationHooks"):
        class Hooked(_Listing):
            def install(self) -> None:
                pass


def test_a_flag_without_its_mixin_is_refused_and_a_mixin_sets_its_flag() -> None:
    with pytest.raises(TypeError, match="incremental=True"):
        class Claims(_Listing):
            capabilities = Capabilities(entities=("contact",), incremental=True)

    class Streams(_Listing, StreamedMigration):
        capabilities = Capabilities(entities=("contact",))

        def scan(self, entity: str, after: str | None = None, batch: int = 2000):  # type: ignore[no-untyped-def]
            yield []

    assert Streams.capabilities.streamed and not Streams.capabilities.incremental
    assert issubclass(SQLConnector, ChangeCapture) and issubclass(SQLConnector, ActivationHooks)


def test_a_subclass_that_only_adds_a_mixin_gets_its_flag() -> None:
    """It declares no capabilities of its own: the inherited ones are taken again with the
    flags its bases now imply (they stayed the base's, so the engine never streamed it)."""
    class Streams(_Listing, StreamedMigration):
        def scan(self, entity: str, after: str | None = None, batch: int = 2000):  # type: ignore[no-untyped-def]
            yield []

    assert Streams.capabilities.streamed
    assert Streams.capabilities.entities == _Listing.capabilities.entities
    assert not _Listing.capabilities.streamed
    conn = Streams(base.ConnectorOptions(), link="s")
    assert conn.streamed_migration() is conn


class _ReadOnlyVdir(VdirConnector):
    capabilities = Capabilities(entities=("contact",), read_only=True)


def test_a_read_only_connector_refuses_direct_writes_too(tmp_path: Path) -> None:
    """Before, only ``apply`` checked: a direct ``create`` on a read-only connector wrote."""
    conn = _ReadOnlyVdir(VdirOptions(path=str(tmp_path)), link="ro")
    item = base.Item("", "", {"name": "Ada"})
    with pytest.raises(TerminalError, match=r"read-only.*create"):
        conn.create("contact", item, new_id())
    with pytest.raises(TerminalError, match=r"read-only.*update"):
        conn.update("contact", "x.vcf", item, None)
    with pytest.raises(TerminalError, match=r"read-only.*delete"):
        conn.delete("contact", "x.vcf", None)
    out = conn.apply("contact", [WriteOp("create", None, item, ident=new_id())])
    assert isinstance(out[0].error, TerminalError)
    assert list(tmp_path.iterdir()) == []


def test_the_practice_database_read_only_option_refuses_every_path(tmp_path: Path) -> None:
    from concord.demo.sample import create_sample, default_mapping

    url = f"sqlite:///{tmp_path / 'p.db'}"
    create_sample(url, clients_n=0)
    conn = SQLConnector(SQLOptions(url=url, mapping=default_mapping(), read_only=True),
                        link="practice")
    try:
        assert conn.read_only and conn.refusal("create", "client") is not None
        with pytest.raises(TerminalError, match="read-only"):
            conn.create("client", base.Item("", "", {"name": "X"}), new_id())
        assert conn.count("client") == 0
    finally:
        conn.close()


# -- the registry ------------------------------------------------------------------------

@pytest.fixture
def registry() -> Iterator[dict[str, str]]:
    saved = dict(base.REGISTRY)
    yield base.REGISTRY
    base.REGISTRY.clear()
    base.REGISTRY.update(saved)


@pytest.mark.parametrize("name", ["XPM", "1imap", "has space", "", "a" * 41, "dots.no"])
def test_register_refuses_a_bad_name(registry: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match="connector name"):
        register(name, "concord.connectors.vdir:VdirConnector")
    assert name not in registry


def test_register_refuses_a_taken_name_and_a_bad_target(registry: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="already taken"):
        register("vdir", "elsewhere:Other")
    with pytest.raises(ConfigError, match="module:Class"):
        register("other", "not a target")
    register("vdir2", "concord.connectors.vdir:VdirConnector")
    assert connector_class("vdir2") is VdirConnector


def test_unknown_connector_names_the_choices(registry: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"unknown connector 'nope'.*vdir"):
        connector_class("nope")


def _install_distribution(root: Path, entry_points: str, module: str | None = None) -> None:
    """What pip leaves for an installed package: its module and a dist-info with
    ``entry_points.txt``."""
    info = root / "concord_thirdparty-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: concord-thirdparty\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module is not None:
        (root / "concord_thirdparty.py").write_text(module)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("concord_thirdparty", None)


def test_a_third_party_connector_is_found_by_its_entry_point(site: Path, tmp_path: Path) -> None:
    _install_distribution(site, "[concord.connectors]\nfolder = concord_thirdparty:Folder\n"
                                "sql = concord_thirdparty:Folder\n",
                          "from concord.connectors.vdir import VdirConnector\n"
                          "class Folder(VdirConnector):\n    name = 'folder'\n")
    klass = connector_class("folder")
    assert klass.__name__ == "Folder" and issubclass(klass, Connector)
    assert "folder" in base.known_connectors()
    conn = base.make_connector("folder", {"path": str(tmp_path / "f"), "create": True}, link="l")
    assert isinstance(conn, VdirConnector)
    assert connector_class("sql") is SQLConnector  # a built-in name is never shadowed


def test_a_broken_entry_point_is_a_config_error_naming_it(site: Path) -> None:
    _install_distribution(site, "[concord.connectors]\ngone = concord_missing:Gone\n"
                                "Bad_Name = concord_thirdparty:X\n"
                                "notone = concord_thirdparty:X\n",
                          "class X:\n    pass\n")
    with pytest.raises(ConfigError, match=r"entry point 'gone'.*cannot be loaded"):
        connector_class("gone")
    with pytest.raises(ConfigError, match="connector name 'Bad_Name'"):
        connector_class("Bad_Name")
    with pytest.raises(ConfigError, match="not a Connector subclass"):
        connector_class("notone")
