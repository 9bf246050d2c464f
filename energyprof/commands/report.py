"""`energyprof report RUN` (or `--compare A,B,…`, `--sweep ID`) `-o report.html`: one self-contained HTML file with
the headline figures, the dashboard's charts, the main tables, the machine and the parameters, that opens offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from energyprof.commands.args import add_db_option, fail, int_range
from energyprof.commands.export import write_output
from energyprof.export import UnknownRun
from energyprof.report import ReportError, UnknownSweep, compare_report, run_report, sweep_report
from energyprof.spec.sweep import sweep_id_error
from energyprof.store import Store, default_db_path

STDOUT = "-"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a run, of runs compared or of a sweep",
        description="Write one HTML file that opens offline (its charts' JavaScript is inside it): the headline "
                    "figures with how each was obtained, the dashboard's charts, the main tables, the machine and "
                    "the parameters. Attach it to an issue, a paper's appendix or a chat.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("run", type=int_range(1, 2**63 - 1), nargs="?", metavar="RUN", help="the run to report")
    what.add_argument("--compare", metavar="A,B,...", help="two or more run ids, side by side")
    what.add_argument("--sweep", metavar="ID", help="a sweep's id")
    parser.add_argument("-o", "--out", metavar="FILE", default=None,
                        help="where to write it (default: energyprof-run<N>.html, energyprof-compare-<A-B>.html or "
                             "energyprof-sweep-<ID>.html in the current folder; - for stdout)")
    add_db_option(parser)
    parser.set_defaults(func=run)


def compare_ids(text: str) -> list[int]:
    """Run ids from "3,4"; ValueError with one sentence for anything else or fewer than two."""
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isascii() and p.isdigit() and 0 < int(p) < 2**63 for p in pieces):
        raise ValueError(f"--compare takes run ids separated by commas (e.g. 3,4), not {text[:80]!r}.")
    ids = list(dict.fromkeys(int(p) for p in pieces))
    if len(ids) < 2:
        raise ValueError("--compare needs two or more different run ids (e.g. 3,4).")
    return ids


def run(args: argparse.Namespace) -> int:
    db = Path(args.db).expanduser() if args.db else default_db_path()
    if not db.is_file():
        return fail(f"there is no energyprof database at {db}.")
    try:
        ids = compare_ids(args.compare) if args.compare is not None else None
    except ValueError as exc:
        return fail(str(exc))
    if args.sweep is not None and sweep_id_error(args.sweep):
        return fail(sweep_id_error(args.sweep) or "")
    store = Store(db)
    try:
        if ids is not None:
            text, default = compare_report(store, ids), f"energyprof-compare-{'-'.join(map(str, ids))}.html"
        elif args.sweep is not None:
            text, default = sweep_report(store, args.sweep), f"energyprof-sweep-{args.sweep}.html"
        else:
            text, default = run_report(store, args.run), f"energyprof-run{args.run}.html"
    except (UnknownRun, UnknownSweep, ReportError) as exc:
        return fail(f"{str(exc).rstrip('.')}.")
    finally:
        store.close()
    out = args.out or default
    code = write_output(text, None if out == STDOUT else out)
    if code == 0 and out != STDOUT:
        print(f"wrote {out} ({len(text.encode()) / 1e6:.1f} MB); it opens offline in any browser")
    return code
