"""Job health and the reaper with real processes: a stopped job is alive ("not responding"), never reaped on a
stale heartbeat; a job marked failed behind its back stops writing and says so; killed `sample` and `measure()`
runs end failed and can be deleted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from profile_helpers import fast_params, pid_alive, wait_for

from energyprof.runner import jobs
from energyprof.store import JobAlreadyRunning, Store

REPO = Path(__file__).resolve().parents[1]


def energyprof(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "energyprof", *args, "--db", str(db)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


@contextmanager
def stopped(pid: int, db: Path) -> Iterator[None]:
    """SIGSTOP the process at a moment it holds no write lock on the database (a stopped writer would block
    every other writer for the busy timeout), SIGCONT it on the way out."""
    probe = sqlite3.connect(db, timeout=0.2, isolation_level=None)
    try:
        for _ in range(100):
            os.kill(pid, signal.SIGSTOP)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                break
            except sqlite3.OperationalError:
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.05)
        else:
            raise AssertionError("the job never let go of the write lock")
    finally:
        probe.close()
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def long_job(store: Store) -> tuple[int, int]:
    params = fast_params(max_new_tokens=8, repeats=1000, warmup=0, baseline_s=0, layers="none")
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: not store.steps(run_id).empty, what="a stored repeat")
    return run_id, store.get_run(run_id)["pid"]


# -- a live process is never reaped ----------------------------------------------------------------
def test_stopped_job_is_not_responding_never_reaped_and_still_blocks_a_second_job(
        store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "HEARTBEAT_STALE_S", 0.5)
    params = fast_params(max_new_tokens=4, repeats=40, warmup=0, baseline_s=0, layers="none")
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: not store.steps(run_id).empty, what="a stored repeat")
    pid = store.get_run(run_id)["pid"]
    with stopped(pid, db_path):
        wait_for(lambda: time.time() - store.get_run(run_id)["heartbeat_at"] > 1.0, what="a stale heartbeat")
        assert jobs.reap_dead_jobs(store) == []
        health = jobs.job_health(store.get_run(run_id))
        assert health.state == "not responding" and health.heartbeat_age_s > 1.0
        with pytest.raises(JobAlreadyRunning, match=f"run {run_id}"):
            jobs.launch_job(store, params.to_dict())
        listed = {r["id"]: r for r in json.loads(energyprof("runs", "--json", db=db_path).stdout)}
        assert listed[run_id]["status"] == "running" and listed[run_id]["health"] == "not responding"
        assert listed[run_id]["heartbeat_age_s"] > 1.0
        table = energyprof("runs", db=db_path).stdout
        assert "running (not responding" in table
    wait_for(lambda: store.get_run(run_id)["status"] != "running", what="the resumed job to finish")
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    assert len(store.steps(run_id)) == 40 * 4
    assert len(store.list_runs()) == 1


def test_health_needs_the_same_pid_and_process_start_time(store: Store) -> None:
    run_id = store.create_run("sample", source="estimate", measured=False, owned=True)
    run = store.get_run(run_id)
    assert run["pid"] == os.getpid() and run["pid_started_at"] is not None
    assert jobs.job_health(run).state == "alive"
    reused = {**run, "pid_started_at": run["pid_started_at"] + 120}  # same pid, another process: pid reused
    assert jobs.job_health(reused).state == "dead"
    assert jobs.reap_dead_jobs(store) == []


# -- a job marked failed behind its back ------------------------------------------------------------
def test_job_marked_failed_while_stopped_stops_writing_and_says_so(store: Store, db_path: Path) -> None:
    run_id, pid = long_job(store)
    with stopped(pid, db_path):
        # What a reaper that cannot see the process (another PID namespace, another machine) would do.
        store.finish_run(run_id, "failed", error="Marked failed by a reaper that could not see the process.")
        steps, samples = len(store.steps(run_id)), len(store.power_samples(run_id))
        second = jobs.launch_job(store, fast_params(repeats=1, baseline_s=0).to_dict())
    wait_for(lambda: not pid_alive(pid), timeout_s=30, what="the resumed job to notice and end")
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "Marked failed by a reaper that could not see the process."
    assert len(store.steps(run_id)) == steps and len(store.power_samples(run_id)) == samples
    said = [line for line in jobs.RUN.log_path(store, run_id).read_text().splitlines()
            if f"Run {run_id} was marked failed" in line]
    assert len(said) == 1 and "not recorded" in said[0], jobs.RUN.log_path(store, run_id).read_text()
    wait_for(lambda: store.get_run(second)["status"] not in ("queued", "running"), what="the second job")
    assert store.get_run(second)["status"] == "done"


# -- killed sample and measure() runs ----------------------------------------------------------------
def assert_reaped_and_deletable(store: Store, db_path: Path, run_id: int) -> None:
    listed = {r["id"]: r for r in json.loads(energyprof("runs", "--json", db=db_path).stdout)}
    assert listed[run_id]["status"] == "failed"
    error = store.get_run(run_id)["error"]
    assert "ended without finishing" in error and error.count(". ") == 0 and error.endswith(".")
    assert "failed" in energyprof("runs", db=db_path).stdout.splitlines()[1]
    assert store.delete_run(run_id)
    assert store.get_run(run_id) is None and store.power_samples(run_id).empty


def test_sigkilled_sample_command_is_reaped_as_failed_and_can_be_deleted(store: Store, db_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "energyprof", "sample", "--seconds", "60", "--source",
                             "estimate", "--interval-ms", "20", "--db", str(db_path)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: not store.list_runs().empty and not store.power_samples(1).empty, what="samples")
    finally:
        proc.kill()
        proc.wait()
    assert store.get_run(1)["status"] == "running"
    assert_reaped_and_deletable(store, db_path, 1)


def test_sigkilled_measure_block_is_reaped_as_failed_and_can_be_deleted(store: Store, db_path: Path) -> None:
    code = ("import sys, time, energyprof\n"
            "with energyprof.measure(source='estimate', interval_ms=20, db=sys.argv[1], label='killed'):\n"
            "    print('inside', flush=True)\n"
            "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
    finally:
        proc.kill()
        proc.wait()
    assert store.get_run(1)["status"] == "running" and store.get_run(1)["kind"] == "measure"
    assert_reaped_and_deletable(store, db_path, 1)
