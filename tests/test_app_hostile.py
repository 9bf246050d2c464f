"""Issue 17 on the dashboard (AppTest): a stopped job reads "not responding" on every page that shows it (a real
SIGSTOPped process); a failed run's page shows the sentence, the traceback only as the job log's path; the Sweeps
page draws only swept axes, never negative energy, and lists sweeps for people; the Runs table names the sweep of a
run; Compare shows no "nan" and each run once; a replay with the estimate source or far from closure says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from profile_helpers import fast_params
from seed import charts_by_title, open_page, seed_run, seed_sweep, texts

from energyprof import charts
from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import MeanCI, RunSummary
from energyprof.sweep_table import curve_frame, sweep_frame, sweep_rows


@pytest.fixture
def stopped_process() -> Iterator[int]:
    """A real process, stopped with SIGSTOP (as Ctrl-Z or a debugger stops a job); killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def everything(at) -> str:
    return " ".join(" ".join(texts(at, kind)) for kind in ("markdown", "warning", "caption", "error", "info"))


def test_a_stopped_job_reads_not_responding_on_every_page(store: Store, stopped_process: int) -> None:
    run_id = store.create_run("profile", status="running", model="tiny", params=fast_params().to_dict())
    store.update_run(run_id, pid=stopped_process, phase="loading", progress=0.2, tokens_done=3)
    store.update_run(run_id, heartbeat_at=time.time() - 86)
    assert jobs.job_health(store.get_run(run_id)).label().startswith("not responding, no heartbeat for ")

    for page, query in (("pages/run.py", {"run": str(run_id)}), ("pages/new.py", {}), ("app.py", {})):
        at = open_page(page, query)
        assert not at.exception, (page, [e.value for e in at.exception])
        shown = everything(at)
        if page == "app.py":
            table = at.dataframe[0].value
            status = table.loc[table["run"] == f"run?run={run_id}", "status"].iloc[0]
            assert status.startswith("running · not responding, no heartbeat for ")
        else:
            assert f"Job #{run_id} is **not responding, no heartbeat for " in shown, (page, shown)
            assert f"kill -CONT {stopped_process}" in shown
            assert not any(m.label == "Elapsed" for m in at.metric)  # no clock counting for a stopped job
            assert any(m.label == "Last heartbeat" for m in at.metric)
        links = [link.label for link in at.get("page_link")]
        assert f"Job #{run_id}: not responding 20%" in links, links  # the sidebar, on every page
    assert store.get_run(run_id)["status"] == "running"  # alive: never reaped


def test_a_stopped_sweep_reads_not_responding(store: Store, stopped_process: int) -> None:
    sweep_id = seed_sweep(store, batches=(1, 2), prompt_tokens=(16,), status="running")
    store.start_sweep(sweep_id, stopped_process)
    at = open_page("pages/sweep.py", {"sweep": sweep_id})
    assert "Sweep batch-study is **not responding**" in everything(at)
    listed = open_page("pages/sweep.py")
    assert listed.dataframe[0].value["Status"].iloc[0].startswith("running · not responding")


def test_a_failed_runs_page_shows_one_sentence_and_the_traceback_only_in_the_log(store: Store) -> None:
    run_id = seed_run(store, tokens=0, kind="profile", status="failed")
    sentence = "The server answered HTTP 500: the GPU caught fire."
    trace = "Traceback (most recent call last):\n  File \"engine.py\", line 1\nEndpointError: " + sentence
    store.update_run(run_id, error=sentence, traceback=trace)
    assert jobs.append_to_log(store, run_id, f"Run {run_id} failed: {sentence}\n{trace}\n")
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert f"This run failed: {sentence}" in texts(at, "error")
    assert not at.code and "Error details" not in [e.label for e in at.expander] and "Traceback" not in everything(at)
    log = jobs.RUN.log_path(store, run_id)
    assert f"For developers: the traceback is in the job log, {log}" in texts(at, "caption")


def test_the_sweeps_page_charts_only_swept_axes_never_below_zero(store: Store) -> None:
    sweep_id = seed_sweep(store, batches=(1, 2), prompt_tokens=(44,))
    wide = store.sweep_runs(sweep_id)[0]
    summary = RunSummary.from_dict(wide["summary"])
    summary.j_per_token["decode"] = MeanCI(20.0, 100.0, 2)  # 2 repeats: a t-based CI far wider than the mean
    store.update_run(wide["id"], summary=summary.to_dict())
    at = open_page("pages/sweep.py", {"sweep": sweep_id})
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert "Batch size" in headings and not any("Prompt tokens" in h for h in headings)
    drawn = charts_by_title(at)
    assert set(drawn) == {"Energy per token against batch size, mean with 95% CI (J)",
                          "Decode speed (tokens/s) against energy per decode token (J)"}
    x = drawn["Energy per token against batch size, mean with 95% CI (J)"]["spec"]["spec"]["layer"][0]["encoding"]["x"]
    assert x["scale"] == {"type": "log", "base": 2} and x["axis"]["format"] == "d" and x["axis"]["values"] == [1, 2]
    assert any("have a 95% CI wider than their mean" in c and "cut at 0 J" in c for c in texts(at, "caption"))
    curves = curve_frame(sweep_frame(sweep_rows(store, sweep_id)), "batch")
    data = charts.sweep_curves(curves, "Batch size (sequences)", log2=True).to_dict()["datasets"]
    lows = [row["lo"] for rows in data.values() for row in rows]
    assert min(lows) == 0.0 and all(low >= 0 for low in lows)  # the bar of the wide CI starts at 0 J


def test_the_sweep_list_and_the_runs_table_are_for_people(store: Store) -> None:
    sweep_id = seed_sweep(store, batches=(1, 2), prompt_tokens=(16, 64))
    listed = open_page("pages/sweep.py")
    table = listed.dataframe[0].value
    assert list(table.columns) == ["Sweep", "Status", "Model", "Swept", "Points done", "Created", "Error"]
    row = table.iloc[0]
    assert (row["Sweep"], row["Model"], row["Swept"], row["Points done"], row["Error"]) == \
        (sweep_id, "tiny", "prompt tokens 16, 64 · batch 1, 2", "4 of 4", "")
    points = open_page("pages/sweep.py", {"sweep": sweep_id}).dataframe[0].value
    assert not points["error"].isna().any() and "None" not in points["error"].tolist()
    runs = open_page("app.py").dataframe[0].value
    assert f"{sweep_id} · point 1" in runs["sweep"].tolist() and runs["sweep"].notna().sum() == 4


def test_compare_shows_no_nan_and_each_run_once(store: Store) -> None:
    a = seed_run(store, tokens=10, model="llama3.2", device="endpoint", dtype=None)
    b = seed_run(store, tokens=10, model="tiny")
    at = open_page("pages/compare.py", {"runs": f"{a},{a},{a},{b}"})
    assert not at.exception
    pick = at.multiselect(key="compare_pick")
    assert pick.value == [a, b]
    assert not any("nan" in option for option in pick.options)
    table = at.dataframe[0].value
    assert table["dtype"].tolist() == ["—", "float32"] and len(table) == 2


def test_a_replay_with_the_estimate_or_far_from_closure_says_so(store: Store) -> None:
    run_id = seed_run(store, tokens=12, layer_calls=120, replay=True, source="estimate", measured=False)
    summary = RunSummary.from_dict(store.get_run(run_id)["summary"])
    summary.replay_closure = {"prefill": 7.34, "decode": 2.6}
    summary.replay_disturbed = True
    summary.background_cpu = {"baseline": 0.1, "workload": 0.12, "replay": 1.6}
    store.update_run(run_id, summary=summary.to_dict())
    shown = everything(open_page("pages/run.py", {"run": str(run_id)}))
    assert "measures how long each layer runs, not how much power it draws" in shown
    assert "Replay closure 7.34 (prefill), 2.6 (decode) is far from 1: most likely the machine was busy" in shown
    assert "Replay disturbed: other processes used 1.60 CPU cores during the replay against 0.10" in shown


def test_endpoint_forms_leave_out_and_refuse_local_only_options() -> None:
    at = open_page("pages/new.py")
    at.radio(key="mode").set_value("Endpoint").run()
    keys = {w.key for w in [*at.number_input, *at.selectbox, *at.text_input, *at.checkbox]}
    assert "endpoint_endpoint" in keys and "endpoint_model" in keys
    assert not keys & {f"endpoint_{name}" for name in ("batch", "device", "dtype", "prompt_tokens", "layers",
                                                      "layer_energy", "replay_s", "replay_trials")}
    refused = ProfileParams(endpoint="http://127.0.0.1:9/v1", model="m", batch=2).errors(mode="endpoint")
    assert refused == ["Batch size (--batch) applies only to a model loaded here, not to an endpoint (the server "
                       "decides it); leave it out, or profile without --endpoint."]


def test_the_background_check_covers_the_replay_and_the_cli_says_what_it_measures(store: Store) -> None:
    """`profile --layer-energy replay` with the estimate source while another process keeps the machine busy during
    the replay: the replay's background is measured (and flagged when it differs from the baseline's), the busy
    process is named, and the summary says the estimate's replay measures time, not module power."""
    from endpoint_servers import start_detached, stop_detached

    from energyprof.commands.profile import format_summary
    from energyprof.runner.job import profile_foreground

    hogs: list[int] = []

    def on_progress(progress) -> None:  # another program (not a child of this one) gets busy when the replay starts
        if progress.phase.startswith("replay") and not hogs:
            hogs.append(start_detached([sys.executable, "-c", "while True: pass"], store.path.parent / "hog.log",
                                       lifetime_s=120))

    params = fast_params(layers="blocks", layer_energy="replay", replay_s=0.25, replay_trials=1, repeats=1,
                         max_new_tokens=4, baseline_s=0.5)
    try:
        summary = profile_foreground(store, params, on_progress=on_progress)
    finally:
        for hog in hogs:
            stop_detached(hog)
    assert summary.status == "done" and hogs, summary.error
    replay_cores, base = summary.background_cpu["replay"], summary.background_cpu["baseline"]
    assert replay_cores is not None and summary.replay_disturbed == (abs(replay_cores - base) > 0.1)
    assert any(p.pid == hogs[0] for p in summary.replay_background_top)  # the busy process is named
    text = format_summary(summary)
    assert "Note: the estimate source turns CPU utilisation into watts, so a replay with it measures how long" in text
    if summary.replay_disturbed:
        assert "Replay disturbed: other processes used" in text
