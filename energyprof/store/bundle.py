"""Run bundles: some runs (and their sweeps) as one SQLite file that another energyprof database imports.

A bundle is an energyprof database of the exporter's schema (every table, every column, read from the schema, so a
column a later migration adds travels without code here) holding only the exported runs, every row of every table
keyed by run_id (energyprof.store.schema: power windows, steps, step energy, layers, layer calls and their energy,
replayed layers, cross-check windows), the rows of their finished sweeps, and two more tables:

- `bundle_meta`: the bundle format (BUNDLE_FORMAT), the exporter's schema version, energyprof version, database id,
  platform and the time of export;
- `bundle_runs`: per run its content hash and its origin (the id it has in the database that made it, that
  database's id, the machine id from its summary, the Ray node that ran it), carried over when a run that was itself
  imported is exported again.

The content hash is SHA-256 over the run's rows without the ids a database gives locally (the run id, its process,
its sweep), each row's non-null values only, so a later migration's empty column does not change it. Import checks
every hash (a run that was changed after export is refused), then copies every run in ONE transaction under new ids:
nothing is partially imported. A run whose hash is already in the database (or that is the very run this database
exported) is skipped, so importing a bundle twice adds nothing. The hash is a check against damage and editing, not
a signature: anyone can write a bundle with matching hashes.

Errors are `BundleError` (energyprof.store.bundle_format, which also holds the checks an opened bundle passes):
one sentence that names the file, says what is wrong and what to do.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from energyprof import __version__
from energyprof.store.bundle_format import (
    BUNDLE_FORMAT,
    BundleError,
    OpenedBundle,
    columns,
    content_hash,
    create_bundle_schema,
    exporting_platform,
    machine_id_of,
    quoted,
    run_tables,
)
from energyprof.store.db import ACTIVE_STATUSES, FINAL_STATUSES, StoreCore
from energyprof.store.errors import translated
from energyprof.store.schema import MIGRATIONS

__all__ = ["BundleError", "BundleMixin", "ExportedBundle", "ImportResult", "RayNode"]

@dataclass(frozen=True)
class RayNode:
    """The Ray node that ran a run (recorded in the run's origin when the driver imports it)."""

    node_id: str | None = None
    node_ip: str | None = None
    node_name: str | None = None


@dataclass(frozen=True)
class ExportedBundle:
    """A bundle's bytes and what it holds (the runs' ids here, the sweeps that travel with them)."""

    data: bytes
    run_ids: list[int]
    sweep_ids: list[str]


@dataclass
class ImportResult:
    """What an import did: (bundle run id, new run id) per imported run, (bundle run id, run id already here) per
    skipped one, the sweeps its runs belong to here, and when and where the bundle was exported."""

    imported: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[tuple[int, int]] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)
    exported_at: float | None = None
    exported_on: str | None = None

    @property
    def run_ids(self) -> list[int]:
        """The new ids of the imported runs."""
        return [new for _, new in self.imported]


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every read inside sees the same state of the file."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


class BundleMixin(StoreCore):
    # -- export --------------------------------------------------------------------------------
    def export_bundle(self, run_ids: Iterable[int] = (), sweep_ids: Iterable[str] = ()) -> ExportedBundle:
        """The runs (and every run of the sweeps) as a bundle; BundleError for a run or sweep that does not
        exist or has not finished, or for nothing to export. Read in one read transaction (a consistent state)."""
        wanted, sweeps = sorted(set(run_ids)), list(dict.fromkeys(sweep_ids))
        conn = self.conn
        with translated(self.path), _snapshot(conn):
            for sweep_id in sweeps:
                row = conn.execute("SELECT status FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
                if row is None:
                    raise BundleError(f"There is no sweep {sweep_id} in {self.path}; check the id (energyprof sweep "
                                      "prints it, the Sweeps page lists them).")
                if row[0] in ACTIVE_STATUSES:
                    raise BundleError(f"Sweep {sweep_id} is still running; export it when it has finished.")
                wanted += [r[0] for r in conn.execute("SELECT id FROM runs WHERE sweep_id = ?", (sweep_id,))]
            wanted = sorted(set(wanted))
            if not wanted:
                raise BundleError("There is nothing to export: give run ids or a sweep that has runs.")
            runs = self._runs_to_export(conn, wanted)
            sweeps = list(dict.fromkeys([*sweeps, *self._finished_sweeps(conn, runs)]))
            out = sqlite3.connect(":memory:")
            try:
                self._write_bundle(conn, out, runs, sweeps)
                return ExportedBundle(out.serialize(), [r["id"] for r in runs], sweeps)
            finally:
                out.close()

    def _write_bundle(self, conn: sqlite3.Connection, out: sqlite3.Connection, runs: list[dict[str, Any]],
                      sweeps: list[str]) -> None:
        """Every row of the runs and sweeps from conn into the empty bundle out, then its hashes and meta."""
        create_bundle_schema(out)
        tables = run_tables(conn)
        for run in runs:
            _copy_rows(conn, out, "runs", "id", run["id"])
            for table in tables:
                _copy_rows(conn, out, table, "run_id", run["id"])
        for sweep_id in sweeps:
            _copy_rows(conn, out, "sweeps", "id", sweep_id)
        out.execute("UPDATE runs SET pid = NULL, pid_started_at = NULL")
        out.execute("UPDATE sweeps SET pid = NULL, pid_started_at = NULL")
        out.executemany("UPDATE runs SET sweep_id = NULL, sweep_point = NULL WHERE sweep_id = ?",
                        [(r["sweep_id"],) for r in runs if r["sweep_id"] and r["sweep_id"] not in sweeps])
        bundle_tables = run_tables(out)
        database_id = _meta_value(conn, "database_id")
        for run in runs:
            origin = self._origin_row(conn, run["id"]) or {}
            out.execute(
                "INSERT INTO bundle_runs (run_id, content_hash, origin_run_id, origin_database_id, machine_id, "
                "ray_node_id, ray_node_ip, ray_node_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run["id"], content_hash(out, run["id"], bundle_tables),
                 origin.get("origin_run_id") or run["id"], origin.get("origin_database_id") or database_id,
                 origin.get("machine_id") or machine_id_of(run), origin.get("ray_node_id"), origin.get("ray_node_ip"),
                 origin.get("ray_node_name")))
        meta = {"format_version": BUNDLE_FORMAT, "schema_version": len(MIGRATIONS), "energyprof_version": __version__,
                "database_id": database_id, "exported_at": repr(time.time()), "exported_on": exporting_platform(),
                "runs": len(runs), "sweeps": ",".join(sweeps)}
        out.executemany("INSERT INTO bundle_meta (key, value) VALUES (?, ?)",
                        [(k, None if v is None else str(v)) for k, v in meta.items()])
        out.commit()

    def _runs_to_export(self, conn: sqlite3.Connection, run_ids: list[int]) -> list[dict[str, Any]]:
        runs = []
        for run_id in run_ids:
            cur = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
            row = cur.fetchone()
            if row is None:
                raise BundleError(f"There is no run {run_id} in {self.path}; check the id (energyprof runs lists "
                                  "them).")
            run = dict(zip([d[0] for d in cur.description], row, strict=True))
            if run["status"] not in FINAL_STATUSES:
                raise BundleError(f"Run {run_id} is still {run['status']}; export it when it has finished.")
            runs.append(run)
        return runs

    @staticmethod
    def _finished_sweeps(conn: sqlite3.Connection, runs: list[dict[str, Any]]) -> list[str]:
        """The finished sweeps the runs belong to (a run of a sweep still running travels without its sweep)."""
        out = []
        for sweep_id in dict.fromkeys(r["sweep_id"] for r in runs if r["sweep_id"]):
            row = conn.execute("SELECT status FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is not None and row[0] in FINAL_STATUSES:
                out.append(sweep_id)
        return out

    @staticmethod
    def _origin_row(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
        cur = conn.execute("SELECT * FROM run_origins WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def record_node(self, run_id: int, node: RayNode) -> None:
        """Record the Ray node a run made here is about (a sweep point that failed on it, with no run to bring
        home): an origin with no original run id, hashed from the run's own rows."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO run_origins (run_id, content_hash, ray_node_id, ray_node_ip, ray_node_name, imported_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (run_id, content_hash(conn, run_id, run_tables(conn)), node.node_id,
                                              node.node_ip, node.node_name, time.time()))

    # -- reads ---------------------------------------------------------------------------------
    def run_origin(self, run_id: int) -> dict[str, Any] | None:
        """Where an imported run came from (run_origins' columns), or None for a run made here."""
        row = self.query_one("SELECT * FROM run_origins WHERE run_id = ?", (run_id,))
        return dict(row) if row else None

    def database_id(self) -> str | None:
        """This database's own random id (bundles exported from it carry it)."""
        row = self.query_one("SELECT value FROM database_meta WHERE key = 'database_id'")
        return row[0] if row else None

    # -- import --------------------------------------------------------------------------------
    def import_bundle(self, data: bytes, *, name: str = "The bundle", sweep: tuple[str, int] | None = None,
                      ray_node: RayNode | None = None) -> ImportResult:
        """Merge a bundle into this database under new ids, in one transaction; returns what was imported.

        `name` names the bundle in sentences (its file name). `sweep` (sweep id, point) makes every run of the
        bundle that point of that sweep here (a Ray sweep's driver); `ray_node` is recorded in their origin.
        BundleError (one sentence, nothing imported) for anything that is not a bundle this energyprof can take."""
        bundle = OpenedBundle.open(data, name)
        try:
            with translated(self.path):
                tables = run_tables(self.conn)
            bundle.check(tables)
            return self._merge(bundle, sweep, ray_node)
        finally:
            bundle.close()

    def _merge(self, bundle: OpenedBundle, sweep: tuple[str, int] | None, ray_node: RayNode | None) -> ImportResult:
        result = ImportResult(exported_at=bundle.exported_at, exported_on=bundle.meta.get("exported_on"))
        try:
            with self.transaction() as conn:
                mine = _meta_value(conn, "database_id")
                tables = [t for t in run_tables(conn) if t in bundle.tables]
                sweep_ids = self._merge_sweeps(conn, bundle) if sweep is None else {}
                if sweep is not None and conn.execute("SELECT 1 FROM sweeps WHERE id = ?",
                                                      (sweep[0],)).fetchone() is None:
                    raise BundleError(f"There is no sweep {sweep[0]} in {self.path} to import {bundle.name} into.")
                for old_id in bundle.run_ids:
                    origin = bundle.origins[old_id]
                    existing = _already_here(conn, origin, mine, tables)
                    if existing is not None:
                        result.skipped.append((old_id, existing))
                        continue
                    target = sweep or (sweep_ids.get(bundle.runs[old_id].get("sweep_id")),
                                       bundle.runs[old_id].get("sweep_point"))
                    new_id = _insert_run(conn, bundle.runs[old_id], target)
                    for table in tables:
                        bundle.copy_rows(conn, table, old_id, new_id)
                    _insert_origin(conn, new_id, origin, bundle, ray_node)
                    result.imported.append((old_id, new_id))
                    if target[0] and target[0] not in result.sweeps:
                        result.sweeps.append(target[0])
        except sqlite3.IntegrityError as exc:
            raise BundleError(f"{bundle.name} holds rows this database cannot take ({exc}); it was changed after "
                              "export or damaged, so export it again.") from None
        return result

    @staticmethod
    def _merge_sweeps(conn: sqlite3.Connection, bundle: OpenedBundle) -> dict[str, str]:
        """Insert the bundle's sweeps (final ones only) and map their ids to the ids they have here: the same sweep
        already here keeps its id, another sweep of that id gets a new one."""
        mapping: dict[str, str] = {}
        names = [c for c in columns(conn, "sweeps") if c in bundle.sweep_columns]
        for row in bundle.sweeps:
            here = conn.execute("SELECT created_at, spec FROM sweeps WHERE id = ?", (row["id"],)).fetchone()
            if here is not None and (here[0], here[1]) == (row.get("created_at"), row.get("spec")):
                mapping[row["id"]] = row["id"]
                continue
            new_id = row["id"] if here is None else f"{row['id'][:58]}-{secrets.token_hex(2)}"
            values = {**{n: row.get(n) for n in names}, "id": new_id, "pid": None, "pid_started_at": None}
            conn.execute(f"INSERT INTO sweeps ({quoted(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                         list(values.values()))
            mapping[row["id"]] = new_id
        return mapping


def _meta_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM database_meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _copy_rows(src: sqlite3.Connection, out: sqlite3.Connection, table: str, key: str, value: Any) -> None:
    """Every row of `table` whose `key` is `value`, all columns, from src into the same table of out."""
    cols = columns(src, table)
    rows = src.execute(f"SELECT {quoted(cols)} FROM \"{table}\" WHERE \"{key}\" = ?", (value,))  # noqa: S608
    out.executemany(f"INSERT INTO \"{table}\" ({quoted(cols)}) VALUES ({', '.join('?' * len(cols))})",  # noqa: S608
                    rows)


def _already_here(conn: sqlite3.Connection, origin: dict[str, Any], mine: str | None,
                  tables: Sequence[str]) -> int | None:
    """The id of this run when the database already has it: imported before (its hash), or made here."""
    row = conn.execute("SELECT run_id FROM run_origins WHERE content_hash = ?", (origin["content_hash"],)).fetchone()
    if row is not None:
        return int(row[0])
    if mine is not None and origin.get("origin_database_id") == mine and origin.get("origin_run_id") is not None:
        own = int(origin["origin_run_id"])
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (own,)).fetchone() is not None and \
                conn.execute("SELECT 1 FROM run_origins WHERE run_id = ?", (own,)).fetchone() is None and \
                content_hash(conn, own, tables) == origin["content_hash"]:
            return own
    return None


def _insert_run(conn: sqlite3.Connection, run: dict[str, Any], sweep: tuple[str | None, int | None]) -> int:
    """The run's row under a new id (the columns this database has), its summary naming that id."""
    names = [c for c in columns(conn, "runs") if c in run and c != "id"]
    values = {n: run[n] for n in names}
    values.update({"pid": None, "pid_started_at": None, "sweep_id": sweep[0],
                   "sweep_point": sweep[1] if sweep[0] else None})
    cur = conn.execute(f"INSERT INTO runs ({quoted(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                       list(values.values()))
    new_id = int(cur.lastrowid)
    summary = run.get("summary")
    if isinstance(summary, str):
        decoded = json.loads(summary)
        if isinstance(decoded, dict) and "run_id" in decoded:
            decoded["run_id"] = new_id
            conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(decoded, sort_keys=True), new_id))
    return new_id


def _insert_origin(conn: sqlite3.Connection, run_id: int, origin: dict[str, Any], bundle: OpenedBundle,
                   ray_node: RayNode | None) -> None:
    node = ray_node or RayNode(origin.get("ray_node_id"), origin.get("ray_node_ip"), origin.get("ray_node_name"))
    conn.execute(
        "INSERT INTO run_origins (run_id, content_hash, origin_run_id, origin_database_id, exported_at, exported_on, "
        "machine_id, ray_node_id, ray_node_ip, ray_node_name, bundle_format, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, origin["content_hash"], origin.get("origin_run_id"), origin.get("origin_database_id"),
         bundle.exported_at, bundle.meta.get("exported_on"), origin.get("machine_id"), node.node_id, node.node_ip,
         node.node_name, bundle.format_version, time.time()))


