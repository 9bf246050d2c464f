"""The profiling engine end to end: closure, baselines, sources, failures, cancellation and job control."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
from profile_helpers import assert_closure, fast_params, pid_alive, use_fake_powermetrics, wait_for

from energyprof.runner import jobs
from energyprof.runner.job import profile_foreground, run_job
from energyprof.runtimes.transformers import loop
from energyprof.runtimes.transformers.hooks import hook_count
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary


# -- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    ({"prompt": "  "}, "The prompt is empty"),
    ({"prompt": "x" * 100_001}, "the limit is 100,000"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number from 1 to 100000"),
    ({"max_new_tokens": 2.5}, "max_new_tokens must be a whole number"),
    ({"repeats": 0}, "repeats must be"),
    ({"baseline_s": -1}, "baseline_s must be a number from 0"),
    ({"top_p": 0.0}, "top_p must be above 0"),
    ({"interval_ms": 1}, "interval_ms must be"),
    ({"layers": "all"}, "Unknown layer depth 'all'"),
    ({"dtype": "int8"}, "Unknown dtype 'int8'"),
    ({"device": "tpu"}, "Unknown device 'tpu'"),
    ({"source": "magic"}, "Unknown power source 'magic'"),
])
def test_invalid_params_give_one_sentence(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProfileParams(**changes).validate()


def test_params_round_trip_through_json_dicts() -> None:
    params = ProfileParams(model="small", max_new_tokens=7, interval_ms=50, temperature=0.7, seed=3)
    assert ProfileParams.from_dict(params.to_dict()) == params
    coerced = ProfileParams.from_dict({"max_new_tokens": 8.0, "baseline_s": 1, "unknown_key": 1})
    assert coerced.max_new_tokens == 8 and isinstance(coerced.max_new_tokens, int)
    assert coerced.baseline_s == 1.0 and isinstance(coerced.baseline_s, float)
    ProfileParams().validate()


# -- runs ------------------------------------------------------------------------------------------
def test_estimate_run_closes_and_summarises(store: Store) -> None:
    summary = profile_foreground(store, fast_params(layers="modules", repeats=2, warmup=1))
    run = store.get_run(summary.run_id)
    assert run["status"] == "done" and run["phase"] == "done"
    assert RunSummary.from_dict(run["summary"]) == summary and run["summary"] == summary.to_dict()
    assert summary.source == "estimate" and summary.measured is False
    assert summary.new_tokens == [6, 6] and summary.prompt_tokens == 12 and summary.repeats == 2
    assert summary.closure_error < 1e-9 and summary.power_incomplete is False
    assert set(summary.j_per_token) == {"prefill", "decode"}
    assert summary.j_per_token["decode"].mean > 0 and summary.j_per_token["decode"].ci95 is not None
    assert summary.baseline_w["cpu"] > 0 and summary.net_energy_j["cpu"] < summary.energy_j["cpu"]
    assert summary.tokens_per_s > 0 and summary.peak_w["cpu"] >= summary.mean_w["cpu"] * 0.5
    assert run["tokens_done"] == 12 and run["progress"] == 1.0
    assert_closure(store, summary.run_id)
    layer_rows = store.layer_summary(summary.run_id)
    assert set(layer_rows["kind"]) == {"embedding", "block", "attention", "mlp", "norm", "lm_head", "other"}
    other = layer_rows[layer_rows["kind"] == "other"].iloc[0]
    assert other["calls"] == 12 and other["time_s"] > 0
    energy = store.step_energy(summary.run_id)
    assert energy["net_energy_j"].notna().all() and energy["resolution"].between(0, 1.0 + 1e-9).all()


def test_no_baseline_means_no_net_energy(store: Store) -> None:
    summary = profile_foreground(store, fast_params(baseline_s=0, repeats=1, layers="none"))
    assert summary.status == "done"
    assert summary.baseline_w is None and summary.net_energy_j is None
    assert summary.j_per_token["decode"].ci95 is None
    assert store.step_energy(summary.run_id)["net_energy_j"].isna().all()
    assert store.layers(summary.run_id).empty
    assert_closure(store, summary.run_id)


def test_powermetrics_stand_in_run_closes_and_leaves_no_process(store: Store, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pidfile = tmp_path / "pm.pid"
    use_fake_powermetrics(monkeypatch, pidfile)
    summary = profile_foreground(store, fast_params(source="powermetrics", interval_ms=50, layers="modules"))
    assert summary.status == "done", summary.error
    assert summary.measured is True and summary.source == "powermetrics"
    assert summary.energy_j["cpu"] > 0 and summary.energy_j["dram"] is None
    assert_closure(store, summary.run_id)
    assert not pid_alive(int(pidfile.read_text()))


def test_source_dying_mid_run_finishes_with_incomplete_power(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, FAKE_POWERMETRICS_EXIT_AFTER="6")
    summary = profile_foreground(store, fast_params(source="powermetrics", interval_ms=50, baseline_s=0.5))
    run = store.get_run(summary.run_id)
    assert run["status"] == "done" and run["power_incomplete"] == 1
    assert summary.power_incomplete is True
    assert run["error"].startswith("Power data is incomplete")
    assert len(store.steps(summary.run_id)) == 12


def test_unavailable_source_fails_before_loading(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, FAKE_POWERMETRICS_EUID="501")
    summary = profile_foreground(store, fast_params(source="powermetrics"))
    assert summary.status == "failed" and summary.model_kind is None
    assert summary.error.startswith("The powermetrics power source is not available here")
    assert "scripts/setup_powermetrics.sh" in summary.error


def test_unknown_model_fails_with_a_sentence(store: Store) -> None:
    summary = profile_foreground(store, fast_params(model="nobody/nothing-here"))
    run = store.get_run(summary.run_id)
    assert run["status"] == "failed" and summary.status == "failed"
    assert "'nobody/nothing-here'" in run["error"] and "not a built-in" in run["error"]
    assert run["traceback"] and "ModelLoadError" in run["traceback"]


def test_error_mid_run_fails_keeps_steps_and_removes_hooks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof.runner.api import profile_generation
    from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer

    model = build_builtin("tiny")
    real, count = loop.choose_token, [0]

    def flaky(*args, **kwargs):
        count[0] += 1
        if count[0] == 9:
            raise RuntimeError("kernel exploded")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "choose_token", flaky)
    summary = profile_generation(model, builtin_tokenizer(), "Hi", max_new_tokens=6, ignore_eos=True, repeats=2,
                                 source="estimate", interval_ms=20, layers="modules", db=store.path)
    assert summary.status == "failed"
    assert summary.error == "The profiling job failed with RuntimeError: kernel exploded."
    assert hook_count(model) == 0
    steps = store.steps(summary.run_id)
    assert list(steps.groupby("repeat").size()) == [6, 2]
    assert store.get_run(summary.run_id)["status"] == "failed"


def test_attribution_error_fails_the_run_but_keeps_its_data(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof.analysis import results

    def broken(*args, **kwargs):
        raise ArithmeticError("bad windows")

    monkeypatch.setattr(results, "attribute_run", broken)
    summary = profile_foreground(store, fast_params(repeats=1))
    run = store.get_run(summary.run_id)
    assert run["status"] == "failed"
    assert run["error"] == ("Attributing the energy failed with ArithmeticError: bad windows; the steps and power "
                            "samples are kept.")
    assert len(store.steps(summary.run_id)) == 6 and not store.power_samples(summary.run_id).empty


def test_python_api_profiles_a_loaded_model(store: Store) -> None:
    from transformers import ByT5Tokenizer, GPT2Config, GPT2LMHeadModel

    import energyprof

    tok = ByT5Tokenizer()
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=128))
    summary = energyprof.profile_generation(model, tok, "Hello", max_new_tokens=4, ignore_eos=True,
                                            source="estimate", interval_ms=20, db=store.path)
    assert summary.status == "done" and summary.model == "GPT2LMHeadModel"
    assert summary.new_tokens == [4] and hook_count(model) == 0
    assert_closure(store, summary.run_id)


def test_job_command_runs_a_queued_run_in_process(store: Store) -> None:
    run_id = store.create_run("profile", status="queued", params=fast_params(repeats=1).to_dict())
    summary = run_job(store, run_id)
    assert summary.status == "done"
    run = store.get_run(run_id)
    assert run["status"] == "done" and run["pid"] == os.getpid() and run["clock_t0_ns"] > 0
    with pytest.raises(Exception, match=f"Run {run_id} is done, not queued"):
        run_job(store, run_id)


def test_queued_run_with_bad_params_fails_cleanly(store: Store) -> None:
    run_id = store.create_run("profile", status="queued", params={"prompt": ""})
    assert run_job(store, run_id).status == "failed"
    assert store.get_run(run_id)["error"] == "The prompt is empty; give some text to profile."


# -- job processes ---------------------------------------------------------------------------------
def test_sigterm_cancels_keeps_rows_and_stops_powermetrics(store: Store, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pidfile = tmp_path / "pm.pid"
    use_fake_powermetrics(monkeypatch, pidfile)
    params = fast_params(source="powermetrics", interval_ms=50, max_new_tokens=100_000, repeats=3, warmup=0,
                         baseline_s=0, layers="blocks")
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: (store.get_run(run_id)["tokens_done"] or 0) >= 20, what="tokens to be generated")
    wait_for(lambda: not store.power_samples(run_id).empty, what="power samples")
    assert pid_alive(int(pidfile.read_text()))
    assert jobs.cancel(store, jobs.RUN, run_id, timeout_s=30)
    run = store.get_run(run_id)
    assert run["status"] == "cancelled", run["error"]
    assert "cancelled" in run["error"]
    steps = store.steps(run_id)
    assert len(steps) >= 20 and (steps["repeat"] == 0).all()
    assert not store.power_samples(run_id).empty
    assert run["summary"]["status"] == "cancelled" and run["summary"]["new_tokens"][0] == len(steps)
    assert not store.step_energy(run_id).empty and store.layer_call_count(run_id) > 0
    assert not pid_alive(int(pidfile.read_text()))


def test_sigkilled_job_is_reaped_as_failed_with_its_data(store: Store) -> None:
    params = fast_params(max_new_tokens=4, repeats=1000, warmup=0, baseline_s=0, layers="none")
    run_id = jobs.launch_job(store, params.to_dict())
    wait_for(lambda: not store.steps(run_id).empty and not store.power_samples(run_id).empty,
             what="a stored repeat and samples")
    pid = store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: jobs.reap_dead_jobs(store) == [run_id] or store.get_run(run_id)["status"] == "failed",
             timeout_s=10, what="the reaper")
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "ended without finishing" in run["error"]
    assert not store.steps(run_id).empty and not store.power_samples(run_id).empty


def test_job_log_is_private_and_never_written_through_a_planted_link(store: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    logs = store.path.parent / jobs.LOG_DIR_NAME
    logs.mkdir()
    (logs / "run-1.log").symlink_to(victim)
    os.link(victim, logs / "run-2.log")
    params = fast_params(repeats=1, baseline_s=0).to_dict()
    with pytest.raises(OSError, match=r"run-1\.log is a symbolic link.*; remove it and start the job"):
        jobs.launch_job(store, params)  # an OSError (JobLaunchError), which the dashboard shows as text
    with pytest.raises(OSError, match=r"run-2\.log is not a plain file of its own"):
        jobs.launch_job(store, params)
    assert victim.read_text() == "keep me\n"
    assert [store.get_run(i)["status"] for i in (1, 2)] == ["failed", "failed"]
    assert "symbolic link" in store.get_run(1)["error"]
    run_id = jobs.launch_job(store, params)
    assert stat.S_IMODE(jobs.RUN.log_path(store, run_id).stat().st_mode) == 0o600
    wait_for(lambda: store.get_run(run_id)["status"] not in ("queued", "running"), what="the job to finish")
    assert store.get_run(run_id)["status"] == "done"


def test_the_demo_profile_gives_a_decode_ci_a_person_can_read(store: Store) -> None:
    from energyprof.ui.live import DEMO_PARAMS

    params = ProfileParams.from_dict({**DEMO_PARAMS, "source": "estimate"})
    assert params.warmup >= 1  # a cold first repeat can be ten times slower than the next
    assert params.target_ci is not None and params.max_seconds <= 30  # precision on request, bounded in time
    params.max_seconds = 5.0  # a busy machine reaches the cap: keep the test short
    summary = profile_foreground(store, params)
    decode = summary.j_per_token["decode"]
    assert summary.status == "done" and decode.n == summary.repeats >= params.repeats
    assert summary.target_ci_pct == params.target_ci and summary.target_ci_met is not None
    if summary.target_ci_met:  # the demo's CI used to be wider than its mean
        assert decode.ci95 <= params.target_ci / 100 * decode.mean and summary.repeats_stop == "met"
    else:  # a machine too busy for the target: stopped by the time cap, and said so
        assert summary.repeats_stop == "time cap" and summary.ci_pct > params.target_ci
