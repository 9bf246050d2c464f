"""`energyprof report`: one HTML file per run, comparison or sweep that opens offline. Opened in Chromium with every
request that is not the file itself aborted, each report draws every chart (an SVG per chart), logs no console error
or warning, fetches nothing, and shows hostile model names, prompts and generated tokens as text (no script runs,
no image is made). In CI (CI=true) a missing chromium or Playwright fails the test instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dashboard_server import CHROMIUM, CHROMIUM_ARGS
from seed import seed_run, seed_sweep
from sharing_runs import HOSTILE_NAME, HOSTILE_PROMPT, HOSTILE_TOKENS, M4_MAX, made_elsewhere

from energyprof.cli import main
from energyprof.report import compare_report, run_report, sweep_report
from energyprof.store import Store

pytestmark = pytest.mark.browser


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI; .ci/run installs chromium (apt-get install chromium).")
    pytest.skip(f"{what} is missing; install it with `apt-get install chromium` to run the browser tests.")


@pytest.fixture(scope="module")
def reports(hostile_run: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real hostile profile run, a seeded run with hostile tokens made on another machine, a sweep: their reports."""
    folder = tmp_path_factory.mktemp("reports")
    db, real = hostile_run
    store = Store(db)
    seeded = seed_run(store, tokens=24, layer_calls=240, model=HOSTILE_NAME, token_texts=HOSTILE_TOKENS, seed=3,
                      components=("cpu", "gpu", "ane", "dram"), source="ioreport")
    made_elsewhere(store, seeded, M4_MAX)
    seed_sweep(store, batches=(1, 2), prompt_tokens=(16, 64), sweep_id="batch-study", grid=300)
    files = {"run": folder / "run.html", "tokens": folder / "tokens.html", "compare": folder / "compare.html",
             "sweep": folder / "sweep.html"}
    files["run"].write_text(run_report(store, real), encoding="utf-8")
    files["tokens"].write_text(run_report(store, seeded), encoding="utf-8")
    files["compare"].write_text(compare_report(store, [real, seeded]), encoding="utf-8")
    files["sweep"].write_text(sweep_report(store, "batch-study"), encoding="utf-8")
    store.close()
    return files


def test_every_report_draws_every_chart_offline_and_keeps_hostile_text_as_text(reports: dict[str, Path]) -> None:
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    expected_charts = {"run": 7, "tokens": 7, "compare": 4, "sweep": 3}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, path in reports.items():
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                blocked, problems = [], []

                def route(r, blocked=blocked) -> None:
                    if r.request.url.startswith("file://"):
                        r.continue_()
                    else:
                        blocked.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.on("console", lambda m, problems=problems: problems.append(m.text)
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e, problems=problems: problems.append(str(e)))
                page.goto(path.as_uri())
                charts = page.locator("[data-energyprof-chart]")
                assert charts.count() == expected_charts[name], name
                page.wait_for_function("document.querySelectorAll('[data-energyprof-chart]').length === "
                                       "document.querySelectorAll('[data-energyprof-chart] > svg, "
                                       "[data-energyprof-chart] svg.marks').length", timeout=60_000)
                for i in range(charts.count()):
                    assert charts.nth(i).locator("svg").count() >= 1, (name, i)
                    assert "could not be drawn" not in charts.nth(i).inner_text(), (name, i)
                assert blocked == [] and problems == [], (name, blocked, problems)
                assert page.evaluate("window.__pwned") is None, name
                assert page.locator("img").count() == 0, name
                text = page.locator("body").inner_text()
                if name == "run":
                    assert page.locator("h1").inner_text().endswith(HOSTILE_NAME)
                    assert HOSTILE_PROMPT in text  # the parameters table: the prompt as typed
                    assert "Where the energy went (estimated)" in text
                if name == "tokens":
                    shown = page.locator(".energyprof-tokens").inner_text()
                    assert shown == "".join(HOSTILE_TOKENS * 4)  # 24 tokens, every one as text
                    assert "Apple M4 Max · 16 cores · 64 GB" in text and "Mac16,5" in text
                if name == "compare":
                    assert "Apple M4 Max · 16 cores · 64 GB" in text and "on 2 machines" in text
                page.close()
        finally:
            browser.close()


def test_the_cli_writes_a_report_and_says_what_is_wrong_in_one_sentence(
        store: Store, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = seed_run(store, tokens=10)
    out = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(out), "--db", str(db_path)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "window.vegaEmbed" in html and "Content-Security-Policy" in html
    assert f"wrote {out}" in capsys.readouterr().out
    for argv, sentence in ((["99"], f"run 99 does not exist in {db_path}."),
                           (["--compare", f"{run},x"], "--compare takes run ids separated by commas"),
                           (["--compare", str(run)], "--compare needs two or more different run ids"),
                           (["--sweep", "nope"], f"there is no sweep nope in {db_path}."),
                           (["--sweep", "../x"], "is not a sweep id")):
        assert main(["report", *argv, "--db", str(db_path)]) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("energyprof: ") and sentence in err and err.count("\n") == 0, (argv, err)
