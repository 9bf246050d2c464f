"""The run page's "Measured per layer (replay)" section: energy and power per call of each replayed layer, a summary
by layer kind, the replay closure, flagged figures and skipped modules (a runtime's replay made them)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from energyprof import charts
from energyprof.spec.replay_plan import REPLAY_WITH_ESTIMATE, replay_measures_time
from energyprof.summary import RunSummary
from energyprof.ui.badges import label
from energyprof.ui.drawing import chart
from energyprof.ui.format import fmt_energy, md_escape

PHASES = ("forward", "prefill", "decode")
EXPLAINED = ("Each layer was called alone in a loop after the measured repeats, with the inputs it really had at "
             "one step, until the power meter could see it: the energy and power per call are measured (mean ± 95% "
             "CI over trials), not a time share of a sample window. It is a layer alone, warm, at one position of the "
             "sequence; the closure compares the replayed top-level layers with the step the repeats measured.")


def replay_section(replay: pd.DataFrame, summary: RunSummary, estimated: bool,
                   baseline_w: float | None = None) -> None:
    """Draw the section (nothing when the run replayed no layer)."""
    if replay.empty:
        return
    st.subheader(label("Measured per layer (replay)", estimated))
    st.caption(EXPLAINED)
    if replay_measures_time(summary.source):
        st.warning(md_escape(REPLAY_WITH_ESTIMATE[0].upper() + REPLAY_WITH_ESTIMATE[1:]), icon=":material/timer:")
    for note in (summary.replay_closure_problem(), summary.replay_disturbance()):
        if note:
            st.warning(md_escape(note), icon=":material/group:")
    phases = [p for p in PHASES if p in set(replay["phase"])]
    phase = st.segmented_control("Replayed step", phases, default=phases[-1], key="replay_phase",
                                 format_func=lambda p: _step_name(p, summary)) or phases[-1]
    _closure(summary, phases, estimated)
    _flagged(replay, phase)
    left, right = st.columns(2)
    with left:
        chart(charts.replay_energy_bars(replay, phase=phase, estimated=estimated), key="chart_replay_energy")
    with right:
        chart(charts.replay_power_bars(replay, phase=phase, estimated=estimated, baseline_w=baseline_w),
              key="chart_replay_power")
    kinds = charts.replay_kind_summary(replay)
    left, right = st.columns(2)
    with left:
        chart(charts.replay_kind_bars(kinds, phase=phase, estimated=estimated), key="chart_replay_kinds")
    with right:
        st.markdown("**By layer kind**")
        st.dataframe(kinds[kinds["phase"] == phase].drop(columns="phase"), hide_index=True, width="stretch",
                     key="table_replay_kinds", column_config={
                         "energy_j_per_step": st.column_config.NumberColumn("Energy per step (J)", format="%.4g"),
                         "time_s_per_step": st.column_config.NumberColumn("Time per step (s)", format="%.3g"),
                         "power_w": st.column_config.NumberColumn(label("Power (W)", estimated), format="%.4g")})
        st.caption("One call of every layer of a kind, summed: a block contains its attention and MLP, so the "
                   "kinds do not add up.")
    for skipped in summary.replay_skipped or []:
        st.caption(f"Not replayed: {md_escape(skipped)}")


def _step_name(phase: str, summary: RunSummary) -> str:
    step = (summary.replay_steps or {}).get(phase)
    return phase if step is None or phase != "decode" else f"decode (step {step})"


def _closure(summary: RunSummary, phases: list[str], estimated: bool) -> None:
    """One metric per phase: the replayed top-level layers against the measured step."""
    closure = summary.replay_closure or {}
    sums, steps = summary.replay_sum_j or {}, summary.replay_step_j or {}
    columns = st.columns(max(1, len(phases)))
    for col, phase in zip(columns, phases, strict=False):
        ratio = closure.get(phase)
        col.metric(label(f"Replay closure, {phase}", estimated), "—" if ratio is None else f"{ratio:.3g}",
                   help=f"The replayed top-level layers (embedding, blocks, norm, lm_head) sum to "
                        f"{fmt_energy(sums.get(phase))} per call, against {fmt_energy(steps.get(phase))} measured for "
                        "that step in the repeats. Not 1: alone and warm, a layer skips the Python between layers, "
                        "the token choice and launch overheads, and the step's own figure is a share of its windows.")


def _flagged(replay: pd.DataFrame, phase: str) -> None:
    rows = replay[(replay["phase"] == phase) & (replay["kind"] != "restore") & replay["flagged"].astype(bool)]
    if rows.empty:
        return
    names = ", ".join(md_escape(n) for n in rows["layer"].head(8))
    more = f" and {len(rows) - 8} more" if len(rows) > 8 else ""
    st.warning(f"{len(rows)} of these figures have a 95% CI wider than their mean ({names}{more}): shown faded, "
               "not hidden. Replay longer (--replay-s) or more often (--replay-trials) to narrow them.")


def replay_table(replay: pd.DataFrame) -> pd.DataFrame:
    """The columns the run page's table of replayed layers shows."""
    return replay[["layer", "kind", "phase", "calls", "time_s_per_call", "energy_j_per_call", "net_energy_j_per_call",
                   "power_w", "net_power_w", "ci95_j", "cv", "flagged", "method"]]


def compare_replays(replays: Mapping[str, pd.DataFrame], estimated: bool) -> None:
    """On the Compare page: replayed energy per call and power per layer of the runs that replayed layers (two or
    more), for the phase most of them replayed (decode first)."""
    runs = {tag: df[df["kind"] != "restore"] for tag, df in replays.items() if not df.empty}
    if len(runs) < 2:
        return
    phase = next((p for p in ("decode", "forward", "prefill")
                  if sum(p in set(df["phase"]) for df in runs.values()) >= 2), None)
    if phase is None:
        return
    data = pd.concat([df[df["phase"] == phase].assign(run=tag) for tag, df in runs.items()], ignore_index=True)
    st.subheader(label(f"Measured per layer (replay), {phase}", estimated))
    st.caption("Runs that replayed their layers: each layer alone, measured per call (see the run pages).")
    left, right = st.columns(2)
    with left:
        chart(charts.compare_layers(data.rename(columns={"energy_j_per_call": "energy_j"}), estimated=estimated,
                                    measure=f"Replayed energy per call, {phase} (J)"), key="chart_compare_replay")
    with right:
        chart(charts.compare_layers(data.rename(columns={"power_w": "energy_j"}), estimated=estimated,
                                    measure=f"Power while replayed, {phase} (W)"), key="chart_compare_replay_power")
