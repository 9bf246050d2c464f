"""Job control apart from any UI: launch a profiling job subprocess, read its health, cancel it, reap the dead.

A job is a run row (kind `profile`) plus a detached `python -m energyprof job --run-id N --db PATH`
process. The database enforces one active profiling job; the process writes its own progress,
heartbeat and final status. Every run records the process that writes it (pid and start time), so whoever
looks (a page load, a CLI call) calls `reap_dead_jobs`, and a run of any kind (profile, sample, measure,
capture) whose process is gone shows as failed instead of running forever.

A process that is alive is never reaped, however old its heartbeat: a stopped (SIGSTOP, Ctrl-Z) or stuck job
is "not responding" (see `job_health`) and keeps its place as the one active job.

A sweep (energyprof.runner.sweep) is a job too: a sweep row plus a detached `python -m energyprof sweep-job
--sweep-id ID --db PATH` process that runs its points as profile runs; the same one-active-job rule, cancel
(SIGTERM: the running point ends `cancelled`, the sweep stops) and reaping apply.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from energyprof.errors import EnergyprofError
from energyprof.store import ACTIVE_STATUSES, Store

HEARTBEAT_STALE_S = 60.0
"""A live profiling job whose last heartbeat is older than this is shown as "not responding" (never reaped)."""

LAUNCH_GRACE_S = 60.0
"""A run whose process is not recorded yet (a job being launched) counts as alive for this long."""

START_TIME_TOLERANCE_S = 1.0
"""A process is the run's writer when its pid matches and its start time is within this of the recorded one."""

PID_START_SLACK_S = 30.0
"""Runs written before start times were recorded: a launched job's process starts just after its run row, so one
started later than this (and after the last heartbeat) is a reused pid."""

SIGTERM_CANCELS = ("profile", "sample", "sweep")
"""Kinds whose process ends its run (or sweep) as `cancelled` on SIGTERM (energyprof job, profile, sample,
sweep-job). The others (a measure() block in someone's own Python, an import) are never signalled."""

HEARTBEAT_KINDS = ("profile",)
"""Kinds of run whose process writes heartbeats (every ~2 s); the others only have a pid to go by."""

LOG_DIR_NAME = "logs"

log = logging.getLogger(__name__)

DEAD_SENTENCES = {
    "profile": "The profiling job process ended without finishing (killed or crashed); the data it recorded so far "
               "is kept.",
    "sample": "The `energyprof sample` process ended without finishing (killed or crashed); the power samples it "
              "recorded so far are kept.",
    "measure": "The Python process measuring this block ended without finishing it (killed or crashed); nothing was "
               "recorded for the block.",
    "capture": "The import process ended without finishing (killed or crashed); delete this run and import the file "
               "again.",
    "sweep": "The sweep process ended without finishing (killed or crashed); its finished points are kept, and "
             "running the sweep again resumes the others.",
}
"""Why a run was marked failed by the reaper, per kind: one sentence."""


class JobLaunchError(EnergyprofError, OSError):
    """The job process could not be started (its run is marked failed); the message is one sentence for people."""


@dataclass(frozen=True)
class JobHealth:
    """How the process writing an active run is doing.

    state: "alive"; "not responding" (the process exists but is stopped, or a profiling job's heartbeat is older
    than HEARTBEAT_STALE_S); or "dead" (no such process: the reaper marks the run failed).
    heartbeat_age_s: seconds since the last heartbeat, for kinds that write heartbeats; else None."""

    state: str
    heartbeat_age_s: float | None = None

    def label(self) -> str:
        """For people, e.g. "not responding, no heartbeat for 75 s"."""
        if self.state == "not responding" and self.heartbeat_age_s is not None:
            return f"not responding, no heartbeat for {self.heartbeat_age_s:.0f} s"
        return self.state


@dataclass(frozen=True)
class JobKind:
    """One kind of detached job process (a profile run, a sweep): how it is started, where it logs, its row."""

    name: str
    """The row's name in its log file's name ("run", "sweep")."""
    label: str
    """For people: "profiling job", "sweep"."""
    subcommand: str
    id_option: str
    get: Callable[[Store, Any], dict[str, Any] | None]
    finish: Callable[[Store, Any, str, str | None], bool]
    record_pid: Callable[[Store, Any, int], None]
    active: Callable[[Store], list[dict[str, Any]]]
    cancelled: str
    """Why a job cancelled before its process started ended so."""

    def command(self, job_id: Any, db_path: Path) -> list[str]:
        """The job process's command line."""
        return [sys.executable, "-m", "energyprof", self.subcommand, self.id_option, str(job_id), "--db", str(db_path)]

    def log_path(self, store: Store, job_id: Any) -> Path:
        """Where a launched job's stdout/stderr (and its log lines) go: beside the database (ids are safe names)."""
        return store.path.parent / LOG_DIR_NAME / f"{self.name}-{job_id}.log"


RUN = JobKind("run", "profiling job", "job", "--run-id", Store.get_run,
              lambda store, run_id, status, error: store.finish_run(run_id, status, error=error),
              lambda store, run_id, pid: store.update_run(run_id, pid=pid), Store.active_runs,
              "Cancelled before the job process started.")
SWEEP = JobKind("sweep", "sweep", "sweep-job", "--sweep-id", Store.get_sweep, Store.finish_sweep, Store.set_sweep_pid,
                Store.active_sweeps, "Cancelled before the sweep process started.")
KINDS = (RUN, SWEEP)


def launch_job(store: Store, params: dict[str, Any]) -> int:
    """Queue a profiling run with these engine parameters and start its process; returns the run id at once.

    Raises JobAlreadyRunning when another profiling job is queued or running, JobLaunchError (an OSError)
    when its log or process cannot be started."""
    reap_dead_jobs(store)
    run_id = store.create_run("profile", status="queued", source=params.get("source"), model=params.get("model"),
                              device=params.get("device"), dtype=params.get("dtype"), params=params)
    store.update_run(run_id, phase="queued")
    return _start(RUN, store, run_id)


def launch_sweep(store: Store, spec: dict[str, Any], points: int, sweep_id: str,
                 ray: dict[str, Any] | None = None) -> str:
    """Queue a sweep (its spec: energyprof.spec.sweep.SweepSpec.to_dict(); `ray`: the Ray cluster its points run on,
    energyprof.spec.ray_cluster.RaySettings.to_dict()) and start its process; returns the sweep id at once. Raises
    JobAlreadyRunning when a profiling job or sweep is active, ValueError when the id is taken, JobLaunchError when
    its log or process cannot be started."""
    reap_dead_jobs(store)
    store.create_sweep(sweep_id, spec, points, ray=ray)
    return _start(SWEEP, store, sweep_id)


def _start(kind: JobKind, store: Store, job_id: Any) -> Any:
    """Start the process of a queued job row; the row fails with the sentence when it cannot start."""
    try:
        proc = _spawn(kind.command(job_id, store.path), kind.log_path(store, job_id), kind.label)
    except JobLaunchError as exc:
        log.info("%s %s could not start: %s", kind.label, job_id, exc)
        kind.finish(store, job_id, "failed", str(exc))
        raise
    kind.record_pid(store, job_id, proc.pid)
    log.info("%s %s launched: process %d, log %s", kind.label, job_id, proc.pid, kind.log_path(store, job_id))
    return job_id


def _spawn(command: list[str], log_file: Path, what: str) -> subprocess.Popen:
    """A detached job process (its own session) writing to its log; JobLaunchError with one sentence."""
    log = open_log(log_file)
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        raise JobLaunchError(f"Could not start the {what} process ({exc.strerror or exc}); check that "
                             f"{sys.executable} still runs.") from exc
    finally:
        os.close(log)


def open_log(path: Path) -> int:
    """A job log opened for appending (a descriptor): created private (0600), never through a symbolic link,
    only a plain file of its own; JobLaunchError with one sentence otherwise."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JobLaunchError(f"The job log {path} is a symbolic link, which energyprof does not write through; "
                                 "remove it and start the job again.") from exc
        raise JobLaunchError(f"The job log {path} cannot be opened ({exc.strerror or exc}); check the permissions "
                             f"of {path.parent}.") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise JobLaunchError(f"The job log {path} is not a plain file of its own (a hard link or a special file), "
                             "which energyprof does not write into; remove it and start the job again.")
    os.set_blocking(fd, True)
    return fd


def can_cancel(row: dict[str, Any]) -> bool:
    """Whether `cancel` can stop this run or sweep: it is active, and its process (if alive) takes SIGTERM as
    cancel."""
    if row.get("status") not in ACTIVE_STATUSES:
        return False
    return row.get("kind") in SIGTERM_CANCELS or job_health(row).state == "dead"


def cancel(store: Store, kind: JobKind, job_id: Any, timeout_s: float = 10.0) -> bool:
    """Ask a job (a run or a sweep) to stop with SIGTERM: a run keeps what it recorded and ends `cancelled`, a
    sweep's running point ends `cancelled` and no further point starts. True if it was active and can be cancelled
    (see can_cancel). A stopped job is continued so that it can act on the request."""
    row = kind.get(store, job_id)
    if row is None or not can_cancel(row):
        return False
    pid = row.get("pid")
    log.info("cancelling %s %s (process %s)", kind.label, job_id, pid)
    _ask_to_stop(pid, row, timeout_s)
    reap_dead_jobs(store)
    row = kind.get(store, job_id)
    if row and row["status"] in ACTIVE_STATUSES and not (pid and _run_process(pid, row) is not None):
        kind.finish(store, job_id, "cancelled", kind.cancelled)
    return True


def _ask_to_stop(pid: int | None, row: dict[str, Any], timeout_s: float) -> None:
    """SIGTERM (and SIGCONT, so a stopped process can act on it) to the live process of a run or sweep, then wait
    up to timeout_s for it to end."""
    if not pid or _run_process(pid, row) is None:
        return
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _run_process(pid, row) is not None:
        time.sleep(0.05)


def reap_dead_jobs(store: Store) -> list[int]:
    """Mark active runs (and sweeps) whose process is gone (killed, crashed, machine rebooted) as failed; returns
    the runs' ids.

    Only the process's absence counts: a live process (same pid and start time) is never reaped."""
    reaped = []
    for kind in KINDS:
        for row in kind.active(store):
            if job_health(row).state != "dead":
                continue
            if kind.finish(store, row["id"], "failed", DEAD_SENTENCES.get(row["kind"], DEAD_SENTENCES["profile"])):
                log.info("%s %s reaped: its process %s is gone", row["kind"], row["id"], row.get("pid"))
                if kind is RUN:
                    reaped.append(row["id"])
    return reaped


def job_health(run: dict[str, Any], now: float | None = None) -> JobHealth:
    """Whether the process writing this run is alive, not responding or dead (a finished run has no process)."""
    now = time.time() if now is None else now
    beats = run.get("kind") in HEARTBEAT_KINDS and run.get("heartbeat_at") is not None
    age = max(0.0, now - run["heartbeat_at"]) if beats else None
    if run.get("status") not in ACTIVE_STATUSES:
        return JobHealth("dead", age)
    pid = run.get("pid")
    if not pid:
        launching = now - (run.get("created_at") or 0) < LAUNCH_GRACE_S
        return JobHealth("alive" if launching else "dead", age)
    proc = _run_process(pid, run)
    if proc is None:
        return JobHealth("dead", age)
    if _stopped(proc) or (age is not None and age > HEARTBEAT_STALE_S):
        return JobHealth("not responding", age)
    return JobHealth("alive", age)


def _run_process(pid: int, run: dict[str, Any]) -> psutil.Process | None:
    """The live process that writes this run, or None when pid is gone, a zombie, or a later process that reused
    the pid (its start time differs from the recorded one)."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap_child(pid)
            return None
        created = proc.create_time()
    except psutil.NoSuchProcess:  # ZombieProcess included
        return None
    except psutil.AccessDenied:  # it exists but cannot be inspected: never reap a process that may be the writer
        return proc
    started = run.get("pid_started_at")
    if started is not None:
        return proc if abs(created - started) <= START_TIME_TOLERANCE_S else None
    last_sign_of_life = max(run.get("heartbeat_at") or 0, (run.get("created_at") or 0) + PID_START_SLACK_S)
    return proc if created <= last_sign_of_life else None


def _stopped(proc: psutil.Process) -> bool:
    try:
        return proc.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _reap_child(pid: int) -> None:
    """Collect the exit status of a finished job we launched, so no zombie is left behind."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
