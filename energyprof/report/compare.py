"""The HTML report of runs side by side (also from different machines): the Compare page in one offline file."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from energyprof import charts
from energyprof.compare_table import compare, run_tag
from energyprof.export import UnknownRun
from energyprof.report.document import Document
from energyprof.store import Store
from energyprof.summary import RunSummary


def compare_report(store: Store, run_ids: Sequence[int]) -> str:
    """The comparison of `run_ids` (two or more) as HTML text; UnknownRun for an id with no run."""
    runs = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            raise UnknownRun(f"run {run_id} does not exist in {store.path}")
        runs.append(run)
    data = compare(store, runs)
    est = data.estimated
    names = ", ".join(f"#{r['id']}" for r in runs)
    doc = Document(f"energyprof report · runs {names} compared",
                   f"{len(runs)} runs on {data.machines} machine{'s' if data.machines != 1 else ''}")
    if est:
        doc.warning("At least one of these runs uses an estimated power source: compare estimated figures only with "
                    "figures from the same source.")
    doc.heading("Side by side")
    doc.table(data.rows, "J/token: mean ± 95% CI over repeats; source scope: what the power source's figures cover.")
    left, right = doc.side(), doc.side()
    left.chart(charts.compare_j_per_token(data.j_per_token, estimated=est, phase="decode"))
    right.chart(charts.compare_j_per_token(data.j_per_token, estimated=est, phase="prefill"))
    doc.columns(left, right)
    left, right = doc.side(), doc.side()
    left.chart(charts.compare_power(data.power, estimated=est))
    if data.layers:
        right.chart(charts.compare_layers(pd.concat(data.layers, ignore_index=True), estimated=est,
                                          measure="Energy per layer per generated token (J)"))
    else:
        right.caption("None of these runs profiled layers.")
    doc.columns(left, right)
    doc.heading("Machines")
    machines = []
    for run in runs:
        machine = RunSummary.from_dict(run.get("summary")).machine
        facts = dict(machine.facts()) if machine else {"machine": "unknown machine"}
        machines.append(pd.Series(facts, name=run_tag(run)))
    doc.table(pd.concat(machines, axis=1).reset_index().rename(columns={"index": ""}).fillna(""))
    return doc.render()
