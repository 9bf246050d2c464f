"""What runs on a Ray node for one sweep point: the normal profiling job (`python -m energyprof job`, the process the
dashboard launches) against this node's own power source, into a database in a temporary folder of this node; the
finished run comes back to the driver as a bundle (energyprof.store.bundle).

The Ray worker only waits: it starts the job, reports which node it is on and the job's phase to the sweep's board
(a small actor the driver reads), and on a cancel (Ray raises KeyboardInterrupt in the task) asks the job to stop
(SIGTERM, as the dashboard's cancel does) and waits for it. The job is started with --parent-pid, so a worker that
is killed takes its job with it. The worker and the rest of Ray (raylet, other workers) are other processes to
the job: its idle baseline includes them and its disturbed check names them.

Ray itself is imported only inside these functions (this module is imported by Ray workers and by the driver).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil

from energyprof.runner.jobs import reap_dead_jobs
from energyprof.store import Store

WAIT_POLL_S = 0.25
"""How often the worker checks whether its job ended (a cancel is noticed at once: it interrupts the wait)."""
REPORT_EVERY_S = 2.5
"""How often the worker reads the job's progress (one small query, like the dashboard's quiet live view)."""
STOP_WAIT_S = 30.0
"""How long a cancelled job may take to stop (it attributes what it recorded) before it is killed."""
TEMP_PREFIX = "energyprof-ray-"
OWNER_FILE = "owner.pid"


class SweepBoard:
    """The sweep's notice board (a Ray actor on the cluster): tasks post where they run and how far their job is; the
    driver reads it to show progress and to name the node of a task that died."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}

    def post(self, key: str, **fields: Any) -> None:
        self.posts.setdefault(key, {}).update(fields, posted_at=time.time())

    def read(self) -> dict[str, dict[str, Any]]:
        return {key: dict(post) for key, post in self.posts.items()}


def run_point(params: dict[str, Any], key: str, board: Any) -> dict[str, Any]:
    """Run one sweep point on this node; returns {bundle: the finished run as bundle bytes, node_id, node_ip,
    status}. Raises on a job that could not be started; KeyboardInterrupt (a cancel) after the job has stopped."""
    import ray

    context = ray.get_runtime_context()
    node = {"node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address()}
    _post(board, key, state="running", phase="starting", **node)
    _remove_stale_folders()
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        (folder / OWNER_FILE).write_text(str(os.getpid()))
        store = Store(folder / "point.sqlite3")
        run_id = store.create_run("profile", status="queued", source=params.get("source"), model=params.get("model"),
                                  device=params.get("device"), dtype=params.get("dtype"), params=params)
        job = _start_job(run_id, store.path, folder)
        try:
            store.update_run(run_id, pid=job.pid)
            _wait(job, store, run_id, board, key)
        except BaseException:  # a cancel (KeyboardInterrupt) or an error: the job stops before the task ends
            stop_job(job)
            raise
        reap_dead_jobs(store)  # a job that crashed leaves its run failed, with what it recorded
        run = store.get_run(run_id) or {}
        bundle = store.export_bundle([run_id]).data
        store.close()
        return {"bundle": bundle, "status": run.get("status"), **node}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start_job(run_id: int, db: Path, folder: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "energyprof", "job", "--run-id", str(run_id), "--db", str(db),
               "--parent-pid", str(os.getpid())]
    with open(folder / "job.log", "ab") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=node_environment(), close_fds=True)


def _wait(job: subprocess.Popen, store: Any, run_id: int, board: Any, key: str) -> None:
    """Wait for the job, posting its progress (a cancel interrupts the wait with KeyboardInterrupt)."""
    next_report = 0.0
    while job.poll() is None:
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + REPORT_EVERY_S
            progress = store.job_progress(run_id) or {}
            _post(board, key, phase=progress.get("phase"), progress=progress.get("progress"))
        with suppress(subprocess.TimeoutExpired):
            job.wait(WAIT_POLL_S)


def stop_job(job: subprocess.Popen) -> None:
    """SIGTERM (the job ends its run as cancelled), then SIGKILL after STOP_WAIT_S."""
    if job.poll() is not None:
        return
    with suppress(ProcessLookupError):
        job.send_signal(signal.SIGTERM)
    try:
        job.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        job.kill()
        job.wait()


def _post(board: Any, key: str, **fields: Any) -> None:
    """Fire and forget: a board that is gone must not stop the point."""
    with suppress(Exception):
        board.post.remote(key, **fields)


def node_environment() -> dict[str, str]:
    """This node's environment for the job, without what Ray changed for its worker: Ray sets OMP_NUM_THREADS to the
    task's CPUs (1) when the node's environment did not set it, which would make torch profile on one thread."""
    env = dict(os.environ)
    try:
        started_with = psutil.Process().environ()
    except (psutil.Error, OSError):
        return env
    if "OMP_NUM_THREADS" in env and "OMP_NUM_THREADS" not in started_with:
        env.pop("OMP_NUM_THREADS")
    return env


def _remove_stale_folders() -> None:
    """Temporary folders of points whose worker was killed (its process is gone): nobody will read them."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)
