"""The run page (`/run?run=N`) on seeded runs: metrics, charts (fields and rows shipped), badges, escaping."""

from __future__ import annotations

import html
import io
import json

import pandas as pd
import pytest
from seed import charts_by_title, open_page, seed_run, texts

from energyprof import charts
from energyprof.export import CSV_KINDS, export_csv, trace_json
from energyprof.store import Store

RUN = "pages/run.py"


def chart_frame(at, title: str) -> pd.DataFrame:
    """The data one chart (found by title) ships to the browser."""
    import pyarrow as pa

    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        name = spec.get("title")
        if (name.get("text") if isinstance(name, dict) else name) == title:
            frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets]
            return pd.concat(frames) if frames else pd.DataFrame()
    raise AssertionError(f"no chart titled {title!r}")


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_profile_run_metrics_charts_and_downloads(store: Store) -> None:
    run_id = seed_run(store, tokens=40, layer_calls=400)
    summary = store.get_run(run_id)["summary"]
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    m = metrics(at)
    gross = summary["total_energy_j"]
    assert gross == summary["energy_j"]["package"]
    assert m["Gross energy"] == f"{gross:.3g} J"
    assert m["Net energy"] == f"{summary['net_total_energy_j']:.3g} J"
    decode = summary["j_per_token"]["decode"]
    assert m["J/token decode"] == f"{decode['mean']:.3g} ± {decode['ci95']:.2g} J"
    assert m["J/token prefill"] == f"{summary['j_per_token']['prefill']['mean']:.3g} J"  # one repeat: no CI
    assert m["Tokens/s"] == f"{summary['tokens_per_s']:.3g} tokens/s"
    assert m["Mean power"] == f"{summary['mean_w']['package']:.3g} W"
    assert m["Peak power"] == f"{summary['peak_w']['package']:.3g} W"
    assert m["Duration"] == f"{summary['duration_s']:.3g} s"

    found = charts_by_title(at)
    assert set(found) == {"Power per component over time (W)", "Energy per component (J)", "Energy per token (J)",
                          "Cumulative energy (J)", "Energy per layer (J), largest first",
                          "Energy per layer and token step (J)", "Where the energy went (J)"}
    assert all(c["rows"] <= charts.MAX_ROWS for c in found.values())
    assert found["Energy per token (J)"]["rows"] == 40
    assert found["Energy per layer (J), largest first"]["rows"] == 10
    assert found["Energy per layer and token step (J)"]["rows"] == 400
    assert found["Energy per component (J)"]["rows"] == 4
    shipped = chart_frame(at, "Energy per component (J)").set_index("component")["energy_j"].to_dict()
    assert shipped == pytest.approx(summary["energy_j"])  # the workload's gross energy, not the whole recording
    timeline = found["Power per component over time (W)"]["spec"]
    layer_marks = [layer["mark"]["type"] for layer in timeline["layer"]]
    assert layer_marks == ["rect", "tick", "line"]
    assert timeline["layer"][2]["encoding"]["y"]["title"] == "Power (W)"

    labels = [b.label for b in at.get("download_button")]
    for what in ("Tokens", "Layers", "Every layer call", "Power samples", "Summary", "Perfetto trace", "Report"):
        assert any(label.startswith(f"⬇ {what}") for label in labels), what
    assert {d.proto.id.rsplit("-", 2)[-2] for d in at.get("download_button")} >= {
        "tokens", "layers", "calls", "samples", "summary", "trace"}
    assert len(at.dataframe) >= 3
    assert not texts(at, "error")
    assert "estimated" not in " ".join(texts(at.main, "markdown"))


def test_downloads_hold_the_full_data(store: Store) -> None:
    run_id = seed_run(store, tokens=30, layer_calls=300, replay=True)
    for what in CSV_KINDS:  # what the download buttons hand to export_csv when clicked
        assert export_csv(store, run_id, what).count("\n") > 1, what
    assert len(pd.read_csv(io.StringIO(export_csv(store, run_id, "calls")))) == 300
    tokens = pd.read_csv(io.StringIO(export_csv(store, run_id, "tokens")))
    assert len(tokens) == 30 and {"energy_j_cpu", "energy_j_package"} <= set(tokens.columns)
    assert json.loads(trace_json(store, run_id))["traceEvents"]


def test_estimated_run_is_labelled_everywhere(store: Store) -> None:
    run_id = seed_run(store, tokens=20, layer_calls=100, source="estimate", measured=False, components=("cpu",))
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    energy_labels = [m.label for m in at.metric if m.label not in ("Tokens/s", "Duration")]
    assert energy_labels and all(label.endswith("(estimated)") for label in energy_labels)
    titles = charts_by_title(at)
    assert titles and all(t.endswith("(estimated)") for t in titles)
    assert ":orange-badge[estimated]" in " ".join(texts(at, "markdown") + texts(at, "caption"))


def test_time_apportioned_badge(store: Store) -> None:
    run_id = seed_run(store, tokens=30, layer_calls=300)
    at = open_page(RUN, {"run": str(run_id)})
    notes = " ".join(texts(at, "markdown"))
    assert "time-apportioned" in notes
    assert "layer calls are shorter than the sampling window, their energy is a share of the window, " \
           "not a measurement" in notes


def test_token_text_is_escaped(store: Store) -> None:
    evil = ["<script>alert('x')</script>", "<img src=x onerror=alert(1)>", " & \"quoted\""]
    run_id = seed_run(store, tokens=6, token_texts=evil)
    at = open_page(RUN, {"run": str(run_id)})
    body = " ".join(h.proto.body for h in at.html)
    assert "<script>" not in body and "<img" not in body
    assert html.escape(evil[0], quote=True) in body
    assert html.escape(evil[1], quote=True) in body
    assert body.count("<span") == 6


@pytest.mark.parametrize(("status", "kind", "message"), [
    ("failed", "error", "This run failed: CUDA out of memory"),
    ("cancelled", "warning", "This run was cancelled: Cancelled by the user"),
])
def test_failed_and_cancelled_runs_show_their_message(store: Store, status: str, kind: str, message: str) -> None:
    run_id = seed_run(store, tokens=8, status=status)
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    assert any(t.startswith(message) for t in texts(at, kind))


def test_summary_warnings_are_shown(store: Store) -> None:
    run_id = seed_run(store, tokens=8)
    summary = store.get_run(run_id)["summary"]
    store.update_run(run_id, summary={**summary, "warnings": ["The GPU throttled during repeat 2."]})
    at = open_page(RUN, {"run": str(run_id)})
    assert "The GPU throttled during repeat 2." in texts(at, "warning")


def test_power_incomplete_warning(store: Store) -> None:
    run_id = seed_run(store, tokens=8, power_incomplete=True)
    at = open_page(RUN, {"run": str(run_id)})
    assert any("Power data is incomplete" in t for t in texts(at, "warning"))


def test_sample_run_shows_only_power(store: Store) -> None:
    run_id = seed_run(store, tokens=0, kind="capture", minutes=0.2, components=("cpu", "gpu", "ane"))
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    assert set(charts_by_title(at)) == {"Power per component over time (W)", "Energy per component (J)"}
    assert set(metrics(at)) == {"Gross energy", "Mean power", "Peak power", "Duration"}
    labels = [b.label for b in at.get("download_button")]
    assert len(labels) == 5 and "⬇ Bundle (SQLite)" in labels and not at.html  # samples, summary, trace, bundle,
    assert labels[-1].startswith("⬇ Report (HTML")  # and the report


def test_repeats_pick_one_repeat(store: Store) -> None:
    run_id = seed_run(store, tokens=12, layer_calls=12 * 3 * 5, repeats=3)
    at = open_page(RUN, {"run": str(run_id)})
    assert at.selectbox(key="repeat").options == ["repeat 1 of 3", "repeat 2 of 3", "repeat 3 of 3"]
    assert at.selectbox(key="repeat").value == 0
    at.selectbox(key="repeat").set_value(2).run()
    assert not at.exception
    assert charts_by_title(at)["Energy per token (J)"]["rows"] == 12


def test_unknown_and_missing_run(store: Store) -> None:
    seed_run(store, tokens=4)
    at = open_page(RUN, {"run": "999"})
    assert any("There is no run #999" in t for t in texts(at, "error"))
    at = open_page(RUN)
    assert at.selectbox(key="open_run").options == ["#1 tiny (done)"]


def test_running_run_shows_live_progress(store: Store) -> None:
    run_id = seed_run(store, tokens=20, status="running")
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    assert metrics(at)["Tokens done"] == "10"
    assert at.get("progress")
    assert at.button(key=f"cancel-{run_id}")


def test_timeline_shows_the_workload_first_and_the_whole_recording_on_request(store: Store) -> None:
    from energyprof.power.base import PowerWindow

    run_id = store.create_run("profile", source="powermetrics", measured=True, model="tiny")
    store.update_run(run_id, clock_t0_ns=0)
    second = 1_000_000_000
    store.add_power_windows(run_id, [PowerWindow(i * second // 10, (i + 1) * second // 10, {"cpu": 100.0})
                                     for i in range(600)])  # 60 s recorded: loading, baseline, workload
    store.add_steps(run_id, [(0, i, "prefill" if i == 0 else "decode", (50 + i) * second // 10,
                              (51 + i) * second // 10, 1, 65, "a") for i in range(10)])  # workload: 5 s .. 6 s
    store.finish_run(run_id, "done", summary={"repeats": 1})
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    workload = chart_frame(at, "Power per component over time (W)")["t_s"]
    assert 4.8 <= workload.min() and workload.max() <= 6.2
    at.button_group(key="time_range").set_value("Whole recording").run()
    whole = chart_frame(at, "Power per component over time (W)")["t_s"]
    assert whole.min() == 0.0 and whole.max() == pytest.approx(60.0)
