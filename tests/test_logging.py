"""Logging: `--log-level` / $ENERGYPROF_LOG on the command line (WARNING, quiet, by default), and a dashboard-launched
job's INFO lines in its log file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from profile_helpers import fast_params, wait_for

from energyprof.runner import jobs
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]


def sample(db: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """`energyprof [options] sample` for a tenth of a second with the automatic source."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENERGYPROF_")}
    return subprocess.run([sys.executable, "-m", "energyprof", *options, "sample", "--seconds", "0.1", "--source",
                           "auto", "--db", str(db)], cwd=REPO, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_log_level_debug_says_how_the_source_was_chosen(tmp_path: Path) -> None:
    done = sample(tmp_path / "e.sqlite3", "--log-level", "debug")
    assert done.returncode == 0, done.stderr
    assert "DEBUG energyprof.power.registry: source ioreport" in done.stderr  # each source looked at, in order
    assert "INFO energyprof.power.registry: power source: auto chose " in done.stderr


def test_the_environment_names_the_level_and_the_default_is_quiet(tmp_path: Path) -> None:
    told = sample(tmp_path / "e.sqlite3", ENERGYPROF_LOG="info")
    assert told.returncode == 0, told.stderr
    assert "INFO energyprof.power.registry: power source: auto chose " in told.stderr
    assert "DEBUG" not in told.stderr
    quiet = sample(tmp_path / "e.sqlite3")
    assert quiet.returncode == 0 and "energyprof.power.registry" not in quiet.stderr, quiet.stderr


def test_a_launched_job_logs_the_engine_at_info_to_its_log_file(store: Store) -> None:
    run_id = jobs.launch_job(store, fast_params(repeats=1).to_dict())
    wait_for(lambda: store.get_run(run_id)["status"] not in ("queued", "running"), what="the job to finish")
    assert store.get_run(run_id)["status"] == "done"
    said = jobs.RUN.log_path(store, run_id).read_text()
    for line in ("INFO energyprof.power.registry: power source: estimate (asked for by name)",
                 f"INFO energyprof.runner.engine: run {run_id}: phase baseline",
                 f"INFO energyprof.runner.engine: run {run_id}: phase repeat 1 of 1",
                 f"INFO energyprof.runner.engine: run {run_id}: other processes used ",
                 f"INFO energyprof.runner.engine: run {run_id}: ended done"):
        assert line in said, said
    assert "DEBUG" not in said
