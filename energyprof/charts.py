"""Pure chart builders: DataFrame -> Altair chart, with units everywhere and at most MAX_ROWS rows shipped.

No streamlit here: pages pass what the store read, these functions shape it and draw it. Every builder
takes `estimated` (adds "(estimated)" to the title) and never embeds more than MAX_ROWS data rows,
whatever it is given: `downsample` bins rows when a frame is too long.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from energyprof.components import whole_system_long
from energyprof.provenance import labelled

MAX_ROWS = 5000
"""Most data rows any chart ships to the browser (all its datasets together)."""
SHOWN_REPEAT = "datum.repeat + 1"
"""Repeats are stored from 0 and shown from 1, as the run page's repeat picker shows them."""

MAX_BARS = 1000
"""Per-token bars beyond this are binned (a bar per group of consecutive tokens)."""

PHASE_COLORS = {"prefill": "#f58518", "decode": "#4c78a8", "forward": "#54a24b"}
COMPONENT_COLORS = {"cpu": "#4c78a8", "gpu": "#54a24b", "ane": "#b279a2", "dram": "#9d755d", "package": "#333333"}


def _component_scale(names: Sequence[str]) -> alt.Scale:
    """Fixed colours for the known components (same colour in every chart), others after them."""
    known = [c for c in COMPONENT_COLORS if c in set(names)]
    other = sorted(set(names) - set(known))
    palette = ["#e45756", "#72b7b2", "#eeca3b", "#ff9da6"]
    return alt.Scale(domain=known + other,
                     range=[COMPONENT_COLORS[c] for c in known] + [palette[i % 4] for i in range(len(other))])


RUN_SCALE = alt.Scale(scheme="tableau10")
LAYER_AXIS = alt.Axis(labelOverlap=False, labelLimit=180)


def _phase_scale(names: Sequence[str]) -> alt.Scale:
    present = [p for p in PHASE_COLORS if p in set(names)] or list(PHASE_COLORS)
    return alt.Scale(domain=present, range=[PHASE_COLORS[p] for p in present])


def title(text: str, estimated: bool) -> str:
    """A chart title, with "(estimated)" when the figures come from an estimate source (the one labelling rule)."""
    return labelled(text, estimated)


def downsample(df: pd.DataFrame, max_rows: int, *, by: Sequence[str] = (), sum_cols: Sequence[str] = (),
               mean_cols: Sequence[str] = (), max_cols: Sequence[str] = (), min_cols: Sequence[str] = (),
               last_cols: Sequence[str] = (), index_col: str | None = None) -> pd.DataFrame:
    """Bin consecutive rows (within each `by` group) so that at most max_rows rows remain.

    Columns are aggregated by sum, mean, max, min or last value as listed; other columns keep the bin's first
    value. With index_col, `<index_col>_lo`/`<index_col>_hi` give each bin's first and last index and
    `rows` how many rows it holds."""
    if index_col is not None and len(df) <= max_rows:
        return df.assign(**{f"{index_col}_lo": df[index_col], f"{index_col}_hi": df[index_col], "rows": 1})
    if len(df) <= max_rows:
        return df
    keys = list(by)
    groups = [g for _, g in df.groupby(keys, sort=False)] if keys else [df]
    out = []
    for group in groups:
        width = -(-len(group) // max(1, max_rows * len(group) // len(df)))
        bins = np.arange(len(group)) // width
        agg: dict[str, tuple[str, str]] = {}
        for col in group.columns:
            if col in sum_cols:
                agg[col] = (col, _sum_keep_nan)  # type: ignore[assignment]
            elif col in mean_cols:
                agg[col] = (col, "mean")
            elif col in max_cols:
                agg[col] = (col, "max")
            elif col in min_cols:
                agg[col] = (col, "min")
            elif col in last_cols:
                agg[col] = (col, "last")
            else:
                agg[col] = (col, "first")
        if index_col is not None:
            agg[f"{index_col}_lo"] = (index_col, "min")
            agg[f"{index_col}_hi"] = (index_col, "max")
            agg["rows"] = (index_col, "size")
        out.append(group.groupby(bins, sort=True).agg(**agg))
    result = pd.concat(out, ignore_index=True)
    return result.head(max_rows)


def _sum_keep_nan(values: pd.Series) -> float:
    return values.sum(min_count=1)


def whole_system(df: pd.DataFrame, keys: Sequence[str], value_cols: Sequence[str]) -> pd.DataFrame:
    """Per key, whole-system values from long per-component rows (the one rule: energyprof.components)."""
    return whole_system_long(df, keys, value_cols)


def _empty(text: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"note": [text]})).mark_text(size=14).encode(text="note:N").properties(
        title=text, height=60)


def chart_rows(chart: alt.TopLevelMixin) -> int:
    """Data rows a chart embeds (distinct datasets summed), as the browser would receive them."""
    spec = chart.to_dict(format="vega-lite")
    datasets = spec.get("datasets", {})
    inline = [d["values"] for d in _walk_data(spec) if isinstance(d, dict) and "values" in d]
    return sum(len(v) for v in datasets.values()) + sum(len(v) for v in inline if isinstance(v, list))


def _walk_data(node: object) -> list[object]:
    found = []
    if isinstance(node, dict):
        if "data" in node:
            found.append(node["data"])
        for key, value in node.items():
            if key != "datasets":
                found.extend(_walk_data(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk_data(value))
    return found


def phase_spans(steps: pd.DataFrame) -> pd.DataFrame:
    """Contiguous stretches of one phase (per repeat): repeat, phase, t0_s, t1_s, first and last step."""
    if steps.empty:
        return pd.DataFrame(columns=["repeat", "phase", "t0_s", "t1_s", "first", "last"])
    s = steps.sort_values(["repeat", "idx"])
    change = (s["phase"] != s["phase"].shift()) | (s["repeat"] != s["repeat"].shift())
    block = change.cumsum()
    return s.groupby(block).agg(repeat=("repeat", "first"), phase=("phase", "first"), t0_s=("t0_s", "min"),
                                t1_s=("t1_s", "max"), first=("idx", "min"), last=("idx", "max")
                                ).reset_index(drop=True)


def trusted_timeline(timeline: pd.DataFrame, unknown: Sequence[str] = (),
                     smooth_s: dict[str, float] | None = None) -> pd.DataFrame:
    """The power timeline (t_s, component, power_w, peak_w, t1_s) as a run's counter health allows: the rows of
    `unknown` components (a stalled or implausible counter) dropped, so they show as a gap, never as 0 W; and each
    component in `smooth_s` (a counter published in batches about every that many seconds) spread the way its figures
    are (energyprof.analysis.counter_chain.change_edges): each batch's energy over the time since the batch before,
    so the 0 W / spike saw-tooth of the raw differences is never drawn (the peak becomes that mean too). The time
    before the first batch in view and after the last one is left out, not drawn as 0 W; bins already a period wide
    are kept as they are."""
    out = timeline[~timeline["component"].isin(list(unknown))] if len(unknown) and not timeline.empty else timeline
    if not smooth_s or out.empty:
        return out
    parts = []
    for component, rows in out.groupby("component", sort=False):
        period = (smooth_s or {}).get(str(component))
        rows = rows.sort_values("t_s")
        t = rows["t_s"].to_numpy(dtype=float)
        if period and t.size > 1 and float(np.median(np.diff(t))) < period:
            rows = _spread_batches(rows)
        parts.append(rows)
    return pd.concat(parts, ignore_index=True).sort_values(["t_s", "component"], ignore_index=True)


def _spread_batches(rows: pd.DataFrame) -> pd.DataFrame:
    """One component's rows (sorted) with each batch (a row with energy) spread over the rows since the batch before."""
    t = rows["t_s"].to_numpy(dtype=float)
    ends = rows["t1_s"].to_numpy(dtype=float) if "t1_s" in rows else np.append(t[1:], t[-1])
    power = rows["power_w"].to_numpy(dtype=float)
    energy = np.nan_to_num(power) * np.clip(ends - t, 0, None)
    batches = np.flatnonzero(energy > 0)
    spread = np.full(t.size, np.nan)
    for before, batch in zip(batches, batches[1:], strict=False):
        spread[before + 1:batch + 1] = energy[batch] / (ends[batch] - ends[before])
    keep = ~np.isnan(spread)
    return rows.assign(power_w=spread, peak_w=spread)[keep]


def power_timeline(timeline: pd.DataFrame, steps: pd.DataFrame | None = None, *, estimated: bool = False,
                   height: int = 320) -> alt.LayerChart | alt.Chart:
    """Power per component over time (W), with prefill/decode shading and a tick at each step start."""
    if timeline.empty:
        return _empty(title("No power samples recorded", estimated))
    spans = phase_spans(steps) if steps is not None and not steps.empty else pd.DataFrame()
    lines_budget = MAX_ROWS - len(spans) - (min(len(steps), MAX_ROWS // 5) if steps is not None else 0)
    lines = downsample(timeline, max(100, lines_budget), by=["component"], mean_cols=["power_w", "t_s"],
                       max_cols=["peak_w"])
    if "t1_s" in timeline:  # a step line ends where the last window ends, not where it starts
        ends = timeline.sort_values("t_s").groupby("component").tail(1).assign(t_s=lambda d: d["t1_s"])
        lines = pd.concat([lines, ends[[c for c in lines.columns if c in ends.columns]]], ignore_index=True)
    free = alt.Scale(zero=False)  # the workload view starts seconds into the run
    x = alt.X("t_s:Q", title="Time since the run started (s)", scale=free)
    layers: list[alt.Chart] = []
    if not spans.empty:
        layers.append(alt.Chart(spans).transform_calculate(shown_repeat=SHOWN_REPEAT).mark_rect(opacity=0.12).encode(
            x=alt.X("t0_s:Q", scale=free), x2="t1_s:Q",
            color=alt.Color("phase:N", title="Phase", scale=_phase_scale(spans["phase"].unique())),
            tooltip=[alt.Tooltip("phase:N", title="Phase"), alt.Tooltip("shown_repeat:Q", title="Repeat"),
                     alt.Tooltip("t0_s:Q", title="Start (s)", format=".3f"),
                     alt.Tooltip("t1_s:Q", title="End (s)", format=".3f")]))
        budget = max(0, MAX_ROWS - len(lines) - len(spans))
        ticks = steps[["repeat", "idx", "phase", "t0_s"]]
        if len(ticks) > budget:
            ticks = ticks.iloc[:: -(-len(ticks) // max(1, budget))] if budget else ticks.iloc[0:0]
        layers.append(alt.Chart(ticks).mark_tick(opacity=0.35, thickness=1, size=8, color="#555").encode(
            x=alt.X("t0_s:Q", scale=free), y=alt.value(0),
            tooltip=[alt.Tooltip("idx:Q", title="Step"), alt.Tooltip("phase:N", title="Phase"),
                     alt.Tooltip("t0_s:Q", title="Step start (s)", format=".3f")]))
    layers.append(alt.Chart(lines).mark_line(interpolate="step-after", strokeWidth=1.5).encode(
        x=x, y=alt.Y("power_w:Q", title="Power (W)"),
        stroke=alt.Stroke("component:N", title="Component", scale=_component_scale(lines["component"].unique())),
        tooltip=[alt.Tooltip("component:N", title="Component"),
                 alt.Tooltip("t_s:Q", title="Time (s)", format=".2f"),
                 alt.Tooltip("power_w:Q", title="Mean power (W)", format=".2f"),
                 alt.Tooltip("peak_w:Q", title="Peak power (W)", format=".2f")]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        title=title("Power per component over time (W)", estimated), height=height)


def token_energy_bars(tokens: pd.DataFrame, *, estimated: bool = False, net: bool = False,
                      batch: int = 1) -> alt.LayerChart | alt.Chart:
    """Energy per token (J) as bars; beyond MAX_BARS tokens, bars show the mean of groups of tokens. With a batch,
    each bar is a step of `batch` tokens (one per sequence; the prefill step: every prompt token)."""
    col = "net_energy_j" if net else "energy_j"
    if tokens.empty or tokens[col].isna().all():
        return _empty(title("No per-token energy recorded", estimated))
    data = tokens[["idx", "phase", col, "duration_s", "resolution"]].rename(columns={col: "energy_j"})
    binned = len(data) > MAX_BARS
    data = downsample(data, MAX_BARS, by=["phase"], mean_cols=["energy_j", "duration_s"],
                      min_cols=["resolution"], index_col="idx")
    group = int(data["rows"].max())
    data = data.assign(x1=data["idx_lo"] + np.maximum(data["idx_hi"] - data["idx_lo"] + 1, group))
    unit = "token" if batch <= 1 else f"step of {batch} tokens"
    what = f"Mean energy per {unit} in the group (J)" if binned else f"Energy per {unit} (J)"
    label = f"Net energy per {unit} (J)" if net else f"Energy per {unit} (J)"
    base = alt.Chart(data).encode(
        x=alt.X("idx_lo:Q", title="Token (step index)"), y=alt.Y("energy_j:Q", title=label),
        color=alt.Color("phase:N", title="Phase", scale=_phase_scale(data["phase"].unique())),
        tooltip=[alt.Tooltip("idx_lo:Q", title="First token"), alt.Tooltip("idx_hi:Q", title="Last token"),
                 alt.Tooltip("phase:N", title="Phase"),
                 alt.Tooltip("energy_j:Q", title=what, format=".4g"),
                 alt.Tooltip("duration_s:Q", title="Mean duration (s)", format=".4f"),
                 alt.Tooltip("resolution:Q", title="Resolution (interval / window)", format=".2f")])
    bars = base.mark_bar().encode(x2="x1:Q", y2=alt.datum(0))
    # the prefill is one step among thousands: a dot keeps it visible (same dataset, no extra rows)
    dots = base.mark_circle(size=50, opacity=1).transform_filter(alt.datum.phase == "prefill")
    return alt.layer(bars, dots).properties(
        title=title(label + (f", mean of {group} tokens per bar" if binned else ""), estimated), height=260)


def cumulative_energy(tokens: pd.DataFrame, *, estimated: bool = False) -> alt.Chart:
    """Energy spent since the first token (J) against the token index."""
    if tokens.empty or tokens["energy_j"].isna().all():
        return _empty(title("No per-token energy recorded", estimated))
    data = tokens[["repeat", "idx", "phase", "energy_j", "t1_s"]].copy()
    data["cumulative_j"] = data.groupby("repeat")["energy_j"].transform(lambda s: s.fillna(0).cumsum())
    data = downsample(data.drop(columns=["energy_j"]), MAX_ROWS, by=["repeat"],
                      last_cols=["cumulative_j", "idx", "t1_s", "phase"])
    return alt.Chart(data).transform_calculate(shown_repeat=SHOWN_REPEAT).mark_line(interpolate="monotone").encode(
        x=alt.X("idx:Q", title="Token (step index)"),
        y=alt.Y("cumulative_j:Q", title="Cumulative energy (J)"),
        color=alt.Color("shown_repeat:N", title="Repeat"),
        tooltip=[alt.Tooltip("idx:Q", title="Token"), alt.Tooltip("shown_repeat:Q", title="Repeat"),
                 alt.Tooltip("cumulative_j:Q", title="Cumulative energy (J)", format=".4g"),
                 alt.Tooltip("t1_s:Q", title="Time (s)", format=".2f")],
    ).properties(title=title("Cumulative energy (J)", estimated), height=260)


def layer_energy_bars(layers: pd.DataFrame, *, estimated: bool = False, net: bool = False) -> alt.Chart:
    """Whole-system energy per layer (J), largest first; `layers` has name, kind, energy_j, time_s, calls."""
    col = "net_energy_j" if net and "net_energy_j" in layers else "energy_j"
    if layers.empty or layers[col].isna().all():
        return _empty(title("No per-layer energy recorded", estimated))
    data = layers.rename(columns={col: "value_j"}).sort_values("value_j", ascending=False).head(MAX_ROWS)
    cols = [c for c in ("name", "kind", "value_j", "time_s", "calls", "resolution") if c in data]
    data = data[cols]
    label = "Net energy per layer (J)" if net else "Energy per layer (J)"
    tooltip = [alt.Tooltip("name:N", title="Layer"), alt.Tooltip("kind:N", title="Kind"),
               alt.Tooltip("value_j:Q", title=label, format=".4g")]
    if "time_s" in data:
        tooltip.append(alt.Tooltip("time_s:Q", title="Time (s)", format=".4f"))
    if "calls" in data:
        tooltip.append(alt.Tooltip("calls:Q", title="Calls"))
    if "resolution" in data:
        tooltip.append(alt.Tooltip("resolution:Q", title="Resolution (interval / window)", format=".2f"))
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("name:N", title="Layer", sort="-x", axis=LAYER_AXIS), x=alt.X("value_j:Q", title=label),
        color=alt.Color("kind:N", title="Kind"), tooltip=tooltip,
    ).properties(title=title(label + ", largest first", estimated), height=alt.Step(20))


def layer_step_heatmap(matrix: pd.DataFrame, *, estimated: bool = False) -> alt.Chart:
    """Energy per layer and token step (J per step; grouped steps show their mean).

    The colour scale tops out at the 98th percentile so that the prefill (the whole prompt in one step) does
    not wash out the decode steps; tooltips keep the exact values."""
    if matrix.empty or matrix["energy_j"].isna().all():
        return _empty(title("No layer calls recorded", estimated))
    data = matrix.head(MAX_ROWS).copy()
    data["steps"] = data["step_hi"] - data["step_lo"] + 1
    data["j_per_step"] = data["energy_j"] / data["steps"]
    data["x1"] = data["step_hi"] + 1
    order = data.sort_values("position")["layer"].drop_duplicates().tolist()
    top = float(data["j_per_step"].quantile(0.98)) or float(data["j_per_step"].max()) or 1.0
    return alt.Chart(data[["layer", "kind", "step_lo", "step_hi", "x1", "energy_j", "j_per_step", "time_s"]]
                     ).mark_rect().encode(
        x=alt.X("step_lo:Q", title="Token (step index)"), x2="x1:Q",
        y=alt.Y("layer:N", title="Layer", sort=order, axis=LAYER_AXIS),
        color=alt.Color("j_per_step:Q", title="Energy per step (J)",
                        scale=alt.Scale(scheme="orangered", domain=[0, top], clamp=True)),
        tooltip=[alt.Tooltip("layer:N", title="Layer"), alt.Tooltip("step_lo:Q", title="First step"),
                 alt.Tooltip("step_hi:Q", title="Last step"),
                 alt.Tooltip("j_per_step:Q", title="Energy per step (J)", format=".4g"),
                 alt.Tooltip("energy_j:Q", title="Energy in cell (J)", format=".4g"),
                 alt.Tooltip("time_s:Q", title="Time in cell (s)", format=".4f")],
    ).properties(title=title("Energy per layer and token step (J)", estimated), height=alt.Step(18))


def component_breakdown(totals: pd.DataFrame, *, estimated: bool = False) -> alt.Chart:
    """Energy (J) and mean power (W) per component; `package` already contains the others."""
    data = totals.dropna(subset=["energy_j"]) if not totals.empty else totals
    if data.empty:
        return _empty(title("No component energy recorded", estimated))
    data = data[["component", "energy_j", "mean_w"]].head(MAX_ROWS).copy()
    data["label"] = data["component"].map(lambda c: f"{c} (whole chip)" if c == "package" else c)
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("label:N", title="Component", sort="-x"), x=alt.X("energy_j:Q", title="Energy (J)"),
        color=alt.Color("component:N", title="Component", legend=None,
                        scale=_component_scale(data["component"].unique())),
        tooltip=[alt.Tooltip("label:N", title="Component"),
                 alt.Tooltip("energy_j:Q", title="Energy (J)", format=".4g"),
                 alt.Tooltip("mean_w:Q", title="Mean power (W)", format=".3g")],
    ).properties(title=title("Energy per component (J)", estimated), height=alt.Step(28))


def compare_j_per_token(data: pd.DataFrame, *, estimated: bool = False, phase: str | None = None) -> alt.Chart:
    """J/token per run with 95% confidence intervals as error bars; columns run, phase, mean, ci95.

    With `phase`, only that phase (each phase on its own scale: a prefill costs far more than a decode step)."""
    data = data[data["phase"] == phase] if phase is not None and not data.empty else data
    data = data.dropna(subset=["mean"]).head(MAX_ROWS) if not data.empty else data
    what = f"Energy per {phase} token" if phase else "Energy per token"
    if data.empty:
        return _empty(title(f"No {what.lower()} figures to compare", estimated))
    data = data.assign(lo=data["mean"] - data["ci95"].fillna(0), hi=data["mean"] + data["ci95"].fillna(0))
    offset = {} if phase else {"xOffset": alt.XOffset("phase:N")}
    base = alt.Chart(data).encode(
        x=alt.X("run:N", title="Run", axis=alt.Axis(labelAngle=0)), **offset,
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("phase:N", title="Phase"),
                 alt.Tooltip("mean:Q", title="Energy per token (J)", format=".4g"),
                 alt.Tooltip("ci95:Q", title="95% CI ± (J)", format=".3g")])
    color = alt.Color("run:N", title="Run", scale=RUN_SCALE) if phase else \
        alt.Color("phase:N", title="Phase", scale=_phase_scale(data["phase"].unique()))
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title=f"{what} (J)"), color=color)
    errors = base.mark_rule(strokeWidth=2, color="#222").encode(y="lo:Q", y2="hi:Q")
    caps = base.mark_tick(thickness=2, size=14, color="#222").encode(y="hi:Q")
    low_caps = base.mark_tick(thickness=2, size=14, color="#222").encode(y="lo:Q")
    return alt.layer(bars, errors, caps, low_caps).properties(
        title=title(f"{what} with 95% CI (J)", estimated), height=280)


def compare_power(data: pd.DataFrame, *, estimated: bool = False) -> alt.Chart:
    """Mean power (W) per component, runs side by side; columns run, component, mean_w."""
    data = data.dropna(subset=["mean_w"]).head(MAX_ROWS)
    if data.empty:
        return _empty(title("No power figures to compare", estimated))
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("component:N", title="Component"), xOffset=alt.XOffset("run:N"),
        y=alt.Y("mean_w:Q", title="Mean power (W)"), color=alt.Color("run:N", title="Run", scale=RUN_SCALE),
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("component:N", title="Component"),
                 alt.Tooltip("mean_w:Q", title="Mean power (W)", format=".3g")],
    ).properties(title=title("Mean power per component (W)", estimated), height=280)


def compare_layers(data: pd.DataFrame, *, estimated: bool = False,
                   measure: str = "Energy per layer (J)") -> alt.Chart:
    """Per-layer energy of several runs side by side; columns run, layer, position, energy_j (in `measure` units)."""
    data = data.dropna(subset=["energy_j"]).head(MAX_ROWS)
    if data.empty:
        return _empty(title("No per-layer energy to compare", estimated))
    order = data.groupby("layer")["position"].max().sort_values(kind="stable").index.tolist()
    runs = data["run"].nunique()
    return alt.Chart(data[["run", "layer", "position", "energy_j"]]).mark_bar().encode(
        y=alt.Y("layer:N", title="Layer", sort=order, axis=LAYER_AXIS), yOffset=alt.YOffset("run:N"),
        x=alt.X("energy_j:Q", title=measure), color=alt.Color("run:N", title="Run", scale=RUN_SCALE),
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("layer:N", title="Layer"),
                 alt.Tooltip("energy_j:Q", title=measure, format=".4g")],
    ).properties(title=title(measure, estimated), height=alt.Step(10 * runs + 4))


REPLAY_KINDS: tuple[str, ...] = ("embedding", "block", "attention", "mlp", "norm", "lm_head")
"""Layer kinds in the replay summary, in model order (`block` holds its attention and MLP: kinds do not add up)."""


def _replay_phase(replay: pd.DataFrame, phase: str | None) -> pd.DataFrame:
    """The replayed layers (not the cache-restore reference) of one phase, in model order."""
    if replay.empty:
        return replay
    data = replay[replay["kind"] != "restore"]
    return data[data["phase"] == phase] if phase is not None else data


def replay_energy_bars(replay: pd.DataFrame, *, phase: str | None = None, estimated: bool = False,
                       net: bool = False) -> alt.LayerChart | alt.Chart:
    """Energy per call of each replayed layer (J) with its 95 % CI over trials; a CI wider than its mean is drawn
    faded and says so in the tooltip. `replay` has layer, kind, position, phase, energy_j_per_call, ci95_j, … ."""
    col, ci = ("net_energy_j_per_call", "net_ci95_j") if net else ("energy_j_per_call", "ci95_j")
    what = "Net energy per call" if net else "Energy per call"
    data = _replay_phase(replay, phase)
    data = data.dropna(subset=[col]).head(MAX_ROWS) if not data.empty else data
    label = f"{what}, replayed" + (f" ({phase})" if phase else "") + ", mean ± 95% CI (J)"
    if data.empty:
        return _empty(title(f"No replayed layers{f' ({phase})' if phase else ''}", estimated))
    half = data[ci].fillna(0)
    data = data.assign(value_j=data[col], ci_j=data[ci], lo=data[col] - half, hi=data[col] + half,
                       wide=np.where(data["flagged"].astype(bool), "CI wider than the mean", "ok"))
    data = data[["layer", "kind", "position", "value_j", "ci_j", "lo", "hi", "wide", "time_s_per_call", "calls",
                 "trials", "cv"]]
    order = data.sort_values("position")["layer"].tolist()
    y = alt.Y("layer:N", title="Layer", sort=order, axis=LAYER_AXIS)
    base = alt.Chart(data).encode(y=y, tooltip=[
        alt.Tooltip("layer:N", title="Layer"), alt.Tooltip("kind:N", title="Kind"),
        alt.Tooltip("value_j:Q", title=f"{what} (J)", format=".4g"),
        alt.Tooltip("ci_j:Q", title="95% CI ± (J)", format=".3g"), alt.Tooltip("cv:Q", title="CV", format=".2f"),
        alt.Tooltip("wide:N", title="CI"), alt.Tooltip("time_s_per_call:Q", title="Time per call (s)", format=".3g"),
        alt.Tooltip("calls:Q", title="Calls"), alt.Tooltip("trials:Q", title="Trials")])
    bars = base.mark_bar().encode(
        x=alt.X("value_j:Q", title=f"{what} (J)"), color=alt.Color("kind:N", title="Kind"),
        opacity=alt.Opacity("wide:N", title="CI", scale=alt.Scale(domain=["ok", "CI wider than the mean"],
                                                                  range=[1.0, 0.35])))
    errors = base.mark_rule(strokeWidth=2, color="#222").encode(x="lo:Q", x2="hi:Q")
    return alt.layer(bars, errors).properties(title=title(label, estimated), height=alt.Step(18))


def replay_power_bars(replay: pd.DataFrame, *, phase: str | None = None, estimated: bool = False,
                      baseline_w: float | None = None) -> alt.LayerChart | alt.Chart:
    """Mean power of each replayed layer while it ran alone (W): which layers draw more power, not only take more
    time. A dashed rule marks the idle baseline when there is one."""
    data = _replay_phase(replay, phase)
    data = data.dropna(subset=["power_w"]).head(MAX_ROWS) if not data.empty else data
    if data.empty:
        return _empty(title(f"No replayed layer power{f' ({phase})' if phase else ''}", estimated))
    data = data[["layer", "kind", "position", "power_w", "net_power_w", "time_s_per_call"]]
    order = data.sort_values("position")["layer"].tolist()
    bars = alt.Chart(data).mark_bar().encode(
        y=alt.Y("layer:N", title="Layer", sort=order, axis=LAYER_AXIS), x=alt.X("power_w:Q", title="Power (W)"),
        color=alt.Color("kind:N", title="Kind"),
        tooltip=[alt.Tooltip("layer:N", title="Layer"), alt.Tooltip("kind:N", title="Kind"),
                 alt.Tooltip("power_w:Q", title="Power while replayed (W)", format=".4g"),
                 alt.Tooltip("net_power_w:Q", title="Net of the idle baseline (W)", format=".4g"),
                 alt.Tooltip("time_s_per_call:Q", title="Time per call (s)", format=".3g")])
    layers: list[alt.Chart] = [bars]
    if baseline_w is not None:
        layers.append(alt.Chart(pd.DataFrame({"baseline_w": [baseline_w]})).mark_rule(
            strokeDash=[4, 3], color="#555").encode(x="baseline_w:Q", tooltip=[
                alt.Tooltip("baseline_w:Q", title="Idle baseline (W)", format=".3g")]))
    label = "Power per layer while replayed" + (f" ({phase})" if phase else "") + " (W)"
    return alt.layer(*layers).properties(title=title(label, estimated), height=alt.Step(18))


def replay_kind_summary(replay: pd.DataFrame) -> pd.DataFrame:
    """Per phase and layer kind: layers, energy per step (J: one call of each layer, summed), time per step (s) and
    mean power (W = energy / time). `block` contains its attention and MLP, so kinds do not add up."""
    cols = ["phase", "kind", "layers", "energy_j_per_step", "time_s_per_step", "power_w"]
    data = _replay_phase(replay, None)
    if data.empty:
        return pd.DataFrame(columns=cols)
    data = data.dropna(subset=["energy_j_per_call", "time_s_per_call"])
    out = data.groupby(["phase", "kind"], as_index=False, sort=False).agg(
        layers=("layer", "size"), energy_j_per_step=("energy_j_per_call", "sum"),
        time_s_per_step=("time_s_per_call", "sum"))
    out["power_w"] = out["energy_j_per_step"] / out["time_s_per_step"].where(out["time_s_per_step"] > 0)
    kinds = {k: i for i, k in enumerate(REPLAY_KINDS)}
    out = out.assign(_k=out["kind"].map(lambda k: kinds.get(k, len(kinds))))
    return out.sort_values(["_k"], kind="stable").drop(columns="_k")[cols].reset_index(drop=True)


def replay_kind_bars(summary: pd.DataFrame, *, phase: str | None = None, estimated: bool = False) -> alt.Chart:
    """Mean power per layer kind while replayed (W) for one phase, from replay_kind_summary."""
    data = summary[summary["phase"] == phase] if phase is not None and not summary.empty else summary
    data = data.dropna(subset=["power_w"]).head(MAX_ROWS) if not data.empty else data
    if data.empty:
        return _empty(title("No replayed layer kinds", estimated))
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("kind:N", title="Layer kind", sort=list(REPLAY_KINDS), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("power_w:Q", title="Power (W)"), color=alt.Color("kind:N", title="Kind", legend=None),
        tooltip=[alt.Tooltip("kind:N", title="Kind"), alt.Tooltip("layers:Q", title="Layers"),
                 alt.Tooltip("power_w:Q", title="Mean power (W)", format=".4g"),
                 alt.Tooltip("energy_j_per_step:Q", title="Energy per step (J)", format=".4g"),
                 alt.Tooltip("time_s_per_step:Q", title="Time per step (s)", format=".3g")],
    ).properties(title=title("Power per layer kind while replayed" + (f" ({phase})" if phase else "") + " (W)",
                             estimated), height=240)


PREFILL_PER_PROMPT_TOKEN = "prefill (per prompt token)"


def _count_scale(values: pd.Series, log2: bool = False) -> alt.Scale:
    """A log-2 scale for counts asked to have one (batch sizes) or that span a factor of 4 or more, else linear."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if not numbers.empty and numbers.min() > 0 and (log2 or numbers.max() / numbers.min() >= 4):
        return alt.Scale(type="log", base=2)
    return alt.Scale(zero=False)


def sweep_curves(curves: pd.DataFrame, x_title: str, *, estimated: bool = False,
                 log2: bool = False) -> alt.FacetChart | alt.Chart:
    """J/token (decode and prefill side by side, each on its own scale) with 95% CIs against a swept count (batch
    size or prompt tokens; `log2`: on a log-2 axis); columns x, phase, mean, ci95, series (one line per series).

    Energy cannot be negative: a CI wider than its mean is drawn from 0 J (`lo` clipped; the page says which points
    were cut, sweep_table.wide_ci_points), never below. The x axis shows whole numbers."""
    data = curves.dropna(subset=["mean"]).head(MAX_ROWS) if not curves.empty else curves
    what = f"Energy per token against {x_title.split(' (')[0].lower()}"
    if data.empty:
        return _empty(title(f"No finished points to draw {what.lower()}", estimated))
    data = data.assign(lo=(data["mean"] - data["ci95"].fillna(0)).clip(lower=0.0),
                       hi=data["mean"] + data["ci95"].fillna(0),
                       phase=data["phase"].replace({"prefill": PREFILL_PER_PROMPT_TOKEN}))
    scale = _count_scale(data["x"], log2)
    ticks = sorted(data["x"].unique().tolist())
    axis = alt.Axis(values=ticks, format="d") if len(ticks) <= 12 else alt.Axis(format="d")
    base = alt.Chart().encode(
        x=alt.X("x:Q", title=x_title, scale=scale, axis=axis),
        color=alt.Color("series:N", title="Points", scale=RUN_SCALE,
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=400)),
        tooltip=[alt.Tooltip("series:N", title="Point"), alt.Tooltip("phase:N", title="Phase"),
                 alt.Tooltip("x:Q", title=x_title, format="d"),
                 alt.Tooltip("mean:Q", title="Energy per token (J)", format=".4g"),
                 alt.Tooltip("ci95:Q", title="95% CI ± (J)", format=".3g")])
    line = base.mark_line(point=True).encode(y=alt.Y("mean:Q", title="Energy per token (J)",
                                                     scale=alt.Scale(zero=False)))
    errors = base.mark_rule(strokeWidth=2).encode(y="lo:Q", y2="hi:Q")
    return alt.layer(line, errors, data=data).facet(
        column=alt.Column("phase:N", title=None, sort=["decode", PREFILL_PER_PROMPT_TOKEN]),
    ).resolve_scale(y="independent").properties(title=title(f"{what}, mean with 95% CI (J)", estimated))


def sweep_pareto(points: pd.DataFrame, *, estimated: bool = False) -> alt.LayerChart | alt.Chart:
    """Decode speed (tokens/s) against energy per decode token (J), the Pareto front (no point both cheaper and
    faster) marked and joined; columns label, j_per_token, tokens_per_s, pareto, batch, prompt_tokens."""
    data = points.dropna(subset=["j_per_token", "tokens_per_s"]).head(MAX_ROWS) if not points.empty else points
    if data.empty:
        return _empty(title("No finished points to draw speed against energy", estimated))
    data = data[["label", "j_per_token", "tokens_per_s", "pareto", "batch", "prompt_tokens"]].assign(
        front=lambda d: d["pareto"].map({True: "Pareto front", False: "dominated"}))
    tooltip = [alt.Tooltip("label:N", title="Point"),
               alt.Tooltip("j_per_token:Q", title="Energy per decode token (J)", format=".4g"),
               alt.Tooltip("tokens_per_s:Q", title="Decode speed (tokens/s)", format=".4g"),
               alt.Tooltip("front:N", title="Front")]
    x = alt.X("j_per_token:Q", title="Energy per decode token (J)", scale=alt.Scale(zero=False))
    y = alt.Y("tokens_per_s:Q", title="Decode speed (tokens/s)", scale=alt.Scale(zero=False))
    dots = alt.Chart(data).mark_point(filled=True, size=90).encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("front:N", title=None, scale=alt.Scale(domain=["Pareto front", "dominated"],
                                                              range=["#e45756", "#9d9d9d"])),
        shape=alt.Shape("front:N", title=None, scale=alt.Scale(domain=["Pareto front", "dominated"],
                                                              range=["diamond", "circle"])))
    front = alt.Chart(data).transform_filter(alt.datum.pareto).mark_line(color="#e45756", strokeDash=[4, 3]).encode(
        x=x, y=y, order=alt.Order("j_per_token:Q"))
    return alt.layer(front, dots).properties(
        title=title("Decode speed (tokens/s) against energy per decode token (J)", estimated), height=320)


MACHINE_MEASURES = {"j_per_token": "Energy per decode token (J)", "tokens_per_s": "Decode speed (tokens/s)"}
"""What the machine × configuration chart can show: column -> axis title."""


def sweep_machines(machines: pd.DataFrame, measure: str = "j_per_token", *, estimated: bool = False) -> alt.Chart:
    """A replicated sweep's machines side by side per configuration: one bar per machine (with the 95% CI for
    J/token); columns label, point, machine, j_per_token, j_per_token_ci95, tokens_per_s (sweep_table.machine_frame)."""
    axis = MACHINE_MEASURES[measure]
    data = machines.dropna(subset=[measure]).head(MAX_ROWS) if not machines.empty else machines
    if data.empty:
        return _empty(title(f"No finished runs to compare machines by {axis.split(' (')[0].lower()}", estimated))
    data = data[["label", "point", "machine", measure, "j_per_token_ci95"]].copy()
    ci = data["j_per_token_ci95"].fillna(0) if measure == "j_per_token" else 0.0
    data = data.assign(lo=data[measure] - ci, hi=data[measure] + ci)
    order = list(dict.fromkeys(data.sort_values("point")["label"]))
    base = alt.Chart(data).encode(
        y=alt.Y("label:N", title=None, sort=order, axis=LAYER_AXIS),
        yOffset=alt.YOffset("machine:N"),
        color=alt.Color("machine:N", title="Machine", scale=RUN_SCALE, legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("label:N", title="Configuration"), alt.Tooltip("machine:N", title="Machine"),
                 alt.Tooltip(f"{measure}:Q", title=axis, format=".4g")])
    bars = base.mark_bar().encode(x=alt.X(f"{measure}:Q", title=axis))
    layers = [bars]
    if measure == "j_per_token":
        layers.append(base.mark_rule(color="#333333").encode(x="lo:Q", x2="hi:Q"))
    what = "energy per decode token" if measure == "j_per_token" else "decode speed"
    return alt.layer(*layers).properties(title=title(f"Machines side by side: {what}", estimated),
                                         height=alt.Step(14))


PROVENANCE_COLORS = {"measured": "#54a24b", "apportioned": "#8e6bbf", "estimated": "#f58518", "unknown": "#bab0ac"}
"""One colour per provenance label (energyprof.provenance): the same in every flow chart."""
FLOW_ROW_PX = 44
FLOW_LABEL_SHARE = 0.12
"""A flow band narrower than this share of the whole gets no text label (its tooltip and the table have it)."""


def energy_flow(drawn: pd.DataFrame, *, estimated: bool = False) -> alt.LayerChart | alt.Chart:
    """Where the energy went, as an icicle: one row per level (the whole run, idle baseline vs workload, components,
    phases, layer kinds), each band as wide as its energy inside its parent, coloured by how its figure was obtained
    (EnergyFlow.drawn() from energyprof.flow)."""
    if drawn.empty:
        return _empty(title("No energy flow for this run", estimated))
    data = drawn.head(MAX_ROWS).copy()
    whole = float(data["x1"].max()) or 1.0
    data["label"] = [f"{n} · {e:.3g} J" if (x1 - x0) / whole >= FLOW_LABEL_SHARE else ""
                     for n, e, x0, x1 in zip(data["name"], data["energy_j"], data["x0"], data["x1"], strict=True)]
    data["mid"] = (data["x0"] + data["x1"]) / 2
    levels = list(dict.fromkeys(data["level"]))
    present = [p for p in PROVENANCE_COLORS if p in set(data["provenance"])]
    y = alt.Y("level:N", title=None, sort=levels, axis=alt.Axis(labelLimit=160))
    bands = alt.Chart(data).mark_rect(stroke="white", strokeWidth=1.5).encode(
        x=alt.X("x0:Q", title="Energy (J)", scale=alt.Scale(domain=[0, whole], nice=False)), x2="x1:Q", y=y,
        color=alt.Color("provenance:N", title="How it was obtained",
                        scale=alt.Scale(domain=present, range=[PROVENANCE_COLORS[p] for p in present])),
        tooltip=[alt.Tooltip("band:N", title="Band"), alt.Tooltip("energy_j:Q", title="Energy (J)", format=".4g"),
                 alt.Tooltip("share_pct:Q", title="Share of the whole (%)", format=".3g"),
                 alt.Tooltip("provenance:N", title="How"), alt.Tooltip("note:N", title="Note")])
    text = alt.Chart(data).mark_text(fontSize=11, color="white", clip=True).encode(
        x="mid:Q", y=y, text="label:N")
    return alt.layer(bands, text).properties(title=title("Where the energy went (J)", estimated),
                                             height=FLOW_ROW_PX * len(levels))
