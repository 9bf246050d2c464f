"""The runs page: table values, filters, deletion with confirmation, the demo button on an empty database."""

from __future__ import annotations

from typing import Any

import pytest
from seed import open_page, seed_run, texts

from energyprof import ui
from energyprof.runner import jobs
from energyprof.store import Store


def table(at) -> Any:
    return at.dataframe[0].value


def test_empty_database_offers_the_demo(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_launch(s: Store, params: dict[str, Any]) -> int:
        calls.append(params)
        run_id = s.create_run("profile", status="queued", model=params["model"], source=params["source"],
                              params=params)
        return run_id

    monkeypatch.setattr(jobs, "launch_job", fake_launch)
    at = open_page()
    assert not at.exception
    assert any("No runs yet" in t for t in texts(at, "info"))
    at.button(key="demo").click().run()
    assert not at.exception
    assert len(calls) == 1
    assert calls[0]["model"] == "tiny" and calls[0]["source"] == "auto" and calls[0]["warmup"] >= 1
    assert calls[0] == ui.DEMO_PARAMS
    # the demo switches to its run page, which follows the job live
    assert at.query_params["run"] == ["1"] or at.query_params["run"] == "1"
    assert any(m.label == "Tokens done" for m in at.metric)


def test_table_lists_every_run_with_its_figures(store: Store) -> None:
    done = seed_run(store, tokens=20, model="tiny")
    est = seed_run(store, tokens=10, source="estimate", measured=False, components=("cpu",), model="small")
    failed = seed_run(store, tokens=5, status="failed", model="tiny")
    sample = seed_run(store, tokens=0, kind="sample", minutes=0.1)
    at = open_page()
    assert not at.exception
    df = table(at)
    assert list(df["run"]) == [f"run?run={i}" for i in (sample, failed, est, done)]
    row = df.set_index("run").loc[f"run?run={done}"]
    summary = store.get_run(done)["summary"]
    assert row["model"] == "tiny" and row["device"] == "cpu" and row["dtype"] == "float32"
    assert row["source"] == "powermetrics · measured" and row["status"] == "done" and row["tokens"] == 20
    assert row["J/token (decode)"] == pytest.approx(summary["j_per_token"]["decode"]["mean"])
    assert row["tokens/s"] == pytest.approx(summary["tokens_per_s"])
    assert row["mean W"] == pytest.approx(summary["mean_w"]["package"])
    assert summary["new_tokens"] == [20]
    assert df.set_index("run").loc[f"run?run={est}"]["source"] == "estimate · estimated"
    assert df.set_index("run").loc[f"run?run={failed}"]["status"] == "failed"
    config = at.dataframe[0].proto.columns
    assert '"link"' in config and "run\\\\?run=" in config


def test_filters(store: Store) -> None:
    seed_run(store, tokens=5, model="tiny")
    seed_run(store, tokens=5, model="small", source="estimate", measured=False, components=("cpu",))
    seed_run(store, tokens=5, model="small", status="failed")
    at = open_page()
    at.multiselect(key="f_model").set_value(["small"]).run()
    assert len(table(at)) == 2
    at.multiselect(key="f_status").set_value(["failed"]).run()
    assert list(table(at)["status"]) == ["failed"]
    at.multiselect(key="f_status").set_value([]).run()
    at.multiselect(key="f_source").set_value(["estimate"]).run()
    assert list(table(at)["model"]) == ["small"]


def test_delete_needs_confirmation_and_only_finished_runs(store: Store) -> None:
    keep = seed_run(store, tokens=5)
    gone = seed_run(store, tokens=5)
    running = seed_run(store, tokens=5, status="running")
    at = open_page()
    assert at.selectbox(key="delete_pick").options == [f"#{gone} tiny (done)", f"#{keep} tiny (done)"]
    at.selectbox(key="delete_pick").set_value(gone).run()
    at.button(key="delete").click().run()
    assert any(f"Delete run #{gone}" in t for t in texts(at, "warning"))
    assert store.get_run(gone) is not None
    at.button(key="delete_no").click().run()
    assert store.get_run(gone) is not None and not texts(at, "warning")
    at.button(key="delete").click().run()
    at.button(key="delete_yes").click().run()
    assert not at.exception
    assert store.get_run(gone) is None and store.get_run(keep) is not None
    assert any(f"Run #{gone} deleted" in t for t in texts(at, "success"))
    assert len(table(at)) == 2
    assert store.get_run(running)["status"] == "running"
