"""A sweep's Ray tasks on the Sweeps page: which node runs each point, in which phase of its job."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from energyprof.spec.sweep import SweepSpec, describe
from energyprof.store import ACTIVE_STATUSES


def ray_tasks(tasks: list[dict[str, Any]], spec: SweepSpec) -> None:
    """The tasks still queued or running, with their node (once the task has started) and job phase."""
    values = spec.point_values()
    live = [t for t in tasks if t["status"] in ACTIVE_STATUSES]
    if not live:
        st.caption("Waiting for the Ray tasks to start…")
        return
    table = pd.DataFrame({
        "point": [t["point"] + 1 for t in live],
        "configuration": [describe(values[t["point"]]) if t["point"] < len(values) else "?" for t in live],
        "node": [t.get("node_name") or t.get("pinned") or "not placed yet" for t in live],
        "status": [t["status"] for t in live],
        "phase": [t.get("phase") or "" for t in live],
        "progress": [100 * (t.get("progress") or 0.0) for t in live],
    })
    st.dataframe(table, hide_index=True, width="stretch", key="table_ray_tasks", column_config={
        "progress": st.column_config.ProgressColumn("Progress", format="%.0f %%", min_value=0, max_value=100)})
    st.caption("Each point runs as a Ray task on one node at a time per machine; its phase is the node's profiling "
               "job, read every few seconds.")
