"""Entry points of a profiling run: `energyprof job` (a queued run the dashboard launched), `energyprof profile`
(the foreground), and the Python API. All of them run the one engine (energyprof.runner.engine)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from energyprof.errors import user_message
from energyprof.machine import this_machine
from energyprof.runner.cancel import CancelSwitch, cancel_on_signals
from energyprof.runner.engine import JobError, ProfileEngine, ProgressCallback
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary

__all__ = ["JobError", "profile_foreground", "run_job", "run_profile"]


def run_profile(store: Store, run_id: int, params: ProfileParams, *, loaded: Any = None,
                cancel: CancelSwitch | None = None, on_progress: ProgressCallback | None = None) -> RunSummary:
    """Run the engine for an existing run row (status running); returns the summary."""
    return ProfileEngine(store, run_id, params, loaded=loaded, cancel=cancel, on_progress=on_progress).run()


PARENT_CHECK_S = 0.5


def run_job(store: Store, run_id: int, *, parent_pid: int | None = None) -> RunSummary:
    """What `energyprof job --run-id N` does: claim the queued run, run its params, stop on SIGTERM (and, given
    parent_pid, as soon as that process is no longer its parent: a Ray task's worker that was killed)."""
    run = store.get_run(run_id)
    if run is None:
        raise JobError(f"Run {run_id} does not exist in {store.path}; check --run-id and --db.")
    if not store.claim_run(run_id, os.getpid()):
        raise JobError(f"Run {run_id} is {run['status']}, not queued; only a queued run can be started.")
    try:
        params = ProfileParams.from_dict(run["params"])
        params.validate()
    except (ValueError, TypeError) as exc:
        summary = RunSummary(run_id=run_id, kind="profile", status="failed", error=user_message(exc),
                             machine=this_machine())
        store.finish_run(run_id, "failed", error=summary.error, summary=summary.to_dict())
        return summary
    switch = CancelSwitch()
    with cancel_on_signals(switch, (signal.SIGTERM, signal.SIGINT)):
        if parent_pid is not None:
            _watch_parent(parent_pid)
        return run_profile(store, run_id, params, cancel=switch)


def _watch_parent(parent_pid: int) -> None:
    """A thread that sends this process SIGTERM (a cancel) once `parent_pid` is no longer its parent: the parent
    ended and this process was re-parented (also when that happened before the thread started)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="energyprof-parent-watch", daemon=True).start()


def profile_foreground(store: Store, params: ProfileParams,
                       on_progress: ProgressCallback | None = None) -> RunSummary:
    """What `energyprof profile` does: create a running run row and run it here (Ctrl-C cancels).

    Raises JobAlreadyRunning when another profiling job is active."""
    run_id = store.create_run("profile", source=params.source, model=params.model, device=params.device,
                              dtype=params.dtype, params=params.to_dict())
    switch = CancelSwitch()
    with cancel_on_signals(switch, (signal.SIGTERM, signal.SIGINT)):
        return run_profile(store, run_id, params, cancel=switch, on_progress=on_progress)
