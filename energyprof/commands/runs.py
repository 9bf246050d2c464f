"""`energyprof runs`: list the runs in the database (runs whose process died are marked failed first; a live
job that is stopped or stuck is shown as "not responding")."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from energyprof.commands.args import add_db_option, add_json_option, print_json
from energyprof.provenance import labelled, run_provenance
from energyprof.runner.jobs import JobHealth, job_health, reap_dead_jobs
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.textsafe import terminal_text

CELL_CHARS = 60
"""Widest cell of the table (a model name is outside text: escaped and bounded, energyprof.textsafe)."""
COLUMNS = ("id", "kind", "status", "model", "runtime", "device", "source", "tokens", "decode J/token", "created",
           "notes")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runs", help="list runs", description="List every run, newest first.")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = Store(args.db)
    reap_dead_jobs(store)
    health = {r["id"]: job_health(r) for r in store.active_runs()}
    runs = [_with_health(_clean(r), health.get(r["id"])) for r in store.list_runs().to_dict(orient="records")]
    if args.json:
        print_json(runs)
    elif not runs:
        print(f"No runs in {store.path}.")
    else:
        print(format_table([_cells(r) for r in runs]))
    return 0


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """NaN (pandas' missing) as None, numpy numbers as python ones."""
    out = {}
    for key, value in record.items():
        value = value.item() if hasattr(value, "item") else value
        out[key] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def _with_health(record: dict[str, Any], health: JobHealth | None) -> dict[str, Any]:
    """An active run's process health ("alive", "not responding") and heartbeat age; None for finished runs."""
    return {**record, "health": health.state if health else None,
            "heartbeat_age_s": None if health is None or health.heartbeat_age_s is None
            else round(health.heartbeat_age_s, 1)}


def _status(r: dict[str, Any]) -> str:
    status = r.get("status") or ""
    if r.get("health") in (None, "alive"):
        return status
    return f"{status} ({JobHealth(r['health'], r.get('heartbeat_age_s')).label()})"


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    summary = RunSummary.from_dict(r.get("summary"))
    decode = summary.per_token("decode").mean
    source = labelled(r.get("source") or "", run_provenance(r)) if r.get("source") else ""
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r.get("created_at") else ""
    cells = (str(r["id"]), r.get("kind") or "", _status(r), r.get("model") or "", r.get("runtime") or "",
             r.get("device") or "",
             source, str(r.get("tokens_done") or 0), "" if decode is None else f"{decode:.4g}", created,
             summary.notes(bool(r.get("power_incomplete"))))
    return tuple(terminal_text(cell, CELL_CHARS) for cell in cells)


def format_table(rows: list[tuple[str, ...]]) -> str:
    lines = [COLUMNS, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)
