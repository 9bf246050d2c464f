"""Run rows: creation, progress, heartbeat, final status, listing and deletion.

A run records the process that writes it (`pid` and `pid_started_at`, which together name one process even
when pids are reused), so energyprof.runner.jobs can tell a live writer from a dead one. Progress, heartbeats and
the final status are written only while the run is queued or running: a process whose run was marked failed
meanwhile gets RunNotActive (heartbeat) or False (finish_run) and nothing is overwritten.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

import pandas as pd
import psutil

from energyprof.errors import EnergyprofError
from energyprof.redact import redact
from energyprof.store.db import FINAL_STATUSES, StoreCore, require_active
from energyprof.store.errors import RunNotActive, not_active_sentence

RUN_FIELDS = frozenset({
    "status", "source", "measured", "model", "device", "dtype", "params", "started_at", "ended_at", "clock_t0_ns",
    "phase", "progress", "tokens_done", "heartbeat_at", "pid", "pid_started_at", "error", "traceback",
    "power_incomplete", "samples_skipped", "summary", "machine_id", "machine_label"})
"""Columns of a run that update_run and finish_run may set (names are checked before they reach SQL)."""
FINISH_COLUMNS = frozenset({"status", "ended_at", "error", "traceback", "summary", "phase"})
"""Columns finish_run sets from its own arguments."""


class JobAlreadyRunning(EnergyprofError, RuntimeError):
    """Another profiling job is queued or running; only one may run at a time."""


class RunsMixin(StoreCore):
    def create_run(self, kind: str, *, source: str | None = None, measured: bool | None = None,
                   model: str | None = None, device: str | None = None, dtype: str | None = None,
                   params: dict[str, Any] | None = None, status: str = "running", owned: bool = False,
                   sweep_id: str | None = None, sweep_point: int | None = None) -> int:
        """Insert a run; a second active profile run raises JobAlreadyRunning (enforced by an index), and so does a
        profile run outside the sweep that is queued or running (a sweep's own runs name it: sweep_id, sweep_point).

        owned: this process writes the run: its pid and start time are recorded, so that the run is marked failed
        if the process dies (energyprof.runner.jobs.reap_dead_jobs). A writer can also record itself later with
        update_run(pid=...); a run with no process recorded is presumed dead a minute after it was created."""
        now = time.time()
        pid = os.getpid() if owned else None
        try:
            with self.transaction() as conn:
                if kind == "profile":
                    require_no_other_job(conn, sweep_id)
                cur = conn.execute(
                    "INSERT INTO runs (kind, status, source, measured, model, device, dtype, params, "
                    "created_at, started_at, heartbeat_at, pid, pid_started_at, sweep_id, sweep_point) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (kind, status, source, None if measured is None else int(measured), model, device, dtype,
                     json.dumps(params or {}, sort_keys=True), now,
                     now if status == "running" else None, now, pid, process_start_time(pid), sweep_id,
                     sweep_point))
        except sqlite3.IntegrityError as exc:
            if "runs_one_active_profile" in str(exc) or "runs.kind" in str(exc):
                active = self.active_profile_run()
                raise JobAlreadyRunning(busy_run_sentence(active["id"] if active else None)) from exc
            raise
        return int(cur.lastrowid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set columns of one run; `params` and `summary` dicts are stored as JSON. Setting `pid` alone also
        records that process's start time."""
        if not fields:
            return
        if "pid" in fields and "pid_started_at" not in fields:
            fields["pid_started_at"] = process_start_time(fields["pid"])
        values = _column_values(fields)
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        sql = f"UPDATE runs SET {assignments} WHERE id = :run_id"  # noqa: S608 - names checked in _column_values
        self.execute_write(sql, {**values, "run_id": run_id})

    def claim_run(self, run_id: int, pid: int) -> bool:
        """Move a queued run to running for the process `pid`; False when it is not queued (e.g. cancelled)."""
        now = time.time()
        cur = self.execute_write(
            "UPDATE runs SET status = 'running', pid = ?, pid_started_at = ?, started_at = ?, heartbeat_at = ? "
            "WHERE id = ? AND status = 'queued'", (pid, process_start_time(pid), now, now, run_id))
        return cur.rowcount > 0

    def heartbeat(self, run_id: int, *, phase: str | None = None, progress: float | None = None,
                  tokens_done: int | None = None) -> None:
        """Record that the job is alive, with its phase and progress when given; RunNotActive (and nothing
        written) when the run is no longer queued or running."""
        with self.transaction() as conn:
            require_active(conn, run_id)
            conn.execute(
                "UPDATE runs SET heartbeat_at = ?, phase = COALESCE(?, phase), "
                "progress = COALESCE(?, progress), tokens_done = COALESCE(?, tokens_done) WHERE id = ?",
                (time.time(), phase, progress, tokens_done, run_id))

    def finish_run(self, run_id: int, status: str, *, error: str | None = None, traceback: str | None = None,
                   summary: dict[str, Any] | None = None, **fields: Any) -> bool:
        """Move a run to a final status, with any last run fields (e.g. tokens_done), in one write. The error, the
        traceback and the summary pass the secret scrubber (energyprof.redact) on their way in.

        True when written; False, and nothing written, when the run already has a final status (it is never
        overwritten; RunNotActive(...) from `not_active` says why in one sentence). A summary naming its machine
        also sets the run's machine_id and machine_label columns (the summary is what they mirror)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        if FINISH_COLUMNS & set(fields):
            raise ValueError(f"finish_run sets {sorted(FINISH_COLUMNS & set(fields))} itself")
        values = _column_values({**machine_columns(summary), **fields})
        extra = "".join(f", {k} = :{k}" for k in values)
        sql = ("UPDATE runs SET status = :status, ended_at = :ended_at, error = COALESCE(:error, error), "  # noqa: S608
               "traceback = COALESCE(:traceback, traceback), summary = COALESCE(:summary, summary), "
               f"phase = CASE WHEN :status = 'done' THEN 'done' ELSE phase END{extra} "
               "WHERE id = :run_id AND status IN ('queued', 'running')")
        cur = self.execute_write(sql, {
            **values, "status": status, "ended_at": time.time(), "error": _scrubbed(error),
            "traceback": _scrubbed(traceback),
            "summary": _scrubbed(json.dumps(summary, sort_keys=True)) if summary is not None else None,
            "run_id": run_id})
        return cur.rowcount > 0

    def not_active(self, run_id: int) -> RunNotActive:
        """The RunNotActive error for a run that is no longer queued or running (its sentence says what happened)."""
        run = self.get_run(run_id)
        status = run["status"] if run else None
        return RunNotActive(not_active_sentence(run_id, status), run_id, status)

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """One run as a dict (params and summary decoded), or None."""
        row = self.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _decode_run(row) if row else None

    def active_profile_run(self) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM runs WHERE kind = 'profile' AND status IN ('queued', 'running')")
        return _decode_run(row) if row else None

    def job_progress(self, run_id: int | None = None) -> dict[str, Any] | None:
        """The live view's one narrow read: a run's id, kind, status, phase, progress, tokens done, times and its
        process (pid and start time, for energyprof.runner.jobs.job_health; no params, no summary); `run_id` None:
        the active profiling job. None when there is no such run."""
        columns = ("id, kind, status, phase, progress, tokens_done, created_at, started_at, heartbeat_at, pid, "
                   "pid_started_at")
        if run_id is None:
            row = self.query_one(f"SELECT {columns} FROM runs "  # noqa: S608 - fixed column list
                                 "WHERE kind = 'profile' AND status IN ('queued', 'running')")
        else:
            row = self.query_one(f"SELECT {columns} FROM runs WHERE id = ?", (run_id,))  # noqa: S608
        return dict(row) if row else None

    def active_runs(self) -> list[dict[str, Any]]:
        return [_decode_run(r) for r in self.query("SELECT * FROM runs WHERE status IN ('queued', 'running')")]

    def list_runs(self) -> pd.DataFrame:
        """All runs, newest first, with the columns the runs table shows; `runtime` is the one the run used (its
        summary's), else the one its parameters ask for (a run still going: `auto` until it has loaded)."""
        df = self.frame(
            "SELECT id, kind, status, model, device, dtype, source, measured, created_at, started_at, "
            "ended_at, tokens_done, phase, error, power_incomplete, summary, sweep_id, sweep_point, machine_id, "
            "machine_label, CASE WHEN kind != 'profile' THEN NULL WHEN json_extract(params, '$.endpoint') IS NOT NULL "
            "THEN 'endpoint' ELSE json_extract(params, '$.runtime') END AS runtime FROM runs ORDER BY id DESC")
        if df.empty:
            return df
        df["measured"] = df["measured"].map(lambda v: None if pd.isna(v) else bool(v))
        df["summary"] = df["summary"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        df["runtime"] = [(s or {}).get("runtime") or (None if pd.isna(r) else r)
                         for s, r in zip(df["summary"], df["runtime"], strict=True)]
        return df

    def delete_run(self, run_id: int) -> bool:
        """Delete a finished run and everything recorded for it; active runs cannot be deleted."""
        cur = self.execute_write("DELETE FROM runs WHERE id = ? AND status NOT IN ('queued', 'running')",
                                 (run_id,))
        return cur.rowcount > 0


def busy_run_sentence(run_id: int | None) -> str:
    """Why a job cannot start while a profile run is queued or running (`run_id`, when known)."""
    which = f" (run {run_id})" if run_id is not None else ""
    return f"Another profiling job is already running{which}; wait for it or cancel it first."


def require_no_other_job(conn: sqlite3.Connection, sweep_id: str | None, *, runs: bool = False) -> None:
    """Inside a write transaction: JobAlreadyRunning when a sweep other than `sweep_id` is queued or running, and
    (`runs`) when a profile run is (the one rule for starting a run and a sweep: one profiling job at a time)."""
    if runs:
        run = conn.execute("SELECT id FROM runs WHERE kind = 'profile' AND status IN ('queued', 'running')"
                           ).fetchone()
        if run is not None:
            raise JobAlreadyRunning(busy_run_sentence(run[0]))
    row = conn.execute("SELECT id FROM sweeps WHERE status IN ('queued', 'running') AND id IS NOT ?",
                       (sweep_id,)).fetchone()
    if row is not None:
        raise JobAlreadyRunning(f"Sweep {row[0]} is running; wait for it or cancel it first (one profiling job at "
                                "a time).")


def machine_columns(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The run columns that mirror a summary's machine (energyprof.machine.Machine as stored): {} without one."""
    machine = (summary or {}).get("machine")
    if not isinstance(machine, dict):
        return {}
    return {"machine_id": machine.get("machine_id"), "machine_label": machine.get("label")}


def process_start_time(pid: int | None) -> float | None:
    """When process pid started (seconds since the epoch, as psutil reports it); None when it is gone or unknown."""
    if not pid:
        return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


SCRUBBED_FIELDS = frozenset({"error", "traceback", "summary"})
"""Run columns whose text may quote a secret (an exception's message): scrubbed before they are stored."""


def _scrubbed(text: str | None) -> str | None:
    return None if text is None else redact(text)


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Run fields as column values (dicts as JSON, error/traceback/summary scrubbed of secrets); ValueError for a
    name that is not a run column."""
    unknown = set(fields) - RUN_FIELDS
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    values = {k: json.dumps(v, sort_keys=True) if k in ("params", "summary") and v is not None else v
              for k, v in fields.items()}
    return {k: _scrubbed(v) if k in SCRUBBED_FIELDS and isinstance(v, str) else v for k, v in values.items()}


def _decode_run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    run["params"] = json.loads(run["params"]) if run.get("params") else {}
    run["summary"] = json.loads(run["summary"]) if run.get("summary") else None
    if run.get("measured") is not None:
        run["measured"] = bool(run["measured"])
    return run
