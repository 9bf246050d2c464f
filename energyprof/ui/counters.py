"""How per-token figures are obtained, for the run and Power sources pages: the share of tokens measured, a
counter's update period, quantum and health per component, what the totals cover, and the second opinion of a
cross-check source.

`*_table` and `*_sentence` are pure functions; `show_*` draw them (user-controlled text escaped)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from energyprof.compare_table import health_cell  # noqa: F401 - the pages' name for it
from energyprof.components import ordered
from energyprof.summary import RunSummary
from energyprof.ui.format import fmt_energy, md_escape

MEASURED_NOTE = ("measured: the counter difference across the token, which lasts at least the counter's update "
                 "period; apportioned: a time share of a longer window (the token is shorter than the update "
                 "period, or the source has no counter)")


COUNTER_COLUMNS = ["Component", "Health", "Update period (ms)", "Quantum (mJ)", "Tokens measured (%)"]


def counter_table(summary: RunSummary) -> pd.DataFrame:
    """Per component of a counter source: its health (energyprof.analysis.counter_health), update period (ms), quantum
    (mJ) and share of tokens measured (%)."""
    periods = summary.counter_update_period_s or {}
    quanta = summary.counter_quantum_mj or {}
    shares = summary.tokens_measured_share_by_component or {}
    rows = [{"Component": c, "Health": summary.counter_health.get(c),
             "Update period (ms)": None if periods.get(c) is None else periods[c] * 1e3,
             "Quantum (mJ)": quanta.get(c),
             "Tokens measured (%)": None if shares.get(c) is None else shares[c] * 100}
            for c in ordered(periods)]
    return pd.DataFrame(rows, columns=COUNTER_COLUMNS)


def show_health(summary: RunSummary) -> None:
    """A warning per stalled or implausible counter (its energy is unknown: what was seen, what to do) and a note per
    batched one (what is apportioned and smoothed)."""
    for sentence in summary.health_warnings():
        st.warning(md_escape(sentence), icon=":material/speed:")
    for sentence in summary.batched_notes():
        st.info(md_escape(sentence), icon=":material/timer:")


def show_scope(summary: RunSummary) -> None:
    """What the whole-system figures cover (the source's own sentence) and which components they lack."""
    sentence = summary.total_sentence()
    if sentence is not None:
        st.caption(md_escape(sentence))


def probe_table(doctor: dict) -> pd.DataFrame:
    """Per counter source and component in `energyprof doctor --json`: its health over the probe, update period (ms),
    quantum (mJ), read cost."""
    rows = []
    for source in doctor.get("sources", []):
        counter = source.get("counter")
        if not counter:
            continue
        health = source.get("health") or {}
        for comp in ordered(counter.get("components", {})):
            found = counter["components"][comp]
            period = found.get("update_period_s")
            rows.append({"Source": source["name"], "Component": comp,
                         "Health": (health.get(comp) or {}).get("status"),
                         "Update period (ms)": None if period is None else period * 1e3,
                         "Quantum (mJ)": found.get("quantum_mj"), "Changes seen": found.get("changes"),
                         "One read (µs)": counter.get("read_us")})
    return pd.DataFrame(rows, columns=["Source", "Component", "Health", "Update period (ms)", "Quantum (mJ)",
                                       "Changes seen", "One read (µs)"])


def counter_sentence(summary: RunSummary) -> str | None:
    """What the counter is and what its boundary reads cost (None for sources without a counter)."""
    if not summary.boundary_reads:
        return None
    untimed = [c for c, p in (summary.counter_update_period_s or {}).items() if p is None]
    text = (f"The counter was read at every step boundary ({summary.boundary_reads:,} reads"
            + (f", {summary.counter_read_us:.3g} µs each" if summary.counter_read_us is not None else "") + ")"
            + (f" and probed for {summary.counter_probe_s:.2g} s while the model loaded"
               if summary.counter_probe_s is not None else "") + ".")
    if untimed:
        text += (f" Untimed ({', '.join(untimed)}): the counter did not move often enough during the probe, so "
                 "those components are apportioned from the sampler's windows (unless they did not move at all).")
    return text


def cross_check_table(summary: RunSummary) -> pd.DataFrame:
    """Per component both sources report: each one's energy over the workload, their ratio and correlation."""
    rows = [{"Component": c, f"{summary.source} (J)": a.primary_j, f"{summary.cross_check} (J)": a.cross_check_j,
             "Ratio": a.ratio, "Correlation": a.correlation, "Bins": a.bins}
            for c, a in summary.cross_check_agreement.items()]
    return pd.DataFrame(rows, columns=["Component", f"{summary.source} (J)", f"{summary.cross_check} (J)", "Ratio",
                                       "Correlation", "Bins"])


def show_counter(summary: RunSummary) -> None:
    """The counter's table and sentence under the power source (nothing for sources without a counter)."""
    sentence = counter_sentence(summary)
    if sentence is None:
        return
    st.caption(md_escape(sentence))
    st.dataframe(counter_table(summary), hide_index=True, width="stretch", key="table_counter")


def show_measured(summary: RunSummary) -> None:
    """The share of tokens measured, whole-system and per component."""
    sentence = summary.measured_sentence()
    if sentence is not None:
        st.markdown(f":green-badge[measured] vs :violet-badge[apportioned] {md_escape(sentence)}",
                    help=MEASURED_NOTE)


def show_cross_check(summary: RunSummary) -> None:
    """The second opinion: both sources' energies and their agreement, or why the cross-check has none."""
    if not summary.cross_check:
        return
    name = md_escape(summary.cross_check)
    st.subheader(f"Cross-check: {md_escape(summary.source or '—')} vs {name}")
    if summary.cross_check_error:
        st.warning(md_escape(summary.cross_check_error))
    table = cross_check_table(summary)
    if table.empty:
        st.info(f"{name} reported no component that the run's own source reports too, over the workload.")
        return
    st.dataframe(table, hide_index=True, width="stretch", key="table_cross_check")
    best = summary.cross_check_agreement
    first = next(iter(best))
    st.caption(f"Ratio: {name}'s energy / the run's own over the workload (e.g. {md_escape(first)}: "
               f"{fmt_energy(best[first].cross_check_j)} vs {fmt_energy(best[first].primary_j)}). Correlation: of the "
               "two sources' mean power per bin of a common time grid (1: they rise and fall together). Sources "
               "with different boundaries (SoC, board, CPU package) differ in ratio, not in correlation.")
