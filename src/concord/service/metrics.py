"""Prometheus metrics at ``/metrics``, computed from the hub on each scrape.

Reading the hub (not counters in this process) keeps the figures right when several
processes sync the same practice, and after a restart.
"""

from __future__ import annotations

import json
import time
from typing import Any

from concord.link.status import directions, link_status, pending_count, pending_oldest, selections
from concord.service.deps import ServiceState


def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _line(name: str, labels: dict[str, Any], value: float) -> str:
    lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items() if v is not None)
    return f"{name}{{{lab}}} {value}" if lab else f"{name} {value}"


def render(st: ServiceState) -> str:
    hub = st.hub
    out: list[str] = []

    def head(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    m = hub.metrics_counts()
    run_rows, count_rows, conf, quar, cps = (m.runs, m.run_counts, m.open_conflicts,
                                             m.quarantined, m.checkpoints)

    head("concord_runs_total", "counter", "Sync runs by link, entity and outcome.")
    for link, entity, status, n in run_rows:
        out.append(_line("concord_runs_total", {"link": link, "entity": entity or "all",
                                                "status": status}, n))
    synced: dict[tuple[str, str], float] = {}
    for link, entity, counts in count_rows:
        try:
            doc = json.loads(counts)
        except ValueError:
            continue
        written = sum(v for k, v in doc.items() if isinstance(v, int | float) and k not in
                      ("errors", "quarantined", "conflicts", "unchanged", "skipped"))
        key = (link, entity or "all")
        synced[key] = synced.get(key, 0) + written
    head("concord_records_synced_total", "counter", "Records written by sync runs.")
    for (link, entity), total in sorted(synced.items()):
        out.append(_line("concord_records_synced_total", {"link": link, "entity": entity}, total))
    head("concord_errors_total", "counter", "Sync runs that ended in an error.")
    for link, entity, status, n in run_rows:
        if status == "error":
            out.append(_line("concord_errors_total", {"link": link, "entity": entity or "all"}, n))
    head("concord_conflicts_open", "gauge", "Conflicts waiting to be resolved.")
    for link, n in conf:
        out.append(_line("concord_conflicts_open", {"link": link}, n))
    head("concord_quarantined_records", "gauge", "Records that could not be synced.")
    for link, entity, n in quar:
        out.append(_line("concord_quarantined_records", {"link": link, "entity": entity}, n))

    last = hub.last_seq()
    head("concord_hub_seq", "gauge", "The hub's change sequence.")
    out.append(_line("concord_hub_seq", {}, last))
    now = time.time()
    lag: list[str] = []
    lag_s: list[str] = []
    pend: list[str] = []
    up: list[str] = []
    age: list[str] = []
    for name, cfg in st.links.items():
        sels = selections(cfg)
        for entity, direction in directions(cfg).items():
            lab = {"link": name, "entity": entity}
            lag.append(_line("concord_lag_changes", lab, max(0, last - cps.get((name, entity), 0))))
            pend.append(_line("concord_pending_records", lab,
                              pending_count(hub, name, entity, direction, sels[entity])))
            oldest = pending_oldest(hub, name, entity, direction, sels[entity])
            lag_s.append(_line("concord_lag_seconds", lab,
                               round(max(0.0, now - oldest), 3) if oldest else 0))
        stt = link_status(hub, name, cfg, now=now)
        up.append(_line("concord_link_up", {"link": name},
                        {"green": 2, "blue": 1}.get(stt.color, 0)))
        if stt.last_run_at:
            age.append(_line("concord_last_run_age_seconds", {"link": name},
                             round(now - float(stt.last_run_at), 3)))
    head("concord_lag_changes", "gauge", "Hub changes not yet read by a link (sequence lag).")
    out.extend(lag)
    head("concord_lag_seconds", "gauge", "Age of the oldest change a link has not sent yet.")
    out.extend(lag_s)
    head("concord_pending_records", "gauge", "Records the hub holds that a link has not sent.")
    out.extend(pend)
    head("concord_link_up", "gauge", "Status light: 2 green, 1 blue, 0 red.")
    out.extend(up)
    head("concord_last_run_age_seconds", "gauge", "Seconds since a link's last finished run.")
    out.extend(age)
    return "\n".join(out) + "\n"
