"""The package's layering, read from the source: only hub/ speaks SQL to the hub's tables,
and no connector imports the demo data."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "concord"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "alembic" not in p.parts)


def test_only_the_hub_package_uses_the_hub_schema() -> None:
    offenders = [str(p.relative_to(SRC)) for p in _modules(SRC)
                 if p.parent.name != "hub" and "concord.hub.schema" in _imports(p)]
    assert offenders == [], f"SQL on hub tables outside hub/ (use the Hub's API): {offenders}"


def test_connectors_do_not_import_demo_data() -> None:
    offenders = [str(p.relative_to(SRC)) for p in _modules(SRC / "connectors")
                 if any(i.startswith("concord.demo") for i in _imports(p))]
    assert offenders == []


def test_the_layering_check_sees_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from concord.hub import schema as s\n")
    assert "concord.hub.schema" in _imports(bad)
