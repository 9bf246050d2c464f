"""What the run page draws, read from the Store without Streamlit: the run page (through energyprof.ui.data's cache)
and the HTML report (energyprof.report) read the same data and compute the same headline figures from it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from energyprof import charts
from energyprof.components import whole_system
from energyprof.flow import energy_flow
from energyprof.power.base import COMPONENTS
from energyprof.store import Store
from energyprof.summary import RunSummary

TIMELINE_ROWS = 3600
"""Rows the power timeline asks the store for (all components together), leaving room for shading and ticks."""

_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="energyprof-read")
"""The run page's independent store reads run side by side: SQLite releases the GIL while it works and WAL
lets readers share the file (a third off the first view of a 2-hour run)."""


def _read(store: Store, method: str, *args: Any, **kwargs: Any) -> Any:
    """One store read in a pool thread, closing that thread's connection after (no handle outlives the read)."""
    try:
        return getattr(store, method)(*args, **kwargs)
    finally:
        store.close()


def read_views(store: Store, run: dict[str, Any], repeat: int = 0) -> dict[str, Any]:
    """Every table the run page draws for one run (`repeat`: the repeat shown per token and per layer)."""
    run_id = run["id"]
    components = len((run.get("summary") or {}).get("mean_w") or {}) or len(COMPONENTS)
    reads = {
        "timeline": _READS.submit(_read, store, "power_timeline", run_id, max_points=TIMELINE_ROWS // components),
        "totals": _READS.submit(_read, store, "power_totals", run_id),
        "steps": _READS.submit(_read, store, "steps", run_id),
        "tokens": _READS.submit(_read, store, "tokens_with_energy", run_id, repeat),
        "layer_summary": _READS.submit(_read, store, "layer_summary", run_id),
        "matrix": _READS.submit(_read, store, "layer_step_matrix", run_id, repeat, max_cells=charts.MAX_ROWS),
        "replay": _READS.submit(_read, store, "layer_replay", run_id),
        "phase_energy": _READS.submit(_read, store, "phase_energy", run_id),
        "layer_phase_energy": _READS.submit(_read, store, "layer_phase_energy", run_id),
    }
    span = store.step_span_ns(run_id)
    if span is not None:  # the workload alone: the steps' span and a margin of a tenth on each side
        margin = (span[1] - span[0]) // 10
        reads["workload_timeline"] = _READS.submit(
            _read, store, "power_timeline", run_id, max_points=TIMELINE_ROWS // components,
            start_ns=span[0] - margin, end_ns=span[1] + margin)
    views = {name: read.result() for name, read in reads.items()}
    summary = views["layer_summary"]
    layers = pd.DataFrame()
    if not summary.empty:
        layers = charts.whole_system(summary, ["layer_id", "name", "kind", "position"], ["energy_j", "net_energy_j"])
        extra = summary.groupby("layer_id", as_index=False).agg(calls=("calls", "max"), time_s=("time_s", "max"),
                                                                resolution=("resolution", "min"))
        layers = layers.merge(extra, on="layer_id", how="left").sort_values("position")
    views["layers"] = layers
    views["flow"] = energy_flow(RunSummary.from_dict(run.get("summary")), views["phase_energy"],
                                views["layer_phase_energy"])
    return views


@dataclass(frozen=True)
class Headline:
    """The run page's top figures (whole system): from the summary, else from the stored power totals."""

    gross_j: float | None
    net_j: float | None
    mean_w: float | None
    peak_w: float | None
    duration_s: float | None
    profiled: bool


def trusted_totals(summary: RunSummary, totals: pd.DataFrame) -> pd.DataFrame:
    """The recording's per-component totals without the figures of a stalled or implausible counter (unknown)."""
    unknown = list(summary.untrusted_counters())
    if not unknown or totals.empty:
        return totals
    return totals.assign(**{col: totals[col].where(~totals["component"].isin(unknown))
                            for col in ("energy_j", "mean_w")})


def headline(summary: RunSummary, views: dict[str, Any]) -> Headline:
    """The headline figures of a run, as the run page shows them."""
    totals, timeline = trusted_totals(summary, views["totals"]), views["timeline"]
    by_component = {col: dict(zip(totals["component"], totals[col], strict=True)) if not totals.empty else {}
                    for col in ("energy_j", "mean_w")}
    gross = summary.gross_total_j if summary.gross_total_j is not None else whole_system(by_component["energy_j"])
    mean_w = summary.mean_total_w if summary.mean_total_w is not None else whole_system(by_component["mean_w"])
    peak_w = summary.peak_total_w if summary.peak_total_w is not None or timeline.empty else \
        whole_system(timeline.groupby("component")["peak_w"].max().to_dict())
    duration = summary.duration_s or (float(totals["seconds"].max()) if not totals.empty else None)
    return Headline(gross, summary.net_total_j, mean_w, peak_w, duration, not views["steps"].empty)


def workload_components(summary: RunSummary) -> pd.DataFrame:
    """Per component over the measured repeats: gross and net energy (J) and mean power (W)."""
    net = summary.net_energy_j or {}
    rows = [{"component": c, "energy_j": summary.energy_j.get(c), "net_energy_j": net.get(c),
             "mean_w": summary.mean_w.get(c)} for c in summary.energy_j]
    return pd.DataFrame(rows, columns=["component", "energy_j", "net_energy_j", "mean_w"])
