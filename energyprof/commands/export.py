"""`energyprof export RUN`: a run's samples, tokens, layers, summary, calls or replayed layers as CSV, the run as a
trace, or runs as CodeCarbon's emissions.csv rows (one per run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from energyprof.codecarbon import emissions_csv
from energyprof.commands.args import add_db_option, fail, float_range, int_range
from energyprof.export import CSV_KINDS, UnknownRun, export_csv, trace_json
from energyprof.store import Store, default_db_path

GRID_MAX_G_PER_KWH = 5_000.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run as CSV, a Perfetto trace or CodeCarbon's emissions.csv",
        description="Export one run: a CSV table (--what) or a Chrome trace JSON (--format trace) that opens "
                    "in ui.perfetto.dev; or one CodeCarbon emissions.csv row per run (--format codecarbon).")
    parser.add_argument("runs", type=int_range(1, 2**63 - 1), nargs="+", metavar="RUN",
                        help="run id (see the runs list); several only with --format codecarbon")
    parser.add_argument("--what", choices=CSV_KINDS, default="tokens",
                        help="which table to export as CSV (default: tokens; ignored for the other formats)")
    parser.add_argument("--format", choices=("csv", "trace", "codecarbon"), default="csv", dest="fmt",
                        help="csv (default), trace (Chrome Trace Event JSON) or codecarbon (CodeCarbon 3.x "
                             "emissions.csv: energies in kWh, powers in W, emissions in kg CO2e)")
    parser.add_argument("--grid-g-per-kwh", type=float_range(0, GRID_MAX_G_PER_KWH), default=None, metavar="G",
                        help="codecarbon: your electricity's carbon intensity (g CO2e per kWh) for the emissions "
                             "column (default: the one the run was profiled with, else empty; nothing is looked up)")
    parser.add_argument("--project-name", default="energyprof", metavar="NAME",
                        help="codecarbon: the project_name column (default: energyprof)")
    parser.add_argument("-o", "--out", metavar="FILE", default=None, help="write to FILE instead of stdout")
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fmt != "codecarbon" and len(args.runs) > 1:
        return fail(f"--format {args.fmt} exports one run; give one RUN (several only with --format codecarbon).")
    db = Path(args.db).expanduser() if args.db else default_db_path()
    if not db.is_file():
        return fail(f"there is no energyprof database at {db}.")
    store = Store(db)
    current = args.runs[0]
    try:
        if args.fmt == "codecarbon":
            runs = []
            for current in args.runs:
                found = store.get_run(current)
                if found is None:
                    raise UnknownRun(f"run {current} does not exist in {db}")
                runs.append(found)
            text = emissions_csv(runs, args.grid_g_per_kwh, args.project_name)
        elif args.fmt == "trace":
            text = trace_json(store, current) + "\n"
        else:
            text = export_csv(store, current, args.what)
    except UnknownRun:
        return fail(f"run {current} does not exist in {db}.")
    finally:
        store.close()
    return write_output(text, args.out)


def write_output(text: str, out: str | None) -> int:
    """Text to stdout, or to the file `out` (one sentence when it cannot be written)."""
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(out).expanduser().write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}.")
    return 0
