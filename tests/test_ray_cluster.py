"""Sweeps on a Ray cluster of two nodes (started here, as a lab's head and one machine that joined it would be):
`--ray-replicate` gives one run per point per node; a bundle that does not import fails its point with the reason;
a killed worker fails its point with the node named and a resume finishes it; a cancel leaves no running task and
no half-written run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from profile_helpers import pid_alive, wait_for
from test_ray_local import TINY

from energyprof.cli import main
from energyprof.store import Store
from energyprof.store.bundle_format import content_hash, run_tables

NODES = ("node-a", "node-b")
JOB_MARK = "energyprof-ray-"
"""In the command line of every profiling job a Ray task starts (its database lives in such a folder)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two Ray nodes on this machine, each offering one unit of `energyprof`; yields the cluster's address."""
    from ray.cluster_utils import Cluster  # the ray extra is a test dependency (requirements-dev.txt)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    lab = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"energyprof": 1}, "node_name": NODES[0], "include_dashboard": False})
    try:
        lab.add_node(num_cpus=1, resources={"energyprof": 1}, node_name=NODES[1])
        yield lab.address
    finally:
        lab.shutdown()


def jobs_of_ray_tasks() -> list[psutil.Process]:
    """The profiling jobs Ray tasks started on this machine (alive)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "energyprof job" in line.replace("-m energyprof job", "energyprof job") and JOB_MARK in line:
            found.append(proc)
    return found


def ray_task_workers() -> list[str]:
    """Ray workers busy with a sweep point (Ray titles a worker with its task's name while it runs it)."""
    names = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(proc.info["cmdline"] or [proc.info["name"] or ""])
        if "ray::energyprof point" in title:
            names.append(title.strip())
    return names


def driver(db: Path, address: str, *argv: str) -> subprocess.Popen:
    """`energyprof sweep … --ray ADDRESS --json` in its own process, as a user runs it."""
    return subprocess.Popen([sys.executable, "-m", "energyprof", "sweep", *TINY, *argv, "--ray", address, "--json",
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_whole(store: Store, sweep_id: str) -> list[dict[str, Any]]:
    """No run of the sweep is active, and every run that came from a node holds exactly what the node sent."""
    runs = store.sweep_runs(sweep_id)
    assert all(r["status"] in ("done", "failed", "cancelled") for r in runs)
    for run in runs:
        origin = store.run_origin(run["id"])
        if origin is not None:
            assert content_hash(store.conn, run["id"], run_tables(store.conn)) == origin["content_hash"]
    assert not [t for t in store.sweep_tasks(sweep_id) if t["status"] in ("queued", "running")]
    return runs


def test_replicated_sweep_runs_every_point_on_every_node(cluster: str, db_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """One point on each of the two nodes; node-b's bundle arrives cut off (it does not import), so that point fails
    with the reason; the resume re-queues only point × node-b."""
    real_import = Store.import_bundle

    def cut_node_b(self: Store, data: bytes, **kwargs: Any) -> Any:
        node = kwargs.get("ray_node")
        if node is not None and node.node_name == "node-b" and not getattr(cut_node_b, "done", False):
            cut_node_b.done = True
            data = data[: len(data) // 2]
        return real_import(self, data, **kwargs)

    monkeypatch.setattr(Store, "import_bundle", cut_node_b)
    argv = ["sweep", *TINY, "--ray", cluster, "--ray-replicate", "--sweep-id", "lab", "--json", "--db", str(db_path)]
    assert main(argv) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed"
    assert out["error"] == "1 of 2 points failed; run the sweep again (same sweep id) to retry them."
    by_node = {(r["machine"] or "").split(" (")[0]: r for r in out["runs"]}
    assert set(by_node) == set(NODES)
    assert by_node["node-a"]["status"] == "done"
    assert by_node["node-b"]["status"] == "failed"
    assert by_node["node-b"]["error"].startswith("Point 1 ran on node node-b")
    assert "but its run could not be imported: The run of point 1 from node node-b" in by_node["node-b"]["error"]
    assert "is damaged or cut off" in by_node["node-b"]["error"]

    assert main(argv) == 0  # the resume runs point 1 on node-b only
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "done"
    assert sorted((r["point"], (r["machine"] or "").split(" (")[0], r["status"]) for r in out["runs"]) == [
        (0, "node-a", "done"), (0, "node-b", "done")]
    store = Store(db_path)
    runs = assert_whole(store, "lab")
    done = [r for r in runs if r["status"] == "done"]
    assert sorted(r["ray_node_name"] for r in done) == list(NODES)  # one run per point per node
    assert len({r["ray_node_id"] for r in done}) == 2
    assert store.get_sweep("lab")["ray"] == {"address": cluster, "replicate": True}
    # resuming a replicated sweep without --ray-replicate is refused: it would mix one-per-machine with once-anywhere
    assert main(["sweep", *TINY, "--ray", cluster, "--sweep-id", "lab", "--db", str(db_path)]) == 1
    assert "was started with other options (--ray-replicate was given)" in capsys.readouterr().err


def test_a_killed_worker_fails_its_point_naming_the_node_and_a_resume_finishes_it(cluster: str, db_path: Path,
                                                                                  capsys: pytest.CaptureFixture[str]
                                                                                  ) -> None:
    sweep = driver(db_path, cluster, "--sweep-id", "kill")
    try:
        wait_for(lambda: jobs_of_ray_tasks() or sweep.poll() is not None, 120, "the point's job to start")
        job = jobs_of_ray_tasks()[0]
        worker = job.parent()
        assert worker is not None and "ray::" in " ".join(worker.cmdline())
        worker.kill()  # SIGKILL: the worker dies as with an OOM kill or a crash
        stdout, _ = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    out = json.loads(stdout)
    assert sweep.returncode == 1 and out["status"] == "failed"
    error = out["runs"][0]["error"]
    assert error.startswith("Point 1: node node-") and "died or its Ray worker was killed while the point ran" in error
    wait_for(lambda: not pid_alive(job.pid), 60, "the orphaned job to stop")  # it follows its worker
    store = Store(db_path)
    assert_whole(store, "kill")
    task = store.sweep_tasks("kill")[0]
    assert task["status"] == "failed" and task["node_name"] in NODES and task["node_name"] in error

    code = main(["sweep", *TINY, "--ray", cluster, "--sweep-id", "kill", "--json",
                 "--db", str(db_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "done" and out["runs"][0]["status"] == "done"
    assert [r["status"] for r in store.sweep_runs("kill")] == ["failed", "done"]


def test_cancel_leaves_no_running_task_and_no_half_written_run(cluster: str, db_path: Path) -> None:
    sweep = driver(db_path, cluster, "--batch", "1,2,3", "--sweep-id", "stop")
    try:
        wait_for(lambda: jobs_of_ray_tasks() or sweep.poll() is not None, 120, "a point's job to start")
        assert ray_task_workers()  # a task is running on a node
        sweep.send_signal(signal.SIGTERM)  # what the dashboard's Cancel sweep does
        stdout, _ = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    out = json.loads(stdout)
    assert sweep.returncode == 1 and out["status"] == "cancelled"
    assert not jobs_of_ray_tasks() and not ray_task_workers()
    store = Store(db_path)
    assert store.get_sweep("stop")["status"] == "cancelled"
    runs = assert_whole(store, "stop")
    assert all(r["status"] == "done" for r in runs)  # only whole runs came home; nothing of a cancelled point
    assert {t["status"] for t in store.sweep_tasks("stop")} <= {"done", "cancelled"}
