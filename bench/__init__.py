"""Concord's benchmarks. Each prints a table and writes its figures under bench/results/."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def write_results(name: str, figures: dict[str, Any], *, digits: int | None = None,
                  machine: bool = False) -> Path:
    """Write ``figures`` to bench/results/<name>.json (floats rounded to ``digits``; with
    ``machine``, the Python version and CPU count too) and say where."""
    if digits is not None:
        figures = {k: round(v, digits) if isinstance(v, float) else v
                   for k, v in figures.items()}
    if machine:
        figures = {**figures, "machine": {"python": platform.python_version(),
                                          "cpus": os.cpu_count()}}
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path
