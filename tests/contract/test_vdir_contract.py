"""The connector contract on vdir: a real folder of .vcf files under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from concord.connectors import filestamps
from concord.connectors.base import Capabilities, Item, ItemError, WriteOp
from concord.connectors.vdir import VdirConnector, VdirOptions
from concord.errors import ConfigError, PreconditionFailed, TerminalError
from tests.contract.base import ConnectorContract


def _person(n: int) -> Item:
    return Item(ref="", version="", fields={
        "name": f"Person {n}", "emails": [{"address": f"p{n}@example.com"}],
        "phones": [{"number": f"+44 {n:04d}", "types": ["work", "voice"]}],
        "org": f"Firm {n % 3}", "note": f"note, {n}; line\nnext"})


class VdirContacts(ConnectorContract):
    """The contract on contacts in a folder of .vcf files."""

    @pytest.fixture
    def entity(self) -> str:
        return "contact"

    @pytest.fixture
    def make_item(self):
        return _person


class TestVdirContract(VdirContacts):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> VdirConnector:
        (tmp_path / "contacts").mkdir(exist_ok=True)
        return VdirConnector(VdirOptions(path=str(tmp_path / "contacts")), link="t")

    # -- vdir specifics beyond the contract -------------------------------------------
    def test_unreadable_file_is_an_item_error_naming_the_file(self, connector, entity) -> None:
        (connector.root / "bad.vcf").write_text("BEGIN:VCARD\nFN:x\n")
        (connector.root / "latin1.vcf").write_bytes(b"BEGIN:VCARD\nVERSION:3.0\nFN:Z\xe9\nEND:VCARD\n")
        got = {g.ref: g for g in connector.get(entity, ["bad.vcf", "latin1.vcf"])}
        assert isinstance(got["bad.vcf"], ItemError)
        assert str(connector.root / "bad.vcf") in got["bad.vcf"].error
        assert "fix:" in got["bad.vcf"].error
        assert isinstance(got["latin1.vcf"], ItemError) and "UTF-8" in got["latin1.vcf"].error

    def test_a_create_over_someone_elses_file_of_that_name_leaves_it_alone(
            self, connector, entity, make_item) -> None:
        """The file a create would name by its UID is there already with other content (a
        card made at the spoke with the same UID): not taken for a retried create of ours,
        and not touched. A retried create (the same content) is found again."""
        theirs = connector.root / "uid-7.vcf"
        theirs.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:uid-7\r\nFN:Theirs\r\nEND:VCARD\r\n")
        before = theirs.read_bytes()
        with pytest.raises(PreconditionFailed):
            connector.create(entity, make_item(7), "uid-7")
        assert theirs.read_bytes() == before
        ref, v1 = connector.create(entity, make_item(8), "uid-8")
        assert connector.create(entity, make_item(8), "uid-8") == (ref, v1)

    def test_hidden_temporary_and_foreign_files_are_not_listed(self, connector, entity) -> None:
        (connector.root / ".concord-1-x.tmp").write_text("x")
        (connector.root / ".hidden.vcf").write_text("x")
        (connector.root / "notes.txt").write_text("x")
        assert list(connector.list(entity)) == []

    def test_update_keeps_unmapped_properties(self, connector, entity, make_item) -> None:
        ref, v1 = connector.create(entity, make_item(1), "uid-1")
        path = connector.root / ref
        path.write_text(path.read_text().replace("END:VCARD", "X-KEEP;TYPE=a:yes\r\nEND:VCARD"))
        v1 = dict(connector.list(entity))[ref]
        connector.update(entity, ref, make_item(2), v1)
        assert "X-KEEP;TYPE=a:yes" in path.read_text()

    def test_missing_folder_is_a_config_error_and_is_not_created(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="does not exist") as exc:
            VdirConnector(VdirOptions(path=str(tmp_path / "nope")), link="t")
        assert exc.value.key == "options.path" and not (tmp_path / "nope").exists()
        VdirConnector(VdirOptions(path=str(tmp_path / "made"), create=True), link="t")
        assert (tmp_path / "made").is_dir()  # only when asked for

    def test_a_same_size_rewrite_in_the_same_tick_fails_the_write(self, connector, entity,
                                                                  make_item) -> None:
        connector.window = filestamps.RACY_NS  # a file system with 2 s timestamps
        ref, v1 = connector.create(entity, make_item(1), "uid-1")
        path = connector.root / ref
        st = path.stat()
        text = path.read_bytes()
        assert b"Person 1" in text
        with open(path, "r+b") as f:  # in place, same size, and the mtime put back
            f.write(text.replace(b"Person 1", b"Person 9"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert dict(connector.list(entity))[ref] != v1
        with pytest.raises(PreconditionFailed):
            connector.update(entity, ref, make_item(2), v1)
        with pytest.raises(PreconditionFailed):
            connector.delete(entity, ref, v1)
        assert b"Person 9" in path.read_bytes()  # not overwritten
        v2 = dict(connector.list(entity))[ref]
        connector.update(entity, ref, make_item(2), v2)
        assert b"Person 2" in path.read_bytes()

    def test_the_racy_window_is_probed_once_and_leaves_no_file(self, tmp_path, monkeypatch) -> None:
        fine = filestamps.window_of(tmp_path)
        assert filestamps.FINE_NS <= fine <= filestamps.RACY_NS + 10**9
        assert list(tmp_path.iterdir()) == []
        monkeypatch.setattr(os, "utime", lambda *a, **kw: None)  # a clock that never ticks
        assert filestamps.window_of(tmp_path) == fine  # once per process and folder
        (tmp_path / "fat").mkdir()
        assert filestamps.window_of(tmp_path / "fat") >= filestamps.RACY_NS  # no tick: coarse


# -- the same contract where the capabilities say less: the suite skips what they exclude
# and checks that it is refused --------------------------------------------------------

class ReadOnlyVdir(VdirConnector):
    name = "vdir-readonly"
    capabilities = Capabilities(entities=("contact",), read_only=True)


class NoDeleteVdir(VdirConnector):
    name = "vdir-nodelete"
    capabilities = Capabilities(entities=("contact",), writes=frozenset({"create", "update"}))


class TestReadOnlyVdirContract(VdirContacts):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> VdirConnector:
        return ReadOnlyVdir(VdirOptions(path=str(tmp_path / "contacts"), create=True), link="ro")

    def seed(self, connector: VdirConnector, items: list[Item]) -> list[str]:
        """Files another program put in the folder."""
        writer = VdirConnector(VdirOptions(path=str(connector.root)), link="writer")
        return [writer.create("contact", it, f"seed-{n}")[0] for n, it in enumerate(items)]

    def test_a_seeded_folder_still_refuses_every_write(self, connector, entity,
                                                       make_item) -> None:
        refs = self.seed(connector, [make_item(1)])
        self.test_undeclared_writes_are_refused_on_every_path(connector, entity, make_item)
        assert [r for r, _ in connector.list(entity)] == refs


class TestNoDeleteVdirContract(TestReadOnlyVdirContract):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> VdirConnector:
        return NoDeleteVdir(VdirOptions(path=str(tmp_path / "contacts"), create=True), link="nd")

    def test_a_batch_applies_what_is_allowed_and_refuses_the_rest(self, connector, entity,
                                                                  make_item) -> None:
        ref, v1 = connector.create(entity, make_item(1), "keep")
        out = connector.apply(entity, [
            WriteOp("delete", ref, None, expected_version=v1),
            WriteOp("create", None, make_item(2), ident="new"),
        ])
        assert isinstance(out[0].error, TerminalError) and "delete" in str(out[0].error)
        assert out[1].error is None and out[1].ref
        assert set(dict(connector.list(entity))) == {ref, out[1].ref}
