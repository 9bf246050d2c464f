"""A run written through each entry point renders on every page without an exception, and names its machine.

Writers: `energyprof profile` (CLI), a job launched as the dashboard launches it, `profile_generation()`,
`measure(db=)`, `energyprof sample`, `energyprof import-powermetrics`, `energyprof sweep`. Every one of them writes
the one record type, RunSummary, which every page reads, with the machine that made the run (energyprof.machine)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from profile_helpers import FAST, wait_for
from recordings import M1_TEXT
from seed import open_page

from energyprof import ui
from energyprof.machine import this_machine
from energyprof.runner import jobs
from energyprof.store import Store
from energyprof.summary import RunSummary


def _cli(db: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "energyprof", *args, "--db", str(db)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    db = tmp_path_factory.mktemp("writers") / "energyprof.sqlite3"
    fast = ["--model", "tiny", "--prompt", "Hello energy", "--max-new-tokens", "4", "--ignore-eos", "--device",
            "cpu", "--source", "estimate", "--interval-ms", "20", "--repeats", "2", "--warmup", "0",
            "--baseline-s", "0.1"]
    _cli(db, "profile", *fast)
    _cli(db, "sample", "--seconds", "0.5", "--source", "estimate")
    _cli(db, "import-powermetrics", str(M1_TEXT))
    _cli(db, "sweep", "--model", "tiny", "--batch", "1", "--prompt", "Hello energy", "--max-new-tokens", "3",
         "--ignore-eos", "--device", "cpu", "--source", "estimate", "--interval-ms", "20", "--repeats", "1",
         "--warmup", "0", "--baseline-s", "0.1", "--no-target-ci", "--layers", "none", "--sweep-id", "writers")
    api = ("import energyprof, sys\n"
           "from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer\n"
           "energyprof.profile_generation(build_builtin('tiny'), builtin_tokenizer(), 'Hi', max_new_tokens=3,\n"
           "    source='estimate', interval_ms=20, db=sys.argv[1])\n"
           "with energyprof.measure(source='estimate', interval_ms=20, db=sys.argv[1], label='block'):\n"
           "    sum(i * i for i in range(200_000))\n")
    subprocess.run([sys.executable, "-c", api, str(db)], check=True, timeout=300)
    store = Store(db)
    job = jobs.launch_job(store, {**FAST, "max_new_tokens": 4})
    wait_for(lambda: store.get_run(job)["status"] not in ("queued", "running"), 120, "the launched job")
    kinds = {}
    for run in store.list_runs().to_dict(orient="records"):
        kinds.setdefault(f"{run['kind']}-{len(kinds)}", run["id"])
    store.close()
    return db, kinds


def test_each_writer_left_a_done_run_with_a_typed_summary(every_kind: tuple[Path, dict[str, int]]) -> None:
    db, kinds = every_kind
    store = Store(db)
    runs = store.list_runs()
    assert sorted(runs["kind"]) == ["capture", "measure", "profile", "profile", "profile", "profile", "sample"]
    assert set(runs["status"]) == {"done"}
    for record in runs.to_dict(orient="records"):
        summary = RunSummary.from_dict(record["summary"])
        assert summary.to_dict() == record["summary"], record["kind"]  # stored exactly as the type writes it
        assert summary.gross_total_j is not None and summary.gross_total_j > 0, record["kind"]


def test_every_writer_names_the_machine_that_made_the_run(every_kind: tuple[Path, dict[str, int]]) -> None:
    db, _ = every_kind
    store = Store(db)
    here = this_machine()
    runs = store.list_runs().to_dict(orient="records")
    assert any(r["kind"] == "profile" and store.get_run(r["id"])["sweep_id"] == "writers" for r in runs)
    for record in runs:
        machine = RunSummary.from_dict(record["summary"]).machine
        assert machine is not None, record["kind"]
        # the run row mirrors the summary: Runs lists and filters by it, a bundle carries both
        row = store.get_run(record["id"])
        assert (row["machine_id"], row["machine_label"]) == (machine.machine_id, machine.label), record["kind"]
        assert machine.label and machine.power_source == record["source"], record["kind"]
        if record["kind"] == "capture":  # recorded by powermetrics on a Mac: only what the file says
            assert not machine.recorded_here and machine.machine_id is None
            assert (machine.hw_model, machine.os_build, machine.os_name) == ("MacBookAir10,1", "21G115", "macOS")
            continue
        assert machine.recorded_here and machine.machine_id == here.machine_id is not None, record["kind"]
        assert machine.cores_logical == os.cpu_count() and machine.memory_gb and machine.python_version
        assert machine.os_name == platform.system() and machine.os_build == platform.release()
        assert machine.packages["torch"] and machine.packages["transformers"] and machine.packages["energyprof"]
        assert "zeus-apple-silicon" in machine.packages and machine.power_scope, record["kind"]
    store.close()


def test_every_page_renders_every_run(every_kind: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    db, kinds = every_kind
    monkeypatch.setenv("ENERGYPROF_DB", str(db))
    ids = sorted(kinds.values())
    for page in (p.path for p in ui.PAGES):
        at = open_page(None if page == "app.py" else page)
        assert not at.exception, (page, [e.value for e in at.exception])
    for run_id in ids:
        at = open_page("pages/run.py", {"run": str(run_id)})
        assert not at.exception, (run_id, [e.value for e in at.exception])
        assert not at.error, (run_id, [e.value for e in at.error])
    at = open_page("pages/compare.py", {"runs": ",".join(map(str, ids))})
    assert not at.exception, [e.value for e in at.exception]
