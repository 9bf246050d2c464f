"""energyprof.charts: pure DataFrame -> Altair builders with units, the estimated label and a 5,000-row cap."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energyprof import charts

N_TOKENS = 4000


def tokens_frame(n: int = N_TOKENS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "repeat": 0, "idx": np.arange(n), "phase": ["prefill"] + ["decode"] * (n - 1),
        "t0_s": np.arange(n) * 0.05, "t1_s": np.arange(1, n + 1) * 0.05, "duration_s": 0.05,
        "n_tokens": 1, "token_id": 1, "token_text": "x", "energy_j": rng.uniform(0.5, 1.5, n),
        "net_energy_j": rng.uniform(0.2, 1.0, n), "resolution": 0.5})


def timeline_frame(points: int = 2000,
                   components: tuple[str, ...] = ("cpu", "gpu", "ane", "dram", "package")) -> pd.DataFrame:
    t = np.repeat(np.arange(points) * 0.1, len(components))
    return pd.DataFrame({"t_s": t, "component": list(components) * points,
                         "power_w": np.linspace(1, 30, len(t)), "peak_w": np.linspace(2, 40, len(t))})


def curve_frame(n: int) -> pd.DataFrame:
    """Sweep curves: n points per phase, in series of 4 batch sizes."""
    x = np.tile([1.0, 2.0, 4.0, 8.0], n // 4 + 1)[:n]
    return pd.DataFrame({"x": np.concatenate([x, x]), "phase": ["decode"] * n + ["prefill"] * n,
                         "mean": np.linspace(0.1, 1.0, 2 * n), "ci95": 0.01,
                         "series": [f"{i // 4} prompt tokens" for i in range(n)] * 2})


def sweep_points(n: int) -> pd.DataFrame:
    j = np.linspace(0.05, 1.0, n)
    return pd.DataFrame({"label": [f"p{i}" for i in range(n)], "j_per_token": j, "tokens_per_s": 100 * j,
                         "pareto": [i % 7 == 0 for i in range(n)], "batch": 1, "prompt_tokens": 16})


@functools.cache
def big_charts() -> dict[str, object]:
    """Every builder fed more data than it may ship."""
    tokens = tokens_frame()
    layers = pd.DataFrame({"layer_id": range(6000), "name": [f"l{i}" for i in range(6000)], "kind": "block",
                           "position": range(6000), "energy_j": 1.0, "net_energy_j": 0.5, "time_s": 0.1,
                           "calls": 10, "resolution": 0.3})
    matrix = pd.DataFrame({"layer": [f"l{i % 50}" for i in range(7000)], "kind": "block",
                           "position": [i % 50 for i in range(7000)], "step_lo": range(7000),
                           "step_hi": range(7000), "energy_j": 0.1, "time_s": 0.01})
    runs = [f"#{i}" for i in range(3000)]
    jpt = pd.DataFrame({"run": runs * 2, "phase": ["prefill"] * 3000 + ["decode"] * 3000, "mean": 1.0,
                        "ci95": 0.1})
    power = pd.DataFrame({"run": runs * 2, "component": ["cpu"] * 3000 + ["gpu"] * 3000, "mean_w": 3.0})
    compare_layers = pd.DataFrame({"run": runs * 2, "layer": ["a"] * 3000 + ["b"] * 3000,
                                   "position": [0] * 3000 + [1] * 3000, "energy_j": 2.0})
    totals = pd.DataFrame({"component": ["cpu", "gpu", "package"], "energy_j": [1.0, 2.0, 4.0],
                           "mean_w": [1.0, 2.0, 4.0]})
    return {
        "sweep_curves": charts.sweep_curves(curve_frame(4000), "Batch size (sequences)"),
        "sweep_pareto": charts.sweep_pareto(sweep_points(6000)),
        "power_timeline": charts.power_timeline(timeline_frame(), tokens),
        "token_energy_bars": charts.token_energy_bars(tokens),
        "cumulative_energy": charts.cumulative_energy(pd.concat([tokens, tokens.assign(repeat=1)] * 2)),
        "layer_energy_bars": charts.layer_energy_bars(layers),
        "layer_step_heatmap": charts.layer_step_heatmap(matrix),
        "component_breakdown": charts.component_breakdown(totals),
        "compare_j_per_token": charts.compare_j_per_token(jpt),
        "compare_power": charts.compare_power(power),
        "compare_layers": charts.compare_layers(compare_layers),
    }


@functools.cache
def big_specs() -> dict[str, dict]:
    return {name: chart.to_dict() for name, chart in big_charts().items()}


def test_every_chart_ships_at_most_max_rows() -> None:
    for name, chart in big_charts().items():
        assert 0 < charts.chart_rows(chart) <= charts.MAX_ROWS, name


def _titles(spec: dict) -> list[str]:
    """Chart title plus every axis, legend and tooltip title in the spec."""
    found = []
    if isinstance(spec.get("title"), str):
        found.append(spec["title"])
    for node in _walk(spec):
        enc = node.get("encoding") if isinstance(node, dict) else None
        if not isinstance(enc, dict):
            continue
        for channel, value in enc.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and item.get("type") == "quantitative" and "title" in item:
                    found.append((channel, item["title"]))
    return found


def _walk(node: object):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("name", list(big_charts()))
def test_units_in_titles_axes_and_tooltips(name: str) -> None:
    spec = big_specs()[name]
    titles = _titles(spec)
    assert isinstance(titles[0], str) and any(u in titles[0] for u in ("(J)", "(W)", "(s)")), titles[0]
    quantitative = [t for t in titles[1:] if t[0] not in ("x2", "y2", "xOffset", "yOffset")]
    assert quantitative
    for channel, text in quantitative:
        if text in ("Repeat", "Step", "First token", "Last token", "First step", "Last step", "Calls",
                    "Token", "Token (step index)", "Resolution (interval / window)", "Batch size (sequences)"):
            continue  # counts and indices carry no unit
        assert any(u in text for u in ("(J)", "(W)", "(s)", "± (J)", "(tokens/s)")), (name, channel, text)


def test_estimated_label_on_every_builder() -> None:
    tokens = tokens_frame(10)
    frames = {
        charts.layer_energy_bars: pd.DataFrame({"name": ["a"], "kind": ["block"], "energy_j": [1.0]}),
        charts.layer_step_heatmap: pd.DataFrame({"layer": ["a"], "kind": ["block"], "position": [0], "step_lo": [0],
                                                 "step_hi": [0], "energy_j": [1.0], "time_s": [0.1]}),
        charts.component_breakdown: pd.DataFrame({"component": ["cpu"], "energy_j": [1.0], "mean_w": [1.0]}),
        charts.compare_j_per_token: pd.DataFrame({"run": ["a"], "phase": ["decode"], "mean": [1.0], "ci95": [0.1]}),
        charts.compare_power: pd.DataFrame({"run": ["a"], "component": ["cpu"], "mean_w": [1.0]}),
        charts.compare_layers: pd.DataFrame({"run": ["a"], "layer": ["x"], "position": [0], "energy_j": [1.0]}),
        charts.token_energy_bars: tokens,
        charts.cumulative_energy: tokens,
        charts.sweep_pareto: sweep_points(5),
    }
    for builder, frame in frames.items():
        assert builder(frame, estimated=True).to_dict()["title"].endswith("(estimated)"), builder.__name__
        assert "(estimated)" not in builder(frame).to_dict()["title"], builder.__name__


def test_token_bars_bin_long_runs_and_keep_the_prefill_apart() -> None:
    tokens = tokens_frame()
    chart = charts.token_energy_bars(tokens)
    data = next(iter(chart.to_dict()["datasets"].values()))
    assert 500 <= len(data) <= charts.MAX_BARS
    df = pd.DataFrame(data)
    assert df.loc[df["phase"] == "prefill", "rows"].tolist() == [1]
    assert df["rows"].sum() == N_TOKENS
    assert df["idx_lo"].min() == 0 and df["idx_hi"].max() == N_TOKENS - 1
    weighted = (df["energy_j"] * df["rows"]).sum()
    assert weighted == pytest.approx(tokens["energy_j"].sum())
    assert chart.to_dict()["title"] == "Energy per token (J), mean of 5 tokens per bar"
    small = charts.token_energy_bars(tokens_frame(50))
    assert len(next(iter(small.to_dict()["datasets"].values()))) == 50
    assert small.to_dict()["title"] == "Energy per token (J)"


def test_downsample_keeps_sums_and_bounds() -> None:
    df = pd.DataFrame({"g": ["a"] * 9000 + ["b"] * 1000, "i": range(10000), "e": 1.0, "p": 2.0})
    out = charts.downsample(df, 1000, by=["g"], sum_cols=["e"], mean_cols=["p"], index_col="i")
    assert len(out) <= 1000
    assert out["e"].sum() == pytest.approx(10000) and (out["p"] == 2.0).all()
    assert out["rows"].sum() == 10000 and set(out["g"]) == {"a", "b"}
    assert charts.downsample(df.head(10), 1000) is not None and len(charts.downsample(df.head(10), 1000)) == 10


def test_power_timeline_layers_and_budget() -> None:
    tokens = tokens_frame()
    spec = charts.power_timeline(timeline_frame(points=700), tokens).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rect", "tick", "line"]
    rows = {name: len(values) for name, values in spec["datasets"].items()}
    assert sum(rows.values()) <= charts.MAX_ROWS
    assert 3500 in rows.values()  # the lines themselves are not thinned when they fit
    spans = charts.phase_spans(tokens)
    assert spans[["phase", "first", "last"]].values.tolist() == [["prefill", 0, 0], ["decode", 1, N_TOKENS - 1]]


def test_whole_system_prefers_package() -> None:
    df = pd.DataFrame({"name": ["a", "a", "a", "b", "b"], "component": ["cpu", "gpu", "package", "cpu", "gpu"],
                       "energy_j": [1.0, 2.0, 5.0, 1.0, 2.0]})
    assert charts.whole_system(df, ["name"], ["energy_j"])["energy_j"].tolist() == [5.0, 3.0]  # b: no package
    parts = charts.whole_system(df[df["component"] != "package"], ["name"], ["energy_j"])
    assert parts["energy_j"].tolist() == [3.0, 3.0]


def test_empty_frames_give_a_note_not_an_error() -> None:
    empty_tokens = tokens_frame(2).head(0)
    assert "No power samples" in charts.power_timeline(pd.DataFrame(columns=["t_s", "component", "power_w",
                                                                              "peak_w"])).to_dict()["title"]
    assert "No per-token" in charts.token_energy_bars(empty_tokens).to_dict()["title"]


def test_charts_module_does_not_import_streamlit() -> None:
    tree = ast.parse(Path(charts.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module}
    assert "streamlit" not in imported


def test_power_line_reaches_the_end_of_the_last_window() -> None:
    timeline = pd.DataFrame({"t_s": [0.0, 1.0, 2.0], "component": ["gpu"] * 3, "power_w": [1.0, 2.0, 3.0],
                             "peak_w": [1.0, 2.0, 3.0], "t1_s": [1.0, 2.0, 3.0]})
    spec = charts.power_timeline(timeline).to_dict()
    lines = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "line")
    values = spec["datasets"][(lines.get("data") or spec["data"])["name"]]
    assert max(v["t_s"] for v in values) == 3.0
    assert [v["power_w"] for v in values if v["t_s"] == 3.0] == [3.0]


def test_sweep_curves_face_each_phase_on_its_own_scale_with_cis() -> None:
    spec = charts.sweep_curves(curve_frame(8), "Batch size (sequences)", estimated=True).to_dict()
    assert spec["title"] == "Energy per token against batch size, mean with 95% CI (J) (estimated)"
    assert spec["facet"]["column"]["sort"] == ["decode", charts.PREFILL_PER_PROMPT_TOKEN]
    assert spec["resolve"]["scale"]["y"] == "independent"
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
             for layer in spec["spec"]["layer"]]
    assert marks == ["line", "rule"]  # the mean and its 95% CI
    assert spec["spec"]["layer"][0]["encoding"]["x"]["scale"] == {"type": "log", "base": 2}
    values = next(iter(spec["datasets"].values()))
    assert {v["phase"] for v in values} == {"decode", charts.PREFILL_PER_PROMPT_TOKEN}
    assert all(v["lo"] == pytest.approx(v["mean"] - 0.01) and v["hi"] == pytest.approx(v["mean"] + 0.01)
               for v in values)
    linear = charts.sweep_curves(curve_frame(8).assign(x=lambda d: d["x"] / 8 + 10), "Prompt tokens per sequence")
    assert linear.to_dict()["spec"]["layer"][0]["encoding"]["x"]["scale"] == {"zero": False}
    assert "No finished points" in charts.sweep_curves(curve_frame(0), "Batch size (sequences)").to_dict()["title"]


def test_sweep_pareto_marks_and_joins_the_front() -> None:
    points = pd.DataFrame({"label": ["a", "b", "c"], "j_per_token": [1.0, 0.5, 2.0], "tokens_per_s": [5.0, 8.0, 9.0],
                           "pareto": [False, True, True], "batch": [1, 2, 4], "prompt_tokens": [16, 16, 16]})
    spec = charts.sweep_pareto(points).to_dict()
    line, dots = spec["layer"]
    assert line["mark"]["type"] == "line" and line["transform"] == [{"filter": "datum.pareto"}]
    assert dots["encoding"]["shape"]["field"] == "front"
    values = next(iter(spec["datasets"].values()))
    assert [v["front"] for v in values] == ["dominated", "Pareto front", "Pareto front"]


def test_repeats_are_shown_from_one_like_the_repeat_picker() -> None:
    """The cumulative chart's legend and tooltips number repeats 1..R, as the run page's picker does."""
    tokens = tokens_frame(20)
    spec = charts.cumulative_energy(pd.concat([tokens, tokens.assign(repeat=1)])).to_dict()
    assert {"calculate": charts.SHOWN_REPEAT, "as": "shown_repeat"} in spec["transform"]
    assert spec["encoding"]["color"]["field"] == "shown_repeat"
    assert {t["field"] for t in spec["encoding"]["tooltip"] if t["title"] == "Repeat"} == {"shown_repeat"}
