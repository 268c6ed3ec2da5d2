"""Each status light prints in a colour on a terminal: rich knows no "amber", so the CLI and
the demo map every light to a rich style (printed as "[amber]…" it came out uncoloured)."""

from __future__ import annotations

from rich.console import Console

from concord.cli.options import COLORS


def test_every_light_prints_in_a_colour() -> None:
    out = Console(force_terminal=True, color_system="standard", width=80)
    for light in ("green", "amber", "blue", "red"):
        with out.capture() as cap:
            out.print(f"[{COLORS[light]}]{light.upper()}[/]")
        assert "\x1b[" in cap.get(), light
