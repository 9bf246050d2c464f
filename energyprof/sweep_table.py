"""A sweep as a table: one row per point (its latest run's figures, or the point's values while it waits; per point and
machine for a replicated Ray sweep), the Pareto front of throughput against energy, the long form the curves are
drawn from, the machine × configuration table of a replicated sweep, and the CSV download.

The one owner of what a sweep's row holds: `energyprof sweep --json`, the Sweep page and its CSV all read
`sweep_rows`. No streamlit, no torch: pure functions over what the Store returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from energyprof.analysis.quoted import quote_summary
from energyprof.export import neutralise_formulas
from energyprof.spec.sweep import SweepSpec, describe
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.units import finite_or_none

COLUMNS: tuple[str, ...] = (
    "point", "run_id", "status", "error", "machine", "model", "runtime", "device", "dtype", "quantization", "batch",
    "prompt_tokens", "max_new_tokens", "source", "estimated", "repeats", "new_tokens", "j_per_token",
    "j_per_token_ci95", "prefill_j_per_token", "prefill_j_per_token_ci95", "tokens_per_s", "tokens_per_j",
    "wh_per_1000_tokens", "g_co2e_per_1000_tokens", "grid_g_co2e_per_kwh", "peak_memory_mb", "target_ci_met",
    "ci_pct", "disturbed", "label", "machine_id")
"""A sweep row: the point's values, then its run's figures (decode J/token and its units unless named prefill;
new_tokens per repeat, every sequence counted; machine: the Ray node or other machine that ran it, None for this
one; machine_id: its hashed id, energyprof.machine; runtime: the one the run used, else the one asked for; label:
the point for people)."""
MACHINE_COLUMNS: tuple[str, ...] = ("label", "point", "machine", "source", "estimated", "status", "run_id",
                                    "j_per_token", "j_per_token_ci95", "tokens_per_s")
"""A replicated sweep's machine × configuration rows (long form: one per point and machine)."""
AXIS_COLUMNS: dict[str, str] = {"batch": "Batch size (sequences)", "prompt_tokens": "Prompt tokens per sequence"}
"""The x axes of the sweep curves: column -> axis title (a chart only for an axis the sweep varies)."""
LOG2_AXES: tuple[str, ...] = ("batch",)
"""Axes drawn on a log-2 scale: batch sizes go 1, 2, 4, 8…"""
AXIS_NAMES: dict[str, str] = {"model": "model", "device": "device", "dtype": "dtype", "batch": "batch",
                              "prompt_tokens": "prompt tokens", "max_new_tokens": "new tokens"}
"""Sweepable parameters as people name them."""


def swept_text(spec: SweepSpec) -> str:
    """The axes a sweep varies, for people: "batch 1, 2, 4 · prompt tokens 16, 64" ("one point" when none)."""
    parts = [f"{AXIS_NAMES.get(name, name.replace('_', ' '))} "
             f"{', '.join('own length' if v is None else str(v) for v in spec.axes[name])}" for name in spec.varied()]
    return " · ".join(parts) or "one point"


def sweep_list_frame(sweeps: pd.DataFrame, status_of: Any = None) -> pd.DataFrame:
    """The list of sweeps for people: sweep, status, model(s), what was swept, points done, created, error (empty
    text, never None); `status_of(row)` may turn an active sweep's status into its health (not responding)."""
    columns = ["Sweep", "Status", "Model", "Swept", "Points done", "Created", "Error"]
    if sweeps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for row in sweeps.to_dict(orient="records"):
        spec = SweepSpec.from_dict(row.get("spec") or {})
        rows.append({"Sweep": row["id"], "Status": status_of(row) if status_of else row["status"],
                     "Model": ", ".join(str(m) for m in spec.axes.get("model", [])),
                     "Swept": swept_text(spec), "Points done": f"{int(row['done'] or 0)} of {int(row['points'] or 0)}",
                     "Created": pd.to_datetime(row["created_at"], unit="s", utc=True).tz_convert(None),
                     "Error": row.get("error") if isinstance(row.get("error"), str) else ""})
    return pd.DataFrame(rows, columns=columns)


def wide_ci_points(curves: pd.DataFrame) -> int:
    """Points of the curves whose 95 % CI is wider than their mean (their bars would reach below 0 J)."""
    if curves.empty:
        return 0
    return int((curves["ci95"].fillna(0) > curves["mean"].abs()).sum())


def sweep_rows(store: Store, sweep_id: str) -> list[dict[str, Any]]:
    """One row per point of the sweep (a replicated Ray sweep: per point and machine), in point order (COLUMNS); []
    for an unknown sweep."""
    sweep = store.get_sweep(sweep_id)
    if sweep is None:
        return []
    spec = SweepSpec.from_dict(sweep["spec"])
    by_machine = replicated(sweep)
    latest: dict[tuple[int, str | None], dict[str, Any]] = {}
    for run in store.sweep_runs(sweep_id):  # oldest first: the last one wins
        latest[(run["sweep_point"], machine_of(run) if by_machine else None)] = run
    rows = []
    for index, values in enumerate(spec.point_values()):
        keys = sorted((k for k in latest if k[0] == index), key=lambda k: str(k[1])) or [(index, None)]
        rows.extend(_row(index, values, latest.get(key)) for key in keys)
    return rows


def replicated(sweep: dict[str, Any]) -> bool:
    """True for a sweep whose every point runs on every Ray node (one run per point per machine)."""
    return bool((sweep.get("ray") or {}).get("replicate"))


def machine_of(run: dict[str, Any]) -> str | None:
    """The machine that made a run, for people: the Ray node (its name, and its address when the name is not it),
    else the machine its summary names (energyprof.machine), else the machine id a bundle brought; None when the
    run names none (a run recorded before machines were)."""
    name, ip = run.get("ray_node_name"), run.get("ray_node_ip")
    if name or ip:
        return f"{name} ({ip})" if name and ip and name != ip else str(name or ip)
    machine = RunSummary.from_dict(run.get("summary")).machine
    if machine is not None and machine.label:
        return machine.label
    if run.get("origin_machine_id"):
        return f"machine {str(run['origin_machine_id'])[:12]}"
    return None


def _row(index: int, values: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update({"point": index, "status": "pending", "label": describe(values), **values})
    if run is None:
        return row
    row["machine"] = machine_of(run)
    s = RunSummary.from_dict(run.get("summary"))
    decode, prefill = s.per_token("decode"), s.per_token("prefill")
    q = quote_summary(s, "decode")
    row.update({
        "run_id": run["id"], "status": run["status"], "error": run.get("error"),
        "device": s.device or run.get("device") or values.get("device"),
        "runtime": s.runtime or values.get("runtime"), "quantization": s.quantization,
        "peak_memory_mb": s.peak_memory_mb,
        "prompt_tokens": s.prompt_tokens if s.prompt_tokens is not None else values.get("prompt_tokens"),
        "batch": s.batch or values.get("batch"), "source": s.source or run.get("source"),
        "estimated": s.estimated if s.source else None, "repeats": s.repeats,
        "new_tokens": s.tokens_per_repeat, "j_per_token": decode.mean, "j_per_token_ci95": decode.ci95,
        "prefill_j_per_token": prefill.mean, "prefill_j_per_token_ci95": prefill.ci95,
        "tokens_per_s": s.tokens_per_s, "tokens_per_j": q.tokens_per_j, "wh_per_1000_tokens": q.wh_per_1000_tokens,
        "g_co2e_per_1000_tokens": q.g_co2e_per_1000_tokens, "grid_g_co2e_per_kwh": q.grid_g_per_kwh,
        "target_ci_met": s.target_ci_met, "ci_pct": s.ci_pct, "disturbed": s.disturbed,
        "machine_id": s.machine.machine_id if s.machine else None})
    return row


def sweep_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame (COLUMNS) with `pareto`: on the front of tokens/s against J/token."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return frame.assign(pareto=pareto_front(frame))


def pareto_front(frame: pd.DataFrame, cost: str = "j_per_token", gain: str = "tokens_per_s") -> list[bool]:
    """For each row: True when no other row costs no more and gains no less, and is better in one of them.

    Rows with an unknown cost or gain are never on the front."""
    pairs = zip(frame[cost], frame[gain], strict=True) if len(frame) else ()
    points = [(finite_or_none(c), finite_or_none(g)) for c, g in pairs]
    known = [(c, g) for c, g in points if c is not None and g is not None]
    out = []
    for c, g in points:
        if c is None or g is None:
            out.append(False)
            continue
        out.append(not any(oc <= c and og >= g and (oc < c or og > g) for oc, og in known))
    return out



def machine_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A replicated sweep's done runs, one row per configuration and machine (MACHINE_COLUMNS); a machine whose figures
    come from the estimate source is labelled so in its name, as every estimated figure is."""
    if frame.empty:
        return pd.DataFrame(columns=list(MACHINE_COLUMNS))
    done = frame[(frame["status"] == "done") & frame["machine"].notna()].copy()
    est = done["estimated"].fillna(False).astype(bool)
    done["machine"] = [f"{m} (estimated)" if e else str(m) for m, e in zip(done["machine"], est, strict=True)]
    return done[list(MACHINE_COLUMNS)].sort_values(["point", "machine"]).reset_index(drop=True)


def machine_table(machines: pd.DataFrame) -> pd.DataFrame:
    """The machine × configuration table: one row per configuration, per machine its J/token and tokens/s."""
    if machines.empty:
        return pd.DataFrame(columns=["configuration"])
    order = list(dict.fromkeys(machines["machine"]))
    wide = machines.pivot_table(index=["point", "label"], columns="machine", values=["j_per_token", "tokens_per_s"],
                                aggfunc="first")
    out = pd.DataFrame({"configuration": [label for _, label in wide.index]})
    for machine in order:
        for value, unit in (("j_per_token", "J/token"), ("tokens_per_s", "tokens/s")):
            column = (value, machine)
            out[f"{machine} · {unit}"] = wide[column].to_numpy() if column in wide else None
    return out


def curve_frame(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """The long form of the J/token curves against column `x` (batch or prompt_tokens): x, phase, mean, ci95,
    series (the point's other swept values, for people), done points with a known J/token only."""
    columns = ["x", "phase", "mean", "ci95", "series"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    done = frame[(frame["status"] == "done") & frame[x].notna()]
    others = [c for c in ("model", "runtime", "device", "dtype", "batch", "prompt_tokens", "max_new_tokens",
                          "machine")
              if c != x and done[c].nunique(dropna=False) > 1]
    series = done.apply(lambda r: _series_label(r, others), axis=1) if not done.empty else pd.Series(dtype=str)
    parts = []
    for phase, mean, ci in (("decode", "j_per_token", "j_per_token_ci95"),
                            ("prefill", "prefill_j_per_token", "prefill_j_per_token_ci95")):
        parts.append(pd.DataFrame({"x": done[x], "phase": phase, "mean": done[mean], "ci95": done[ci],
                                   "series": series}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    out = out.dropna(subset=["mean"])
    return out[columns].astype({"x": float, "mean": float, "ci95": float}).sort_values(["series", "phase", "x"])


def _series_label(row: pd.Series, names: list[str]) -> str:
    if not names:
        return "all points"
    return describe({name: _plain(row[name]) for name in names})


def _plain(value: Any) -> Any:
    """A table cell as the plain value it was (NaN: None, 64.0: 64)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def sweep_csv(store: Store, sweep_id: str) -> str:
    """The sweep's table as CSV text (formula-like text neutralised, RFC 4180 line ends)."""
    frame = sweep_frame(sweep_rows(store, sweep_id))
    return neutralise_formulas(frame).to_csv(index=False, lineterminator="\r\n")
