"""Fault injection: each fault ends in one clear sentence for the user, no hang, no orphan, nothing recorded lost.

Faults covered elsewhere and only referenced here: SIGTERM mid-run (test_job), the power source dying
inside the engine (test_job), the stand-in powermetrics' own failure modes at source level
(test_powermetrics_source).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from profile_helpers import fast_params, pid_alive, use_fake_powermetrics, wait_for

from energyprof.runner import jobs
from energyprof.runner.job import profile_foreground
from energyprof.store import JobAlreadyRunning, Store

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, db: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "energyprof", *args, "--db", str(db)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def one_sentence(text: str) -> str:
    """The single message line the CLI printed on stderr (argparse's usage synopsis above it excluded)."""
    lines = [line for line in text.strip().splitlines() if line.startswith("energyprof")]
    assert len(lines) == 1, text
    return lines[0]


# -- the job process dies ---------------------------------------------------------------------------
def test_sigkilled_job_shows_failed_on_the_next_cli_call_with_its_data_kept(store: Store, db_path: Path) -> None:
    params = fast_params(max_new_tokens=4, repeats=1000, baseline_s=0, layers="blocks")
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: not store.steps(run_id).empty and not store.power_samples(run_id).empty,
             what="a stored repeat and samples")
    steps_before = len(store.steps(run_id))
    pid = store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout_s=10, what="the killed job to be gone")
    listed = json.loads(cli("runs", "--json", db=db_path).stdout)
    row = next(r for r in listed if r["id"] == run_id)
    assert row["status"] == "failed"
    assert "ended without finishing" in store.get_run(run_id)["error"]
    assert len(store.steps(run_id)) >= steps_before > 0
    assert not store.power_samples(run_id).empty


# -- powermetrics misbehaves inside a profiling run --------------------------------------------------
@pytest.mark.parametrize(("knobs", "status", "expected"), [
    ({"FAKE_POWERMETRICS_EUID": "501"}, "failed", "scripts/setup_powermetrics.sh"),
    ({"FAKE_POWERMETRICS_EXIT_AFTER": "3"}, "done", "Power data is incomplete"),
    ({"FAKE_POWERMETRICS_TRUNCATE_AFTER": "3"}, "done", "Power data is incomplete"),
    ({"FAKE_POWERMETRICS_STALL_AFTER": "2"}, "done", "Power data is incomplete"),
])
def test_powermetrics_fault_during_a_run_gives_a_sentence_and_leaves_no_process(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, knobs: dict[str, str], status: str,
        expected: str) -> None:
    pidfile = tmp_path / "pm.pid"
    use_fake_powermetrics(monkeypatch, pidfile, **knobs)
    monkeypatch.setenv("ENERGYPROF_POWERMETRICS_STALL_S", "1.5")
    params = fast_params(source="powermetrics", interval_ms=50, max_new_tokens=40, repeats=4, baseline_s=0.3)
    started = time.monotonic()
    summary = profile_foreground(store, params)
    assert time.monotonic() - started < 60, "a misbehaving powermetrics must not hang the run"
    run = store.get_run(summary.run_id)
    assert run["status"] == status, run["error"]
    assert expected in run["error"]
    assert "\n" not in run["error"].strip()
    if status == "done":
        assert run["power_incomplete"] == 1
        assert not store.power_samples(run["id"]).empty and not store.steps(run["id"]).empty
    if pidfile.exists():
        assert not pid_alive(int(pidfile.read_text()))


def test_sudo_without_a_rule_is_a_clear_sentence(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYPROF_POWERMETRICS", str(REPO / "tests" / "fake_sudo_denied"))
    summary = profile_foreground(store, fast_params(source="powermetrics"))
    run = store.get_run(summary.run_id)
    assert run["status"] == "failed"
    assert "scripts/setup_powermetrics.sh" in run["error"]


def test_garbage_in_the_powermetrics_stream_is_skipped_and_counted(store: Store, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, tmp_path / "pm.pid", FAKE_POWERMETRICS_GARBAGE="1")
    summary = profile_foreground(store, fast_params(source="powermetrics", interval_ms=50, max_new_tokens=20))
    run = store.get_run(summary.run_id)
    assert run["status"] == "done"
    assert run["samples_skipped"] > 0 and not store.power_samples(run["id"]).empty
    # A dropped document leaves a hole in the window chain: steps inside it are unknown, and the run says so.
    assert run["power_incomplete"] == (summary.unknown_steps > 0)
    if run["power_incomplete"]:
        assert "steps have unknown energy" in run["error"]


# -- the database is busy ------------------------------------------------------------------------------
def test_job_waits_for_a_writer_holding_the_database_and_loses_nothing(store: Store, db_path: Path) -> None:
    params = fast_params(max_new_tokens=30, repeats=2, baseline_s=0.2)
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: store.get_run(run_id)["status"] == "running", what="the job to start")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock for 3 s
    time.sleep(3)
    holder.execute("COMMIT")
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")  # and a reader keeps a snapshot open while the job finishes
    reader.execute("SELECT COUNT(*) FROM power_samples").fetchone()
    wait_for(lambda: store.get_run(run_id)["status"] != "running", what="the job to finish")
    reader.execute("COMMIT")
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    assert len(store.steps(run_id)) == 2 * 30  # the prefill step yields the first of the 30 tokens
    assert run["summary"]["closure_error"] < 1e-6


# -- two launches at once ---------------------------------------------------------------------------
def test_two_simultaneous_launches_start_exactly_one_job(db_path: Path) -> None:
    params = fast_params(max_new_tokens=5, repeats=1, baseline_s=0).to_dict()
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def launch() -> None:
        store = Store(db_path)  # each browser session has its own connection
        barrier.wait()
        try:
            outcomes.append(jobs.launch_job(store, params))
        except JobAlreadyRunning as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_ids = [o for o in outcomes if isinstance(o, int)]
    refusals = [o for o in outcomes if isinstance(o, str)]
    assert len(run_ids) == 1 and len(refusals) == 1
    assert "already running" in refusals[0]
    store = Store(db_path)
    wait_for(lambda: store.get_run(run_ids[0])["status"] != "running" and
             store.get_run(run_ids[0])["status"] != "queued", what="the job to finish")
    assert store.get_run(run_ids[0])["status"] == "done"
    assert len(store.list_runs()) == 1


# -- the app restarts while a job runs -------------------------------------------------------------------
def test_job_outlives_the_app_that_launched_it_and_the_next_app_picks_it_up(db_path: Path) -> None:
    params = fast_params(max_new_tokens=60, repeats=2, baseline_s=0.5)
    launcher = (f"import json, sys; from energyprof.runner import jobs; from energyprof.store import Store; "
                f"print(jobs.launch_job(Store({str(db_path)!r}), json.loads(sys.argv[1])))")
    app = subprocess.Popen([sys.executable, "-c", launcher, json.dumps(params.to_dict())], stdout=subprocess.PIPE,
                           text=True, cwd=REPO)
    run_id = int(app.stdout.readline())
    app.kill()  # the dashboard process goes away (restart, crash, Ctrl-C)
    app.wait()
    store = Store(db_path)
    jobs.reap_dead_jobs(store)
    active = store.active_profile_run()
    assert active is not None and active["id"] == run_id, "the restarted app sees the job still running"
    wait_for(lambda: store.get_run(run_id)["status"] not in ("queued", "running"), what="the job to finish")
    assert store.get_run(run_id)["status"] == "done"


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "code", "expected"), [
    (["--prompt", ""], 2, "The prompt is empty"),
    (["--prompt", "x" * 100_001], 2, "the limit is 100,000"),
    (["--max-new-tokens", "0"], 2, "--max-new-tokens"),
    (["--max-new-tokens", "-5"], 2, "--max-new-tokens"),
    (["--max-new-tokens", "10000000000"], 2, "--max-new-tokens"),
    (["--device", "tpu"], 2, "Unknown device 'tpu'"),
    (["--dtype", "float8"], 2, "--dtype"),
    (["--model", "no-such-org/no-such-model-xyz"], 1, "no-such-org/no-such-model-xyz"),
])
def test_bad_cli_input_gets_one_sentence(db_path: Path, args: list[str], code: int, expected: str) -> None:
    base = ["profile", "--model", "tiny", "--prompt", "hi", "--max-new-tokens", "2", "--source", "estimate",
            "--baseline-s", "0", "--repeats", "1"]
    result = cli(*base, *args, db=db_path)
    assert result.returncode == code, result.stderr
    assert expected in one_sentence(result.stderr)


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01binary junk", b"<?xml version='1.0'?><plist><dict>"])
def test_unreadable_capture_file_gets_one_sentence_and_no_run(db_path: Path, tmp_path: Path,
                                                              content: bytes | None) -> None:
    path = tmp_path / "capture.plist"
    if content is not None:
        path.write_bytes(content)
    result = cli("import-powermetrics", str(path), db=db_path)
    assert result.returncode == 1
    assert str(path.name) in one_sentence(result.stderr) or "capture" in one_sentence(result.stderr).lower()
    assert Store(db_path).list_runs().empty
