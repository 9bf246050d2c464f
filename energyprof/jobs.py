"""Job control apart from any UI: launch a profiling job subprocess, read its state, cancel it, reap the dead.

A job is a run row (kind `profile`) plus a detached `python -m energyprof job --run-id N --db PATH`
process. The database enforces one active profiling job; the process writes its own progress,
heartbeat and final status. Whoever looks (a page load, a CLI call) calls `reap_dead_jobs` so a job
whose process died shows as failed instead of running forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from energyprof.store import Store

HEARTBEAT_STALE_S = 60.0
"""A running job that has not written a heartbeat for this long is presumed dead (pid reuse guard)."""

PID_START_SLACK_S = 30.0
"""A launched job's process starts just after its run row; one started later than this is a reused pid."""

LOG_DIR_NAME = "logs"


def job_command(run_id: int, db_path: Path) -> list[str]:
    return [sys.executable, "-m", "energyprof", "job", "--run-id", str(run_id), "--db", str(db_path)]


def log_path(store: Store, run_id: int) -> Path:
    """Where a launched job's stdout/stderr go (beside the database)."""
    return store.path.parent / LOG_DIR_NAME / f"run-{run_id}.log"


def launch_job(store: Store, params: dict[str, Any]) -> int:
    """Queue a profiling run with these engine parameters and start its process; returns the run id at once.

    Raises JobAlreadyRunning when another profiling job is queued or running."""
    reap_dead_jobs(store)
    run_id = store.create_run("profile", status="queued", source=params.get("source"), model=params.get("model"),
                              device=params.get("device"), dtype=params.get("dtype"), params=params)
    store.update_run(run_id, phase="queued")
    log = log_path(store, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(job_command(run_id, store.path), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    except OSError as exc:
        store.finish_run(run_id, "failed", error=f"Could not start the profiling job process: {exc}.")
        raise
    store.update_run(run_id, pid=proc.pid)
    return run_id


def cancel_job(store: Store, run_id: int, timeout_s: float = 10.0) -> bool:
    """Ask a job to stop (SIGTERM: it keeps what it recorded and ends as `cancelled`); True if it was active."""
    run = store.get_run(run_id)
    if run is None or run["status"] not in ("queued", "running"):
        return False
    pid = run.get("pid")
    if pid and _is_run_process(pid, run):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _is_run_process(pid, run):
                break
            time.sleep(0.05)
    reap_dead_jobs(store)
    run = store.get_run(run_id)
    if run and run["status"] in ("queued", "running") and not (pid and _is_run_process(pid, run)):
        store.finish_run(run_id, "cancelled", error="Cancelled before the job process started.")
    return True


def reap_dead_jobs(store: Store) -> list[int]:
    """Mark active runs whose process is gone (killed, crashed, machine rebooted) as failed; returns their ids."""
    reaped = []
    for run in store.active_runs():
        if run["kind"] != "profile" or _alive(run):
            continue
        store.finish_run(run["id"], "failed",
                         error="The profiling job process ended without finishing (killed or crashed); "
                               "the data it recorded so far is kept.")
        reaped.append(run["id"])
    return reaped


def _alive(run: dict[str, Any]) -> bool:
    pid = run.get("pid")
    if not pid:
        return time.time() - (run.get("created_at") or 0) < HEARTBEAT_STALE_S
    if not _is_run_process(pid, run):
        return False
    return time.time() - (run.get("heartbeat_at") or 0) < HEARTBEAT_STALE_S


def _is_run_process(pid: int, run: dict[str, Any]) -> bool:
    """True when pid is alive and is the process that wrote this run (a launched job, or a foreground
    `energyprof profile` / Python API run), not a later process that reused the pid."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap_child(pid)
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    last_sign_of_life = max(run.get("heartbeat_at") or 0, (run.get("created_at") or 0) + PID_START_SLACK_S)
    return created <= last_sign_of_life


def _reap_child(pid: int) -> None:
    """Collect the exit status of a finished job we launched, so no zombie is left behind."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
