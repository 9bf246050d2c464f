"""Run detail (`?run=N`): headline figures, power over time, where the energy went, per-token and per-layer energy,
text, the machine, downloads (CSV, trace, the HTML report)."""

from functools import partial

import pandas as pd
import streamlit as st

from energyprof import charts, ui
from energyprof.report import run_report
from energyprof.run_views import headline, trusted_totals
from energyprof.runner.jobs import RUN, job_health
from energyprof.spec.params import not_in_mode
from energyprof.store import ACTIVE_STATUSES

store = ui.page_setup("Run")
run_id = ui.query_run_id()
run = store.get_run(run_id) if run_id is not None else None
if run is None:
    st.title("Run")
    if run_id is not None:
        st.error(f"There is no run #{run_id} in {ui.md_escape(store.path)}.")
    runs = store.list_runs()
    if runs.empty:
        st.info("No runs yet.")
        st.page_link(ui.RUNS_PAGE, label="Go to Runs", icon=":material/list:")
        st.stop()
    names = {int(r.id): f"#{r.id} {r.model or r.kind} ({r.status})" for r in runs.itertuples()}
    pick = st.selectbox("Open a run", list(names), format_func=names.get, index=None, key="open_run")
    if pick is not None:
        st.query_params["run"] = str(pick)
        st.rerun()
    st.stop()

est = ui.is_estimated(run)
summary = ui.summary_of(run)
st.title(f"Run #{run['id']} · {ui.md_escape(run.get('model') or run['kind'])}")
facts = [f"source **{ui.md_escape(run.get('source') or '—')}**", ui.md_escape(run["kind"])]
facts += [f"runtime **{ui.md_escape(summary.runtime)}**"] if summary.runtime and summary.endpoint is None else []
facts += [f"{name} **{ui.md_escape(run[name])}**" for name in ("device", "dtype") if run.get(name)]
facts += ui.endpoint_facts(summary)
machine = summary.machine_name if summary.machine else ui.machine_name(run.get("machine_label"))  # running: the row
facts.append(f"machine **{ui.md_escape(machine)}**")
state = "not responding" if run["status"] in ACTIVE_STATUSES and job_health(run).state == "not responding" else \
    run["status"]
st.markdown(f"{ui.status_badge(state)} {ui.measured_badge(run)} " + " · ".join(
    [*facts, ui.fmt_date(run.get("created_at"))]))
ui.show_flash()
ui.origin_caption(store.run_origin(run["id"]))
if run.get("sweep_id"):
    point = (run.get("sweep_point") or 0) + 1
    ui.sweep_link(run["sweep_id"], f"Point {point} of sweep {ui.md_escape(run['sweep_id'])}")
if est:
    st.caption(f"{ui.estimated_badge()} These power figures come from a model of CPU utilisation, not a "
               "reading of the hardware: use them to compare runs on this machine, not as joules.")
if run["status"] == "failed":
    st.error(f"This run failed: {ui.md_escape(ui.run_error(run) or 'no reason was recorded.')}")
elif run["status"] == "cancelled":
    st.warning(f"This run was cancelled: {ui.md_escape(ui.run_error(run) or 'stopped before it finished.')}")
if run.get("power_incomplete") or summary.power_incomplete:
    st.warning("Power data is incomplete: the source stopped or skipped samples during the run, so some windows "
               "are unknown and the energy figures cover only the known part.")
log = RUN.log_path(store, run["id"])
if run["status"] in ("failed", "cancelled") and run.get("traceback") and log.exists():
    st.caption(f"For developers: the traceback is in the job log, {ui.md_escape(log)}")
if run["status"] in ACTIVE_STATUSES:
    ui.live_job(run["id"])
    st.stop()

for warning in summary.warnings:
    st.warning(ui.md_escape(warning))
if summary.disturbed:
    st.warning(ui.md_escape(summary.disturbance()), icon=":material/group:")
ui.show_health(summary)
unknown = list(summary.untrusted_counters())
repeats = max(1, summary.repeats)
repeat = st.selectbox("Repeat shown per token and per layer", list(range(repeats)), key="repeat",
                      format_func=lambda r: f"repeat {r + 1} of {repeats}") if repeats > 1 else 0
views = ui.run_views(store, run, repeat)
tokens, layers, totals = views["tokens"], views["layers"], views["totals"]
totals = trusted_totals(summary, totals)  # the raw windows of a stalled or implausible counter are no figure
head = headline(summary, views)
profiled, gross, mean_w, peak_w, duration = head.profiled, head.gross_j, head.mean_w, head.peak_w, head.duration_s
timeline = views["timeline"]

lacks = f" (without {', '.join(summary.total_lacks)})" if summary.total_lacks else ""
top = st.columns(4)
top[0].metric(ui.label("Gross energy", est) + lacks, ui.fmt_energy(gross),
              help="Whole-system energy of the workload (every measured repeat), idle draw included; what the whole "
                   "system covers is stated under the figures")
rest = top[1:]
if profiled:
    jpt = summary.j_per_token
    phases = [p for p in ("prefill", "decode") if p in jpt] or [p for p in jpt if p != "prefill"][:2]
    top[1].metric(ui.label("Net energy", est) + lacks, ui.fmt_energy(summary.net_total_j),
                  help="Gross energy minus the idle baseline power × the workload's duration")
    for col, phase in zip(top[2:], phases, strict=False):
        col.metric(ui.label(f"J/token {ui.md_escape(phase)}", est) + lacks, ui.fmt_ci(summary.per_token(phase)),
                   help="Mean ± 95% CI over repeats" + (", per prompt token" if phase == "prefill" else ""))
    second = st.columns(4)
    second[0].metric("Tokens/s", ui.fmt_rate(summary.tokens_per_s), help="Decode tokens per second")
    rest = second[1:]
    ui.quoted_metrics(summary, est)
rest[0].metric(ui.label("Mean power", est), ui.fmt_power(mean_w))
rest[1].metric(ui.label("Peak power", est), ui.fmt_power(peak_w),
               help="Highest window mean power during the workload (without a package figure: the sum of each "
                    "component's peak, an upper bound)")
rest[2].metric("Duration", ui.fmt_seconds(duration), help="Of the workload (all repeats) or of the recording")
if summary.endpoint is not None:
    ui.endpoint_section(summary)
if ui.runtime_caption(summary):
    st.caption(ui.md_escape(ui.runtime_caption(summary)), help=ui.PEAK_MEMORY_HELP)
if profiled and summary.baseline_total_w is not None:
    st.caption(f"Idle baseline: {ui.fmt_power(summary.baseline_total_w)} (model loaded, no work). "
               "Net = gross − baseline × duration; gross includes the idle draw.")
ui.show_scope(summary)

st.subheader(ui.label("Power over time", est))
if profiled and "workload_timeline" in views:
    span = st.segmented_control("Time range", ["Workload", "Whole recording"], default="Workload",
                                key="time_range", help="The whole recording includes model loading, the idle "
                                "baseline and warm-up runs.")
    if span != "Whole recording":
        timeline = views["workload_timeline"]
timeline = charts.trusted_timeline(timeline, unknown, summary.publication_s())
ui.chart(charts.power_timeline(timeline, views["steps"] if profiled else None, estimated=est), key="chart_timeline")
st.caption("Lines: mean power per component in each time bin" + (
    ". Shading: prefill / decode. Ticks: step starts." if profiled else ".") + (
    f" Not drawn: {', '.join(unknown)} (counter {', '.join(summary.untrusted_counters().values())}: unknown)."
    if unknown else "") + (
    " Smoothed over the publication period: " + ", ".join(f"{c} {p:.2g} s" for c, p in
                                                          summary.publication_s().items()) + "."
    if summary.publication_s() else ""))

left, right = st.columns(2)
with left:
    st.subheader(ui.label("Components", est))
    breakdown = ui.workload_components(summary) if profiled else totals
    ui.chart(charts.component_breakdown(breakdown, estimated=est), key="chart_components")
    if profiled:
        st.caption("Gross energy per component over the measured repeats (loading, baseline and warm-up excluded).")
with right:
    st.subheader("Power source")
    if profiled:
        st.caption("The whole recording: loading, idle baseline, warm-up and workload.")
    st.markdown(f"{ui.measured_badge(run)} **{ui.md_escape(run.get('source') or '—')}**, "
                f"{int(totals['windows'].max()) if not totals.empty else 0:,} windows, "
                f"components: {ui.md_escape(', '.join(totals['component'])) if not totals.empty else 'none'}")
    if not totals.empty:
        st.dataframe(totals.rename(columns={"component": "Component", "windows": "Windows",
                                            "known_windows": "Known windows", "seconds": "Known (s)",
                                            "energy_j": "Energy (J)", "mean_w": "Mean power (W)"}),
                     hide_index=True, width="stretch", key="table_components")
    ui.show_counter(summary)
ui.show_cross_check(summary)
ui.flow_section(views.get("flow"), est)

if profiled:
    per_step = ui.per_step_label(summary)
    st.subheader(ui.label(f"Energy per {per_step}", est))
    ui.show_measured(summary)
    if ui.apportioned(tokens.get("resolution")) or ("how" in tokens and (tokens["how"] == "apportioned").any()):
        ui.apportioned_note(ui.APPORTIONED_TOKENS)
    left, right = st.columns(2)
    with left:
        ui.chart(charts.token_energy_bars(tokens, estimated=est, batch=summary.batch or 1), key="chart_tokens")
    with right:
        ui.chart(charts.cumulative_energy(tokens, estimated=est), key="chart_cumulative")

    if not layers.empty:
        st.subheader(ui.label("Energy per layer", est))
        if ui.apportioned(layers.get("resolution")):
            ui.apportioned_note()
        left, right = st.columns(2)
        with left:
            ui.chart(charts.layer_energy_bars(layers, estimated=est), key="chart_layers")
        with right:
            ui.chart(charts.layer_step_heatmap(views["matrix"], estimated=est), key="chart_heatmap")
    elif summary.endpoint is not None:
        st.caption(ui.NO_LAYERS)

    ui.replay_section(views["replay"], summary, est, summary.baseline_total_w)

    st.subheader(ui.label("Generated text, shaded by energy per token", est))
    st.html(ui.token_text_html(tokens))
    st.caption("Darker = more energy, from the cheapest to the dearest decode token. Blue: the prefill (the "
               "whole prompt in one pass). Hover a token for its energy.")

st.subheader("Tables and downloads")
st.caption("Each download holds the full data; the charts above are binned to at most "
           f"{charts.MAX_ROWS:,} rows each.")
if profiled:
    with st.expander(ui.label(f"Tokens ({len(tokens):,} rows, one per {per_step})", est)):
        st.dataframe(tokens[["repeat", "idx", "phase", "token_text", "duration_s", "energy_j", "net_energy_j",
                             "resolution", "how"]], hide_index=True, width="stretch", key="table_tokens")
        ui.csv_download(store, run["id"], "tokens", f"Tokens, one row per {per_step}, every repeat and component")
    if not layers.empty:
        with st.expander(ui.label(f"Layers ({len(layers):,})", est)):
            st.dataframe(layers[["name", "kind", "calls", "time_s", "energy_j", "net_energy_j", "resolution"]],
                         hide_index=True, width="stretch", key="table_layers")
            ui.csv_download(store, run["id"], "layers", "Layers, per component")
            ui.csv_download(store, run["id"], "calls", "Every layer call")
    if not views["replay"].empty:
        with st.expander(ui.label(f"Replayed layers ({len(views['replay']):,})", est)):
            st.dataframe(ui.replay_table(views["replay"]), hide_index=True, width="stretch", key="table_replay")
            ui.csv_download(store, run["id"], "layer-replay", "Replayed layers, per component")
with st.expander("Parameters"):
    params = run.get("params") or {}
    if summary.endpoint is not None:  # what a model loaded here would use does not apply
        params = {k: v for k, v in params.items() if k not in not_in_mode("endpoint")}
    st.dataframe(pd.DataFrame({"parameter": list(params), "value": [str(v) for v in params.values()]}),
                 hide_index=True, width="stretch", key="table_params")
ui.machine_section(summary.machine, key="table_machine")
d1, d2, d3, d4, d5 = st.columns(5)
with d1:
    ui.csv_download(store, run["id"], "samples", "Power samples")
with d2:
    ui.csv_download(store, run["id"], "summary", "Summary")
with d3:
    ui.trace_download(store, run["id"])
with d4:
    ui.bundle_download(store, run_ids=[run["id"]], runs=[run])
with d5:
    ui.report_download(partial(run_report, store, run["id"]), f"energyprof-run{run['id']}.html",
                       f"dl-report-{run['id']}")
