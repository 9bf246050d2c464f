"""The compare page: runs from the URL or the picker, J/token with error bars, power per component, layers."""

from __future__ import annotations

import pytest
from seed import charts_by_title, open_page, seed_run, texts

from energyprof import charts
from energyprof.store import Store

PAGE = "pages/compare.py"


def test_compare_from_url(store: Store) -> None:
    a = seed_run(store, tokens=20, layer_calls=200, model="tiny")
    b = seed_run(store, tokens=30, layer_calls=300, model="small", repeats=2)
    at = open_page(PAGE, {"runs": f"{a},{b}"})
    assert not at.exception
    assert at.multiselect(key="compare_pick").value == [a, b]
    df = at.dataframe[0].value
    assert list(df["run"]) == [f"#{a} tiny", f"#{b} small"]
    sa, sb = store.get_run(a)["summary"], store.get_run(b)["summary"]
    d = sa["j_per_token"]["decode"]
    assert df.iloc[0]["J/token decode"] == f"{d['mean']:.3g} ± {d['ci95']:.2g} J"
    assert df.iloc[1]["tokens/s"] == sb["tokens_per_s"]
    found = charts_by_title(at)
    assert set(found) == {"Energy per decode token with 95% CI (J)", "Energy per prefill token with 95% CI (J)",
                          "Mean power per component (W)", "Energy per layer per generated token (J)"}
    assert all(c["rows"] <= charts.MAX_ROWS for c in found.values())
    jpt = found["Energy per decode token with 95% CI (J)"]
    assert jpt["rows"] == 2
    marks = [layer["mark"]["type"] for layer in jpt["spec"]["layer"]]
    assert marks[:2] == ["bar", "rule"] and jpt["spec"]["layer"][1]["encoding"]["y2"]["field"] == "hi"
    assert found["Mean power per component (W)"]["rows"] == 8
    assert found["Energy per layer per generated token (J)"]["rows"] == 10 + 5  # 200 / 20, 300 / (30 × 2)


def test_picking_runs_updates_the_url(store: Store) -> None:
    a = seed_run(store, tokens=5)
    b = seed_run(store, tokens=5, source="estimate", measured=False, components=("cpu",))
    at = open_page(PAGE)
    assert any("Pick two or more runs" in t for t in texts(at, "info"))
    at.multiselect(key="compare_pick").set_value([a, b]).run()
    assert not at.exception
    assert at.query_params["runs"] in ([f"{a},{b}"], f"{a},{b}")
    assert all(t.endswith("(estimated)") for t in charts_by_title(at))


def test_no_profile_runs(store: Store) -> None:
    seed_run(store, tokens=0, kind="sample", minutes=0.1)
    at = open_page(PAGE)
    assert any("No profiling runs yet" in t for t in texts(at, "info"))


def test_the_table_shows_batch_ttft_share_measured_and_wh(store: Store) -> None:
    """What tells two configurations apart beyond J/token: batch, time to first token, how measured, Wh per 1k."""
    a = seed_run(store, tokens=20, model="tiny")
    b = seed_run(store, tokens=20, model="small")
    summary = store.get_run(b)["summary"]
    summary.update(batch=4, ttft_s={"mean": 0.25, "ci95": 0.02, "n": 3}, tokens_measured_share=0.75)
    store.update_run(b, summary=summary)
    at = open_page(PAGE, {"runs": f"{a},{b}"})
    assert not at.exception, [e.value for e in at.exception]
    df = at.dataframe[0].value.set_index("run")
    assert list(df["batch"]) == [1, 4]
    assert df.loc[f"#{a} tiny", "TTFT"] == "—" and df.loc[f"#{b} small", "TTFT"] == "250 ± 20 ms"
    assert df.loc[f"#{b} small", "tokens measured"] == 75.0
    decode = summary["j_per_token"]["decode"]["mean"]
    assert df.loc[f"#{b} small", "Wh/1k tokens"] == pytest.approx(decode * 1000 / 3600)
