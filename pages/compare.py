"""Compare two or more runs (also `?runs=1,2`), also runs made on different machines: the machine, its memory and the
source scope beside J/token with CI, tokens/s, batch, TTFT, share of tokens measured, counter health and what each
whole-system figure lacks, mean power per component, layers and replayed layers (energyprof.compare_table)."""

from functools import partial

import pandas as pd
import streamlit as st

from energyprof import charts, ui
from energyprof.compare_table import compare
from energyprof.report import compare_report

store = ui.page_setup("Compare")
st.title("Compare runs")
runs = store.list_runs()
runs = runs[runs["kind"] == "profile"] if not runs.empty else runs
if runs.empty:
    st.info("No profiling runs yet: profile a model first.")
    st.page_link(ui.NEW_PAGE, label="New profile", icon=":material/play_arrow:")
    st.stop()

names = {int(r.id): " · ".join([f"#{r.id} {r.model}", *(str(v) for v in (r.device, r.dtype) if not pd.isna(v)),
                                  ui.machine_name(r.machine_label), r.status]) for r in runs.itertuples()}
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
data = compare(store, chosen)
est = data.estimated
if data.machines > 1:
    st.caption(f"These runs were made on {data.machines} machines: read J/token and power next to each run's "
               "machine and source scope (what its figures cover; a GPU board is not a whole SoC).")
st.dataframe(data.rows, hide_index=True, width="stretch", key="compare_table", column_config={
    "machine": st.column_config.TextColumn("Machine", help="The machine that made the run (unknown machine: a run "
                                           "recorded before machines were)"),
    "machine id": st.column_config.TextColumn("Machine id", help="A hash of the machine's identifier: the same "
                                              "machine always has the same id"),
    "memory GB": st.column_config.NumberColumn("Memory", format="%.0f GB", help="The machine's memory"),
    "source scope": st.column_config.TextColumn("Source scope", help="What the power source's figures cover"),
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
    ui.chart(charts.compare_j_per_token(data.j_per_token, estimated=est, phase="decode"), key="chart_jpt_decode")
with right:
    ui.chart(charts.compare_j_per_token(data.j_per_token, estimated=est, phase="prefill"),
             key="chart_jpt_prefill")
left, right = st.columns(2)
with left:
    ui.chart(charts.compare_power(data.power, estimated=est), key="chart_compare_power")
with right:
    if data.layers:
        ui.chart(charts.compare_layers(pd.concat(data.layers, ignore_index=True), estimated=est,
                                       measure="Energy per layer per generated token (J)"),
                 key="chart_compare_layers")
    else:
        st.caption("None of these runs profiled layers.")
ui.compare_replays(data.replays, est)
d1, d2 = st.columns(2)
with d1:
    ui.report_download(partial(compare_report, store, [r["id"] for r in chosen]),
                       f"energyprof-compare-{'-'.join(str(r['id']) for r in chosen)}.html", "dl-report-compare")
with d2:
    ui.bundle_download(store, run_ids=[r["id"] for r in chosen], runs=chosen,
                       label="⬇ These runs as a bundle (SQLite)")
