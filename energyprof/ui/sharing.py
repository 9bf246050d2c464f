"""Results that travel, on the pages: the machine a run was made on, where its energy went, the HTML report
download, and the read-only note of a shared dashboard."""

from __future__ import annotations

import html
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from energyprof import charts
from energyprof.errors import EnergyprofError
from energyprof.flow import EnergyFlow
from energyprof.machine import UNKNOWN_MACHINE, Machine
from energyprof.provenance import labelled
from energyprof.read_only import SIDEBAR_NOTE, is_read_only
from energyprof.ui.drawing import chart
from energyprof.ui.format import md_escape

FLOW_HELP = ("Each row splits the one above it: the run's whole energy into the idle baseline and the workload, the "
             "workload into components, each component into prefill and decode, each phase into layer kinds. The "
             "colour says how each figure was obtained; layer kinds share out a phase's energy by the layer calls' "
             "time-apportioned energy.")


def machine_name(label: Any) -> str:
    """A run row's machine label, or "unknown machine" (runs recorded before machines were)."""
    return str(label) if isinstance(label, str) and label else UNKNOWN_MACHINE


def machine_table(machine: Machine | None) -> pd.DataFrame:
    """The machine's facts as a two-column table (every value text)."""
    facts = machine.facts() if machine is not None else [("machine", UNKNOWN_MACHINE)]
    return pd.DataFrame({"fact": [k for k, _ in facts], "value": [v for _, v in facts]})


def machine_section(machine: Machine | None, key: str) -> None:
    """The machine a run was made on, in an expander (what a colleague needs to compare it)."""
    with st.expander(f"Machine: {md_escape(machine.name if machine else UNKNOWN_MACHINE)}"):
        if machine is None:
            st.caption("This run was recorded before energyprof recorded machines.")
        elif not machine.recorded_here:
            st.caption("Recorded by another program: only what its file says about the machine is known.")
        st.dataframe(machine_table(machine), hide_index=True, width="stretch", key=key)


def flow_section(flow: EnergyFlow | None, estimated: bool) -> None:
    """Where the energy went: the icicle and, beside it, the same numbers as a table."""
    if flow is None:
        return
    st.subheader(labelled("Where the energy went", estimated))
    st.caption(md_escape(FLOW_HELP))
    left, right = st.columns([3, 2])
    with left:
        chart(charts.energy_flow(flow.drawn(), estimated=estimated), key="chart_flow")
    with right:
        st.dataframe(flow.frame(), hide_index=True, width="stretch", key="table_flow", column_config={
            "band": st.column_config.TextColumn("Band"),
            "energy_j": st.column_config.NumberColumn(labelled("Energy", estimated), format="%.4g J"),
            "share_pct": st.column_config.NumberColumn("Share of the whole", format="%.3g %%"),
            "provenance": st.column_config.TextColumn("How", help="measured, apportioned or estimated"),
        })


def report_download(build: Callable[[], str], file_name: str, key: str) -> None:
    """A download button for a self-contained HTML report (built only when clicked; a report that cannot be built
    downloads as a page holding the one sentence that says why)."""
    st.download_button("⬇ Report (HTML, opens offline)", data=partial(_report_or_reason, build), file_name=file_name,
                       mime="text/html",
                       on_click="ignore", key=key,
                       help="One file with the figures, charts, tables, machine and parameters; attach it to an "
                            "issue, a paper or a chat.")


def _report_or_reason(build: Callable[[], str]) -> str:
    try:
        return build()
    except EnergyprofError as exc:
        return f"<!DOCTYPE html><meta charset=\"utf-8\"><p>{html.escape(str(exc))}</p>\n"


def read_only_sidebar() -> None:
    """In read-only mode, say so in the sidebar (every page)."""
    if is_read_only():
        st.sidebar.warning(SIDEBAR_NOTE, icon=":material/visibility:")
