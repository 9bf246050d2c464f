"""Read-only mode (`ENERGYPROF_READ_ONLY=1 streamlit run app.py`): every page says so in its sidebar and offers no
launch, cancel, delete, upload or probe; every action refuses where it runs (energyprof.ui.live), so one reached
anyway changes nothing; in Chromium against a real server, no page shows any of those controls. The same database
in the ordinary (writable) mode shows them, so the checks can fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dashboard_server import CHROMIUM, CHROMIUM_ARGS, start, stop
from seed import open_page, seed_run, seed_sweep, texts

from energyprof.read_only import READ_ONLY_ENV, ReadOnlyRefused, is_read_only, refuse_if_read_only
from energyprof.store import Store

ACTION_LABELS = ("Run a demo profile", "Delete…", "Yes, delete it", "Launch profile", "Launch sweep", "Cancel job",
                 "Cancel sweep", "Probe the counters", "Record a test sample", "Import")
"""Every control that launches, cancels, deletes, uploads or probes."""
ACTION_PAGES = (0, 2, 3, 6)
"""The pages that have such controls in the ordinary mode (Runs, a running job, New profile, Power sources): the
ones the browser test opens (the AppTest opens them all)."""


def _world(store: Store) -> dict[str, object]:
    """A finished run, a running job and a sweep with one point done: every page has something to act on."""
    done = seed_run(store, tokens=12, layer_calls=60)
    sweep = seed_sweep(store, batches=(1, 2), prompt_tokens=(16,), sweep_id="shared", pending_points=(1,))
    store.finish_sweep(sweep, "done")
    running = seed_run(store, tokens=10, status="running")
    return {"done": done, "running": running, "sweep": sweep, "runs": len(store.list_runs())}


def _pages(world: dict[str, object]) -> list[tuple[str | None, dict[str, str], str]]:
    """(page, query, text near the end of the page in read-only mode, to know it has finished drawing)."""
    return [(None, {}, "Compare runs"), ("pages/run.py", {"run": str(world["done"])}, "Report (HTML"),
            ("pages/run.py", {"run": str(world["running"])}, f"Job #{world['running']}"),
            ("pages/new.py", {}, "This dashboard is read-only"),
            ("pages/compare.py", {"runs": f"{world['done']},{world['running']}"}, "Report (HTML"),
            ("pages/sweep.py", {"sweep": str(world["sweep"])}, "Report (HTML"),
            ("pages/sources.py", {}, "On a Mac (Apple Silicon)")]


def _controls(at) -> list[str]:
    labels = [b.label for b in at.button] + [b.label for b in at.get("form_submit_button")]
    return [label for label in labels if label in ACTION_LABELS]


def test_the_environment_variable_is_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv(READ_ONLY_ENV, value)
        assert is_read_only() is expected, value
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    with pytest.raises(ReadOnlyRefused, match=r"^This dashboard is read-only \(ENERGYPROF_READ_ONLY=1\), so it "
                                              r"cannot delete run #3; run energyprof on the machine itself"):
        refuse_if_read_only("delete run #3")


def test_every_page_says_read_only_and_offers_no_action(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(store)
    opened = [open_page(page, query) for page, query, _ in _pages(world)]
    assert {"Delete…", "Launch profile", "Launch sweep", "Cancel job", "Probe the counters",
            "Record a test sample"} <= {c for at in opened for c in _controls(at)}  # the ordinary mode has them
    assert opened[0].get("file_uploader") and opened[-1].get("file_uploader")  # bundle and capture uploads
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    for page, query, _ in _pages(world):
        at = open_page(page, query)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("Read-only" in t for t in texts(at.sidebar, "warning")), page
        assert _controls(at) == [], (page, _controls(at))
        assert not at.get("file_uploader"), page
    assert store.get_run(world["running"])["status"] == "running"  # nothing reaped, cancelled or deleted
    assert len(store.list_runs()) == world["runs"]


def test_every_action_refuses_where_it_runs(store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    world = _world(store)
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    script = f"""
from energyprof import ui
from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.spec.sweep import SweepSpec

store = ui.get_store()
launched = ui.launch(store, dict(ui.DEMO_PARAMS))
swept = ui.launch_sweep(store, SweepSpec(ProfileParams(model="tiny"), {{"batch": [1, 2]}}), "sneaky")
ui.cancel_job(store, jobs.RUN, {world["running"]})
ui.cancel_job(store, jobs.SWEEP, "shared")
deleted = ui.delete_run(store, {world["done"]})
import streamlit as st
st.write(repr((launched, swept, deleted)))
"""
    before = store.list_runs()[["id", "status"]].to_dict(orient="records")
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at, "error")
    assert len(errors) == 5 and all("This dashboard is read-only" in e for e in errors), errors
    for action in ("launch a profile", "launch a sweep", f"cancel job #{world['running']}", "cancel sweep shared",
                   f"delete run #{world['done']}"):
        assert any(f"cannot {action};" in e for e in errors), action
    assert texts(at, "markdown")[-1] == "(None, None, None)"
    assert store.list_runs()[["id", "status"]].to_dict(orient="records") == before
    assert store.get_sweep("sneaky") is None and store.get_sweep("shared")["status"] == "done"


def test_a_pending_delete_from_a_writable_session_is_not_carried_out(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(store)
    at = open_page(None)
    at.button(key="delete").click().run()  # asked while the dashboard was writable
    assert at.session_state["confirm_delete"] is not None
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    at.run()
    assert not [b for b in at.button if b.key == "delete_yes"]
    assert len(store.list_runs()) == world["runs"] and store.get_run(world["done"]) is not None


@pytest.mark.browser
def test_a_shared_dashboard_shows_no_action_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs chromium.")
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium`.")
    from playwright.sync_api import sync_playwright

    store = Store(tmp_path / "shared.sqlite3")
    world = _world(store)
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    proc, url = start(store.path, tmp_path / "streamlit.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            for path, query, last in [_pages(world)[i] for i in ACTION_PAGES]:
                target = "/" if path is None else "/" + Path(path).stem
                suffix = "&".join(f"{k}={v}" for k, v in query.items())
                page.goto(f"{url}{target}{'?' + suffix if suffix else ''}")
                sidebar = page.locator("[data-testid='stSidebar']")
                sidebar.get_by_text("Read-only").first.wait_for(timeout=30_000)
                page.locator("[data-testid='stMain']").get_by_text(last).first.wait_for(timeout=30_000)
                page.wait_for_timeout(300)
                buttons = page.locator("button").all_inner_texts()
                shown = [b for b in buttons if b.strip() in ACTION_LABELS]
                assert shown == [], (target, shown)
                assert page.locator("input[type=file]").count() == 0, target
            browser.close()
    finally:
        stop(proc)
    assert store.get_run(world["running"])["status"] == "running" and len(store.list_runs()) == world["runs"]
