"""Two (or more) vdir folders linked through one hub: the harness of the integration tests."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from concord.cli.main import app
from concord.config import Config, from_dict
from concord.engine import RunResult, sync_link
from concord.formats import vcard
from concord.hub.store import Hub


def typed(fields: dict[str, Any]) -> dict[str, Any]:
    """Test shorthand: plain strings in ``emails`` / ``phones`` become the model's typed
    values (``"a@x.com"`` -> ``{"address": "a@x.com"}``)."""
    out = dict(fields)
    for name, key in (("emails", "address"), ("phones", "number")):
        if out.get(name) is not None:
            out[name] = [{key: v} if isinstance(v, str) else v for v in out[name]]
    return out


def card(name: str, uid: str, /, **fields: Any) -> str:
    return vcard.build(typed({"name": name, **fields}), uid)


class VdirEnv:
    """A tmp folder holding one vdir per link, a hub, and a concord.toml for the CLI."""

    def __init__(self, root: Path, hub_url: str, links: dict[str, dict[str, Any]] | None = None,
                 *, batch_size: int = 1000) -> None:
        self.root = root
        self.hub_url = hub_url
        links = links if links is not None else {"a": {}, "b": {}}
        self.entity_cfg = links
        data = {"hub": {"url": hub_url}, "links": {
            name: {"connector": "vdir", "options": {"path": str(root / name)},
                   "batch_size": batch_size, "entities": {"contact": ecfg}}
            for name, ecfg in links.items()}}
        self.cfg: Config = from_dict(data, base=root)
        for name in links:
            (root / name).mkdir(exist_ok=True)
        self.config_path = root / "concord.toml"
        self.config_path.write_text(_toml(data))
        self.hub = Hub(self.cfg.hub.url)

    # -- running ----------------------------------------------------------------------
    def sync(self, name: str, **kw: Any) -> RunResult:
        return sync_link(self.hub, self.cfg.link(name), entities=["contact"], **kw)

    def sync_all(self, rounds: int = 2, **kw: Any) -> None:
        for _ in range(rounds):
            for name in self.cfg.links:
                r = self.sync(name, **kw)
                assert r.status in ("ok", "held"), r.message

    def cli(self, *args: str) -> tuple[int, str]:
        """Run `concord ARGS -c concord.toml`; returns (exit code, output on one line)."""
        res = CliRunner().invoke(app, [*args, "--config", str(self.config_path)])
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return res.exit_code, " ".join(res.output.split())

    # -- looking ----------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, filename: str, text: str) -> Path:
        p = self.folder(name) / filename
        p.write_text(text)
        return p

    def files(self, name: str) -> dict[str, Path]:
        """uid -> path of every readable card in folder ``name``."""
        out: dict[str, Path] = {}
        for p in sorted(self.folder(name).glob("*.vcf")):
            try:
                uid = vcard.parse(p.read_text()).uid
            except vcard.VCardError:
                continue
            assert uid not in out, f"UID {uid} twice in {name}: {out.get(uid)} and {p}"
            out[uid or p.name] = p
        return out

    def cards(self, name: str) -> dict[str, dict[str, Any]]:
        """uid -> mapped fields of every readable card in folder ``name``."""
        return {uid: vcard.parse(p.read_text()).fields() for uid, p in self.files(name).items()}

    def path_of(self, name: str, uid: str) -> Path:
        return self.files(name)[uid]

    def edit(self, side: str, uid: str, /, **changes: Any) -> None:
        """Edit a card the way a user's program would: keep the rest of the file."""
        p = self.path_of(side, uid)
        old = p.read_text()
        fields = {**vcard.parse(old).fields(), **typed(changes)}
        p.write_text(vcard.patch(old, fields))

    def hub_records(self) -> dict[str, dict[str, Any]]:
        return {r.id: r.fields for r in self.hub.list_records("contact", limit=100_000)}

    def conflicts(self) -> list[dict[str, Any]]:
        rows = self.hub.conflicts(open_only=False)
        for r in rows:
            r["kept_values"] = json.loads(r["kept"])
        return rows

    def close(self) -> None:
        self.hub.close()


def stat_versions(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (st.st_mtime_ns, st.st_ino, st.st_size)
            for p in folder.glob("*.vcf") if (st := p.stat())}


def duplicates(values: list[Any]) -> list[Any]:
    return [v for v, n in Counter(values).items() if n > 1]


def _toml(data: dict[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f'"{k}" = {val(x)}' for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return json.dumps(str(v))

    out = ["[hub]", f"url = {val(data['hub']['url'])}", ""]
    for name, link in data["links"].items():
        out.append(f"[links.{name}]")
        out.append(f"connector = {val(link['connector'])}")
        out.append(f"options = {val(link['options'])}")
        out.append(f"batch_size = {val(link['batch_size'])}")
        for ent, ecfg in link["entities"].items():
            out.append(f"[links.{name}.entities.{ent}]")
            for k, v in ecfg.items():
                out.append(f"{k} = {val(v)}")
        out.append("")
    return "\n".join(out) + os.linesep
