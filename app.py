"""energyprof dashboard: `streamlit run app.py`. This file is the home page, Runs: every run in the database with the
machine that made it, filters (also by machine), a link to each, importing a bundle, deletion of finished runs, the
demo on an empty one (none of those three in read-only mode: energyprof.read_only).

The other pages are pages/*.py (served at /run, /new, /compare, /sources); the list of pages and the shared
sidebar are in energyprof/ui/nav.py, which every page calls first (`ui.page_setup`)."""

import pandas as pd
import streamlit as st

from energyprof import ui
from energyprof.store import ACTIVE_STATUSES
from energyprof.summary import RunSummary

store = ui.page_setup("Runs")
st.title("Runs")
ui.show_flash()
runs = store.list_runs()

read_only = ui.is_read_only()
if runs.empty:
    if read_only:
        st.info("No runs yet.")
        st.stop()
    st.info("No runs yet. Start with a demo: the tiny built-in model (no download) generates a few tokens "
            "while the best available power source samples; it takes well under a minute.")
    if st.button("Run a demo profile", type="primary", key="demo"):
        run_id = ui.launch(store, dict(ui.DEMO_PARAMS))
        if run_id is not None:
            st.switch_page(ui.RUN_PAGE, query_params={"run": str(run_id)})
    st.page_link(ui.NEW_PAGE, label="Or set up your own profile", icon=":material/play_arrow:")
    ui.import_section(store)
    st.stop()

summaries = [RunSummary.from_dict(s) for s in runs["summary"]]
active = {r["id"]: ui.shown_status(r) for r in store.active_runs()}  # "running · not responding, …" from job_health
machines = [ui.machine_name(label) for label in runs["machine_label"]]
table = pd.DataFrame({
    "run": [f"run?run={i}" for i in runs["id"]],
    "kind": runs["kind"],
    "machine": machines,
    "model": runs["model"],
    "runtime": runs["runtime"],
    "device": runs["device"],
    "dtype": runs["dtype"],
    "source": [ui.source_label(s, m) for s, m in zip(runs["source"], runs["measured"], strict=True)],
    "status": [active.get(i, s) for i, s in zip(runs["id"], runs["status"], strict=True)],
    "sweep": [None if pd.isna(w) else f"{w} · point {int(p) + 1}"
              for w, p in zip(runs["sweep_id"], runs["sweep_point"].fillna(-1), strict=True)],
    "tokens": [s.tokens_per_repeat or t or None for s, t in zip(summaries, runs["tokens_done"], strict=True)],
    "J/token (decode)": [s.per_token("decode").mean for s in summaries],
    "tokens/s": [s.tokens_per_s for s in summaries],
    "mean W": [s.mean_total_w for s in summaries],
    "notes": [s.notes(bool(p)) for s, p in zip(summaries, runs["power_incomplete"], strict=True)],
    "date": pd.to_datetime(runs["created_at"], unit="s", utc=True).dt.tz_convert(None),
})

f1, f2, f3, f4 = st.columns(4)
status_pick = f1.multiselect("Status", sorted(runs["status"].dropna().unique()), key="f_status", placeholder="All")
source_pick = f2.multiselect("Source", sorted(runs["source"].dropna().unique()), key="f_source", placeholder="All")
model_pick = f3.multiselect("Model", sorted(runs["model"].dropna().unique()), key="f_model", placeholder="All")
machine_pick = f4.multiselect("Machine", sorted(set(machines)), key="f_machine", placeholder="All",
                              help="The machine that made each run (unknown machine: recorded before machines were)")
keep = pd.Series(True, index=runs.index)
if status_pick:
    keep &= runs["status"].isin(status_pick)
if source_pick:
    keep &= runs["source"].isin(source_pick)
if model_pick:
    keep &= runs["model"].isin(model_pick)
if machine_pick:
    keep &= table["machine"].isin(machine_pick)
shown = table[keep]

st.dataframe(shown, hide_index=True, width="stretch", key="runs_table", column_config={
    "run": st.column_config.LinkColumn("Run", display_text=r"run\?run=(\d+)", help="Open the run"),
    "kind": st.column_config.TextColumn("Kind"),
    "machine": st.column_config.TextColumn("Machine", help="The machine that made the run"),
    "model": st.column_config.TextColumn("Model"),
    "runtime": st.column_config.TextColumn("Runtime", help="transformers (PyTorch) or mlx (mlx-lm) for a model loaded "
                                           "here, endpoint for a server; auto while a run has not loaded its model"),
    "device": st.column_config.TextColumn("Device"),
    "dtype": st.column_config.TextColumn("Dtype"),
    "source": st.column_config.TextColumn("Source", help="measured: read from the hardware; estimated: a model"),
    "status": st.column_config.TextColumn("Status", help="not responding: the job's process exists but is stopped "
                                          "or stuck (no heartbeat)"),
    "sweep": st.column_config.TextColumn("Sweep", help="The sweep this run is a point of (open it on the Sweeps page)"),
    "tokens": st.column_config.NumberColumn("Tokens", format="%d", help="Generated tokens per repeat"),
    "J/token (decode)": st.column_config.NumberColumn("J/token (decode)", format="%.4g J",
                                                      help="Whole-system energy per decode token"),
    "tokens/s": st.column_config.NumberColumn("Tokens/s", format="%.3g"),
    "mean W": st.column_config.NumberColumn("Mean power", format="%.3g W"),
    "notes": st.column_config.TextColumn("Notes", help="disturbed: other processes used noticeably more (or less) "
                                         "CPU during the workload than during the idle baseline; power incomplete: "
                                         "some power samples are missing"),
    "date": st.column_config.DatetimeColumn("Date (UTC)", format="YYYY-MM-DD HH:mm"),
})
st.caption(f"{len(shown)} of {len(table)} runs. Sources marked *estimated* are a model of power, not a reading.")

c1, c2 = st.columns(2)
with c1:
    st.page_link(ui.NEW_PAGE, label="New profile", icon=":material/play_arrow:")
with c2:
    st.page_link(ui.COMPARE_PAGE, label="Compare runs", icon=":material/compare_arrows:")

if read_only:
    st.stop()
ui.import_section(store)

with st.expander("Delete a run"):
    finished = runs[~runs["status"].isin(ACTIVE_STATUSES)]
    if finished.empty:
        st.caption("Only finished runs can be deleted; none is finished yet.")
    else:
        names = {int(r.id): f"#{r.id} {r.model or r.kind} ({r.status})" for r in finished.itertuples()}
        choice = st.selectbox("Run to delete", list(names), key="delete_pick", format_func=names.get)
        if st.button("Delete…", key="delete"):
            st.session_state["confirm_delete"] = int(choice)
        pending = st.session_state.get("confirm_delete")
        if pending is not None:
            st.warning(f"Delete run #{pending} and everything recorded for it? This cannot be undone.")
            yes, no = st.columns(2)
            if yes.button("Yes, delete it", type="primary", key="delete_yes"):
                deleted = ui.delete_run(store, pending)
                st.session_state.pop("confirm_delete", None)
                if deleted is not None:
                    ui.flash(f"Run #{pending} deleted." if deleted else
                             f"Run #{pending} was not deleted (still running?).")
                    st.rerun()
            if no.button("Keep it", key="delete_no"):
                st.session_state.pop("confirm_delete", None)
                st.rerun()
