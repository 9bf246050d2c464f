"""Runs that know when the machine was busy: other processes' CPU during the baseline and the workload."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from profile_helpers import fast_params

from energyprof.runner import engine as engine_module
from energyprof.runner.background import compare, snapshot
from energyprof.runner.job import profile_foreground
from energyprof.store import Store
from energyprof.summary import DISTURBED_CORES, RunSummary

HOG = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end:\n    pass\n"


def start_unrelated_hog() -> int:
    """A CPU hog that is not a descendant of this process (as another program on the machine would be)."""
    spawn = (f"import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', {HOG!r}], start_new_session=True, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint(p.pid)")
    return int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, check=True).stdout)


def stop(pid: int) -> None:
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_hog_started_during_the_workload_disturbs_the_run_and_is_named(store: Store,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    hogs: list[int] = []
    start_repeat = engine_module.ProfileEngine._repeat

    def repeat_with_a_hog(self: engine_module.ProfileEngine, repeat: int) -> None:
        if not hogs:
            hogs.append(start_unrelated_hog())
        start_repeat(self, repeat)

    monkeypatch.setattr(engine_module.ProfileEngine, "_repeat", repeat_with_a_hog)
    try:
        summary = profile_foreground(store, fast_params(max_new_tokens=40, repeats=2, baseline_s=0.5))
    finally:
        for hog in hogs:
            stop(hog)
    assert summary.status == "done" and summary.disturbed is True
    assert abs(summary.background_cpu["workload"] - summary.background_cpu["baseline"]) > DISTURBED_CORES
    assert any(p.pid == hogs[0] and p.cores > 0.2 for p in summary.background_top)  # ~1 core on a quiet machine
    assert f"pid {hogs[0]}" in summary.disturbance()
    stored = RunSummary.from_dict(store.get_run(summary.run_id)["summary"])
    assert stored.disturbed is True and stored.background_top == summary.background_top


def test_other_processes_are_counted_but_not_this_one_or_its_children() -> None:
    import os

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    stranger = start_unrelated_hog()
    try:
        pids = {pid for pid, _ in snapshot()}
    finally:
        child.kill()
        child.wait()
        stop(stranger)
    assert os.getpid() not in pids  # the profiler's own process is never "other"
    assert child.pid not in pids  # nor are its children (powermetrics runs as one)
    assert stranger in pids


def test_compare_of_snapshots() -> None:
    before = {(1, 0.0): ("a", 1.0, False), (2, 0.0): ("gone", 5.0, False)}
    after = {(1, 0.0): ("a", 2.0, False), (3, 9.0): ("new", 0.5, True)}
    span = compare(before, after, 2.0, "x")
    assert span.cores == pytest.approx(0.75)
    assert [(p.name, p.cores, p.dashboard) for p in span.top] == [("a", 0.5, False), ("new", 0.25, True)]
    assert compare(before, after, 0.0, "x").cores == 0.0
    assert snapshot()  # the machine has other processes


def test_steady_background_is_not_a_disturbance(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose other processes use the same CPU (here a steady 0.3 cores) in baseline and workload."""
    import energyprof.runner.background as background

    started = time.monotonic()
    monkeypatch.setattr(background, "snapshot",
                        lambda: {(4242, 1.0): ("steady-daemon", 0.3 * (time.monotonic() - started), False)})
    summary = profile_foreground(store, fast_params(max_new_tokens=20, repeats=2, baseline_s=0.5))
    assert summary.disturbed is False and summary.disturbance() is None
    assert summary.background_cpu["baseline"] == pytest.approx(0.3, abs=0.01)
    assert summary.background_cpu["workload"] == pytest.approx(0.3, abs=0.01)
    assert [p.name for p in summary.background_top] == ["steady-daemon"]


def test_runs_lists_a_disturbed_run_as_such(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    from energyprof.cli import main

    quiet = store.create_run("profile", status="running", source="estimate", measured=False)
    store.finish_run(quiet, "done", summary=RunSummary(run_id=quiet, status="done", disturbed=False).to_dict())
    busy = store.create_run("profile", status="running", source="estimate", measured=False)
    store.finish_run(busy, "done", summary=RunSummary(run_id=busy, status="done", disturbed=True).to_dict())
    assert main(["runs", "--db", str(store.path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines[str(busy)].rstrip().endswith("disturbed") and "disturbed" not in lines[str(quiet)]
