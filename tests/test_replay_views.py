"""Replayed layers wherever people read them: the CSV export, the Perfetto trace, the run page's section, the Compare
page, the chart builders, the CLI's text summary, and the new tables' migration."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from seed import FLAGGED_LAYER, REPLAY_W, charts_by_title, open_page, seed_run, texts

from energyprof import charts
from energyprof.commands.profile import format_summary
from energyprof.export import REPLAY_COLUMNS, REPLAY_TID, export_csv, export_trace
from energyprof.store import Store
from energyprof.store.schema import MIGRATIONS
from energyprof.summary import RunSummary

RUN = "pages/run.py"


@pytest.fixture
def run_id(store: Store) -> int:
    return seed_run(store, tokens=40, layer_calls=400, replay=True)


def test_new_tables_come_with_a_forward_migration(store: Store) -> None:
    assert store.schema_version == len(MIGRATIONS)
    plain = seed_run(store, tokens=10, layer_calls=100)
    assert store.layer_replay(plain).empty and store.replay_trials(plain).empty
    assert export_csv(store, plain, "layer-replay").splitlines()[0].split(",") == list(REPLAY_COLUMNS)


def test_layer_replay_csv_has_the_promised_columns_and_flags(store: Store, run_id: int) -> None:
    df = pd.read_csv(io.StringIO(export_csv(store, run_id, "layer-replay")))
    assert list(df.columns[:len(REPLAY_COLUMNS)]) == list(REPLAY_COLUMNS)
    for comp in ("cpu", "gpu", "ane", "package"):
        assert {f"energy_j_per_call_{comp}", f"net_energy_j_per_call_{comp}", f"ci95_j_{comp}"} <= set(df.columns)
    layers = store.layers(run_id)
    assert len(df) == 2 * (len(layers) - 1 + 1)  # every hooked layer and the reference, in two phases
    blocks = df[df["kind"] == "block"]
    assert blocks["power_w"].tolist() == [REPLAY_W["block"]] * len(blocks)
    assert df.loc[df["layer"] == FLAGGED_LAYER, "flagged"].tolist() == [True, True]
    assert not df.loc[df["layer"] != FLAGGED_LAYER, "flagged"].any()
    assert set(df["provenance"]) == {"measured"} and set(df["phase"]) == {"prefill", "decode"}
    whole = df["energy_j_per_call"]
    assert df["energy_j_per_call_package"].tolist() == pytest.approx(whole.tolist())
    parts = df[["energy_j_per_call_cpu", "energy_j_per_call_gpu", "energy_j_per_call_ane"]].sum(axis=1)
    assert parts.tolist() == pytest.approx(whole.tolist())
    estimated = seed_run(store, tokens=10, layer_calls=100, replay=True, source="estimate", measured=False,
                         components=("cpu",))
    assert set(pd.read_csv(io.StringIO(export_csv(store, estimated, "layer-replay")))["provenance"]) == {"estimated"}


def test_trace_has_a_replay_track(store: Store, run_id: int) -> None:
    trace = export_trace(store, run_id)
    json.dumps(trace, allow_nan=False)
    replay = [e for e in trace["traceEvents"] if e.get("tid") == REPLAY_TID and e["ph"] == "X"]
    assert len(replay) == len(store.replay_trials(run_id))
    first = replay[0]
    assert first["name"] == "replay (cache restore) (prefill) 1" and first["cat"] == "replay.restore"
    block = next(e for e in replay if e["name"].startswith(f"replay {FLAGGED_LAYER} (decode)"))
    assert block["args"]["layer.power_w"] == REPLAY_W["block"] and block["args"]["calls"] > 0
    names = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name" and e["tid"] == REPLAY_TID]
    assert names == ["replay (each layer alone, measured per layer)"]


def test_run_page_shows_the_replay_section(store: Store, run_id: int) -> None:
    summary = store.get_run(run_id)["summary"]
    at = open_page(RUN, {"run": str(run_id)})
    assert not at.exception
    assert "Measured per layer (replay)" in [s.value for s in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    for phase in ("prefill", "decode"):
        assert metrics[f"Replay closure, {phase}"] == f"{summary['replay_closure'][phase]:.3g}"
    assert any(t.startswith(f"1 of these figures have a 95% CI wider than their mean ({FLAGGED_LAYER})")
               for t in texts(at, "warning"))
    found = charts_by_title(at)
    energy = found["Energy per call, replayed (decode), mean ± 95% CI (J)"]
    assert [layer["mark"]["type"] for layer in energy["spec"]["layer"]] == ["bar", "rule"]
    assert energy["spec"]["layer"][1]["encoding"]["x2"]["field"] == "hi"
    hooked = len(store.layers(run_id)) - 1
    assert energy["rows"] == hooked
    assert found["Power per layer while replayed (decode) (W)"]["rows"] == hooked + 1  # and the idle baseline
    assert "Power per layer kind while replayed (decode) (W)" in found
    assert all(c["rows"] <= charts.MAX_ROWS for c in found.values())
    frames = [d.value for d in at.dataframe]
    kinds = next(f for f in frames if "energy_j_per_step" in f)
    assert list(kinds["kind"]) == ["embedding", "block", "norm", "lm_head"]
    assert kinds.loc[kinds["kind"] == "block", "power_w"].item() == pytest.approx(REPLAY_W["block"])
    table = next(f for f in frames if "energy_j_per_call" in f)
    assert len(table) == 2 * (hooked + 1) and "ci95_j" in table
    at.segmented_control(key="replay_phase").set_value("prefill").run()
    assert "Energy per call, replayed (prefill), mean ± 95% CI (J)" in charts_by_title(at)
    plain = seed_run(store, tokens=10, layer_calls=100)
    assert "Measured per layer (replay)" not in [s.value for s in open_page(RUN, {"run": str(plain)}).subheader]


def test_compare_page_compares_replayed_layers_when_runs_have_them(store: Store) -> None:
    a = seed_run(store, tokens=20, layer_calls=200, replay=True)
    b = seed_run(store, tokens=20, layer_calls=200, replay=True, model="small")
    c = seed_run(store, tokens=20, layer_calls=200)
    at = open_page("pages/compare.py", {"runs": f"{a},{b},{c}"})
    assert not at.exception
    found = charts_by_title(at)
    assert found["Replayed energy per call, decode (J)"]["rows"] == 2 * (len(store.layers(a)) - 1)
    assert "Power while replayed, decode (W)" in found
    alone = open_page("pages/compare.py", {"runs": f"{a},{c}"})
    assert "Replayed energy per call, decode (J)" not in charts_by_title(alone)


def _replay_frame() -> pd.DataFrame:
    rows = [("(cache restore)", "restore", -1, "decode", 1e-6, 1e-5, 0.0, 10.0, False),
            ("embed", "embedding", 0, "decode", 1e-5, 2e-4, 1e-5, 20.0, False),
            ("l0", "block", 1, "decode", 1e-3, 6e-2, 1e-1, 60.0, True),
            ("l0.attn", "attention", 2, "decode", 4e-4, 4.8e-2, 1e-3, 120.0, False),
            ("l0.mlp", "mlp", 3, "decode", 5e-4, 1.5e-1, 1e-3, 300.0, False),
            ("l1.attn", "attention", 4, "decode", 6e-4, 7.2e-2, 1e-3, 120.0, False),
            ("l0.mlp", "mlp", 3, "prefill", 5e-3, 1.5, 1e-2, 300.0, False)]
    df = pd.DataFrame(rows, columns=["layer", "kind", "position", "phase", "time_s_per_call", "energy_j_per_call",
                                     "ci95_j", "power_w", "flagged"])
    return df.assign(net_energy_j_per_call=df["energy_j_per_call"] / 2, net_ci95_j=df["ci95_j"],
                     net_power_w=df["power_w"] - 10, calls=100, trials=3, cv=0.1)


def test_replay_chart_builders() -> None:
    df = _replay_frame()
    energy = charts.replay_energy_bars(df, phase="decode").to_dict()
    data = next(iter(energy["datasets"].values()))
    assert [d["layer"] for d in data] == ["embed", "l0", "l0.attn", "l0.mlp", "l1.attn"]  # no reference
    l0 = data[1]
    assert (l0["lo"], l0["hi"], l0["wide"]) == (pytest.approx(-0.04), pytest.approx(0.16), "CI wider than the mean")
    assert energy["layer"][0]["encoding"]["opacity"]["field"] == "wide"
    net = charts.replay_energy_bars(df, phase="decode", net=True, estimated=True).to_dict()
    assert net["title"] == "Net energy per call, replayed (decode), mean ± 95% CI (J) (estimated)"
    power = charts.replay_power_bars(df, phase="decode", baseline_w=10.0).to_dict()
    assert power["layer"][1]["mark"]["type"] == "rule" and charts.chart_rows(charts.replay_power_bars(df)) == 6
    summary = charts.replay_kind_summary(df)
    assert list(summary["kind"]) == ["embedding", "block", "attention", "mlp", "mlp"]
    attn = summary[(summary["kind"] == "attention")].iloc[0]
    assert (attn["layers"], attn["energy_j_per_step"], attn["time_s_per_step"]) == (
        2, pytest.approx(0.12), pytest.approx(1e-3))
    assert attn["power_w"] == pytest.approx(120.0)
    assert charts.replay_kind_bars(summary, phase="prefill").to_dict()["title"].startswith("Power per layer kind")
    empty = df.iloc[0:0]
    for chart in (charts.replay_energy_bars(empty), charts.replay_power_bars(empty),
                  charts.replay_kind_bars(charts.replay_kind_summary(empty))):
        assert chart.to_dict()["mark"]["type"] == "text"
    big = pd.concat([df.iloc[[2]]] * (charts.MAX_ROWS + 50), ignore_index=True)
    assert charts.chart_rows(charts.replay_energy_bars(big)) <= charts.MAX_ROWS


def test_cli_text_summary_gives_the_replay_closure_and_flags() -> None:
    summary = RunSummary(run_id=3, status="done", source="estimate", measured=False, model="tiny", device="cpu",
                         dtype="float32", layers="modules", layer_energy="replay", replay_layers=30, replay_trials=3,
                         replay_s=1.0, replay_wall_s=98.5, replay_steps={"prefill": 0, "decode": 16},
                         replay_sum_j={"prefill": 0.5, "decode": 0.02}, replay_step_j={"prefill": 0.6, "decode": 0.04},
                         replay_closure={"prefill": 0.5 / 0.6, "decode": 0.5}, replay_flagged=2,
                         replay_skipped=["lm_head (decode) could not be replayed alone: RuntimeError: boom."])
    text = format_summary(summary)
    assert "Replayed layers: 30 layer × phase figures, 3 trials × 1 s (estimated) in 98.5 s" in text
    assert ("Replay closure (top-level layers / step): prefill 0.833 (0.5 J replayed / 0.6 J measured step 0)   "
            "decode 0.5 (0.02 J replayed / 0.04 J measured step 16)") in text
    assert "Replay: 2 figures have a 95% CI wider than their mean" in text
    assert "Replay skipped lm_head (decode) could not be replayed alone: RuntimeError: boom." in text
    assert "Replay" not in format_summary(RunSummary(run_id=4, status="done", layer_energy="apportioned"))
