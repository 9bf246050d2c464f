"""`energyprof sweep`: every point an ordinary profile run of the sweep, exact token counts, a failed point does not
stop the others, cancel stops the sweep and running it again resumes the missing points, one job at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from profile_helpers import wait_for

from energyprof.cli import build_parser, main
from energyprof.commands.sweep import spec_from_args
from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.spec.sweep import SWEEP_DEFAULTS, SweepSpec, parse_values, sweepable_names
from energyprof.store import JobAlreadyRunning, Store
from energyprof.sweep_table import pareto_front, sweep_frame, sweep_rows

DONE_WHEN = ["sweep", "--model", "tiny", "--batch", "1,4", "--prompt-tokens", "16,64", "--max-new-tokens", "8",
             "--ignore-eos", "--source", "estimate", "--repeats", "2", "--json"]
"""The issue's command; the tests add FAST's options to stay fast on a busy machine."""
FAST = ["--device", "cpu", "--baseline-s", "0.1", "--max-seconds", "1", "--warmup", "0", "--layers", "none"]


def sweep_json(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, dict, str]:
    """Exit status, the --json object and what went to stderr."""
    code = main([*argv, "--db", str(db)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_the_issue_sweep_gives_four_done_runs_with_exact_token_counts(db_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sweep_json(capsys, db_path, *DONE_WHEN, *FAST)
    assert code == 0 and out["status"] == "done" and out["points"] == 4
    runs = out["runs"]
    assert [(r["batch"], r["prompt_tokens"]) for r in runs] == [(1, 16), (4, 16), (1, 64), (4, 64)]
    assert [r["status"] for r in runs] == ["done"] * 4
    assert [r["new_tokens"] for r in runs] == [8, 32, 8, 32]  # every token of every sequence, per repeat
    for r in runs:
        assert {"run_id", "model", "max_new_tokens", "dtype", "device", "j_per_token", "tokens_per_s",
                "tokens_per_j", "wh_per_1000_tokens", "target_ci_met"} <= set(r)
        assert (r["model"], r["max_new_tokens"], r["dtype"], r["device"]) == ("tiny", 8, "float32", "cpu")
        assert r["j_per_token"] > 0 and r["tokens_per_s"] > 0 and r["estimated"] is True
        assert r["repeats"] >= 2 and isinstance(r["target_ci_met"], bool)
    store = Store(db_path)
    sweep = store.get_sweep(out["sweep_id"])
    assert sweep["status"] == "done" and sweep["points"] == 4
    for r in runs:
        run = store.get_run(r["run_id"])
        assert run["kind"] == "profile" and run["sweep_id"] == out["sweep_id"]
        summary = run["summary"]
        assert summary["prompt_tokens_each"] == [r["prompt_tokens"]] * r["batch"]
        assert summary["new_tokens"] == [8 * r["batch"]] * summary["repeats"]
        assert summary["target_ci_pct"] == SWEEP_DEFAULTS["target_ci"]  # sweeps ask for precision by default
        steps = store.steps(r["run_id"])
        assert steps.loc[steps["phase"] == "prefill", "n_tokens"].unique().tolist() == [r["prompt_tokens"] * r["batch"]]


def test_a_failed_point_does_not_stop_the_others(db_path: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "no-such-model")
    code, out, err = sweep_json(capsys, db_path, "sweep", "--model", f"tiny,{missing}", "--batch", "1,2",
                           "--max-new-tokens", "2", "--source", "estimate", "--no-target-ci", "--repeats", "1",
                           "--json", *FAST)
    assert code == 1 and out["status"] == "failed"
    assert out["error"] == "2 of 4 points failed; run the sweep again (same sweep id) to retry them."
    assert [(r["model"], r["status"]) for r in out["runs"]] == [("tiny", "done"), ("tiny", "done"),
                                                                 (missing, "failed"), (missing, "failed")]
    assert "Could not load model" in out["runs"][2]["error"]
    assert "energyprof: 2 of 4 points failed" in err


def test_cancel_stops_the_sweep_and_running_it_again_resumes(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--model", "tiny", "--max-new-tokens", "2,1500,3", "--source", "estimate", "--no-target-ci",
            "--repeats", "1", "--ignore-eos", *FAST]
    spec = spec_from_args(build_parser().parse_args(argv))
    store = Store(db_path)
    sweep_id = jobs.launch_sweep(store, spec.to_dict(), spec.size, "resume-me")
    with pytest.raises(JobAlreadyRunning):  # one job at a time, the sweep's process included
        jobs.launch_job(store, ProfileParams().to_dict())

    def second_point_generating() -> bool:
        runs = store.sweep_runs(sweep_id)
        return len(runs) == 2 and runs[1]["status"] == "running" and (runs[1]["tokens_done"] or 0) >= 5

    wait_for(second_point_generating, what="the second point to generate")
    assert jobs.cancel(store, jobs.SWEEP, sweep_id, timeout_s=30)
    sweep = store.get_sweep(sweep_id)
    assert sweep["status"] == "cancelled", sweep
    before = {r["sweep_point"]: (r["id"], r["status"]) for r in store.sweep_runs(sweep_id)}
    assert [status for _, status in before.values()] == ["done", "cancelled"] and 2 not in before

    code, out, _ = sweep_json(capsys, db_path, *argv, "--sweep-id", sweep_id, "--json")
    assert code == 0 and out["status"] == "done"
    assert [r["status"] for r in out["runs"]] == ["done"] * 3
    assert out["runs"][0]["run_id"] == before[0][0]  # the finished point was not run again
    assert out["runs"][1]["run_id"] != before[1][0]  # the cancelled one was
    assert [r["new_tokens"] for r in out["runs"]] == [2, 1500, 3]
    assert len(store.sweep_runs(sweep_id)) == 4  # the cancelled run is kept


def test_resuming_with_other_options_is_one_sentence(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--model", "tiny", "--max-new-tokens", "2", "--source", "estimate", "--no-target-ci",
            "--repeats", "1", "--sweep-id", "s1", *FAST]
    assert main([*argv, "--db", str(db_path)]) == 0
    capsys.readouterr()
    assert main([*argv, "--batch", "1,2", "--db", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert err == ("energyprof: Sweep s1 was started with other options (--batch was 1, not 1,2); give the options it "
                   "was started with to resume it, or another --sweep-id.\n")
    assert main([*argv, "--db", str(db_path)]) == 0  # nothing missing: nothing runs again
    assert len(Store(db_path).sweep_runs("s1")) == 1


def test_one_job_at_a_time_across_runs_and_sweeps(store: Store) -> None:
    spec = SweepSpec(ProfileParams(), {"batch": [1, 2]})
    run = store.create_run("profile", status="queued")
    with pytest.raises(JobAlreadyRunning, match=f"run {run}"):
        store.create_sweep("a", spec.to_dict(), spec.size)
    store.finish_run(run, "cancelled")
    store.create_sweep("a", spec.to_dict(), spec.size)
    with pytest.raises(JobAlreadyRunning, match="^Sweep a is running"):
        store.create_run("profile")
    with pytest.raises(JobAlreadyRunning, match="^Sweep a is running"):
        store.create_sweep("b", spec.to_dict(), spec.size)
    point = store.create_run("profile", sweep_id="a", sweep_point=0)  # the sweep's own runs may start
    with pytest.raises(JobAlreadyRunning):  # but one at a time
        store.create_run("profile", sweep_id="a", sweep_point=1)
    store.finish_run(point, "done")
    store.create_run("sample")  # recording power is not a profiling job
    assert store.finish_sweep("a", "done")
    with pytest.raises(ValueError, match="There is already a sweep a"):
        store.create_sweep("a", spec.to_dict(), spec.size)


def test_a_sweep_whose_process_died_is_reaped(store: Store) -> None:
    spec = SweepSpec(ProfileParams(), {})
    store.create_sweep("dead", spec.to_dict(), spec.size)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    store.set_sweep_pid("dead", int(gone.stdout))
    jobs.reap_dead_jobs(store)
    sweep = store.get_sweep("dead")
    assert sweep["status"] == "failed" and "running the sweep again resumes the others" in sweep["error"]
    store.create_run("profile")  # the slot is free again


def test_lists_are_checked_by_the_parameter_table(capsys: pytest.CaptureFixture[str], db_path: Path) -> None:
    assert sweepable_names() == ("model", "device", "dtype", "prompt_tokens", "batch", "max_new_tokens")
    assert parse_values("batch", "1, 2,4,2") == [1, 2, 4] and parse_values("prompt_tokens", "none,16") == [None, 16]
    for bad, sentence in ((["--batch", "1,x"], "'x' in the list for batch size is not a whole number"),
                          (["--batch", "0"], "batch must be a whole number from 1 to 256, not 0"),
                          (["--dtype", "float32,int4"], "Unknown dtype 'int4'"),
                          (["--sweep-id", "../x"], "'../x' is not a sweep id")):
        with pytest.raises(SystemExit):
            main(["sweep", *bad, "--db", str(db_path)])
        assert sentence in capsys.readouterr().err
    args = build_parser().parse_args(["sweep", "--batch", "1,8"])
    spec = spec_from_args(args)
    assert spec.axes["batch"] == [1, 8] and spec.base.target_ci == SWEEP_DEFAULTS["target_ci"]
    assert spec_from_args(build_parser().parse_args(["sweep", "--no-target-ci"])).base.target_ci is None


def test_pareto_front_and_rows_of_a_pending_sweep(store: Store) -> None:
    import pandas as pd

    frame = pd.DataFrame({"j_per_token": [1.0, 0.5, 0.5, 2.0, None], "tokens_per_s": [10.0, 8.0, 9.0, 20.0, 50.0]})
    assert pareto_front(frame) == [True, False, True, True, False]
    spec = SweepSpec(ProfileParams(), {"batch": [1, 2]})
    store.create_sweep("p", spec.to_dict(), spec.size)
    rows = sweep_rows(store, "p")
    assert [(r["point"], r["status"], r["batch"], r["run_id"]) for r in rows] == [(0, "pending", 1, None),
                                                                                   (1, "pending", 2, None)]
    assert sweep_frame(rows)["pareto"].tolist() == [False, False] and sweep_rows(store, "nope") == []
