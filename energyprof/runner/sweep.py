"""Running a sweep: its points one after another in this process, each an ordinary profile run (the one engine)
tagged with the sweep and its point; or, given a connected Ray cluster, as Ray tasks on its nodes
(energyprof.runner.ray_sweep).

A point that fails does not stop the others; a cancel (SIGTERM or Ctrl-C: the running point ends `cancelled`)
stops the sweep. Points that already have a `done` run are skipped, so running a sweep again resumes the missing
ones. Consecutive points with the same model, runtime, device and dtype share one loaded model. The sweep ends
`done` when every point has a done run, `failed` when some failed, `cancelled` when it was stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from energyprof.errors import EnergyprofError, user_message
from energyprof.machine import this_machine
from energyprof.runner.cancel import CancelSwitch, cancel_on_signals
from energyprof.runner.engine import ProfileEngine, ProgressCallback
from energyprof.runner.jobs import reap_dead_jobs
from energyprof.runner.ray_sweep import RaySweepDriver
from energyprof.spec.params import ProfileParams
from energyprof.spec.ray_cluster import RaySettings
from energyprof.spec.sweep import SweepSpec
from energyprof.store import Store
from energyprof.summary import RunSummary

PointCallback = Callable[..., None]
"""Called after each point: (point index, number of points, the point run's summary) and, for a point run on Ray,
the node that ran it."""


class SweepError(EnergyprofError, ValueError):
    """A sweep cannot start (no such sweep, other options than it was started with); one sentence for people."""


@dataclass(frozen=True)
class SweepOutcome:
    """How a sweep ended: its final status and, unless done, the sentence for people."""

    sweep_id: str
    status: str
    error: str | None = None


def start_sweep(store: Store, spec: SweepSpec, sweep_id: str, ray: RaySettings | None = None) -> None:
    """Create the sweep (running for this process), or restart it for a resume when it exists with this spec.
    `ray`: its points run on that Ray cluster (energyprof.runner.ray_sweep), None: here.

    Raises SweepError for other options than it was started with (a replicated sweep is resumed replicated),
    JobAlreadyRunning when a job is active."""
    reap_dead_jobs(store)
    existing = store.get_sweep(sweep_id)
    if existing is None:
        store.create_sweep(sweep_id, spec.to_dict(), spec.size, pid=os.getpid(), ray=ray.to_dict() if ray else None)
        return
    difference = SweepSpec.from_dict(existing["spec"]).difference(spec)
    if difference is None:
        difference = _ray_difference(RaySettings.from_dict(existing.get("ray")), ray)
    if difference is not None:
        raise SweepError(f"Sweep {sweep_id} was started with other options ({difference}); give the options it was "
                         "started with to resume it, or another --sweep-id.")
    store.start_sweep(sweep_id, os.getpid())
    store.set_sweep_ray(sweep_id, ray.to_dict() if ray else None)


def _ray_difference(stored: RaySettings | None, asked: RaySettings | None) -> str | None:
    """A replicated sweep runs every point on every node: it is resumed only so (the address may change)."""
    was, now = bool(stored and stored.replicate), bool(asked and asked.replicate)
    if was == now:
        return None
    return "--ray-replicate was given" if was else "--ray-replicate was not given"


def run_sweep(store: Store, sweep_id: str, *, on_point: PointCallback | None = None,
              on_progress: ProgressCallback | None = None, cluster: Any = None) -> SweepOutcome:
    """Run the missing points of a sweep that this process has started; SIGTERM and Ctrl-C cancel it. With a
    connected Ray `cluster` (energyprof.runner.ray_cluster.ray_cluster) the points run as Ray tasks on its nodes."""
    switch = CancelSwitch()
    try:
        with cancel_on_signals(switch, _signals()):
            if cluster is not None:
                outcome = _run_on_ray(store, sweep_id, cluster, switch, on_point)
            else:
                outcome = _run_points(store, sweep_id, switch, on_point, on_progress)
    except BaseException as exc:
        with suppress(Exception):  # the original error matters more than this write
            why = (user_message(exc, "The sweep", db_path=store.path) if isinstance(exc, Exception)
                   else "The sweep was cancelled.")
            store.finish_sweep(sweep_id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed", why)
        raise
    store.finish_sweep(sweep_id, outcome.status, outcome.error)
    return outcome


def _signals() -> tuple[int, ...]:
    import signal

    return (signal.SIGTERM, signal.SIGINT)


def _run_points(store: Store, sweep_id: str, switch: CancelSwitch, on_point: PointCallback | None,
                on_progress: ProgressCallback | None) -> SweepOutcome:
    sweep = store.get_sweep(sweep_id)
    if sweep is None:
        raise SweepError(f"There is no sweep {sweep_id} in {store.path}; check --sweep-id and --db.")
    points = SweepSpec.from_dict(sweep["spec"]).points()
    done = {run["sweep_point"] for run in store.sweep_runs(sweep_id) if run["status"] == "done"}
    loaded, loaded_key, failed = None, None, 0
    for index, params in enumerate(points):
        if index in done:
            continue
        if switch.requested:
            return SweepOutcome(sweep_id, "cancelled", "The sweep was cancelled; its finished points are kept.")
        key = _load_key(params)
        if key != loaded_key:
            loaded = None  # let the previous model go before the next one loads
        summary, loaded = _run_point(store, sweep_id, index, params, loaded, switch, on_progress)
        loaded_key = key if loaded is not None else None
        if on_point is not None:
            on_point(index, len(points), summary)
        if summary.status == "cancelled" or switch.requested:
            return SweepOutcome(sweep_id, "cancelled", "The sweep was cancelled; its finished points are kept.")
        failed += summary.status != "done"
    if failed:
        return SweepOutcome(sweep_id, "failed", f"{failed} of {len(points)} points failed; run the sweep again (same "
                                                "sweep id) to retry them.")
    return SweepOutcome(sweep_id, "done")


def _run_on_ray(store: Store, sweep_id: str, cluster: Any, switch: CancelSwitch,
                on_point: PointCallback | None) -> SweepOutcome:
    sweep = store.get_sweep(sweep_id)
    if sweep is None:
        raise SweepError(f"There is no sweep {sweep_id} in {store.path}; check --sweep-id and --db.")
    settings = RaySettings.from_dict(sweep.get("ray")) or RaySettings(cluster.address)
    ended = RaySweepDriver(store, sweep_id, cluster, settings, switch, on_point).run()
    if ended.cancelled:
        return SweepOutcome(sweep_id, "cancelled", "The sweep was cancelled; its finished points are kept.")
    if ended.failed:
        return SweepOutcome(sweep_id, "failed", f"{ended.failed} of {ended.tasks} points failed; run the sweep again "
                                                "(same sweep id) to retry them.")
    return SweepOutcome(sweep_id, "done")


def _load_key(params: ProfileParams) -> tuple[Any, ...]:
    return (params.model, params.runtime, params.device, params.dtype, params.trust_remote_code)


def _run_point(store: Store, sweep_id: str, index: int, params: ProfileParams, loaded: Any, switch: CancelSwitch,
               on_progress: ProgressCallback | None) -> tuple[RunSummary, Any]:
    """One point as a profile run of the sweep: (its summary, the model it loaded, to share with the next)."""
    run_id = store.create_run("profile", source=params.source, model=params.model, device=params.device,
                              dtype=params.dtype, params=params.to_dict(), sweep_id=sweep_id, sweep_point=index)
    problems = params.errors()
    if problems:
        summary = RunSummary(run_id=run_id, kind="profile", status="failed", error=problems[0],
                             machine=this_machine(params.source))
        store.finish_run(run_id, "failed", error=summary.error, summary=summary.to_dict())
        return summary, loaded
    engine = ProfileEngine(store, run_id, params, loaded=loaded, cancel=switch, on_progress=on_progress)
    return engine.run(), engine.loaded
