"""The progress of a run in the CLI: every entity type named from the start, one row for
the whole run, no rate or ETA until enough has run (a clock the test moves, never the wall)."""

from __future__ import annotations

from rich.progress import Progress

from concord.cli.running import RunProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fields(bar: Progress) -> dict[str, tuple[float, float | None, str, str]]:
    return {t.description.split("/")[1].strip(): (t.completed, t.total, t.fields["rate"],
                                                   t.fields["eta"]) for t in bar.tasks}


def test_every_type_is_named_and_the_whole_run_is_one_row() -> None:
    clock = Clock()
    bar = Progress(disable=True)
    p = RunProgress("practice", ["staff", "client", "contact"], bar, clock=clock)
    assert set(fields(bar)) == {"all", "staff", "client", "contact"}
    assert fields(bar)["contact"][3] == "waiting"
    clock.now += 1
    p("staff", 12, 12)
    clock.now += 5
    p("client", 500, 2000)
    f = fields(bar)
    assert f["staff"][:2] == (12, 12) and f["staff"][3] == "done"  # kept, not reset
    assert f["client"][:2] == (500, 2000)
    assert f["all"][0] == 512 and f["all"][3] == "type 2 of 3: client"


def test_no_rate_or_eta_until_enough_has_run() -> None:
    clock = Clock()
    bar = Progress(disable=True)
    p = RunProgress("practice", ["client"], bar, clock=clock)
    clock.now += 0.001  # a first batch straight from a cache
    p("client", 1000, 100_000)
    assert fields(bar)["client"][2:] == ("", "")
    clock.now += RunProgress.SETTLE_SECONDS
    p("client", 2000, 100_000)
    rate, eta = fields(bar)["client"][2:]
    elapsed = 0.001 + RunProgress.SETTLE_SECONDS
    assert rate == f"{2000 / elapsed:,.0f} rec/s" and eta.endswith("left")


def test_a_type_is_timed_from_when_the_one_before_it_ended() -> None:
    clock = Clock()
    bar = Progress(disable=True)
    p = RunProgress("practice", ["staff", "client"], bar, clock=clock)
    clock.now += 60
    p("staff", 10, 10)
    clock.now += 4
    p("client", 400, 400)
    assert fields(bar)["client"][2] == f"{400 / 4:,.0f} rec/s"
