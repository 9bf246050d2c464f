"""End to end against a real OpenAI-compatible server: `transformers serve` over the built-in tiny model saved to
a folder, started detached on 127.0.0.1 (like a server a user runs) and stopped after the module.

The issue's acceptance command streams 40 tokens per repeat and reports done, time to first token, tokens/s and
J/token; the token counts agree with the server's own usage; the timing is plausible; the server process's CPU
and memory are recorded and not counted as background; a refused endpoint fails in one sentence; the run
renders on every page and exports like any run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from endpoint_servers import free_port, save_tiny_for_serving, serve_tiny, stop_detached
from seed import open_page, seed_run, texts

from energyprof import ui
from energyprof.export import export_csv, export_trace
from energyprof.runner.job import profile_foreground
from energyprof.spec.params import DEFAULT_PROMPT, ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary

TOKENS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real server over the tiny model: {"pid", "url", "model", "db"}."""
    root = tmp_path_factory.mktemp("serve")
    folder = save_tiny_for_serving(root / "tiny")
    pid, url = serve_tiny(folder, root / "serve.log")
    try:
        yield {"pid": pid, "url": url, "model": str(folder), "db": root / "energyprof.sqlite3"}
    finally:
        stop_detached(pid)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def acceptance(server: dict[str, Any]) -> tuple[subprocess.CompletedProcess, RunSummary]:
    """The issue's command, exactly (plus --db)."""
    done = _cli("profile", "--endpoint", server["url"], "--model", server["model"], "--max-new-tokens", str(TOKENS),
                "--source", "estimate", "--repeats", "2", "--json", "--db", str(server["db"]))
    return done, RunSummary.from_dict(json.loads(done.stdout))


def test_the_acceptance_command_reports_done_with_ttft_speed_and_j_per_token(
        acceptance: tuple[subprocess.CompletedProcess, RunSummary], server: dict[str, Any]) -> None:
    done, summary = acceptance
    assert done.returncode == 0 and summary.status == "done", done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert {"ttft_s", "endpoint", "server_model", "tokens_per_s", "j_per_token", "new_tokens"} <= set(out)
    assert set(out["ttft_s"]) == {"mean", "ci95", "n"} and out["ttft_s"]["n"] == 2
    assert summary.new_tokens == [TOKENS, TOKENS] and not summary.tokens_approximate
    assert summary.endpoint == server["url"] and summary.server_model == server["model"] and summary.api == "chat"
    assert summary.tokens_per_s > 0 and summary.j_per_token["decode"].mean > 0
    assert summary.j_per_token["prefill"].mean > 0 and summary.net_j_per_token is not None
    assert summary.layers == "none" and summary.device == "endpoint"


def test_token_counts_are_the_servers_usage(acceptance: tuple[subprocess.CompletedProcess, RunSummary],
                                            server: dict[str, Any]) -> None:
    _, summary = acceptance
    answer = requests.post(f"{server['url']}/chat/completions", stream=True, timeout=60, json={
        "model": server["model"], "messages": [{"role": "user", "content": DEFAULT_PROMPT}], "max_tokens": TOKENS,
        "temperature": 0, "stream": True})
    final = [json.loads(line[6:]) for line in answer.iter_lines(decode_unicode=True) if line.startswith("data: {")][-1]
    assert summary.prompt_tokens == final["usage"]["prompt_tokens"]
    assert summary.new_tokens == [final["usage"]["completion_tokens"]] * 2
    assert summary.stream_chunks == [TOKENS, TOKENS]  # this tokenizer streams every token as its own chunk
    store = Store(server["db"])
    steps = store.steps(summary.run_id)  # with t0_ns, t1_ns on the job clock
    for _, rep in steps.groupby("repeat"):
        assert rep["phase"].iloc[0] == "prefill" and set(rep["phase"].iloc[1:]) == {"decode"}
        assert rep["n_tokens"].iloc[0] == summary.prompt_tokens  # the prefill's tokens are the prompt's
        first = TOKENS - rep["n_tokens"].iloc[1:].sum()  # the tokens that came with the first text
        assert 1 <= first <= 3  # usually one; two or three when the first read of the stream held several chunks
        assert (rep["t0_ns"].to_numpy()[1:] == rep["t1_ns"].to_numpy()[:-1]).all()  # contiguous
    store.close()


def test_the_timing_is_plausible(acceptance: tuple[subprocess.CompletedProcess, RunSummary],
                                 server: dict[str, Any]) -> None:
    _, summary = acceptance
    store = Store(server["db"])
    steps = store.steps(summary.run_id)
    store.close()
    per_repeat = summary.duration_s / 2
    assert 0 < summary.ttft_s.mean < per_repeat  # the first token comes before the repeat ends
    prefill = steps[steps["phase"] == "prefill"]["duration_s"]
    assert prefill.mean() == pytest.approx(summary.ttft_s.mean)
    decode = steps[steps["phase"] == "decode"]
    assert (decode["duration_s"] >= 0).all() and decode["duration_s"].sum() > 0
    assert steps["duration_s"].sum() == pytest.approx(summary.duration_s)  # the steps partition the workload
    per_repeat_decode = decode.groupby("repeat")
    rates = per_repeat_decode["n_tokens"].sum() / per_repeat_decode["duration_s"].sum()  # the first chunk may hold 2–3
    assert summary.tokens_per_s == pytest.approx(rates.mean())
    assert summary.tokens_per_s < 1e5  # a tiny model on a CPU, over HTTP: not faster than 10 µs a token


def test_the_server_process_is_recorded_and_not_background(
        acceptance: tuple[subprocess.CompletedProcess, RunSummary], server: dict[str, Any]) -> None:
    _, summary = acceptance
    assert summary.server_pid == server["pid"] and "transformers" in summary.server_process
    assert len(summary.server_cpu_s) == 2 and all(cpu > 0 for cpu in summary.server_cpu_s)
    assert summary.server_cores > 0 and all(mb > 10 for mb in summary.server_rss_mb)
    assert server["pid"] not in {p.pid for p in summary.background_top}
    assert "not counted as background" in summary.server_activity()


def test_the_completions_api_in_process(server: dict[str, Any], store: Store) -> None:
    params = ProfileParams(endpoint=server["url"], model=server["model"], api="completions", max_new_tokens=8,
                           source="estimate", interval_ms=20, repeats=1, warmup=0, baseline_s=0.2)
    summary = profile_foreground(store, params)
    assert summary.status == "done", summary.error
    assert summary.new_tokens == [8] and summary.stream_chunks == [8] and summary.api == "completions"
    assert summary.prompt_tokens == len(DEFAULT_PROMPT.encode())  # a byte per token, no chat template


@pytest.mark.parametrize("case", ["refused", "unknown model"])
def test_a_bad_endpoint_fails_in_one_sentence(server: dict[str, Any], tmp_path: Path, case: str) -> None:
    url, model = (f"http://127.0.0.1:{free_port()}/v1", server["model"]) if case == "refused" else \
        (server["url"], "no-such-model")
    done = _cli("profile", "--endpoint", url, "--model", model, "--max-new-tokens", str(TOKENS), "--source",
                "estimate", "--repeats", "2", "--json", "--db", str(tmp_path / "bad.sqlite3"))
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failed"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    said = "Nothing is listening at 127.0.0.1:" if case == "refused" else "does not serve the model 'no-such-model'"
    assert lines[0].startswith("energyprof: ") and said in lines[0] and lines[0].endswith(".")


def test_the_run_renders_on_every_page_and_exports(acceptance: tuple[subprocess.CompletedProcess, RunSummary],
                                                   server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _, summary = acceptance
    run_id = summary.run_id
    store = Store(server["db"])
    local = seed_run(store, tokens=12)  # a run of a model loaded here, to compare with
    monkeypatch.setenv("ENERGYPROF_DB", str(server["db"]))
    for page in (p.path for p in ui.PAGES):
        at = open_page(None if page == "app.py" else page)
        assert not at.exception, (page, [e.value for e in at.exception])
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.exception and not at.error, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Time to first token"].endswith(("ms", " s")) and metrics["Tokens / chunks"] == "80 / 80"
    assert metrics["Server CPU"].endswith("cores") and metrics["Tokens/s"] != "—"
    captions = " ".join(texts(at, "caption"))
    assert ui.NO_LAYERS in captions and "not counted as background" in captions and "idle baseline" in captions
    assert f"endpoint **{server['url']}**" in " ".join(texts(at, "markdown")).replace("\\", "")
    shown = set(next(d.value for d in at.dataframe if "parameter" in d.value.columns)["parameter"])
    assert {"endpoint", "api", "model"} <= shown and not {"device", "dtype", "layers"} & shown
    at = open_page("pages/compare.py", {"runs": f"{run_id},{local}"})
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["device"]) == ["endpoint", "cpu"]
    trace = export_trace(store, run_id)
    decode_steps = int((store.steps(run_id)["phase"] == "decode").sum())
    assert sum(1 for e in trace["traceEvents"] if e.get("cat") == "step.decode") == decode_steps > TOKENS
    tokens = export_csv(store, run_id, "tokens")
    assert tokens.count("\n") > decode_steps and "decode" in tokens
    exported = export_csv(store, run_id, "summary")
    assert "ttft_s.mean" in exported and server["url"] in exported and "server_cpu_s" in exported
    store.close()
