"""`energyprof export RUN`: a run's samples, tokens, layers, summary, calls or replayed layers as CSV, or the run as a
trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from energyprof.commands.args import add_db_option, fail, int_range
from energyprof.export import CSV_KINDS, UnknownRun, export_csv, trace_json
from energyprof.store import Store, default_db_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run as CSV or as a Perfetto trace",
        description="Export one run: a CSV table (--what) or a Chrome trace JSON (--format trace) that opens "
                    "in ui.perfetto.dev.")
    parser.add_argument("run", type=int_range(1, 2**63 - 1), metavar="RUN", help="run id (see the runs list)")
    parser.add_argument("--what", choices=CSV_KINDS, default="tokens",
                        help="which table to export as CSV (default: tokens; ignored for --format trace)")
    parser.add_argument("--format", choices=("csv", "trace"), default="csv", dest="fmt",
                        help="csv (default) or trace (Chrome Trace Event JSON)")
    parser.add_argument("--out", metavar="FILE", default=None, help="write to FILE instead of stdout")
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = Path(args.db).expanduser() if args.db else default_db_path()
    if not db.is_file():
        return fail(f"there is no energyprof database at {db}.")
    store = Store(db)
    try:
        text = trace_json(store, args.run) + "\n" if args.fmt == "trace" else export_csv(store, args.run, args.what)
    except UnknownRun:
        return fail(f"run {args.run} does not exist in {db}.")
    finally:
        store.close()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).expanduser().write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        return fail(f"could not write {args.out}: {exc.strerror or exc}.")
    return 0
