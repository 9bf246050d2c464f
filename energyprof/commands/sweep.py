"""`energyprof sweep`: profile every combination of lists of models, batch sizes, prompt lengths, new tokens,
dtypes and devices, one ordinary profile run per point, here or (`--ray ADDRESS`) as Ray tasks on a lab's machines;
`energyprof sweep-job`: run a queued sweep (what the dashboard launches)."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from functools import partial
from typing import Any

from energyprof.commands.args import add_db_option, add_json_option, add_param_options, fail, print_json
from energyprof.commands.prompt_file import add_prompt_file_options, prompt_values
from energyprof.errors import EnergyprofError
from energyprof.log import JOB_LEVEL
from energyprof.runner.jobs import reap_dead_jobs
from energyprof.runner.ray_cluster import ray_cluster
from energyprof.runner.sweep import SweepError, SweepOutcome, run_sweep, start_sweep
from energyprof.spec.params import ProfileParams
from energyprof.spec.ray_cluster import RAY_ADDRESS_HELP, RAY_RESOURCE, RaySettings
from energyprof.spec.sweep import (
    SWEEP_DEFAULTS,
    SweepSpec,
    describe,
    new_sweep_id,
    sweep_id_error,
    sweepable_names,
)
from energyprof.store import JobAlreadyRunning, Store
from energyprof.summary import RunSummary
from energyprof.sweep_table import sweep_rows


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="profile every combination of lists of models, batch sizes, prompt lengths, ...",
        description="Profile every combination of the comma-separated lists given to "
                    f"{', '.join('--' + n.replace('_', '-') for n in sweepable_names())}, one ordinary profile run "
                    "per point, in order, in the foreground. Each point repeats until its decode J/token 95% CI is "
                    f"within {SWEEP_DEFAULTS['target_ci']:g}% of the mean (at most "
                    f"{SWEEP_DEFAULTS['max_seconds']:g} s of repeats) unless told otherwise. A failed point does "
                    "not stop the others; Ctrl-C stops the sweep; running it again with the same --sweep-id "
                    "resumes the missing points.")
    prompt = parser.add_mutually_exclusive_group()
    add_param_options(parser, containers={"prompt": prompt}, lists=sweepable_names(), overrides=SWEEP_DEFAULTS)
    add_prompt_file_options(parser, prompt)
    parser.add_argument("--no-target-ci", action="store_true",
                        help="run exactly --repeats repeats per point (no target CI)")
    parser.add_argument("--sweep-id", default=None, metavar="ID",
                        help="name the sweep (letters, digits, '.', '_', '-'); an existing id resumes that sweep's "
                             "missing points (default: a new id)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help=f"run every point as a Ray task on a node offering the `{RAY_RESOURCE}` resource: "
                             f"{RAY_ADDRESS_HELP}; each run comes home as a bundle (needs `pip install -e \".[ray]\"`)")
    parser.add_argument("--ray-replicate", action="store_true",
                        help=f"with --ray: run every point on every node offering `{RAY_RESOURCE}` (one run per point "
                             "per machine) instead of once on any of them")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run, parser=parser)

    job = subparsers.add_parser("sweep-job", help="run a queued sweep (launched by the dashboard)",
                                description="Run the missing points of the sweep ID with the options stored in it; "
                                            "SIGTERM cancels it and keeps what was recorded.")
    job.add_argument("--sweep-id", required=True, metavar="ID", help="the sweep's id")
    add_db_option(job)
    job.set_defaults(func=run_job, log_level_default=JOB_LEVEL)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The sweep's grid from parsed arguments (the prompt file is read here, bounded)."""
    axes = {name: getattr(args, name) for name in sweepable_names()}
    values = {name: getattr(args, name) for name in ProfileParams().to_dict()
              if hasattr(args, name) and name not in axes}
    if args.no_target_ci:
        values["target_ci"] = None
    if args.prompt_file is not None:
        try:
            values.update(prompt_values(args.prompt_file, args.prompt_format))
        except ValueError as exc:
            args.parser.error(str(exc))
    return SweepSpec(ProfileParams(**values), axes)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    problems = spec.errors()
    if args.sweep_id is not None and sweep_id_error(args.sweep_id):
        problems.insert(0, sweep_id_error(args.sweep_id))
    ray = RaySettings(args.ray.strip(), args.ray_replicate) if args.ray is not None else None
    if ray is not None:
        problems[:0] = ray.errors()
    elif args.ray_replicate:
        problems.insert(0, "--ray-replicate runs every point on every Ray node: give --ray ADDRESS too")
    if problems:
        args.parser.error(problems[0])
    sweep_id = args.sweep_id or new_sweep_id()
    store = Store(args.db)
    out = None if args.json else sys.stdout
    try:
        with _cluster(ray) as cluster:  # while connected, what Ray prints goes to the log, not into our output
            try:
                start_sweep(store, spec, sweep_id, ray)
            except (JobAlreadyRunning, SweepError, ValueError) as exc:
                refused = str(exc)
            else:
                refused = None
                try:
                    outcome = run_sweep(store, sweep_id, on_point=partial(_point_line, out=out), cluster=cluster)
                except (JobAlreadyRunning, SweepError) as exc:
                    outcome = SweepOutcome(sweep_id, "failed", str(exc))
    except EnergyprofError as exc:  # Ray missing, the cluster unreachable: one sentence before anything starts
        refused = str(exc)
    if refused is not None:
        return _refused(sweep_id, refused, args.json)
    return _report(store, sweep_id, outcome.status, outcome.error, args.json)


def _refused(sweep_id: str, sentence: str, as_json: bool) -> int:
    if as_json:
        print_json({"sweep_id": sweep_id, "status": "failed", "error": sentence, "runs": []})
    return fail(sentence)


def _cluster(ray: RaySettings | None) -> Any:
    """The connected Ray cluster for the block (None without --ray); Ray itself is imported only then."""
    return nullcontext(None) if ray is None else ray_cluster(ray.address)


def run_job(args: argparse.Namespace) -> int:
    error = sweep_id_error(args.sweep_id)
    if error:
        return fail(error)
    store = Store(args.db)
    reap_dead_jobs(store)
    try:
        store.start_sweep(args.sweep_id, os.getpid())
    except (JobAlreadyRunning, ValueError) as exc:
        return fail(str(exc))
    sweep = store.get_sweep(args.sweep_id) or {}
    try:
        with _cluster(RaySettings.from_dict(sweep.get("ray"))) as cluster:
            outcome = run_sweep(store, args.sweep_id, on_point=partial(_point_line, out=sys.stdout), cluster=cluster)
    except (JobAlreadyRunning, SweepError) as exc:
        return fail(str(exc))
    except EnergyprofError as exc:  # the sweep's Ray cluster cannot be used: nothing ran
        store.finish_sweep(args.sweep_id, "failed", str(exc))
        return fail(str(exc))
    print(f"Sweep {args.sweep_id} {outcome.status}.")
    return 0 if outcome.status == "done" else fail(outcome.error or f"Sweep {args.sweep_id} ended {outcome.status}.")


def _point_line(index: int, total: int, summary: RunSummary, where: str | None = None, *, out: Any) -> None:
    """One line per finished point (text output only); `where`: the Ray node that ran it."""
    if out is None:
        return
    decode = summary.per_token("decode").mean
    figure = "" if decode is None else f", decode {decode:.4g} J/token" + (" (estimated)" if summary.estimated else "")
    reason = f": {summary.error}" if summary.status != "done" and summary.error else ""
    node = f" on node {where}" if where else ""
    print(f"Point {index + 1} of {total}{node}: run {summary.run_id} {summary.status}{figure}{reason}", file=out,
          flush=True)


def _report(store: Store, sweep_id: str, status: str, error: str | None, as_json: bool) -> int:
    rows = sweep_rows(store, sweep_id)
    if as_json:
        print_json({"sweep_id": sweep_id, "status": status, "error": error, "points": len(rows), "runs": rows})
    else:
        print(format_table(sweep_id, status, rows))
    return 0 if status == "done" else fail(error or f"Sweep {sweep_id} ended {status}.")


def format_table(sweep_id: str, status: str, rows: list[dict[str, Any]]) -> str:
    """The sweep for people: one line per point with its decode J/token and the units people quote."""
    estimated = any(r.get("estimated") for r in rows)
    head = f"Sweep {sweep_id} {status}: {len(rows)} points" + (" (figures estimated)" if estimated else "")
    lines = [head, f"{'point':>5}  {'run':>5}  {'status':<9}  {'J/token':>14}  {'tokens/J':>9}  "
                   f"{'Wh/1k tok':>9}  {'tokens/s':>9}  configuration"]
    for r in rows:
        jpt = "—" if r["j_per_token"] is None else f"{r['j_per_token']:.4g}" + (
            f" ±{r['j_per_token_ci95']:.1g}" if r["j_per_token_ci95"] is not None else "")
        lines.append(f"{r['point'] + 1:>5}  {r['run_id'] or '—':>5}  {r['status']:<9}  {jpt:>14}  "
                     f"{_g(r['tokens_per_j']):>9}  {_g(r['wh_per_1000_tokens']):>9}  {_g(r['tokens_per_s']):>9}  "
                     f"{describe({k: r[k] for k in sweepable_names()})}")
    return "\n".join(lines)


def _g(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
