"""Compare two or more runs (also `?runs=1,2`): J/token with CI, tokens/s, batch, TTFT, share of tokens measured,
counter health and what each whole-system figure lacks, mean power per component, layers and replayed layers."""

import pandas as pd
import streamlit as st

from energyprof import charts, ui
from energyprof.analysis.quoted import quote_summary

store = ui.page_setup("Compare")
st.title("Compare runs")
runs = store.list_runs()
runs = runs[runs["kind"] == "profile"] if not runs.empty else runs
if runs.empty:
    st.info("No profiling runs yet: profile a model first.")
    st.page_link(ui.NEW_PAGE, label="New profile", icon=":material/play_arrow:")
    st.stop()

names = {int(r.id): " · ".join([f"#{r.id} {r.model}", *(str(v) for v in (r.device, r.dtype) if not pd.isna(v)),
                                  r.status]) for r in runs.itertuples()}
"""A run's name in the picker: what it has (an endpoint run has no dtype: none shown, never "nan")."""
wanted = ui.query_run_ids("runs")
if "compare_pick" not in st.session_state:
    st.session_state["compare_pick"] = [i for i in wanted if i in names]
picked = st.multiselect("Runs to compare", list(names), format_func=names.get, key="compare_pick")
st.query_params["runs"] = ",".join(str(i) for i in picked)
if len(picked) < 2:
    st.info("Pick two or more runs.")
    st.stop()

chosen = [store.get_run(i) for i in picked]
chosen = [r for r in chosen if r is not None]
est = any(ui.is_estimated(r) for r in chosen)
rows, jpt, power, layers, replays = [], [], [], [], {}
for run in chosen:
    s = ui.summary_of(run)
    tag = f"#{run['id']} {run.get('model')}"
    rows.append({"run": tag, "runtime": s.runtime or "—", "device": run.get("device") or "—",
                 "dtype": run.get("dtype") or "—",
                 "source": ui.source_label(run.get("source"), run.get("measured")), "status": run["status"],
                 "J/token prefill": ui.fmt_ci(s.per_token("prefill")),
                 "J/token decode": ui.fmt_ci(s.per_token("decode")), "tokens/s": s.tokens_per_s,
                 "batch": s.batch or 1, "TTFT": ui.fmt_ci(s.ttft_s, "s") if s.ttft_s is not None else "—",
                 "tokens measured": None if s.tokens_measured_share is None else 100 * s.tokens_measured_share,
                 "Wh/1k tokens": quote_summary(s).wh_per_1000_tokens,
                 "mean W": s.mean_total_w, "net energy J": s.net_total_j, "peak memory MB": s.peak_memory_mb,
                 "counters": ui.health_cell(s), "whole system lacks": ", ".join(s.total_lacks) or None,
                 "notes": s.notes(bool(run.get("power_incomplete")))})
    for phase in ("prefill", "decode"):
        stat = s.per_token(phase)
        jpt.append({"run": tag, "phase": phase, "mean": stat.mean, "ci95": stat.ci95})
    for comp, watts in s.mean_w.items():
        power.append({"run": tag, "component": comp, "mean_w": watts})
    summary = store.layer_summary(run["id"])
    if not summary.empty:
        per_layer = charts.whole_system(summary, ["name", "position"], ["energy_j"])
        tokens = max(1, s.tokens_total or 1)
        per_layer["energy_j"] = per_layer["energy_j"] / tokens
        layers.append(per_layer.rename(columns={"name": "layer"}).assign(run=tag))
    replays[tag] = store.layer_replay(run["id"])

st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="compare_table", column_config={
    "tokens/s": st.column_config.NumberColumn("Tokens/s", format="%.3g"),
    "TTFT": st.column_config.TextColumn("TTFT", help="Time to first token (endpoint runs): mean ± 95% CI"),
    "tokens measured": st.column_config.NumberColumn(
        "Tokens measured", format="%.0f %%", help="Share of tokens whose energy is a counter difference across "
        "the token (measured); the rest are time-apportioned or estimated"),
    "Wh/1k tokens": st.column_config.NumberColumn(ui.label("Wh / 1,000 decode tokens", est), format="%.3g"),
    "mean W": st.column_config.NumberColumn(ui.label("Mean power", est), format="%.3g W"),
    "net energy J": st.column_config.NumberColumn(ui.label("Net energy", est), format="%.4g J"),
    "peak memory MB": st.column_config.NumberColumn("Peak memory", format="%.4g MB", help=ui.PEAK_MEMORY_HELP),
    "counters": st.column_config.TextColumn(
        "Counters", help="Counter health per component: stalled or implausible = that component's energy is unknown "
        "for the run; batched = steps shorter than its publication period are apportioned"),
    "whole system lacks": st.column_config.TextColumn(
        "Whole system lacks", help="Components whose energy is unknown for the run, left out of its whole-system "
                                   "figures: compare such a run's totals with care"),
})
if est:
    st.caption(f"{ui.estimated_badge()} At least one of these runs uses an estimated power source: compare "
               "estimated figures only with figures from the same source.")
left, right = st.columns(2)
with left:
    ui.chart(charts.compare_j_per_token(pd.DataFrame(jpt), estimated=est, phase="decode"), key="chart_jpt_decode")
with right:
    ui.chart(charts.compare_j_per_token(pd.DataFrame(jpt), estimated=est, phase="prefill"),
             key="chart_jpt_prefill")
left, right = st.columns(2)
with left:
    ui.chart(charts.compare_power(pd.DataFrame(power), estimated=est), key="chart_compare_power")
with right:
    if layers:
        ui.chart(charts.compare_layers(pd.concat(layers, ignore_index=True), estimated=est,
                                       measure="Energy per layer per generated token (J)"),
                 key="chart_compare_layers")
    else:
        st.caption("None of these runs profiled layers.")
ui.compare_replays(replays, est)
ui.bundle_download(store, run_ids=[r["id"] for r in chosen], runs=chosen, label="⬇ These runs as a bundle (SQLite)")
