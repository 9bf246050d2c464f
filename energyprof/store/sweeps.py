"""Sweeps: a grid of profile runs that one process runs one after another (energyprof.runner.sweep), or hands to a Ray
cluster as tasks (energyprof.runner.ray_sweep; `ray` holds where, `sweep_tasks` where each task is).

A sweep row holds the grid (`spec` JSON), its number of points and the process that runs it (pid and start time,
as a run does, so energyprof.runner.jobs can tell a live sweep from a dead one). Its runs are ordinary profile runs with
`sweep_id` and `sweep_point` set. One profiling job at a time: a sweep cannot be queued or started while a profile
run is active or another sweep is, and no profile run outside the active sweep can start (Store.create_run).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from energyprof.store.db import FINAL_STATUSES, StoreCore
from energyprof.store.runs import JobAlreadyRunning, _decode_run, process_start_time, require_no_other_job


class SweepsMixin(StoreCore):
    def create_sweep(self, sweep_id: str, spec: dict[str, Any], points: int, *, pid: int | None = None,
                     ray: dict[str, Any] | None = None) -> None:
        """Insert a sweep: queued (a job process will start it), or running for `pid` (the foreground). `ray`: where
        its points run on Ray (energyprof.spec.ray_cluster.RaySettings.to_dict()); None: here.

        JobAlreadyRunning when a profiling job or another sweep is active; ValueError when the id is taken."""
        now = time.time()
        status = "queued" if pid is None else "running"
        with self._one_job(sweep_id) as conn:
            if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone():
                raise ValueError(f"There is already a sweep {sweep_id}; pick another id.")
            conn.execute(
                "INSERT INTO sweeps (id, status, spec, points, created_at, started_at, pid, pid_started_at, ray) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sweep_id, status, json.dumps(spec, sort_keys=True), points, now, now if pid else None, pid,
                 process_start_time(pid), json.dumps(ray, sort_keys=True) if ray else None))

    def set_sweep_ray(self, sweep_id: str, ray: dict[str, Any] | None) -> None:
        """Where a resumed sweep's points run now (the Ray address may change between runs of a sweep)."""
        self.execute_write("UPDATE sweeps SET ray = ? WHERE id = ?",
                           (json.dumps(ray, sort_keys=True) if ray else None, sweep_id))

    def start_sweep(self, sweep_id: str, pid: int) -> None:
        """Move a queued or finished sweep to running for the process `pid` (a job starting it, or a resume).

        JobAlreadyRunning when a profiling job, another sweep or this one (by another process) is active."""
        with self._one_job(sweep_id) as conn:
            row = conn.execute("SELECT status, pid FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                raise ValueError(f"There is no sweep {sweep_id}.")
            if row[0] == "running" and row[1] != pid:
                raise JobAlreadyRunning(f"Sweep {sweep_id} is already running (process {row[1]}); wait for it or "
                                        "cancel it first.")
            conn.execute(
                "UPDATE sweeps SET status = 'running', pid = ?, pid_started_at = ?, started_at = ?, ended_at = NULL, "
                "error = NULL WHERE id = ?", (pid, process_start_time(pid), time.time(), sweep_id))

    @contextmanager
    def _one_job(self, sweep_id: str) -> Iterator[sqlite3.Connection]:
        """A write transaction that first raises JobAlreadyRunning when a profile run or another sweep is active."""
        with self.transaction() as conn:
            require_no_other_job(conn, sweep_id, runs=True)
            yield conn

    def set_sweep_pid(self, sweep_id: str, pid: int) -> None:
        """Record the process that runs a sweep (and its start time: with the pid it names one process)."""
        self.execute_write("UPDATE sweeps SET pid = ?, pid_started_at = ? WHERE id = ? AND pid IS NULL",
                           (pid, process_start_time(pid), sweep_id))

    def finish_sweep(self, sweep_id: str, status: str, error: str | None = None) -> bool:
        """Move an active sweep to a final status; False (nothing written) when it is not active."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        cur = self.execute_write(
            "UPDATE sweeps SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status IN ('queued', 'running')",
            (status, time.time(), error, sweep_id))
        return cur.rowcount > 0

    def get_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        """One sweep as a dict (spec decoded, `kind` "sweep" for energyprof.runner.jobs), or None."""
        row = self.query_one("SELECT * FROM sweeps WHERE id = ?", (sweep_id,))
        return _decode_sweep(row) if row else None

    def active_sweeps(self) -> list[dict[str, Any]]:
        return [_decode_sweep(r) for r in self.query("SELECT * FROM sweeps WHERE status IN ('queued', 'running')")]

    def active_sweep(self) -> dict[str, Any] | None:
        found = self.active_sweeps()
        return found[0] if found else None

    def list_sweeps(self) -> pd.DataFrame:
        """Every sweep, newest first: id, status, points, runs done, created_at, ended_at, error."""
        return self.frame(
            "SELECT s.id, s.status, s.points, (SELECT COUNT(DISTINCT r.sweep_point) FROM runs r WHERE "
            "r.sweep_id = s.id AND r.status = 'done') AS done, s.created_at, s.ended_at, s.error FROM sweeps s "
            "ORDER BY s.created_at DESC, s.id")

    def sweep_runs(self, sweep_id: str) -> list[dict[str, Any]]:
        """The runs of a sweep (params and summary decoded), by point, then oldest first; a run that came from a Ray
        node or a bundle also has its origin's `origin_machine_id`, `ray_node_id`, `ray_node_ip`, `ray_node_name` (a
        point that failed on a Ray node: that node)."""
        rows = self.query(
            "SELECT r.*, o.machine_id AS origin_machine_id, o.ray_node_id, o.ray_node_ip, o.ray_node_name "
            "FROM runs r LEFT JOIN run_origins o ON o.run_id = r.id WHERE r.sweep_id = ? ORDER BY r.sweep_point, r.id",
            (sweep_id,))
        return [_decode_run(r) for r in rows]

    # -- a sweep's Ray tasks (energyprof.runner.ray_sweep) ------------------------------------------
    def set_sweep_task(self, sweep_id: str, point: int, pinned: str, status: str, **fields: Any) -> None:
        """Record where one Ray task of a sweep is (queued, running on a node with its phase and progress, or its
        end); `pinned`: the node a replicated point must run on ('' when any node may take it)."""
        unknown = set(fields) - TASK_FIELDS
        if unknown:
            raise ValueError(f"unknown sweep task fields: {sorted(unknown)}")
        values = {"sweep_id": sweep_id, "point": point, "pinned": pinned, "status": status, **fields,
                  "updated_at": time.time()}
        names = ", ".join(values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values if k not in ("sweep_id", "point", "pinned"))
        self.execute_write(
            f"INSERT INTO sweep_tasks ({names}) VALUES ({', '.join('?' * len(values))}) "  # noqa: S608
            f"ON CONFLICT (sweep_id, point, pinned) DO UPDATE SET {updates}", list(values.values()))

    def sweep_tasks(self, sweep_id: str) -> list[dict[str, Any]]:
        """The Ray tasks of a sweep's latest run: point, pinned, status, node_name, node_id, node_ip, phase,
        progress, run_id, error, updated_at; by point, then node."""
        return [dict(r) for r in self.query("SELECT * FROM sweep_tasks WHERE sweep_id = ? ORDER BY point, pinned",
                                            (sweep_id,))]

    def end_stale_tasks(self, sweep_id: str) -> None:
        """Tasks a previous run of the sweep left queued or running (its driver was killed) are cancelled."""
        self.execute_write("UPDATE sweep_tasks SET status = 'cancelled', updated_at = ? WHERE sweep_id = ? AND "
                           "status IN ('queued', 'running')", (time.time(), sweep_id))


TASK_FIELDS = frozenset({"node_name", "node_id", "node_ip", "phase", "progress", "run_id", "error"})
"""Columns of a sweep task that set_sweep_task may set (names are checked before they reach SQL)."""


def _decode_sweep(row: sqlite3.Row) -> dict[str, Any]:
    sweep = dict(row)
    sweep["spec"] = json.loads(sweep["spec"]) if sweep.get("spec") else {}
    sweep["ray"] = json.loads(sweep["ray"]) if sweep.get("ray") else None
    sweep["kind"] = "sweep"
    return sweep

