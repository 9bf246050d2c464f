"""A disk that fills up mid-run: the run ends `failed` with the real cause in one sentence, keeping what it wrote.

SQLite reports a full disk as SQLITE_FULL ("database or disk is full"); `PRAGMA max_page_count` makes the
database file hit that limit exactly as a full disk would, on every connection the job opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from profile_helpers import fast_params

from energyprof.runner.job import profile_foreground
from energyprof.store import Store
from energyprof.store.db import StoreCore


def test_disk_full_mid_run_fails_with_the_cause_and_keeps_the_data(db_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(db_path)
    store.create_run("sample", status="done")  # something recorded earlier that must survive
    used = store.conn.execute("PRAGMA page_count").fetchone()[0]
    connect = StoreCore._connect

    def full_soon(self: StoreCore) -> sqlite3.Connection:
        conn = connect(self)
        conn.execute(f"PRAGMA max_page_count = {used + 6}")
        return conn

    monkeypatch.setattr(StoreCore, "_connect", full_soon)
    store.close()
    full = Store(db_path)
    summary = profile_foreground(full, fast_params(max_new_tokens=60, repeats=3, interval_ms=10, layers="modules"))
    assert summary.status == "failed"
    assert summary.error == (f"The disk holding the database {db_path} is full; free some space and run the "
                             "profile again (what was recorded before is kept).")
    monkeypatch.undo()
    after = Store(db_path)
    runs = after.list_runs().set_index("id")
    assert runs.loc[1, "status"] == "done"  # earlier data intact
    assert runs.loc[summary.run_id, "status"] == "failed"
    assert runs.loc[summary.run_id, "error"] == summary.error
    assert not after.power_samples(summary.run_id).empty  # what fitted before the disk filled is kept


FULL_DISK_SCRIPT = r"""
import json, os, shutil, subprocess, sys
mnt, free_mb = sys.argv[1], float(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt], check=True)
sys.path.insert(0, os.getcwd())
from profile_helpers import fast_params
from energyprof.runner.job import profile_foreground
from energyprof.store import Store

store = Store(os.path.join(mnt, "energyprof.sqlite3"))
store.create_run("sample", status="done")
with open(os.path.join(mnt, "filler"), "wb") as filler:  # leave free_mb on the disk, no more
    filler.write(b"\0" * int(shutil.disk_usage(mnt).free - free_mb * 2**20))
summary = profile_foreground(store, fast_params(max_new_tokens=40, repeats=2, interval_ms=10, layers="modules"))
after = Store(store.path).get_run(summary.run_id)
print(json.dumps({"status": after["status"], "error": after["error"], "summary_error": summary.error,
                  "path": str(store.path), "reserve_left": os.path.exists(os.path.join(mnt, "logs",
                  f"run-{summary.run_id}.reserve"))}))
"""


def _namespace() -> list[str] | None:
    """How to run a command in a mount namespace of its own (root: unshare -m; else a user namespace)."""
    import os
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return None
    for command in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        if command == ["unshare", "--mount"] and os.geteuid() != 0:
            continue
        if subprocess.run([*command, "true"], capture_output=True).returncode == 0:
            return command
    return None


def test_a_really_full_disk_keeps_the_real_reason(tmp_path: Path) -> None:
    """A real filesystem (tmpfs, mounted in a mount namespace of its own) with 4.2 MB left: the job holds 4 MB back
    (energyprof.runner.reserve) and fills the rest, then every write fails with ENOSPC, the final status too; the
    space held back is what lets the run end `failed` with the real reason instead of staying "running" until it
    is reaped as killed (with 0.5 MB left, too little to hold anything back, it stayed "running": the issue's case,
    which the reaper now answers from the job's log, see the next test)."""
    import json
    import subprocess
    import sys

    namespace = _namespace()
    if namespace is None:
        pytest.skip("no mount namespace here (unshare missing, or neither root nor user namespaces); the SQLite-level "
                    "disk-full test above still runs")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    done = subprocess.run([*namespace, sys.executable, "-c", FULL_DISK_SCRIPT, str(mnt), "4.2"], capture_output=True,
                          text=True, timeout=180, cwd=Path(__file__).parent,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "failed"
    assert result["error"] == (f"The disk holding the database {result['path']} is full; free some space and run the "
                               "profile again (what was recorded before is kept).")
    assert result["summary_error"] == result["error"] and not result["reserve_left"]


def test_a_job_that_could_not_record_its_end_is_reaped_with_its_own_reason(store: Store) -> None:
    import subprocess
    import sys

    from energyprof.runner import jobs

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_id = store.create_run("profile", status="queued")
    store.update_run(run_id, status="running", pid=int(gone.stdout))
    sentence = f"The disk holding the database {store.path} is full; free some space and run the profile again."
    assert jobs.append_to_log(store, run_id, f"other output\n{jobs.UNRECORDED_END} {sentence}\n")
    jobs.reserve_path(store, run_id).write_bytes(b"\0" * 1024)  # what a killed job leaves behind
    assert jobs.reap_dead_jobs(store) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == sentence
    assert not jobs.reserve_path(store, run_id).exists()
