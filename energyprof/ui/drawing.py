"""Drawing helpers: charts at the container's width, download buttons, the generated text shaded by energy."""

from __future__ import annotations

from functools import partial

import altair as alt
import streamlit as st

from energyprof.analysis.precision import checked_phase
from energyprof.analysis.quoted import grid_label, quote_summary
from energyprof.export import export_csv, trace_json
from energyprof.provenance import labelled
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.token_html import token_text_html  # noqa: F401 - the pages' name for it


def chart(chart_obj: alt.TopLevelMixin, key: str | None = None) -> None:
    """Draw an Altair chart at the container's width."""
    st.altair_chart(chart_obj, width="stretch", key=key)


def csv_download(store: Store, run_id: int, what: str, label_text: str) -> None:
    """A download button for one full table of a run as CSV (built only when clicked)."""
    st.download_button(f"⬇ {label_text} (CSV)", data=partial(export_csv, store, run_id, what),
                       file_name=f"energyprof-run{run_id}-{what}.csv", mime="text/csv", on_click="ignore",
                       key=f"dl-{what}-{run_id}")


def trace_download(store: Store, run_id: int) -> None:
    """A download button for the run's Chrome/Perfetto trace (open it at ui.perfetto.dev)."""
    st.download_button("⬇ Perfetto trace (JSON)", data=partial(trace_json, store, run_id),
                       file_name=f"energyprof-run{run_id}-trace.json", mime="application/json",
                       on_click="ignore", key=f"dl-trace-{run_id}",
                       help="Open it at https://ui.perfetto.dev or chrome://tracing.")


def quoted_metrics(summary: RunSummary, estimated: bool) -> None:
    """The decode J/token in the units people quote (tokens/J, Wh and, at the user's grid, gCO2e per 1,000 tokens)
    and, under a target CI, whether it was met."""
    phase = checked_phase(summary.j_per_token)
    q = quote_summary(summary, phase)
    cols = st.columns(4)
    tag = estimated
    cols[0].metric(labelled(f"Tokens/J ({phase})", tag), "—" if q.tokens_per_j is None else f"{q.tokens_per_j:.4g}",
                   help="Generated tokens per joule of whole-system energy (1 / J/token)")
    cols[1].metric(labelled("Wh per 1,000 tokens", tag),
                   "—" if q.wh_per_1000_tokens is None else f"{q.wh_per_1000_tokens:.4g} Wh",
                   help=f"Watt-hours per 1,000 {phase} tokens")
    if q.g_co2e_per_1000_tokens is not None:
        cols[2].metric(labelled("g CO2e per 1,000 tokens", tag), f"{q.g_co2e_per_1000_tokens:.4g} g",
                       help=f"The {phase} energy {grid_label(q.grid_g_per_kwh)}")
    if summary.target_ci_pct is not None:
        reached = "—" if summary.ci_pct is None else f"± {summary.ci_pct:.2g}%"
        verdict = "met" if summary.target_ci_met else "not met"
        cols[3].metric(f"Target CI {summary.target_ci_pct:g}%", f"{verdict} ({reached})",
                       help=f"The {phase} J/token 95% CI half-width reached after {summary.repeats} repeats"
                            + {"time cap": f"; stopped by the {summary.max_seconds:g} s cap",
                               "repeat cap": "; stopped by the repeat cap"}.get(summary.repeats_stop or "", ""))
