"""Sweeps (`?sweep=ID`): J/token against batch size and against prompt length (decode and prefill, with 95% CIs),
decode speed against energy with the Pareto front, the table (with the machine that ran each point) and its CSV, a
bundle of its runs, the HTML report; for a sweep replicated on every Ray node, a machine × configuration table and
charts; while it runs, the point being measured (the quiet live view; on Ray, each task's node and phase) and a cancel
button (not in read-only mode).
Without an id: every sweep, to pick one."""

from functools import partial

import pandas as pd
import streamlit as st

from energyprof import charts, ui
from energyprof.analysis.quoted import grid_label
from energyprof.report import sweep_report
from energyprof.runner import jobs
from energyprof.spec.ray_cluster import RaySettings
from energyprof.spec.sweep import SweepSpec, describe, sweep_id_error
from energyprof.store import ACTIVE_STATUSES
from energyprof.sweep_table import (
    AXIS_COLUMNS,
    LOG2_AXES,
    curve_frame,
    machine_frame,
    machine_of,
    machine_table,
    replicated,
    sweep_csv,
    sweep_frame,
    sweep_list_frame,
    sweep_rows,
    swept_text,
    wide_ci_points,
)

store = ui.page_setup("Sweeps")
asked = st.query_params.get("sweep")
sweep = None
if asked is not None and asked.strip():
    problem = sweep_id_error(asked)
    if problem:
        st.error(f"The link asks for sweep={ui.md_escape(asked[:80])}, which is not a sweep id: pick a sweep below.")
    else:
        with ui.store_errors(store.path):
            sweep = store.get_sweep(asked)
        if sweep is None:
            st.error(f"There is no sweep {ui.md_escape(asked)} in {ui.md_escape(store.path)}: pick a sweep below.")

if sweep is None:
    st.title("Sweeps")
    ui.show_flash()
    sweeps = store.list_sweeps()
    if sweeps.empty:
        st.info("No sweeps yet. Start one on the New profile page (its Sweep tab) or with `energyprof sweep`, e.g. "
                "`energyprof sweep --model small --batch 1,2,4,8`.")
        st.page_link(ui.NEW_PAGE, label="New profile or sweep", icon=":material/play_arrow:")
        st.stop()
    listed = sweep_list_frame(sweeps, ui.shown_status)
    names = {str(r["Sweep"]): f"{r['Sweep']} ({r['Status']}, {r['Model']}, {r['Swept']}, {r['Points done']} points "
                              "done)" for r in listed.to_dict(orient="records")}
    pick = st.selectbox("Open a sweep", list(names), format_func=names.get, index=None, key="open_sweep")
    if pick is not None:
        st.query_params["sweep"] = pick
        st.rerun()
    st.dataframe(listed, hide_index=True, width="stretch", key="sweeps_table", column_config={
        "Swept": st.column_config.TextColumn("Swept", help="The values each swept parameter took"),
        "Created": st.column_config.DatetimeColumn("Created (UTC)", format="YYYY-MM-DD HH:mm")})
    st.stop()

sweep_id = sweep["id"]
spec = SweepSpec.from_dict(sweep["spec"])
ray = RaySettings.from_dict(sweep.get("ray"))
rows = sweep_rows(store, sweep_id)
frame = sweep_frame(rows)
done = int((frame["status"] == "done").sum())
est = bool(frame["estimated"].fillna(False).astype(bool).any())
st.title(f"Sweep {ui.md_escape(sweep_id)}")
state = ui.shown_status(sweep)
st.markdown(f"{ui.status_badge('not responding' if 'not responding' in state else sweep['status'])} · {done} of "
            f"{len(frame)} points done · swept: {ui.md_escape(swept_text(spec))} · "
            f"{ui.fmt_date(sweep.get('created_at'))}")
if "not responding" in state:
    st.warning(f"Sweep {ui.md_escape(sweep_id)} is **not responding** ({ui.md_escape(state.split(' · ', 1)[1])}): "
               "its process exists but is stopped or stuck. Continue it or cancel it.", icon=":material/pause_circle:")
ui.show_flash()
if est:
    st.caption(f"{ui.estimated_badge()} These figures come from a model of CPU utilisation, not a reading of the "
               "hardware: compare the points with one another, not with other machines.")
if sweep["status"] in ("failed", "cancelled") and sweep.get("error"):
    st.warning(ui.md_escape(sweep["error"]))


@st.fragment(run_every=ui.LIVE_REFRESH_S)
def sweep_progress(sweep_id: str, total: int, done: int) -> None:
    """The running sweep: points done, the point being measured (the quiet live view; on Ray, every task's node and
    phase), cancel."""
    with ui.store_errors(store.path):
        now = store.get_sweep(sweep_id)
        runs = store.sweep_runs(sweep_id)
        tasks = store.sweep_tasks(sweep_id) if ray is not None else []
    latest = {(r["sweep_point"], machine_of(r) if replicated(sweep) else None): r["status"] for r in runs}
    finished = sum(1 for status in latest.values() if status == "done")
    if now is None or now["status"] not in ACTIVE_STATUSES or finished != done:
        st.rerun(scope="app")
    if ray is not None:
        total = max(total, finished + sum(1 for t in tasks if t["status"] in ACTIVE_STATUSES))
    st.progress(finished / max(1, total), text=f"{finished} of {total} points done")
    if ray is not None:
        ui.ray_tasks(tasks, spec)
    else:
        active = next((r for r in runs if r["status"] in ACTIVE_STATUSES), None)
        if active is not None:
            st.caption(f"Point {active['sweep_point'] + 1}: "
                       f"{ui.md_escape(describe(spec.point_values()[active['sweep_point']]))}")
            ui.live_job_body(active["id"], cancel=False)
        else:
            st.caption("Starting the next point…")
    if not ui.is_read_only() and st.button("Cancel sweep", key=f"cancel-sweep-{sweep_id}", type="secondary"):
        ui.cancel_job(store, jobs.SWEEP, sweep_id)


if ray is not None:
    st.caption(ui.md_escape(f"On the Ray cluster at {ray.address}: "
                            + ("every point on every node that offers energyprof (one run per machine)."
                               if ray.replicate else "each point on whichever node offering energyprof is free.")))
if sweep["status"] in ACTIVE_STATUSES:
    sweep_progress(sweep_id, len(frame), done)

swept_axes = [column for column in AXIS_COLUMNS if column in spec.varied()]  # a chart only for a swept axis
for column in swept_axes:
    axis_title = AXIS_COLUMNS[column]
    st.subheader(ui.label(axis_title.split(" (")[0].replace(" per sequence", ""), est))
    curves = curve_frame(frame, column)
    ui.chart(charts.sweep_curves(curves, axis_title, estimated=est, log2=column in LOG2_AXES), key=f"chart_{column}")
    wide = wide_ci_points(curves)
    if wide:
        st.caption(f"{wide} of these figures have a 95% CI wider than their mean (too few repeats, or a busy "
                   "machine, for the figure to be pinned down): their bars are cut at 0 J, since energy cannot be "
                   "negative. More repeats (or a target CI) narrow them.")
if swept_axes:
    st.caption("Decode: whole-system energy per generated token, every sequence of a batch counted. Prefill: the "
               "prompt's forward pass per prompt token. Bars: 95% CI over each point's repeats"
               + (" (batch on a log-2 axis)." if "batch" in swept_axes else "."))

st.subheader(ui.label("Speed against energy", est))
ui.chart(charts.sweep_pareto(frame, estimated=est), key="chart_pareto")
st.caption("Red diamonds: the Pareto front, points that no other point beats on both energy per token and speed.")

if replicated(sweep):
    machines = machine_frame(frame)
    st.subheader(ui.label("Machines × configurations", est))
    st.dataframe(machine_table(machines), hide_index=True, width="stretch", key="table_machines")
    st.caption("Every point ran on every machine: each row is one configuration, each machine its decode J/token "
               "and tokens/s. Read across a row to compare machines on the same work; a machine marked estimated "
               "has no energy counter, so compare its figures only with its own.")
    left, right = st.columns(2)
    with left:
        ui.chart(charts.sweep_machines(machines, "j_per_token", estimated=est), key="chart_machines_jpt")
    with right:
        ui.chart(charts.sweep_machines(machines, "tokens_per_s", estimated=est), key="chart_machines_tps")

st.subheader(ui.label("Points", est))
grid = frame["grid_g_co2e_per_kwh"].dropna()
table = frame.assign(run=[f"run?run={int(r)}" if pd.notna(r) else None for r in frame["run_id"]],
                     point=frame["point"] + 1, error=frame["error"].map(lambda e: e if isinstance(e, str) else ""),
                     prompt_tokens=frame["prompt_tokens"].map(lambda v: "own length" if pd.isna(v) else f"{v:.0f}"))
shown = ["point", "run", "status", "model", "runtime", "device", "dtype", "quantization", "batch", "prompt_tokens",
         "max_new_tokens", "new_tokens", "repeats", "j_per_token", "j_per_token_ci95", "prefill_j_per_token",
         "tokens_per_s", "tokens_per_j", "wh_per_1000_tokens", "peak_memory_mb", "pareto", "target_ci_met", "error"]
if ray is not None or frame["machine"].notna().any():
    shown.insert(shown.index("status") + 1, "machine")
if not grid.empty:
    shown.insert(shown.index("pareto"), "g_co2e_per_1000_tokens")
st.dataframe(table[shown], hide_index=True, width="stretch", key="table_points", column_config={
    "point": st.column_config.NumberColumn("Point", format="%d"),
    "run": st.column_config.LinkColumn("Run", display_text=r"run\?run=(\d+)", help="Open the point's run"),
    "status": st.column_config.TextColumn("Status"),
    "model": st.column_config.TextColumn("Model"),
    "device": st.column_config.TextColumn("Device"),
    "dtype": st.column_config.TextColumn("Dtype"),
    "batch": st.column_config.NumberColumn("Batch", format="%d"),
    "prompt_tokens": st.column_config.TextColumn("Prompt tokens"),
    "max_new_tokens": st.column_config.NumberColumn("Max new tokens", format="%d"),
    "repeats": st.column_config.NumberColumn("Repeats", format="%d"),
    "error": st.column_config.TextColumn("Error"),
    "machine": st.column_config.TextColumn("Machine", help="The Ray node or the machine that ran the point (empty: "
                                           "a run recorded before machines were)"),
    "new_tokens": st.column_config.NumberColumn("New tokens", help="Per repeat, every sequence of the batch"),
    "j_per_token": st.column_config.NumberColumn("J/token (decode)", format="%.4g J"),
    "j_per_token_ci95": st.column_config.NumberColumn("95% CI ±", format="%.2g J"),
    "prefill_j_per_token": st.column_config.NumberColumn("J/token (prefill)", format="%.4g J",
                                                         help="Per prompt token"),
    "tokens_per_s": st.column_config.NumberColumn("Tokens/s (decode)", format="%.4g"),
    "tokens_per_j": st.column_config.NumberColumn("Tokens/J (decode)", format="%.4g"),
    "wh_per_1000_tokens": st.column_config.NumberColumn("Wh per 1,000 tokens", format="%.4g"),
    "runtime": st.column_config.TextColumn("Runtime", help="transformers (PyTorch) or mlx (mlx-lm): the runtime the "
                                           "point's run used"),
    "quantization": st.column_config.TextColumn("Quantisation", help="How the weights are quantised (empty: full "
                                                "precision)"),
    "peak_memory_mb": st.column_config.NumberColumn("Peak memory (MB)", format="%.4g", help=ui.PEAK_MEMORY_HELP),
    "g_co2e_per_1000_tokens": st.column_config.NumberColumn(
        "g CO2e per 1,000 tokens", format="%.4g",
        help=ui.md_escape(grid_label(float(grid.iloc[0]))) if not grid.empty else None),
    "pareto": st.column_config.CheckboxColumn("Pareto front"),
    "target_ci_met": st.column_config.CheckboxColumn("Target CI met"),
})
if not grid.empty:
    st.caption(ui.md_escape(f"CO2e {grid_label(float(grid.iloc[0]))}."))
dl_csv, dl_bundle, dl_report = st.columns(3)
dl_csv.download_button("⬇ Sweep table (CSV)", data=partial(sweep_csv, store, sweep_id),
                       file_name=f"energyprof-sweep-{sweep_id}.csv", mime="text/csv", on_click="ignore",
                       key=f"dl-sweep-{sweep_id}")
with dl_bundle:
    if sweep["status"] in ACTIVE_STATUSES:
        st.caption("The bundle download appears when the sweep has finished.")
    else:
        ui.bundle_download(store, sweep_id=sweep_id, label="⬇ Sweep as a bundle (SQLite)")
with dl_report:
    ui.report_download(partial(sweep_report, store, sweep_id), f"energyprof-sweep-{sweep_id}.html",
                       f"dl-report-sweep-{sweep_id}")
