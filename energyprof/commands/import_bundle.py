"""`energyprof import FILE`: merge a run bundle (written by `energyprof export … --format bundle`) into the database
under new ids, in one transaction; runs already here are skipped (energyprof.store.bundle)."""

from __future__ import annotations

import argparse
import time

from energyprof.commands.args import add_db_option, add_json_option, fail, print_json
from energyprof.store import Store
from energyprof.store.bundle_format import BundleError, read_bundle_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="import a run bundle (from energyprof export --format bundle)",
        description="Merge the runs of a bundle file into the database under new ids, keeping where they came from "
                    "(original run id, machine, export time). Nothing is imported unless everything is; runs "
                    "already in the database are skipped. For a powermetrics recording use import-powermetrics.")
    parser.add_argument("file", metavar="FILE", help="the bundle")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        data = read_bundle_file(args.file)
    except BundleError as exc:
        return fail(str(exc))
    store = Store(args.db)
    try:
        result = store.import_bundle(data, name=args.file)
    except BundleError as exc:
        return fail(str(exc))
    finally:
        store.close()
    if args.json:
        print_json({"imported": [{"bundle_run_id": old, "run_id": new} for old, new in result.imported],
                    "skipped": [{"bundle_run_id": old, "run_id": here} for old, here in result.skipped],
                    "sweeps": result.sweeps, "exported_at": result.exported_at, "exported_on": result.exported_on})
        return 0
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.exported_at)) if result.exported_at else "unknown"
    if result.imported:
        ids = ", ".join(str(new) for _, new in result.imported)
        print(f"Imported {len(result.imported)} run(s) as {ids} (exported {when}).")
    if result.skipped:
        ids = ", ".join(str(here) for _, here in result.skipped)
        print(f"Skipped {len(result.skipped)} run(s) already in the database (as {ids}).")
    if result.sweeps:
        print(f"Sweeps: {', '.join(result.sweeps)}.")
    return 0
