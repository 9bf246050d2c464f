"""`energyprof job --run-id N`: run a queued profiling run (what the dashboard launches)."""

from __future__ import annotations

import argparse

from energyprof.commands.args import add_db_option, fail, int_range
from energyprof.log import JOB_LEVEL
from energyprof.runner.job import JobError, run_job
from energyprof.store import Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("job", help="run a queued profiling run (launched by the dashboard)",
                                   description="Run the queued profiling run N with the parameters stored in it; "
                                               "SIGTERM cancels it and keeps what was recorded.")
    parser.add_argument("--run-id", type=int_range(1, 2**63 - 1), required=True, help="the queued run's id")
    parser.add_argument("--parent-pid", type=int_range(1, 2**31 - 1), default=None, metavar="PID",
                        help="cancel the run as soon as process PID (the one that started this job, e.g. a Ray "
                             "task's worker) is no longer its parent")
    add_db_option(parser)
    parser.set_defaults(func=run, log_level_default=JOB_LEVEL)


def run(args: argparse.Namespace) -> int:
    store = Store(args.db)
    try:
        summary = run_job(store, args.run_id, parent_pid=args.parent_pid)
    except JobError as exc:
        return fail(str(exc))
    print(f"Run {args.run_id} {summary.status}.")
    if summary.status != "done":
        return fail(summary.error or f"Run {args.run_id} ended as {summary.status}.")
    return 0
