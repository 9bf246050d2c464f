"""The HTML report of a sweep: the Sweeps page (curves with CIs, speed against energy, the points) offline."""

from __future__ import annotations

from energyprof import charts
from energyprof.analysis.quoted import grid_label
from energyprof.errors import EnergyprofError
from energyprof.formatting import fmt_date
from energyprof.provenance import labelled
from energyprof.report.document import Document
from energyprof.spec.sweep import SweepSpec
from energyprof.store import Store
from energyprof.sweep_table import (
    AXIS_COLUMNS,
    curve_frame,
    machine_frame,
    machine_table,
    replicated,
    sweep_frame,
    sweep_rows,
)

POINT_COLUMNS = ["point", "run_id", "status", "machine", "model", "device", "dtype", "batch", "prompt_tokens",
                 "max_new_tokens", "new_tokens", "repeats", "j_per_token", "j_per_token_ci95", "prefill_j_per_token",
                 "tokens_per_s", "tokens_per_j", "wh_per_1000_tokens", "g_co2e_per_1000_tokens", "pareto",
                 "target_ci_met", "error"]


class UnknownSweep(EnergyprofError, LookupError):
    """The sweep does not exist in this database."""


def sweep_report(store: Store, sweep_id: str) -> str:
    """The sweep `sweep_id` as HTML text; UnknownSweep when there is none."""
    sweep = store.get_sweep(sweep_id)
    if sweep is None:
        raise UnknownSweep(f"there is no sweep {sweep_id} in {store.path}")
    spec = SweepSpec.from_dict(sweep["spec"])
    frame = sweep_frame(sweep_rows(store, sweep_id))
    est = bool(frame["estimated"].fillna(False).astype(bool).any())
    done = int((frame["status"] == "done").sum())
    varied = ", ".join(f"{name.replace('_', ' ')} {', '.join('—' if v is None else str(v) for v in spec.axes[name])}"
                       for name in spec.varied()) or "one point"
    machines = sorted(set(frame["machine"].dropna()))
    doc = Document(f"energyprof report · sweep {sweep_id}",
                   f"{sweep['status']} · {done} of {len(frame)} points done · swept: {varied} · "
                   f"{fmt_date(sweep.get('created_at'))} · {', '.join(machines) or 'no point ran yet'}")
    if est:
        doc.warning("These figures come from a model of CPU utilisation, not a reading of the hardware: compare the "
                    "points with one another, not with other machines.")
    if sweep["status"] in ("failed", "cancelled") and sweep.get("error"):
        doc.warning(sweep["error"])
    for column, axis_title in AXIS_COLUMNS.items():
        doc.heading(labelled(axis_title.split(" (")[0].replace(" per sequence", ""), est))
        doc.chart(charts.sweep_curves(curve_frame(frame, column), axis_title, estimated=est))
    doc.caption("Decode: whole-system energy per generated token, every sequence of a batch counted. Prefill: the "
                "prompt's forward pass per prompt token. Bars: 95% CI over each point's repeats.")
    if replicated(sweep):
        machines = machine_frame(frame)
        doc.heading(labelled("Machines side by side", est))
        doc.table(machine_table(machines), "Every point ran on every machine: each row is one configuration, each "
                  "machine its decode J/token and tokens/s.")
        left, right = doc.side(), doc.side()
        left.chart(charts.sweep_machines(machines, "j_per_token", estimated=est))
        right.chart(charts.sweep_machines(machines, "tokens_per_s", estimated=est))
        doc.columns(left, right)
    doc.heading(labelled("Speed against energy", est))
    doc.chart(charts.sweep_pareto(frame, estimated=est))
    doc.heading(labelled("Points", est))
    grid = frame["grid_g_co2e_per_kwh"].dropna()
    columns = [c for c in POINT_COLUMNS if c != "g_co2e_per_1000_tokens" or not grid.empty]
    doc.table(frame.assign(point=frame["point"] + 1)[columns],
              f"CO2e {grid_label(float(grid.iloc[0]))}." if not grid.empty else None)
    return doc.render()
