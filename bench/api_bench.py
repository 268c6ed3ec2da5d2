"""API throughput, and read latency while a link migrates a large folder.

    python bench/api_bench.py [--records 100000] [--seconds 8] [--workers 8] [--timeout 900]

Starts the service (`concord serve`'s app: API + scheduler) in its own process on 127.0.0.1
over a SQLite hub, then measures with httpx from this process:
  1. baseline: read_rps and read p95 on an idle service, then write_rps (POST records);
  2. during migration: a vdir link pulls N vCards into the hub (started with the API's
     manual sync) while the same read load runs: read p95 during the migration.
Prints a table with the ratio against the idle baseline and writes bench/results/api.json.
Target: read p95 under 100 ms during the migration. A run that fails (the service does not
start or exits, the migration's run ends in error, or it outlasts --timeout) ends the bench at
once with the reason and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
SERVER = """
import sys, uvicorn
from concord.config import load_config
from concord.service.app import create_app
app = create_app(load_config(sys.argv[1]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def make_folder(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"c{i:07}.vcf").write_text(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{i:07}\r\nFN:Client {i}\r\n"
            f"ORG:Practice {i % 97}\r\nEMAIL:client{i}@example.com\r\nTEL:+61 2 5550 {i % 10000:04}\r\n"
            f"END:VCARD\r\n")


def load(url: str, token: str, seconds: float, workers: int, kind: str, ids: list[str],
         stop: threading.Event | None = None) -> tuple[list[float], float]:
    """Run ``workers`` threads of requests for ``seconds`` (or until ``stop``); latencies in ms."""
    lat: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds
    errors: list[str] = []

    def worker(wid: int) -> None:
        rnd = random.Random(wid)
        mine: list[float] = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as c:
            n = 0
            while time.monotonic() < end and not (stop and stop.is_set()):
                t0 = time.perf_counter()
                if kind == "read":
                    if n % 2:
                        r = c.get(f"/api/v1/records/job/{rnd.choice(ids)}")
                    else:
                        r = c.get("/api/v1/records/job", params={"limit": 50,
                                                                 "offset": rnd.randrange(len(ids))})
                else:
                    r = c.post("/api/v1/records/job", json={"fields": {"name": f"W{wid}-{n}"}})
                mine.append((time.perf_counter() - t0) * 1000)
                if r.status_code >= 400:
                    errors.append(f"{r.status_code} {r.text[:100]}")
                n += 1
        with lock:
            lat.extend(mine)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    return lat, time.monotonic() - t0


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds the migration may take before the bench fails")
    args = ap.parse_args()

    from concord.hub.store import Hub, RecordWrite
    from concord.service.auth import create_token

    tmp = Path(tempfile.mkdtemp(prefix="concord-api-bench-"))
    t0 = time.monotonic()
    make_folder(tmp / "office", args.records)
    print(f"wrote {args.records:,} vCards in {time.monotonic() - t0:.1f}s")
    (tmp / "concord.toml").write_text(
        '[hub]\nurl = "sqlite:///hub.db"\n\n[links.office]\nconnector = "vdir"\n'
        'options = { path = "office" }\ninterval = 86400\n'
        '[links.office.entities.client]\ndirection = "pull"\n')
    hub = Hub(f"sqlite:///{tmp / 'hub.db'}")
    ids = [f"job{i:05}" for i in range(2000)]
    with hub.begin() as conn:
        hub.write(conn, [RecordWrite("job", i, {"name": f"Job {i}", "state": "open"}, {})
                         for i in ids])
    token = create_token(hub, "bench", ("admin",))[1]

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp / "concord.toml"), str(port)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the service exited (code {proc.returncode}) before answering")
            try:
                httpx.get(url + "/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not answer within 60 s") from None
                time.sleep(0.05)
        idle_lat, idle_secs = load(url, token, args.seconds, args.workers, "read", ids)
        write_lat, write_secs = load(url, token, args.seconds / 2, max(1, args.workers // 2),
                                     "write", ids)

        h = {"Authorization": f"Bearer {token}"}
        r = httpx.post(url + "/api/v1/links/office/sync/client", headers=h)
        assert r.status_code == 202, r.text
        done = threading.Event()
        mig: dict[str, float] = {"start": time.monotonic()}

        failure: list[str] = []

        def watch() -> None:
            """Until the migration's run is finished: a failed run, a service that stops
            answering or a run that outlasts --timeout ends the bench with the reason."""
            try:
                with httpx.Client(base_url=url, headers=h, timeout=30) as c:
                    while True:
                        if proc.poll() is not None:
                            failure.append(f"the service exited (code {proc.returncode})")
                            return
                        runs = c.get("/api/v1/links/office/runs", params={"limit": 1}).json()
                        run = runs[0] if runs else None
                        if run and run["status"] not in ("running", "ok"):
                            failure.append(f"the migration run ended {run['status']}: "
                                           f"{run['message']}")
                            return
                        st = c.get("/api/v1/links/office").json()["status"]
                        if (st["color"] == "red" and not st["running"] and not st["queued"]
                                and time.monotonic() - mig["start"] > 2):
                            failure.append(f"the link is red: {st['reason']}")
                            return
                        if run and run["status"] == "ok":
                            mig["end"] = time.monotonic()
                            mig["total"] = c.get("/api/v1/records/client",
                                                 params={"limit": 1}).json()["total"]
                            return
                        if time.monotonic() - mig["start"] > args.timeout:
                            failure.append(f"the migration did not finish in {args.timeout:.0f} s")
                            return
                        time.sleep(0.5)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                failure.append(f"watching the migration failed: {exc!r}")
            finally:
                done.set()

        threading.Thread(target=watch, daemon=True).start()
        busy_lat, busy_secs = load(url, token, args.timeout + 60, args.workers, "read", ids,
                                   stop=done)
        done.wait(args.timeout + 60)
        if failure or "end" not in mig:
            raise SystemExit(f"api bench failed: {failure[0] if failure else 'no result'}")
        if mig["total"] != args.records:
            raise SystemExit(f"api bench failed: {mig['total']:,} of {args.records:,} "
                             f"records arrived")
    finally:
        proc.terminate()
        proc.wait(20)

    res = {
        "records_migrated": int(mig.get("total", 0)),
        "migration_seconds": round(mig["end"] - mig["start"], 2),
        "read_rps": round(len(idle_lat) / idle_secs, 1),
        "read_p95_ms_idle": round(p95(idle_lat), 2),
        "write_rps": round(len(write_lat) / write_secs, 1),
        "write_p95_ms": round(p95(write_lat), 2),
        "read_rps_during_migration": round(len(busy_lat) / busy_secs, 1),
        "read_p95_ms_during_migration": round(p95(busy_lat), 2),
        "target_read_p95_ms": 100,
        "workers": args.workers,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    res["read_p95_ratio_vs_idle"] = round(res["read_p95_ms_during_migration"]
                                          / max(res["read_p95_ms_idle"], 1e-9), 2)
    rows = [
        ("read_rps (idle, baseline)", res["read_rps"], "1.00"),
        ("read_rps during migration", res["read_rps_during_migration"],
         f"{res['read_rps_during_migration'] / res['read_rps']:.2f}"),
        ("read p95 ms (idle, baseline)", res["read_p95_ms_idle"], "1.00"),
        ("read p95 ms during migration", res["read_p95_ms_during_migration"],
         f"{res['read_p95_ratio_vs_idle']:.2f}"),
        ("write_rps", res["write_rps"], ""),
        ("write p95 ms", res["write_p95_ms"], ""),
        ("records migrated", res["records_migrated"], ""),
        ("migration seconds", res["migration_seconds"], ""),
    ]
    print(f"\n{'metric':<32}{'value':>12}{'vs idle':>10}")
    for name, value, ratio in rows:
        print(f"{name:<32}{value:>12}{ratio:>10}")
    verdict = "met" if res["read_p95_ms_during_migration"] < 100 else "NOT met"
    print(f"\ntarget read p95 < 100 ms during the migration: {verdict}")
    out = HERE / "results" / "api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
