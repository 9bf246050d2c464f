"""Sweeps on Ray in the dashboard: the Sweeps page names the node that ran each point, a replicated sweep gets a
machine × configuration table and charts (an estimated machine labelled so), a running Ray sweep lists its tasks'
nodes and phases; the New-profile Sweep tab takes a Ray address. Runs come home as the Ray driver brings them:
bundles imported as points, with their node."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from seed import charts_by_title, open_page, seed_run, texts

from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.spec.sweep import SweepSpec
from energyprof.store import RayNode, Store

PAGE = "pages/sweep.py"
NODES = {"mac-m1": ("10.0.0.11", "powermetrics", True), "linux-box": ("10.0.0.12", "estimate", False)}
"""Two lab machines: one measures, the other only estimates."""


def seed_replicated(store: Store, tmp_path: Path) -> str:
    """A finished sweep of two points run on both machines, each run imported as the Ray driver imports it."""
    spec = SweepSpec(ProfileParams(model="tiny", device="cpu", max_new_tokens=8), {"batch": [1, 2]})
    store.create_sweep("lab", spec.to_dict(), spec.size, pid=os.getpid(),
                       ray={"address": "ray://head:10001", "replicate": True})
    for n, (name, (ip, source, measured)) in enumerate(NODES.items()):
        node = Store(tmp_path / f"{name}.sqlite3")
        for point in range(spec.size):
            run_id = seed_run(node, minutes=0.05, tokens=8, seed=10 * n + point, source=source, measured=measured)
            store.import_bundle(node.export_bundle([run_id]).data, sweep=("lab", point),
                                ray_node=RayNode(f"{n}" * 56, ip, name))
        node.close()
    store.finish_sweep("lab", "done")
    return "lab"


def test_a_replicated_sweep_shows_machines_side_by_side(store: Store, tmp_path: Path) -> None:
    at = open_page(PAGE, {"sweep": seed_replicated(store, tmp_path)})
    assert not at.exception
    assert len(at.dataframe) == 2  # the machine × configuration table, then the points
    table = at.dataframe[0].value
    assert table["configuration"].tolist() == ["tiny, cpu, float32, own prompt length, batch 1, 8 new tokens",
                                               "tiny, cpu, float32, own prompt length, batch 2, 8 new tokens"]
    assert list(table.columns[1:]) == [
        "linux-box (10.0.0.12) (estimated) · J/token", "linux-box (10.0.0.12) (estimated) · tokens/s",
        "mac-m1 (10.0.0.11) · J/token", "mac-m1 (10.0.0.11) · tokens/s"]
    assert table.drop(columns="configuration").notna().all().all()
    found = charts_by_title(at)
    assert found["Machines side by side: energy per decode token (estimated)"]["rows"] == 4
    assert found["Machines side by side: decode speed (estimated)"]["rows"] == 4
    points = at.dataframe[1].value
    assert sorted(points["machine"]) == ["linux-box (10.0.0.12)", "linux-box (10.0.0.12)", "mac-m1 (10.0.0.11)",
                                         "mac-m1 (10.0.0.11)"]
    assert any("every point on every node" in t for t in texts(at, "caption"))


def test_a_running_ray_sweep_lists_its_tasks(store: Store) -> None:
    spec = SweepSpec(ProfileParams(model="tiny"), {"batch": [1, 2, 4]})
    store.create_sweep("busy", spec.to_dict(), spec.size, pid=os.getpid(), ray={"address": "auto"})
    store.set_sweep_task("busy", 0, "", "running", node_name="mac-m1", phase="repeat 1 of 3", progress=0.4)
    store.set_sweep_task("busy", 1, "", "running", node_name="linux-box", phase="baseline", progress=0.0)
    store.set_sweep_task("busy", 2, "", "queued")
    at = open_page(PAGE, {"sweep": "busy"})
    assert not at.exception
    tasks = at.dataframe[0].value
    assert tasks[["point", "node", "status", "phase"]].values.tolist() == [
        [1, "mac-m1", "running", "repeat 1 of 3"], [2, "linux-box", "running", "baseline"],
        [3, "not placed yet", "queued", ""]]
    assert tasks["progress"].tolist() == [40.0, 0.0, 0.0]
    assert at.button(key="cancel-sweep-busy")


def test_new_page_launches_a_sweep_on_ray_and_refuses_a_bad_address(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[dict[str, Any]] = []

    def fake_launch(s: Store, spec: dict[str, Any], points: int, sweep_id: str, ray: Any = None) -> str:
        launched.append({"id": sweep_id, "ray": ray})
        s.create_sweep(sweep_id, spec, points, ray=ray)
        return sweep_id

    monkeypatch.setattr(jobs, "launch_sweep", fake_launch)
    at = open_page("pages/new.py")
    at.text_input(key="sweep_ray").set_value("http://head:8265")
    at.button(key="launch_sweep").click().run()
    assert texts(at, "error") == ["'http://head:8265' is not a Ray address; give auto (the cluster this machine "
                                  "joined with `ray start`), local (a Ray instance started here, to try it), "
                                  "ray://HOST:PORT (a cluster's Ray Client server) or HOST:PORT (its GCS address)."]
    assert not launched
    at.text_input(key="sweep_ray").set_value("ray://head.lab:10001")
    at.checkbox(key="sweep_ray_replicate").check()
    at.text_input(key="sweep_id").set_value("lab-sweep")
    at.button(key="launch_sweep").click().run()
    assert not at.exception
    assert launched == [{"id": "lab-sweep", "ray": {"address": "ray://head.lab:10001", "replicate": True}}]
