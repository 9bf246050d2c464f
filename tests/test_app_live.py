"""The quiet live view (issue 9): while a job measures, the run and New-profile pages show phase, progress, tokens
and elapsed time from one narrow read and build no chart unless asked; between phases the chart is drawn."""

from __future__ import annotations

from typing import Any

import pytest
from seed import open_page, seed_run, texts

from energyprof import ui
from energyprof.store import Store

MEASURED = ["baseline", "warm-up", "repeat 1 of 3", "repeat 12 of 100", "replay 2 of 5", "decode"]
UNMEASURED = [None, "", "queued", "starting", "loading", "attributing", "done"]


@pytest.mark.parametrize("phase", MEASURED)
def test_measured_phases(phase: str) -> None:
    assert ui.is_measured_phase(phase)


@pytest.mark.parametrize("phase", UNMEASURED)
def test_phases_between_measurements(phase: str | None) -> None:
    assert not ui.is_measured_phase(phase)


def running(store: Store, phase: str) -> int:
    run_id = seed_run(store, tokens=20, status="running")
    store.update_run(run_id, phase=phase, progress=0.4, tokens_done=7)
    return run_id


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every Store read the pages make from here on."""
    reads: list[str] = []
    for name in ("power_timeline", "power_totals", "get_run", "job_progress"):
        real = getattr(Store, name)

        def spy(self: Store, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Store, name, spy)
    return reads


@pytest.mark.parametrize("page", ["pages/run.py", "pages/new.py"])
def test_no_chart_during_a_measured_phase_unless_asked(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                       page: str) -> None:
    run_id = running(store, "repeat 2 of 3")
    reads = count_reads(monkeypatch)
    at = open_page(page, {"run": str(run_id)})
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric} == {"Tokens done": "7", "Elapsed": at.metric[1].value,
                                                     "Phase": "repeat 2 of 3"}
    assert at.get("progress")
    assert not at.get("vega_lite_chart")
    assert "power_timeline" not in reads and "power_totals" not in reads
    assert any("paused so as not to disturb the measurement" in t for t in texts(at, "caption"))
    toggle = at.toggle(key=f"live-chart-{run_id}")
    assert toggle.value is False and "lands in the figures being measured" in toggle.help

    at = toggle.set_value(True).run()
    assert not at.exception
    assert [c for c in at.get("vega_lite_chart")]
    assert "power_timeline" in reads
    assert not any("paused" in t for t in texts(at, "caption"))


@pytest.mark.parametrize("phase", ["loading", "attributing"])
def test_chart_between_phases(store: Store, phase: str) -> None:
    run_id = running(store, phase)
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1
    assert not any(t.key == f"live-chart-{run_id}" for t in at.toggle)


def test_one_refresh_is_one_narrow_read(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    run_id = running(store, "baseline")
    script = f"""
from energyprof.ui.live import live_job_body
live_job_body({run_id})
"""
    at = AppTest.from_string(script)
    reads = count_reads(monkeypatch)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert reads == ["job_progress"]
    assert {m.label: m.value for m in at.metric}["Phase"] == "baseline"


def test_job_progress_reads_only_the_live_columns(store: Store) -> None:
    run_id = running(store, "repeat 1 of 3")
    job = store.job_progress(run_id)
    assert set(job) == {"id", "kind", "status", "phase", "progress", "tokens_done", "created_at", "started_at",
                        "heartbeat_at", "pid", "pid_started_at"}  # the process: for jobs.job_health
    assert (job["phase"], job["progress"], job["tokens_done"]) == ("repeat 1 of 3", 0.4, 7)
    assert store.job_progress() == job
    assert store.job_progress(run_id + 1) is None
    store.finish_run(run_id, "done")
    assert store.job_progress() is None and store.job_progress(run_id)["status"] == "done"


def test_a_job_that_ends_reruns_the_page(store: Store) -> None:
    run_id = running(store, "repeat 1 of 3")
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.get("vega_lite_chart")
    store.finish_run(run_id, "done", summary=store.get_run(run_id)["summary"] or {"repeats": 1})
    at.run()
    assert not at.exception
    assert not any(m.label == "Tokens done" for m in at.metric)
    assert at.get("vega_lite_chart")


def test_a_silent_job_whose_process_died_is_reaped_by_the_live_view(store: Store) -> None:
    import subprocess
    import sys
    import time

    from streamlit.testing.v1 import AppTest

    run_id = running(store, "repeat 1 of 3")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    store.update_run(run_id, pid=int(dead.stdout), heartbeat_at=time.time() - 30)
    script = f"""
from energyprof.ui.data import get_store
from energyprof.ui.live import live_job_body
if get_store().job_progress({run_id})["status"] == "running":
    live_job_body({run_id})
"""
    at = AppTest.from_string(script).run()
    assert not at.exception, [e.value for e in at.exception]
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "ended without finishing" in run["error"]
