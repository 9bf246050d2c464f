"""A sweep on a Ray cluster, the driver's side: every missing point becomes a Ray task that asks for one unit of the
`energyprof` resource (so one profiling job per machine at a time) and runs the normal profile job on its node
(energyprof.runner.ray_task); each finished run comes back as a bundle and is imported into this database as that
point of the sweep, with the node that ran it in the run's origin.

- Which nodes: any node offering `energyprof` takes a point (Ray schedules); with `replicate` every point runs on
  every such node (pinned to it), one run per point per machine.
- Progress: each task posts its node and its job's phase to a small board actor; the driver copies that into
  `sweep_tasks` (the Sweeps page reads it) and reports every finished point.
- Cancel (SIGTERM or Ctrl-C): every task is cancelled (Ray interrupts it, it stops its job), the driver waits until
  none runs; nothing of a cancelled point is imported.
- Failures: a node or worker that dies mid-point, a task that raises, a bundle that does not import: that point gets
  a failed run with one sentence (naming the node), the rest goes on; running the sweep again re-queues every point
  (every point × node, when replicated) without a done run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from energyprof.errors import first_line
from energyprof.runner.cancel import CancelSwitch
from energyprof.runner.ray_cluster import RayCluster, RayNodeInfo
from energyprof.runner.ray_task import SweepBoard, run_point
from energyprof.spec.params import ProfileParams
from energyprof.spec.ray_cluster import RAY_RESOURCE, RaySettings
from energyprof.spec.sweep import SweepSpec
from energyprof.store import BundleError, RayNode, Store
from energyprof.summary import RunSummary

log = logging.getLogger(__name__)

WAIT_S = 0.5
"""How long the driver waits for a finished task before it looks at the board and the cancel switch again."""
BOARD_EVERY_S = 2.0
CANCEL_WAIT_S = 60.0
"""How long cancelled tasks may take to stop their jobs before they are killed (force)."""
NODE_DIED = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
             "ObjectReconstructionFailedError", "RaySystemError")
"""Ray's errors for a task whose process or node went away (by name: they move between Ray's modules)."""

PointDone = Callable[[int, int, RunSummary, str | None], None]
"""Called after each task: (point index, number of points, the point run's summary, the node that ran it)."""


@dataclass
class RayTask:
    """One task of the sweep: a point, the node it is pinned to (replicated sweeps) and where it is."""

    point: int
    params: ProfileParams
    pinned: RayNodeInfo | None = None
    ref: Any = None
    node: RayNodeInfo | None = None

    @property
    def key(self) -> str:
        return f"{self.point}@{self.pinned.name}" if self.pinned else str(self.point)

    @property
    def pin_name(self) -> str:
        return self.pinned.name if self.pinned else ""


@dataclass(frozen=True)
class RayPointsOutcome:
    """How the tasks ended: points failed and whether the sweep was cancelled."""

    tasks: int
    failed: int
    cancelled: bool


def plan_tasks(store: Store, sweep_id: str, settings: RaySettings, nodes: list[RayNodeInfo]) -> list[RayTask]:
    """The tasks still to run: every point without a done run or, replicated, every point × node without a done run
    from that node (by node name: a machine that rejoins the cluster keeps its name)."""
    sweep = store.get_sweep(sweep_id)
    points = SweepSpec.from_dict(sweep["spec"]).points() if sweep else []
    runs = [r for r in store.sweep_runs(sweep_id) if r["status"] == "done"]
    if not settings.replicate:
        done = {r["sweep_point"] for r in runs}
        return [RayTask(i, p) for i, p in enumerate(points) if i not in done]
    done_on = {(r["sweep_point"], r.get("ray_node_name")) for r in runs}
    return [RayTask(i, p, node) for node in nodes for i, p in enumerate(points) if (i, node.name) not in done_on]


class RaySweepDriver:
    """Submits a sweep's tasks to a connected cluster, follows them and imports what they bring back."""

    def __init__(self, store: Store, sweep_id: str, cluster: RayCluster, settings: RaySettings,
                 switch: CancelSwitch, on_point: PointDone | None = None) -> None:
        self.store, self.sweep_id, self.cluster, self.settings = store, sweep_id, cluster, settings
        self.switch, self.on_point = switch, on_point
        self.ray = cluster.ray
        self.board: Any = None
        self._remote: Any = None
        self.total = 0
        """Tasks of this run of the sweep (points, or points × nodes when replicated, without a done run)."""
        self.points = 0
        self.failed = 0

    def run(self) -> RayPointsOutcome:
        tasks = plan_tasks(self.store, self.sweep_id, self.settings, self.cluster.nodes())
        sweep = self.store.get_sweep(self.sweep_id)
        self.total, self.points = len(tasks), int(sweep["points"]) if sweep else 0
        self.store.end_stale_tasks(self.sweep_id)
        if not tasks:
            return RayPointsOutcome(0, 0, False)
        self.board = self.ray.remote(num_cpus=0)(SweepBoard).remote()
        pending = {}
        for task in tasks:
            self.store.set_sweep_task(self.sweep_id, task.point, task.pin_name, "queued",
                                      node_name=task.pinned.name if task.pinned else None)
            task.ref = self._submit(task)
            pending[task.ref] = task
        next_board = 0.0
        while pending:
            if self.switch.requested:
                self._cancel(list(pending.values()))
                return RayPointsOutcome(self.total, self.failed, True)
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            if time.monotonic() >= next_board:
                next_board = time.monotonic() + BOARD_EVERY_S
                self._read_board(pending.values())
            for ref in ready:
                self._collect(pending.pop(ref))
        return RayPointsOutcome(self.total, self.failed, False)

    def _submit(self, task: RayTask) -> Any:
        options: dict[str, Any] = {"resources": {RAY_RESOURCE: 1}, "num_cpus": 0, "max_retries": 0,
                                   "retry_exceptions": False, "name": f"energyprof point {task.point + 1}"}
        if task.pinned is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(task.pinned.node_id, soft=False)
        if self._remote is None:
            self._remote = self.ray.remote(run_point)
        return self._remote.options(**options).remote(task.params.to_dict(), task.key, self.board)

    def _read_board(self, tasks: Any) -> None:
        """Copy where each task runs and its job's phase from the board into sweep_tasks (the Sweeps page)."""
        try:
            posts = self.ray.get(self.board.read.remote(), timeout=10)
        except Exception as exc:  # the board is a convenience: progress stops, the sweep goes on
            log.warning("could not read the sweep's board: %s", first_line(str(exc)))
            return
        for task in tasks:
            post = posts.get(task.key)
            if not post:
                continue
            task.node = self._node(post.get("node_id"), post.get("node_ip"))
            self.store.set_sweep_task(self.sweep_id, task.point, task.pin_name, "running",
                                      node_name=task.node.name, node_id=task.node.node_id, node_ip=task.node.ip,
                                      phase=post.get("phase"), progress=post.get("progress"))

    def _node(self, node_id: str | None, node_ip: str | None) -> RayNodeInfo:
        known = self.cluster.node(node_id) if node_id else None
        return known or RayNodeInfo(str(node_id or ""), str(node_ip or "?"), str(node_ip or "?"))

    def _collect(self, task: RayTask) -> None:
        """A finished task: import its run, or record the point failed with the reason."""
        try:
            result = self.ray.get(task.ref)
        except Exception as exc:
            if task.node is None:
                self._read_board([task])
            self._failed(task, self._task_error(task, exc))
            return
        node = self._node(result.get("node_id"), result.get("node_ip"))
        where = node.describe()
        try:
            imported = self.store.import_bundle(
                result["bundle"], name=f"The run of point {task.point + 1} from node {where}",
                sweep=(self.sweep_id, task.point), ray_node=RayNode(node.node_id, node.ip, node.name))
        except BundleError as exc:
            self._failed(task, f"Point {task.point + 1} ran on node {where} but its run could not be imported: {exc}")
            return
        run_id = (imported.run_ids or [None])[0]
        run = self.store.get_run(run_id) if run_id else None
        summary = RunSummary.from_dict(run["summary"] if run else None)
        if run is not None:
            summary.run_id, summary.status = run_id, run["status"]
            summary.error = summary.error or run.get("error")
        self.failed += summary.status != "done"
        task.node = node
        self.store.set_sweep_task(self.sweep_id, task.point, task.pin_name, summary.status or "failed",
                                  node_name=node.name, node_id=node.node_id, node_ip=node.ip, run_id=run_id,
                                  error=summary.error, phase=summary.status,
                                  progress=1.0 if summary.status == "done" else None)
        self._report(task, summary)

    def _task_error(self, task: RayTask, exc: Exception) -> str:
        """One sentence for a task that ended with an error, naming the node where it is known."""
        node = task.node or task.pinned
        where = f"node {node.describe()}" if node else "its node"
        kinds = {type(exc).__name__, type(getattr(exc, "cause", None)).__name__}
        if kinds & set(NODE_DIED):
            return (f"Point {task.point + 1}: {where} died or its Ray worker was killed while the point ran; run the "
                    "sweep again (same sweep id) to retry it.")
        cause = getattr(exc, "cause", None) or exc
        detail = first_line(str(cause)) or type(cause).__name__
        return f"Point {task.point + 1} failed on {where} ({type(cause).__name__}: {detail.rstrip('.')})."

    def _failed(self, task: RayTask, sentence: str) -> None:
        """The point's failed run (with the sentence) in this database, the task marked failed."""
        run_id = self.store.create_run("profile", status="failed", source=task.params.source, model=task.params.model,
                                       device=task.params.device, dtype=task.params.dtype,
                                       params=task.params.to_dict(), sweep_id=self.sweep_id, sweep_point=task.point)
        summary = RunSummary(run_id=run_id, kind="profile", status="failed", error=sentence,
                             model=task.params.model, device=task.params.device, dtype=task.params.dtype)
        self.store.update_run(run_id, error=sentence, summary=summary.to_dict(), ended_at=time.time())
        node = task.node or task.pinned
        if node is not None:
            self.store.record_node(run_id, RayNode(node.node_id, node.ip, node.name))
        self.store.set_sweep_task(self.sweep_id, task.point, task.pin_name, "failed", run_id=run_id, error=sentence,
                                  node_name=node.name if node else None, node_id=node.node_id if node else None,
                                  node_ip=node.ip if node else None)
        self.failed += 1
        log.warning("%s", sentence)
        self._report(task, summary)

    def _report(self, task: RayTask, summary: RunSummary) -> None:
        if self.on_point is not None:
            node = task.node or task.pinned
            self.on_point(task.point, self.points, summary, node.describe() if node else None)

    def _cancel(self, tasks: list[RayTask]) -> None:
        """Cancel every task (each stops its job) and wait until none runs; kill those that do not stop."""
        for task in tasks:
            self.ray.cancel(task.ref)
        refs = [t.ref for t in tasks]
        _, left = self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
        for ref in left:
            self.ray.cancel(ref, force=True)
        if left:
            self.ray.wait(left, num_returns=len(left), timeout=CANCEL_WAIT_S)
        for task in tasks:
            self.store.set_sweep_task(self.sweep_id, task.point, task.pin_name, "cancelled")

