"""The HTML report of one run: what the run page shows, in one file that opens offline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from energyprof import charts
from energyprof.analysis.precision import checked_phase
from energyprof.analysis.quoted import grid_label, quote_summary
from energyprof.export import UnknownRun, layer_replay_frame
from energyprof.formatting import fmt_ci, fmt_date, fmt_energy, fmt_power, fmt_rate, fmt_seconds
from energyprof.machine import Machine
from energyprof.provenance import APPORTIONED, ESTIMATED, MEASURED, is_estimated, labelled
from energyprof.report.document import Document, Figure
from energyprof.run_views import headline, read_views, trusted_totals, workload_components
from energyprof.spec.params import not_in_mode
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.token_html import token_text_html

TOKEN_COLUMNS = ["repeat", "idx", "phase", "token_text", "duration_s", "energy_j", "net_energy_j", "resolution", "how"]
LAYER_COLUMNS = ["name", "kind", "calls", "time_s", "energy_j", "net_energy_j", "resolution"]
FULLY_MEASURED = 0.999


def run_report(store: Store, run_id: int) -> str:
    """The report of run `run_id` as HTML text; UnknownRun when there is no such run."""
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRun(f"run {run_id} does not exist in {store.path}")
    summary = RunSummary.from_dict(run.get("summary"))
    views = read_views(store, run)
    est = is_estimated(run)
    doc = Document(f"energyprof report · run #{run['id']} · {run.get('model') or run['kind']}",
                   " · ".join(str(p) for p in (run["status"], run["kind"], f"source {run.get('source') or '—'} "
                              f"({'estimated' if est else 'measured'})", run.get("device"), run.get("dtype"),
                              summary.machine_name, fmt_date(run.get("created_at"))) if p))
    run_section(doc, store, run, summary, views, est)
    return doc.render()


def run_section(doc: Document, store: Store, run: dict[str, Any], summary: RunSummary, views: dict[str, Any],
                est: bool) -> None:
    """Every part of one run's report, into `doc`."""
    _warnings(doc, run, summary)
    _headline(doc, summary, views, est)
    doc.heading(labelled("Power over time", est))
    timeline = views.get("workload_timeline", views["timeline"]) if not views["steps"].empty else views["timeline"]
    timeline = charts.trusted_timeline(timeline, list(summary.untrusted_counters()), summary.publication_s())
    doc.chart(charts.power_timeline(timeline, views["steps"] if not views["steps"].empty else None, estimated=est))
    _flow(doc, views, est)
    _components(doc, summary, views, est)
    if not views["steps"].empty:
        _tokens(doc, summary, views, est)
        _layers(doc, views, est)
        _replay(doc, store, run, views, est)
    doc.heading("Machine")
    _machine(doc, summary.machine)
    doc.heading("Parameters")
    params = run.get("params") or {}
    if summary.endpoint is not None:
        params = {k: v for k, v in params.items() if k not in not_in_mode("endpoint")}
    doc.table(pd.DataFrame({"parameter": list(params), "value": [str(v) for v in params.values()]}))


def _warnings(doc: Document, run: dict[str, Any], summary: RunSummary) -> None:
    if run["status"] == "failed":
        doc.warning(f"This run failed: {run.get('error') or 'no reason was recorded.'}")
    elif run["status"] == "cancelled":
        doc.warning(f"This run was cancelled: {run.get('error') or 'stopped before it finished.'}")
    for warning in [*summary.warnings, *summary.health_warnings()]:
        doc.warning(warning)
    if summary.disturbed:
        doc.warning(summary.disturbance() or "Disturbed by other processes.")
    if summary.estimated:
        doc.warning("These power figures come from a model of CPU utilisation, not a reading of the hardware: use "
                    "them to compare runs on one machine, not as joules.")


def token_provenance(summary: RunSummary) -> str:
    """How the per-token figures were obtained: estimated, measured (every token), else apportioned (some or all)."""
    if summary.estimated:
        return ESTIMATED
    share = summary.tokens_measured_share
    return MEASURED if share is not None and share >= FULLY_MEASURED else APPORTIONED


def _headline(doc: Document, summary: RunSummary, views: dict[str, Any], est: bool) -> None:
    head = headline(summary, views)
    whole = ESTIMATED if est else MEASURED
    lacks = f" (without {', '.join(summary.total_lacks)})" if summary.total_lacks else ""
    figures = [Figure("Gross energy" + lacks, fmt_energy(head.gross_j), whole,
                      "Whole-system energy of the workload, idle draw included")]
    if head.profiled:
        per_token = token_provenance(summary)
        figures.append(Figure("Net energy", fmt_energy(head.net_j), whole,
                              "Gross energy minus the idle baseline power × the workload's duration"))
        phases = [p for p in ("prefill", "decode") if p in summary.j_per_token] or \
            [p for p in summary.j_per_token if p != "prefill"][:2]
        figures += [Figure(f"J/token {p}", fmt_ci(summary.per_token(p)), per_token, "Mean ± 95% CI over repeats")
                    for p in phases]
        figures.append(Figure("Tokens/s", fmt_rate(summary.tokens_per_s), None, "Decode tokens per second"))
        q = quote_summary(summary, checked_phase(summary.j_per_token))
        figures.append(Figure("Tokens/J", "—" if q.tokens_per_j is None else f"{q.tokens_per_j:.4g}", per_token))
        figures.append(Figure("Wh per 1,000 tokens", "—" if q.wh_per_1000_tokens is None
                              else f"{q.wh_per_1000_tokens:.4g} Wh", per_token))
        if q.g_co2e_per_1000_tokens is not None:
            figures.append(Figure("g CO2e per 1,000 tokens", f"{q.g_co2e_per_1000_tokens:.4g} g", per_token,
                                  grid_label(q.grid_g_per_kwh)))
    figures += [Figure("Mean power", fmt_power(head.mean_w), whole),
                Figure("Peak power", fmt_power(head.peak_w), whole, "Highest window mean power"),
                Figure("Duration", fmt_seconds(head.duration_s))]
    if head.profiled and summary.baseline_total_w is not None:
        figures.append(Figure("Idle baseline", fmt_power(summary.baseline_total_w), whole,
                              "Model loaded, no work; net = gross − baseline × duration"))
    doc.figures(figures)
    for sentence in (summary.total_sentence(), summary.measured_sentence()):
        if sentence:
            doc.caption(sentence)
    if summary.ci_pct is not None:
        doc.caption(f"The {checked_phase(summary.j_per_token)} J/token 95% CI half-width is {summary.ci_pct:.2g}% of "
                    f"its mean after {summary.repeats} repeats.")


def _flow(doc: Document, views: dict[str, Any], est: bool) -> None:
    flow = views.get("flow")
    if flow is None:
        return
    doc.heading(labelled("Where the energy went", est))
    doc.chart(charts.energy_flow(flow.drawn(), estimated=est))
    doc.table(flow.frame().rename(columns={"energy_j": "energy (J)", "share_pct": "share of the whole (%)"}),
              "The same numbers: every band's children add up to it (a negative net figure is drawn empty).")


def _components(doc: Document, summary: RunSummary, views: dict[str, Any], est: bool) -> None:
    totals = trusted_totals(summary, views["totals"])
    doc.heading(labelled("Components", est))
    breakdown = workload_components(summary) if not views["steps"].empty else totals
    left, right = doc.side(), doc.side()
    left.chart(charts.component_breakdown(breakdown, estimated=est))
    right.table(totals.rename(columns={"seconds": "known (s)"}), "The whole recording per component (loading, idle "
                "baseline, warm-up and workload).")
    doc.columns(left, right)


def _tokens(doc: Document, summary: RunSummary, views: dict[str, Any], est: bool) -> None:
    tokens = views["tokens"]
    doc.heading(labelled("Energy per token", est))
    left, right = doc.side(), doc.side()
    left.chart(charts.token_energy_bars(tokens, estimated=est, batch=summary.batch or 1))
    right.chart(charts.cumulative_energy(tokens, estimated=est))
    doc.columns(left, right)
    doc.heading(labelled("Generated text, shaded by energy per token", est), 3)
    doc.html_block(token_text_html(tokens))
    doc.heading(labelled("Tokens (repeat 1)", est), 3)
    doc.table(tokens[[c for c in TOKEN_COLUMNS if c in tokens.columns]])


def _layers(doc: Document, views: dict[str, Any], est: bool) -> None:
    layers = views["layers"]
    if layers.empty:
        return
    doc.heading(labelled("Energy per layer", est))
    left, right = doc.side(), doc.side()
    left.chart(charts.layer_energy_bars(layers, estimated=est))
    right.chart(charts.layer_step_heatmap(views["matrix"], estimated=est))
    doc.columns(left, right)
    doc.table(layers[[c for c in LAYER_COLUMNS if c in layers.columns]],
              "Per layer, whole system, every measured repeat (time-apportioned unless replayed).")


def _replay(doc: Document, store: Store, run: dict[str, Any], views: dict[str, Any], est: bool) -> None:
    replay = views["replay"]
    if replay.empty:
        return
    doc.heading(labelled("Measured per layer (replay)", est))
    phases = [p for p in ("forward", "prefill", "decode") if p in set(replay["phase"])]
    sides = []
    for phase in phases:
        side = doc.side()
        side.chart(charts.replay_energy_bars(replay, phase=phase, estimated=est))
        sides.append(side)
    doc.columns(*sides)
    doc.table(layer_replay_frame(store, run))


def _machine(doc: Document, machine: Machine | None) -> None:
    if machine is None:
        doc.text("Unknown machine: this run was recorded before energyprof recorded machines.")
        return
    facts = machine.facts()
    doc.table(pd.DataFrame({"": [k for k, _ in facts], "value": [v for _, v in facts]}))
