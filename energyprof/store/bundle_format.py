"""What a bundle holds and how it is read: its format, the schema read from a database, a run's content hash, and
the checks an opened bundle passes before anything of it is imported (energyprof.store.bundle does the export and
the import). Every problem with a bundle is a `BundleError`: one sentence that names the file, says what is wrong
and what to do."""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from energyprof.errors import EnergyprofError
from energyprof.store.db import FINAL_STATUSES, _split_sql
from energyprof.store.schema import MIGRATIONS

BUNDLE_FORMAT = 1
"""The layout of bundle_meta and bundle_runs; a bundle of a later format is refused with one sentence."""
MAX_BUNDLE_BYTES = 2 * 1024**3
SQLITE_HEADER = b"SQLite format 3\x00"
LOCAL_RUN_COLUMNS = frozenset({"id", "pid", "pid_started_at", "heartbeat_at", "sweep_id", "sweep_point"})
"""Columns of a run that the database it lives in gives it: not part of its content, not carried as they are."""
NOT_RUN_DATA = frozenset({"run_origins"})
"""Tables keyed by run_id that are about the copy, not the run (its origin travels in bundle_runs)."""

BUNDLE_TABLES = """
CREATE TABLE bundle_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE bundle_runs (
    run_id             INTEGER PRIMARY KEY,
    content_hash       TEXT NOT NULL,
    origin_run_id      INTEGER,
    origin_database_id TEXT,
    machine_id         TEXT,
    ray_node_id        TEXT,
    ray_node_ip        TEXT,
    ray_node_name      TEXT
);
"""


class BundleError(EnergyprofError, ValueError):
    """A bundle cannot be exported or imported; one sentence for people (which file, what is wrong, what to do)."""


def read_bundle_file(path: str | Path) -> bytes:
    """A bundle file's bytes; BundleError with one sentence when it cannot be read."""
    path = Path(path).expanduser()
    try:
        if path.is_dir():
            raise BundleError(f"{path} is a folder, not a bundle; give the file `energyprof export … --format bundle` "
                              "wrote.")
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path} is {size / 1024**3:.1f} GiB, more than a bundle may be "
                              f"({MAX_BUNDLE_BYTES / 1024**3:.0f} GiB); export fewer runs per bundle.")
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist; check the path.") from None
    except OSError as exc:
        raise BundleError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from None


def write_bundle_file(path: str | Path, data: bytes) -> Path:
    """Write a bundle atomically (a temporary file beside it, then renamed); BundleError with one sentence."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"Could not write {path} ({exc.strerror or exc}); pick another file.") from None
    return path


# -- the schema, read from the database ---------------------------------------------------------------------------
def run_tables(conn: sqlite3.Connection) -> list[str]:
    """Every table whose rows belong to one run (run_id, a foreign key to runs that deletes them with the run), the
    run's own data only (not NOT_RUN_DATA), sorted."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = []
    for name in names:
        keys = conn.execute("SELECT \"table\", \"from\", on_delete FROM pragma_foreign_key_list(?)",
                            (name,)).fetchall()
        owned = any(table == "runs" and column == "run_id" and str(rule).upper() == "CASCADE"
                    for table, column, rule in keys)
        if owned and name not in NOT_RUN_DATA:
            out.append(name)
    return out


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's columns in their order ([] when there is no such table)."""
    return [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]


def quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def content_hash(conn: sqlite3.Connection, run_id: int, tables: Sequence[str]) -> str:
    """SHA-256 of a run's content: its row without LOCAL_RUN_COLUMNS (the summary without its run_id) and every row
    of `tables` for it, non-null values only, rows in a canonical order."""
    digest = hashlib.sha256()
    names = columns(conn, "runs")
    row = conn.execute(f"SELECT {quoted(names)} FROM runs WHERE id = ?", (run_id,)).fetchone()  # noqa: S608
    run = {k: v for k, v in zip(names, row, strict=True) if k not in LOCAL_RUN_COLUMNS and v is not None}
    if isinstance(run.get("summary"), str):
        summary = json.loads(run["summary"])
        if isinstance(summary, dict):
            summary.pop("run_id", None)
        run["summary"] = summary
    digest.update(json.dumps(["runs", run], sort_keys=True).encode())
    for table in sorted(tables):
        cols = sorted(c for c in columns(conn, table) if c != "run_id")
        rows = conn.execute(f"SELECT {quoted(cols)} FROM \"{table}\" WHERE run_id = ?", (run_id,))  # noqa: S608
        lines = sorted(json.dumps({c: v for c, v in zip(cols, r, strict=True) if v is not None}, sort_keys=True)
                       for r in rows)
        if lines:
            digest.update(json.dumps([table, lines]).encode())
    return digest.hexdigest()


def machine_id_of(run: dict[str, Any]) -> str | None:
    """The machine id a run carries: its `machine_id` column, else its summary's machine (None when it has none)."""
    if run.get("machine_id"):
        return str(run["machine_id"])
    summary = run.get("summary")
    if isinstance(summary, str):
        try:
            summary = json.loads(summary)
        except ValueError:
            return None
    machine = summary.get("machine") if isinstance(summary, dict) else None
    if isinstance(machine, dict):
        value = machine.get("machine_id") or machine.get("id")
        return str(value) if value else None
    return None


def exporting_platform() -> str:
    """The exporting machine for people, without anything personal: OS, release and architecture."""
    return f"{platform.system()} {platform.release()} {platform.machine()}".strip()


def create_bundle_schema(out: sqlite3.Connection) -> None:
    """An energyprof schema (every migration) and the bundle's own tables."""
    out.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, script in enumerate(MIGRATIONS, start=1):
        for statement in _split_sql(script):
            out.execute(statement)
        out.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, time.time()))
    for statement in _split_sql(BUNDLE_TABLES):
        out.execute(statement)


class OpenedBundle:
    """A bundle opened from its bytes (in memory: the file itself is never written), checked before anything is
    imported. Every problem is a BundleError naming the bundle."""

    def __init__(self, conn: sqlite3.Connection, name: str) -> None:
        self.conn, self.name = conn, name
        self.meta: dict[str, str | None] = {}
        self.format_version = 0
        self.exported_at: float | None = None
        self.tables: list[str] = []
        self.runs: dict[int, dict[str, Any]] = {}
        self.run_ids: list[int] = []
        self.origins: dict[int, dict[str, Any]] = {}
        self.sweeps: list[dict[str, Any]] = []
        self.sweep_columns: list[str] = []

    @classmethod
    def open(cls, data: bytes, name: str) -> OpenedBundle:
        if not data:
            raise BundleError(f"{name} is empty; export the runs again.")
        if not data.startswith(SQLITE_HEADER):
            raise BundleError(f"{name} is not an energyprof bundle (not an SQLite file); give the file "
                              "`energyprof export … --format bundle` wrote.")
        if data[18:20] == b"\x02\x02":  # a file in WAL mode (a database, not a bundle): read it as a plain file
            data = data[:18] + b"\x01\x01" + data[20:]
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(data)
            verdict = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise BundleError(f"{name} is damaged or cut off ({exc}); export it again.") from None
        if [tuple(r) for r in verdict] != [("ok",)]:
            conn.close()
            raise BundleError(f"{name} is damaged or cut off ({verdict[0][0]}); export it again.")
        return cls(conn, name)

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        except sqlite3.DatabaseError as exc:
            raise BundleError(f"{self.name} is damaged or is not a complete energyprof bundle ({exc}); export it "
                              "again.") from None

    def check(self, tables: Sequence[str]) -> None:
        """Read the bundle's meta, runs, origins and sweeps and check them all, hashes included. `tables`: the tables
        that hold a run's rows in the database importing it (the bundle's own schema is not trusted for that)."""
        names = {r["name"] for r in self._rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "bundle_meta" not in names or "bundle_runs" not in names:
            what = "an energyprof database" if "schema_version" in names else "an SQLite file of another program"
            raise BundleError(f"{self.name} is {what}, not an energyprof bundle; export runs into a bundle with "
                              "`energyprof export RUN --format bundle -o FILE`.")
        self.meta = {r["key"]: r["value"] for r in self._rows("SELECT key, value FROM bundle_meta")}
        self.format_version = self._int_meta("format_version")
        if self.format_version > BUNDLE_FORMAT:
            raise BundleError(f"{self.name} was written by a newer energyprof (bundle format {self.format_version}; "
                              f"this one reads up to {BUNDLE_FORMAT}); upgrade energyprof to import it.")
        schema = self._int_meta("schema_version")
        if schema > len(MIGRATIONS):
            raise BundleError(f"{self.name} was written by a newer energyprof (database schema {schema}; this one "
                              f"has {len(MIGRATIONS)}); upgrade energyprof to import it.")
        try:
            self.exported_at = float(self.meta.get("exported_at") or "")
        except ValueError:
            self.exported_at = None
        self.tables = [t for t in tables if t in names]
        self._check_runs()
        self.sweeps = self._rows("SELECT * FROM sweeps") if "sweeps" in names else []
        self.sweep_columns = columns(self.conn, "sweeps")
        for sweep in self.sweeps:
            if sweep.get("status") not in FINAL_STATUSES or not isinstance(sweep.get("id"), str):
                raise BundleError(f"{self.name} holds sweep {str(sweep.get('id'))[:80]!r}, which had not finished; "
                                  "it was changed after export, so export it again.")

    def _int_meta(self, key: str) -> int:
        try:
            return int(self.meta.get(key) or "")
        except ValueError:
            raise BundleError(f"{self.name} has no valid {key.replace('_', ' ')}; it is damaged or was not written "
                              "by energyprof, so export it again.") from None

    def _check_runs(self) -> None:
        runs = self._rows("SELECT * FROM runs ORDER BY id")
        origins = self._rows("SELECT * FROM bundle_runs ORDER BY run_id")
        ids = [r.get("id") for r in runs]
        listed = [o.get("run_id") for o in origins]
        if not runs:
            raise BundleError(f"{self.name} holds no runs; export some runs into it.")
        if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
            raise BundleError(f"{self.name} holds runs with the same id twice; it was changed after export, so export "
                              "it again.")
        if not all(isinstance(i, int) for i in listed) or sorted(listed) != ids:
            raise BundleError(f"{self.name} lists other runs than it holds; it was changed after export or cut short, "
                              "so export it again.")
        for table in self.tables:
            stray = self._rows(f"SELECT DISTINCT run_id FROM \"{table}\" WHERE run_id NOT IN "  # noqa: S608
                               "(SELECT id FROM runs)")
            if stray:
                raise BundleError(f"{self.name} has {table} rows of run {stray[0]['run_id']}, which it does not hold; "
                                  "it was changed after export, so export it again.")
        for run in runs:
            if run.get("status") not in FINAL_STATUSES:
                raise BundleError(f"{self.name} holds run {run['id']}, which had not finished (status "
                                  f"{str(run.get('status'))[:20]!r}); export it again once the run has finished.")
        self.runs = {r["id"]: r for r in runs}
        self.run_ids = ids
        try:
            for origin in origins:
                if content_hash(self.conn, origin["run_id"], self.tables) != origin.get("content_hash"):
                    raise BundleError(f"Run {origin['run_id']} in {self.name} does not match its checksum: the file "
                                      "was changed after export or damaged, so export it again.")
                self.origins[origin["run_id"]] = origin
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"{self.name} is damaged or was changed after export ({exc}); export it "
                              "again.") from None

    def copy_rows(self, conn: sqlite3.Connection, table: str, old_id: int, new_id: int) -> None:
        """The run's rows of `table` into the database (the columns both have), under the run's new id."""
        others = [c for c in columns(conn, table) if c in columns(self.conn, table) and c != "run_id"]
        rows = self._rows(f"SELECT {quoted(others)} FROM \"{table}\" WHERE run_id = ?", (old_id,))  # noqa: S608
        conn.executemany(f"INSERT INTO \"{table}\" (run_id, {quoted(others)}) "  # noqa: S608
                         f"VALUES (?, {', '.join('?' * len(others))})", ((new_id, *r.values()) for r in rows))
