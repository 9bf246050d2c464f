"""End to end in headless Chromium (Debian's, driven by Playwright) against a real `streamlit run app.py`.

A fresh server's first request is a deep link to a seeded run (`/run?run=N`, served from pages/run.py): the page,
the app's own sidebar and no generated navigation; a run whose text is hostile Markdown/HTML makes the browser
fetch nothing; then the demo profile is started from the empty database's runs page and followed until it is
`done` (the real job subprocess: tiny model, auto power source); the run page is saved as a screenshot
(copied to README's docs/screenshot-run.png when ENERGYPROF_UPDATE_SCREENSHOT=1). Another fresh server's first
request is a sweep's deep link (`/sweep?sweep=ID`), which draws the J/token curves and the Pareto chart. In CI
(CI=true) a missing chromium or Playwright fails the test instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_server import CHROMIUM, CHROMIUM_ARGS, start, stop
from seed import REPO, seed_run, seed_sweep

from energyprof.store import Store

pytestmark = pytest.mark.browser

DEMO_TIMEOUT_S = 120
SCREENSHOT = REPO / "docs" / "screenshot-run.png"
HOSTILE = "![t](http://hostile.invalid/x.png) <img src=http://hostile.invalid/y.png>"


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI; .ci/run installs chromium (apt-get install chromium).")
    pytest.skip(f"{what} is missing; install it with `apt-get install chromium` to run the browser tests.")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store, Path]]:
    """A real dashboard server on a free port over a seeded database in tmp_path."""
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    store = Store(tmp_path / "e2e.sqlite3")
    try:
        proc, url = start(store.path, tmp_path / "streamlit.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url, store, tmp_path
    finally:
        stop(proc)
        store.close()


def _wait_for_charts(page, count: int, timeout_s: float = 30) -> int:
    """Wait until `count` charts have drawn (vega-embed puts a canvas or an svg inside each)."""
    deadline = time.monotonic() + timeout_s
    drawn = 0
    while time.monotonic() < deadline:
        drawn = page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
                             ).count()
        if drawn >= count:
            return drawn
        page.wait_for_timeout(250)
    return drawn


def _open_first_run_link(context, page) -> str:
    """Click the first row's Run link in the runs table (a canvas grid: the link is hit by position)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    y = box["y"] + 35 + 17  # the header row, then the middle of the first row
    for dx in range(9, 22, 2):
        page.mouse.move(box["x"] + dx, y)
        page.wait_for_timeout(150)
        try:
            with context.expect_page(timeout=2000) as opened:
                page.mouse.click(box["x"] + dx, y)
        except PlaywrightTimeout:  # missed the link text: try a little further right
            continue
        target = opened.value
        target.wait_for_load_state()
        target.get_by_text("Gross energy").first.wait_for(timeout=30_000)
        url = target.url
        target.close()
        return url
    raise AssertionError("no run link opened a page")


def test_deep_link_then_demo_profile(server: tuple[str, Store, Path]) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    url, store, tmp = server
    seeded = seed_run(store, tokens=40, layer_calls=400)
    hostile = seed_run(store, tokens=6, status="failed", model=HOSTILE, token_texts=[HOSTILE] * 6)
    store.update_run(hostile, error=HOSTILE)
    requested: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        try:
            # 1. The fresh server's very first request: a deep link, opened in a new page.
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            page.goto(f"{url}/run?run={seeded}")
            page.get_by_text(f"Run #{seeded} · tiny").wait_for(timeout=30_000)
            metrics = page.locator("[data-testid='stMetric']")
            metrics.first.wait_for(timeout=30_000)
            labels = page.locator("[data-testid='stMetricLabel']").all_inner_texts()
            assert {"Gross energy", "Net energy", "J/token prefill", "J/token decode"} <= set(labels)
            assert _wait_for_charts(page, 6) >= 6
            sidebar = page.locator("[data-testid='stSidebar']")
            assert "Database" in sidebar.inner_text()  # the app's own sidebar (ui.page_setup)
            links = sidebar.locator("[data-testid='stPageLink'] a")
            labels = [text.split("\n")[-1] for text in links.all_inner_texts()]  # after the icon's ligature name
            assert labels == ["Runs", "Run", "New profile", "Compare", "Sweeps", "Power sources"]
            assert page.locator("[data-testid='stSidebarNav']").count() == 0  # Streamlit's generated nav is hidden
            links.nth(3).click()  # the sidebar's own link: client-side navigation to /compare
            page.wait_for_url("**/compare*", timeout=30_000)
            page.get_by_text("Compare runs").first.wait_for(timeout=30_000)
            page.close()

            # 2. A run whose model name, error and token text are hostile Markdown/HTML: shown as text, nothing
            # fetched from the host they name.
            page = context.new_page()
            page.goto(f"{url}/run?run={hostile}")
            failed = page.get_by_text("This run failed: ![t](http:")
            failed.wait_for(timeout=30_000)
            shown = failed.inner_text().replace("\u2060", "")  # md_escape's word joiners stop bare-URL links
            assert shown == f"This run failed: {HOSTILE}"
            title = page.locator("h1").filter(has_text=f"Run #{hostile} · ![t](")
            assert title.inner_text().replace("\u2060", "") == f"Run #{hostile} · {HOSTILE}"
            page.wait_for_timeout(1000)
            assert page.locator("img[src*='hostile.invalid'], a[href*='hostile.invalid']").count() == 0
            assert not [u for u in requested if "hostile.invalid" in u]
            page.close()
            assert store.delete_run(hostile)

            # 3. The runs table links each run to its page (a new tab, relative URL run?run=N).
            page = context.new_page()
            page.goto(url)
            assert _open_first_run_link(context, page).endswith(f"/run?run={seeded}")
            page.close()

            # 4. The demo profile from an empty database's runs page, followed to `done`.
            assert store.delete_run(seeded)
            page = context.new_page()
            page.goto(url)
            page.get_by_role("button", name="Run a demo profile").click()
            page.wait_for_url("**/run?run=*", timeout=30_000)
            run_id = int(page.url.rsplit("=", 1)[1])
            deadline = time.monotonic() + DEMO_TIMEOUT_S
            status = None
            while time.monotonic() < deadline:
                run = store.get_run(run_id)
                status = run["status"] if run else None
                if status in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert status == "done", f"demo ended {status}: {run and run.get('error')}"
            page.get_by_text("J/token decode").first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stMarkdownContainer']").get_by_text("done", exact=True).count() >= 1
            assert _wait_for_charts(page, 6) >= 6
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp / "screenshot-run.png"))
            assert (tmp / "screenshot-run.png").stat().st_size > 10_000
            if os.environ.get("ENERGYPROF_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(tmp / "screenshot-run.png", SCREENSHOT)
            page.close()
        finally:
            context.close()
            browser.close()


def test_endpoint_profile_launched_from_the_new_page(server: tuple[str, Store, Path]) -> None:
    """Endpoint mode in the browser: the form launches the job against a streaming server on 127.0.0.1 (a small
    scripted one; tests/test_endpoint_serve.py runs the real `transformers serve`), followed to `done`, and the
    run page shows the endpoint, time to first token and why there is no layer section."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    from endpoint_servers import FAKE_MODEL, FakeEndpoint, streaming

    from energyprof.ui import NO_LAYERS

    url, store, tmp = server
    with FakeEndpoint(streaming(delay_s=0.002)) as endpoint, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        try:
            page = context.new_page()
            page.goto(f"{url}/new")
            page.locator("[data-testid='stRadio']").get_by_text("Endpoint", exact=True).click()
            page.get_by_role("textbox", name="Endpoint (API base URL)", exact=True).fill(endpoint.url)
            page.get_by_role("textbox", name="Model", exact=True).fill(FAKE_MODEL)
            page.get_by_role("button", name="Launch profile").click()
            deadline = time.monotonic() + DEMO_TIMEOUT_S
            run = None
            while time.monotonic() < deadline:
                runs = store.list_runs()
                run = store.get_run(int(runs["id"].iloc[0])) if not runs.empty else None
                if run is not None and run["status"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert run is not None and run["status"] == "done", run and run.get("error")
            assert run["params"]["endpoint"] == endpoint.url and run["device"] == "endpoint"
            page.goto(f"{url}/run?run={run['id']}")
            page.get_by_text("Time to first token").first.wait_for(timeout=30_000)
            assert page.get_by_text(NO_LAYERS).count() == 1
            facts = page.locator("[data-testid='stMarkdownContainer']").filter(has_text="server model").first
            facts = facts.inner_text().replace("\u2060", "")
            assert f"endpoint {endpoint.url}" in facts and f"server model {FAKE_MODEL}" in facts
            assert _wait_for_charts(page, 4) >= 4
            page.screenshot(path=str(tmp / "screenshot-endpoint-run.png"), full_page=True)
            page.close()
        finally:
            context.close()
            browser.close()


def test_sweep_deep_link_draws_the_curves(server: tuple[str, Store, Path]) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    url, store, tmp = server
    sweep_id = seed_sweep(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        try:
            page = context.new_page()
            page.goto(f"{url}/sweep?sweep={sweep_id}")  # the fresh server's first request
            page.get_by_text(f"Sweep {sweep_id}").first.wait_for(timeout=30_000)
            assert _wait_for_charts(page, 3) >= 3
            body = page.locator("[data-testid='stMain']").inner_text()
            for heading in ("Batch size", "Prompt tokens", "Speed against energy", "Points"):
                assert heading in body
            assert "8 of 8 points done" in body
            marks = page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")
            for i in range(3):
                box = marks.nth(i).bounding_box()
                assert box and box["width"] > 200 and box["height"] > 100  # drawn, not an empty note
            assert page.get_by_role("button", name="⬇ Sweep table (CSV)").count() == 1
            page.screenshot(path=str(tmp / "screenshot-sweep.png"), full_page=True)
            assert (tmp / "screenshot-sweep.png").stat().st_size > 10_000
        finally:
            context.close()
            browser.close()


def test_a_real_two_repeat_sweep_on_the_sweeps_page(server: tuple[str, Store, Path]) -> None:
    """A real sweep (`energyprof sweep`, tiny model, batch 1 and 2, 2 repeats per point: t-based CIs as wide as they
    come) opened in Chromium: only the swept axis (batch) is charted, a CI wider than its mean is said and cut at
    0 J, the Pareto chart draws, and the list of sweeps shows it."""
    import subprocess
    import sys

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    from energyprof.sweep_table import curve_frame, sweep_frame, sweep_rows, wide_ci_points

    url, store, tmp = server
    done = subprocess.run([sys.executable, "-m", "energyprof", "sweep", "--model", "tiny", "--device", "cpu",
                           "--batch", "1,2", "--repeats", "2", "--no-target-ci", "--source", "estimate",
                           "--max-new-tokens", "4", "--warmup", "0", "--baseline-s", "0.2", "--sweep-id", "real-sweep",
                           "--db", str(store.path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    wide = wide_ci_points(curve_frame(sweep_frame(sweep_rows(store, "real-sweep")), "batch"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        try:
            page = context.new_page()
            page.goto(f"{url}/sweep?sweep=real-sweep")
            page.get_by_text("Sweep real-sweep").first.wait_for(timeout=30_000)
            assert _wait_for_charts(page, 2) >= 2
            main = page.locator("[data-testid='stMain']")
            headings = main.locator("h3").all_inner_texts()
            assert any(h.startswith("Batch size") for h in headings), headings
            assert not any(h.startswith("Prompt tokens") for h in headings), headings  # not swept: no chart
            body = main.inner_text()
            assert "2 of 2 points done" in body and "swept: batch 1, 2" in body
            assert ("cut at 0 J" in body) == bool(wide)
            assert "(batch on a log-2 axis)" in body
            page.screenshot(path=str(tmp / "screenshot-real-sweep.png"), full_page=True)
            page.goto(f"{url}/sweep")
            page.get_by_text("Open a sweep").first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stDataFrame']").count() == 1
        finally:
            context.close()
            browser.close()
