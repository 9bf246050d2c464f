"""`energyprof export RUN`: a run's samples, tokens, layers, summary, calls or replayed layers as CSV, or the run as a
trace; `energyprof export RUN [RUN …] --format codecarbon`: one CodeCarbon emissions.csv row per run
(energyprof.codecarbon); `energyprof export RUN [RUN …] --format bundle -o FILE` (or `--sweep ID`): runs as one bundle
file that `energyprof import` merges into another database (energyprof.store.bundle)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from energyprof.codecarbon import emissions_csv
from energyprof.commands.args import add_db_option, add_json_option, fail, float_range, int_range, print_json
from energyprof.export import CSV_KINDS, UnknownRun, export_csv, trace_json
from energyprof.spec.sweep import sweep_id_error
from energyprof.store import Store, default_db_path
from energyprof.store.bundle_format import BundleError, write_bundle_file

FORMATS = ("csv", "trace", "codecarbon", "bundle")
GRID_MAX_G_PER_KWH = 5_000.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run as CSV or as a Perfetto trace, or runs as CodeCarbon rows or a bundle",
        description="Export one run: a CSV table (--what) or a Chrome trace JSON (--format trace) that opens "
                    "in ui.perfetto.dev; or runs as one CodeCarbon emissions.csv row each (--format codecarbon); or "
                    "runs (several ids, or --sweep ID) as one bundle file (--format bundle -o FILE) that "
                    "`energyprof import FILE` merges into another database.")
    parser.add_argument("runs", type=int_range(1, 2**63 - 1), nargs="*", metavar="RUN",
                        help="run id (see the runs list); a bundle or CodeCarbon rows take several")
    parser.add_argument("--sweep", metavar="ID", action="append", default=[],
                        help="with --format bundle: every run of this sweep (repeatable)")
    parser.add_argument("--what", choices=CSV_KINDS, default="tokens",
                        help="which table to export as CSV (default: tokens; ignored for --format trace)")
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt",
                        help="csv (default), trace (Chrome Trace Event JSON), codecarbon (CodeCarbon 3.x "
                             "emissions.csv: energies in kWh, powers in W, emissions in kg CO2e) or bundle (an SQLite "
                             "file of whole runs)")
    parser.add_argument("--grid-g-per-kwh", type=float_range(0, GRID_MAX_G_PER_KWH), default=None, metavar="G",
                        help="codecarbon: your electricity's carbon intensity (g CO2e per kWh) for the emissions "
                             "column (default: the one the run was profiled with, else empty; nothing is looked up)")
    parser.add_argument("--project-name", default="energyprof", metavar="NAME",
                        help="codecarbon: the project_name column (default: energyprof)")
    parser.add_argument("-o", "--out", metavar="FILE", default=None,
                        help="write to FILE instead of stdout (a bundle needs it)")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.fmt == "bundle":
        if args.out is None:
            args.parser.error("--format bundle writes a file: give -o FILE")
        if not args.runs and not args.sweep:
            args.parser.error("give the runs to bundle (RUN …) or --sweep ID")
    else:
        if args.sweep:
            args.parser.error("--sweep needs --format bundle (for a sweep's table as CSV, use the Sweeps page)")
        if args.fmt == "codecarbon" and not args.runs:
            args.parser.error("give the runs to export as CodeCarbon rows (RUN …)")
        if args.fmt != "codecarbon" and len(args.runs) != 1:
            args.parser.error(f"--format {args.fmt} exports one run: give exactly one RUN")
    db = Path(args.db).expanduser() if args.db else default_db_path()
    if not db.is_file():
        return fail(f"there is no energyprof database at {db}.")
    store = Store(db)
    try:
        if args.fmt == "bundle":
            return _bundle(store, args)
        if args.fmt == "codecarbon":
            return _codecarbon(store, args, db)
        return _one_run(store, args, db)
    finally:
        store.close()


def _one_run(store: Store, args: argparse.Namespace, db: Path) -> int:
    run_id = args.runs[0]
    try:
        text = trace_json(store, run_id) + "\n" if args.fmt == "trace" else export_csv(store, run_id, args.what)
    except UnknownRun:
        return fail(f"run {run_id} does not exist in {db}.")
    return write_output(text, args.out)


def _codecarbon(store: Store, args: argparse.Namespace, db: Path) -> int:
    """One CodeCarbon emissions.csv row per run (energyprof.codecarbon)."""
    runs = []
    for run_id in args.runs:
        run = store.get_run(run_id)
        if run is None:
            return fail(f"run {run_id} does not exist in {db}.")
        runs.append(run)
    return write_output(emissions_csv(runs, args.grid_g_per_kwh, args.project_name), args.out)


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


def _bundle(store: Store, args: argparse.Namespace) -> int:
    for sweep_id in args.sweep:
        if sweep_id_error(sweep_id):
            return fail(sweep_id_error(sweep_id))
    try:
        bundle = store.export_bundle(args.runs, args.sweep)
        path = write_bundle_file(args.out, bundle.data)
    except BundleError as exc:
        return fail(str(exc))
    if args.json:
        print_json({"file": str(path), "bytes": len(bundle.data), "runs": bundle.run_ids,
                    "sweeps": bundle.sweep_ids})
    else:
        sweeps = f" and {len(bundle.sweep_ids)} sweep(s)" if bundle.sweep_ids else ""
        print(f"Wrote {len(bundle.run_ids)} run(s){sweeps} to {path} ({len(bundle.data) / 1e6:.2f} MB).")
    return 0
