"""The Sweeps page (?sweep=ID): the curves, the Pareto chart, the table and its CSV, a running sweep's progress and
cancel; the New-profile page's Sweep tab; a sweep point's run page."""

from __future__ import annotations

import io
import os
from typing import Any

import pandas as pd
import pytest
from seed import charts_by_title, open_page, seed_run, seed_sweep, texts

from energyprof import charts
from energyprof.runner import jobs
from energyprof.store import Store
from energyprof.sweep_table import sweep_csv

PAGE = "pages/sweep.py"


def test_sweep_page_draws_the_curves_pareto_and_table(store: Store) -> None:
    sweep_id = seed_sweep(store, failed_points=(7,), grid=300.0)
    at = open_page(PAGE, {"sweep": sweep_id})
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Sweep batch\\-study"
    drawn = charts_by_title(at)
    assert set(drawn) == {"Energy per token against batch size, mean with 95% CI (J)",
                          "Energy per token against prompt tokens per sequence, mean with 95% CI (J)",
                          "Decode speed (tokens/s) against energy per decode token (J)"}
    for chart in drawn.values():
        assert 0 < chart["rows"] <= charts.MAX_ROWS
    batch = drawn["Energy per token against batch size, mean with 95% CI (J)"]["spec"]
    assert batch["spec"]["layer"][0]["encoding"]["x"]["scale"] == {"type": "log", "base": 2}
    table = at.dataframe[0].value
    assert len(table) == 8 and table["status"].tolist().count("failed") == 1
    assert table["batch"].tolist()[:4] == [1, 2, 4, 8] and table["new_tokens"].tolist()[:4] == [8, 16, 32, 64]
    assert table["pareto"].sum() >= 1 and "g_co2e_per_1000_tokens" in table
    assert any("at 300 g CO2e/kWh (the grid intensity you gave)" in t for t in texts(at, "caption"))
    assert "4 of 8" not in texts(at, "markdown")[0] and "7 of 8 points done" in texts(at, "markdown")[0]
    assert not any("estimated" in t.lower() for t in drawn)  # measured source: no estimated label


def test_sweep_csv_has_one_row_per_point(store: Store) -> None:
    sweep_id = seed_sweep(store, batches=(1, 4), prompt_tokens=(16,))
    frame = pd.read_csv(io.StringIO(sweep_csv(store, sweep_id)))
    assert frame["batch"].tolist() == [1, 4] and set(frame["status"]) == {"done"}
    assert {"j_per_token", "j_per_token_ci95", "prefill_j_per_token", "tokens_per_s", "tokens_per_j",
            "wh_per_1000_tokens", "pareto", "label"} <= set(frame.columns)
    assert frame["wh_per_1000_tokens"].tolist() == pytest.approx((frame["j_per_token"] * 1000 / 3600).tolist())


def test_estimated_sweeps_are_labelled(store: Store) -> None:
    sweep_id = seed_sweep(store, source="estimate", measured=False, batches=(1, 2), prompt_tokens=(16,))
    at = open_page(PAGE, {"sweep": sweep_id})
    assert all(name.endswith("(estimated)") for name in charts_by_title(at))
    assert any("model of CPU utilisation" in t for t in texts(at, "caption"))


@pytest.mark.parametrize(("text", "sentence"), [
    ("../etc", "The link asks for sweep=../etc, which is not a sweep id: pick a sweep below."),
    ("nope", "There is no sweep nope in "),
    ("![t](http://hostile.invalid/x.png)", "which is not a sweep id")])
def test_bad_links_are_one_sentence_and_the_list_follows(store: Store, text: str, sentence: str) -> None:
    seed_sweep(store, batches=(1,), prompt_tokens=(16,))
    at = open_page(PAGE, {"sweep": text})
    assert not at.exception
    assert len(at.error) == 1 and sentence in texts(at, "error")[0]
    assert at.selectbox(key="open_sweep").options == ["batch-study (done, 1 of 1 points done)"]


def test_no_sweeps_yet(store: Store) -> None:
    at = open_page(PAGE)
    assert not at.exception and any("No sweeps yet" in t for t in texts(at, "info"))


def test_a_running_sweep_shows_its_point_and_cancels(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_id = seed_sweep(store, batches=(1, 2), prompt_tokens=(16, 64), status="running", pending_points=(3,))
    store.start_sweep(sweep_id, os.getpid())
    running = seed_run(store, tokens=10, status="running", sweep=(sweep_id, 3))
    store.update_run(running, phase="repeat 1 of 3")
    cancelled: list[tuple[str, str]] = []
    monkeypatch.setattr(jobs, "cancel", lambda s, kind, i: cancelled.append((kind.name, i)) or True)
    at = open_page(PAGE, {"sweep": sweep_id})
    assert not at.exception, [e.value for e in at.exception]
    assert any("Point 4: tiny, cpu, float32, 64 prompt tokens, batch 2, 8 new tokens" in t
               for t in texts(at, "caption"))
    assert any(m.label == "Tokens done" for m in at.metric)
    assert any(p.proto.text == "3 of 4 points done" for p in at.get("progress"))
    at.button(key=f"cancel-sweep-{sweep_id}").click().run()
    assert cancelled == [("sweep", sweep_id)]


def test_new_page_launches_a_sweep_from_lists(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[dict[str, Any]] = []

    def fake_launch(s: Store, spec: dict[str, Any], points: int, sweep_id: str, ray: Any = None) -> str:
        launched.append({"spec": spec, "points": points, "id": sweep_id})
        s.create_sweep(sweep_id, spec, points)
        return sweep_id

    monkeypatch.setattr(jobs, "launch_sweep", fake_launch)
    at = open_page("pages/new.py")
    at.text_input(key="sweep_batch").set_value("1, 2,4")
    at.text_input(key="sweep_prompt_tokens").set_value("16,64")
    at.multiselect(key="sweep_dtype").set_value(["float32", "bfloat16"])
    at.text_input(key="sweep_id").set_value("my-sweep")
    assert at.number_input(key="sweep_target_ci").value == 5.0  # sweeps ask for precision by default
    at.button(key="launch_sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(launched) == 1 and launched[0]["id"] == "my-sweep" and launched[0]["points"] == 12
    axes = launched[0]["spec"]["axes"]
    assert axes["batch"] == [1, 2, 4] and axes["prompt_tokens"] == [16, 64]
    assert axes["dtype"] == ["float32", "bfloat16"] and axes["model"] == ["tiny"]


def test_new_page_refuses_a_bad_list(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "launch_sweep", lambda *a: pytest.fail("launched"))
    at = open_page("pages/new.py")
    at.text_input(key="sweep_batch").set_value("1,lots")
    at.text_input(key="sweep_id").set_value("bad id")
    at.button(key="launch_sweep").click().run()
    errors = texts(at, "error")
    assert "'lots' in the list for batch size is not a whole number." in errors
    assert any("'bad id' is not a sweep id" in e for e in errors)


def test_a_point_run_links_its_sweep_and_labels_steps_of_a_batch(store: Store) -> None:
    sweep_id = seed_sweep(store, batches=(4,), prompt_tokens=(16,), grid=300.0)
    run_id = store.sweep_runs(sweep_id)[0]["id"]
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.exception, [e.value for e in at.exception]
    links = [e.proto for e in at.get("page_link") if e.proto.page == "sweep"]
    assert links and links[0].label == "Point 1 of sweep batch\\-study"
    assert any(s.value == "Energy per step of 4 tokens" for s in at.subheader)
    assert "Energy per step of 4 tokens (J)" in charts_by_title(at)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Tokens/J (decode)"] and labels["Wh per 1,000 tokens"].endswith(" Wh")
    assert labels["g CO2e per 1,000 tokens"].endswith(" g")
