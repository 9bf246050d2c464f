"""Runs side by side, also runs made on different machines: the Compare page's table and chart data, and the HTML
report's. Each row names the machine that made the run, its memory and what its power source's figures cover (the
source scope), next to J/token, tokens/s and power, so that a Mac and a GPU box are never compared blind.

No streamlit, no torch: pure functions over what the Store returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from energyprof import charts
from energyprof.analysis.quoted import quote_summary
from energyprof.components import ordered
from energyprof.formatting import fmt_ci
from energyprof.provenance import is_estimated, source_label
from energyprof.store import Store
from energyprof.summary import RunSummary


@dataclass
class Comparison:
    """The Compare page's data: the table, J/token per phase, mean power per component, layers and replays."""

    rows: pd.DataFrame
    j_per_token: pd.DataFrame
    power: pd.DataFrame
    layers: list[pd.DataFrame] = field(default_factory=list)
    replays: dict[str, pd.DataFrame] = field(default_factory=dict)
    estimated: bool = False

    @property
    def machines(self) -> int:
        """How many different machines made these runs (unknown machines counted once)."""
        return int(self.rows["machine id"].fillna(self.rows["machine"]).nunique()) if not self.rows.empty else 0


def run_tag(run: dict[str, Any]) -> str:
    return f"#{run['id']} {run.get('model')}"


def compare(store: Store, runs: Sequence[dict[str, Any]]) -> Comparison:
    """The comparison of these runs (in this order)."""
    rows, jpt, power, layers, replays = [], [], [], [], {}
    estimated = False
    for run in runs:
        s = RunSummary.from_dict(run.get("summary"))
        estimated = estimated or is_estimated(run)
        tag = run_tag(run)
        rows.append(compare_row(run, s))
        for phase in ("prefill", "decode"):
            stat = s.per_token(phase)
            jpt.append({"run": tag, "phase": phase, "mean": stat.mean, "ci95": stat.ci95})
        for comp, watts in s.mean_w.items():
            power.append({"run": tag, "component": comp, "mean_w": watts})
        summary = store.layer_summary(run["id"])
        if not summary.empty:
            per_layer = charts.whole_system(summary, ["name", "position"], ["energy_j"])
            per_layer["energy_j"] = per_layer["energy_j"] / max(1, s.tokens_total or 1)
            layers.append(per_layer.rename(columns={"name": "layer"}).assign(run=tag))
        replays[tag] = store.layer_replay(run["id"])
    return Comparison(pd.DataFrame(rows), pd.DataFrame(jpt), pd.DataFrame(power), layers, replays, estimated)


def health_cell(summary: RunSummary) -> str:
    """The counters' health in one table cell (Compare): `cpu stalled, dram batched`, `ok`, or `—` when not judged."""
    if not summary.counter_health:
        return "—"
    health = summary.counter_health
    flagged = [f"{c} {health[c]}" for c in ordered(health) if health[c] != "ok"]
    return ", ".join(flagged) or "ok"


def compare_row(run: dict[str, Any], s: RunSummary) -> dict[str, Any]:
    """One run's row: what it ran, on which machine, with which source, and its figures."""
    machine = s.machine
    return {"run": run_tag(run), "machine": s.machine_name, "machine id": machine.machine_id if machine else None,
            "memory GB": machine.memory_gb if machine else None,
            "source": source_label(run.get("source"), run.get("measured")),
            "source scope": s.scope or (machine.power_scope if machine else None) or "—",
            "runtime": s.runtime or "—", "device": run.get("device") or "—", "dtype": run.get("dtype") or "—",
            "status": run["status"],
            "J/token prefill": fmt_ci(s.per_token("prefill")), "J/token decode": fmt_ci(s.per_token("decode")),
            "tokens/s": s.tokens_per_s, "batch": s.batch or 1,
            "TTFT": fmt_ci(s.ttft_s, "s") if s.ttft_s is not None else "—",
            "tokens measured": None if s.tokens_measured_share is None else 100 * s.tokens_measured_share,
            "Wh/1k tokens": quote_summary(s).wh_per_1000_tokens, "mean W": s.mean_total_w,
            "net energy J": s.net_total_j, "peak memory MB": s.peak_memory_mb, "counters": health_cell(s),
            "whole system lacks": ", ".join(s.total_lacks) or None, "notes": s.notes(bool(run.get("power_incomplete")))}
