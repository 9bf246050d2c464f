"""The Store's core: the SQLite file, its connections, migrations and write discipline."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from energyprof.store.errors import BUSY_WAIT_S, RunNotActive, StoreError, not_active_sentence, translated
from energyprof.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = BUSY_WAIT_S * 1000
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("done", "failed", "cancelled")


def default_db_path() -> Path:
    """`$ENERGYPROF_DB`, else energyprof.sqlite3 in the user's data folder."""
    env = os.environ.get("ENERGYPROF_DB")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "energyprof" / "energyprof.sqlite3"


class StoreCore:
    """One SQLite file: a connection per thread, WAL, busy timeout, short write transactions.

    Every failure caused by the file (damaged, not a database, read-only, locked, disk full, a folder that
    cannot exist) is raised as StoreError with one sentence; see energyprof.store.errors."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a database file; point --db at a file such as "
                             f"{self.path / 'energyprof.sqlite3'}.", self.path)
        with translated(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    # -- connections ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _ensure_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with translated(self.path):
                conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writes --------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE: waits for other writers, never deadlocks)."""
        with self._write_lock, translated(self.path):
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def execute_write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self.transaction() as conn:
            return conn.execute(sql, params)

    def executemany_write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction() as conn:
            conn.executemany(sql, rows)

    def record_rows(self, run_id: int, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Insert data recorded for a run (samples, steps, energy, layers) in one transaction, only while the run
        is queued or running: a run that was marked failed, cancelled or done meanwhile raises RunNotActive."""
        with self.transaction() as conn:
            require_active(conn, run_id)
            conn.executemany(sql, rows)

    # -- reads ---------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with translated(self.path):
            cur = self.conn.cursor()
            cur.row_factory = sqlite3.Row
            return cur.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def frame(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> pd.DataFrame:
        """A read as a DataFrame (columns named by the SELECT)."""
        with translated(self.path):
            cur = self.conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return pd.DataFrame.from_records(rows, columns=cols)

    # -- schema --------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        row = self.query_one("SELECT MAX(version) FROM schema_version")
        return int(row[0] or 0) if row else 0

    def migrate(self) -> None:
        """Apply every migration newer than the file's schema version (all in one transaction); a file that holds
        another program's tables, or a newer schema, is refused with StoreError and left untouched."""
        with self.transaction() as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "schema_version" not in tables:
                others = ", ".join(sorted(tables)[:5])
                raise StoreError(f"{self.path} is not an energyprof database (it holds other tables: {others}); "
                                 "point --db at another file.", self.path)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise StoreError(f"{self.path} was written by a newer energyprof (schema {current}); upgrade "
                                 "energyprof or point --db at another file.", self.path)
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in _split_sql(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) "
                             "VALUES (?, strftime('%s','now'))", (version,))


def require_active(conn: sqlite3.Connection, run_id: int) -> None:
    """Inside a write transaction: raise RunNotActive unless the run is queued or running."""
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    status = row[0] if row else None
    if status not in ACTIVE_STATUSES:
        raise RunNotActive(not_active_sentence(run_id, status), run_id, status)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does after some errors, e.g. disk full)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _ensure_wal(conn: sqlite3.Connection, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the file in WAL mode (persistent, so usually already done). Changing the journal mode does not wait
    on the busy handler, so concurrent first openers retry here instead of failing with 'database is locked'."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
