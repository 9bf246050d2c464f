"""The MLX runtime end to end, as people use it: `energyprof profile` on a quantised MLX folder (the real CLI process),
a job the dashboard launches (the real job subprocess) shown on the Runs and Run pages, `profile_generation` with an
MLX model, and a sweep over `runtime` on one Hugging Face-format llama folder that both runtimes load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from profile_helpers import wait_for
from seed import REPO, open_page, texts

from energyprof.commands.profile import format_summary
from energyprof.commands.runs import _cells, format_table
from energyprof.store import Store
from energyprof.summary import RunSummary

FAST = ["--prompt", "Hello energy", "--max-new-tokens", "5", "--ignore-eos", "--source", "estimate",
        "--interval-ms", "20", "--warmup", "0", "--baseline-s", "0.1"]


@pytest.fixture(scope="module")
def folders(mlx_folders: dict[str, Path]) -> dict[str, Path]:
    return mlx_folders


def _energyprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_profiles_a_quantised_mlx_folder(folders: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    done = _energyprof("profile", "--model", str(folders["q4"]), "--runtime", "mlx", "--layers", "blocks",
                       "--repeats", "2", "--json", "--db", str(db), *FAST)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["runtime"], out["runtime_reason"]) == ("done", "mlx", "asked for with --runtime mlx")
    assert out["quantization"] == "4-bit affine, group 32" and out["new_tokens"] == [5, 5]
    assert out["peak_memory_source"] == "mlx" and out["peak_memory_mb"] > 1
    assert out["j_per_token"]["decode"]["mean"] > 0 and out["closure_error"] < 1e-9
    text = format_summary(RunSummary.from_dict(out))
    assert "Runtime: mlx (asked for with --runtime mlx); weights 4-bit affine, group 32." in text
    assert "Peak memory: " in text and "MLX's peak allocation" in text
    runs = _energyprof("runs", "--json", "--db", str(db))
    assert runs.returncode == 0 and json.loads(runs.stdout)[0]["runtime"] == "mlx"
    store = Store(db)
    table = format_table([_cells(r) for r in store.list_runs().to_dict(orient="records")]).splitlines()
    store.close()
    assert table[0].split()[4] == "runtime" and table[1].split()[4] == "mlx"


def test_dashboard_launches_an_mlx_job_and_shows_it(folders: dict[str, Path], store: Store) -> None:
    at = open_page("pages/new.py")
    assert at.selectbox(key="runtime").options == ["auto", "transformers", "mlx"]
    at.text_input(key="model_custom").set_value(str(folders["q4"]))
    at.selectbox(key="source").set_value("estimate")
    at.number_input(key="max_new_tokens").set_value(4)
    at.checkbox(key="ignore_eos").set_value(True)
    at.number_input(key="repeats").set_value(1)
    at.number_input(key="warmup").set_value(0)
    at.number_input(key="baseline_s").set_value(0.0)
    at.selectbox(key="layers").set_value("modules")
    at.button(key="launch").click().run()  # the real jobs.launch_job: `energyprof job` in its own process
    assert not at.exception and any("started" in t for t in texts(at, "success"))
    run_id = int(store.list_runs()["id"].iloc[0])
    wait_for(lambda: store.get_run(run_id)["status"] not in ("queued", "running"), 120, "the dashboard's MLX job")
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    summary = RunSummary.from_dict(run["summary"])
    assert summary.runtime == "mlx" and "quantization entry" in summary.runtime_reason  # auto saw the folder
    assert set(store.layer_summary(run_id)["kind"]) == {"embedding", "block", "attention", "mlp", "norm", "lm_head",
                                                        "other"}
    page = open_page("pages/run.py", {"run": str(run_id)})
    assert not page.exception and not page.error
    assert any("runtime **mlx**" in t for t in texts(page, "markdown"))
    caption = next(t for t in texts(page, "caption") if t.startswith("Runtime: mlx"))
    assert "4-bit affine, group 32" in caption and "Peak memory:" in caption
    runs = open_page()
    table = runs.dataframe[0].value
    assert list(table["runtime"]) == ["mlx"]


def test_profile_generation_takes_an_mlx_model(folders: dict[str, Path], db_path: Path) -> None:
    from mlx_lm import load

    import energyprof

    model, tokenizer = load(str(folders["q4"]))
    summary = energyprof.profile_generation(model, tokenizer, "Hi there", max_new_tokens=4, source="estimate",
                                            interval_ms=20, layers="blocks", db=db_path)
    assert summary.status == "done", summary.error
    assert summary.runtime == "mlx" and summary.runtime_reason == "the model was handed over already loaded by mlx"
    assert summary.quantization == "4-bit affine, group 32" and summary.new_tokens == [4]
    assert not any("_energyprof_swapped" in type(m).__dict__ for _, m in model.named_modules())


def test_sweep_over_runtime_on_one_hf_llama_folder(folders: dict[str, Path], db_path: Path) -> None:
    done = _energyprof("sweep", "--model", str(folders["hf"]), "--runtime", "transformers,mlx", "--repeats", "1",
                       "--no-target-ci", "--layers", "none", "--device", "cpu", "--sweep-id", "runtimes", "--json",
                       "--db", str(db_path), *FAST)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "done" and out["points"] == 2
    rows = {row["runtime"]: row for row in out["runs"]}
    assert set(rows) == {"transformers", "mlx"} and {r["status"] for r in rows.values()} == {"done"}
    for row in rows.values():
        assert row["j_per_token"] > 0 and row["tokens_per_s"] > 0 and row["peak_memory_mb"] > 0
        assert row["quantization"] is None and row["dtype"] == "float32"
    store = Store(db_path)
    summaries = {RunSummary.from_dict(store.get_run(r["run_id"])["summary"]).runtime: store.get_run(r["run_id"])
                 for r in rows.values()}
    assert summaries["mlx"]["summary"]["runtime_reason"] == "asked for with --runtime mlx"
    assert summaries["transformers"]["summary"]["peak_memory_source"] == "rss"
    first = {name: run["summary"]["text"][:1] for name, run in summaries.items()}
    assert first["mlx"] == first["transformers"]  # the same weights choose the same first token
    page = open_page("pages/sweep.py", {"sweep": "runtimes"})
    assert not page.exception and not page.error
    points = next(df.value for df in page.dataframe if "runtime" in df.value.columns)
    assert list(points["runtime"]) == ["transformers", "mlx"] and points["peak_memory_mb"].notna().all()


@pytest.mark.browser
def test_run_page_of_an_mlx_run_in_chromium(folders: dict[str, Path], tmp_path: Path) -> None:
    from dashboard_server import CHROMIUM, CHROMIUM_ARGS, start, stop
    from profile_helpers import fast_params

    from energyprof.runner.job import profile_foreground

    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs chromium (apt-get install chromium).")
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium` to run the browser tests.")
    from playwright.sync_api import sync_playwright

    store = Store(tmp_path / "browser.sqlite3")
    summary = profile_foreground(store, fast_params(model=str(folders["q4"]), repeats=1, max_new_tokens=4))
    assert summary.status == "done", summary.error
    proc, url = start(store.path, tmp_path / "streamlit.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1400})
                page.goto(f"{url}/run?run={summary.run_id}")
                page.get_by_text("Runtime: mlx (auto:").wait_for(timeout=30_000)
                body = page.locator("body").inner_text()
                assert "runtime mlx" in body and "weights 4-bit affine, group 32" in body
                assert "Peak memory:" in body and "MLX's peak allocation" in body
                page.locator("[data-testid='stMetricLabel']").first.wait_for(timeout=30_000)
                labels = page.locator("[data-testid='stMetricLabel']").all_inner_texts()
                assert any("J/token" in label and "decode" in label for label in labels), labels
            finally:
                browser.close()
    finally:
        stop(proc)
        store.close()
