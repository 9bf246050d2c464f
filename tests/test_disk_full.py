"""A disk that fills up mid-run: the run ends `failed` with the real cause in one sentence, keeping what it wrote.

SQLite reports a full disk as SQLITE_FULL ("database or disk is full"); `PRAGMA max_page_count` makes the
database file hit that limit exactly as a full disk would, on every connection the job opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from profile_helpers import fast_params

from energyprof.runner.job import profile_foreground
from energyprof.store import Store
from energyprof.store.db import StoreCore


def test_disk_full_mid_run_fails_with_the_cause_and_keeps_the_data(db_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(db_path)
    store.create_run("sample", status="done")  # something recorded earlier that must survive
    used = store.conn.execute("PRAGMA page_count").fetchone()[0]
    connect = StoreCore._connect

    def full_soon(self: StoreCore) -> sqlite3.Connection:
        conn = connect(self)
        conn.execute(f"PRAGMA max_page_count = {used + 6}")
        return conn

    monkeypatch.setattr(StoreCore, "_connect", full_soon)
    store.close()
    full = Store(db_path)
    summary = profile_foreground(full, fast_params(max_new_tokens=60, repeats=3, interval_ms=10, layers="modules"))
    assert summary.status == "failed"
    assert summary.error == (f"The disk holding the database {db_path} is full; free some space and run the "
                             "profile again (what was recorded before is kept).")
    monkeypatch.undo()
    after = Store(db_path)
    runs = after.list_runs().set_index("id")
    assert runs.loc[1, "status"] == "done"  # earlier data intact
    assert runs.loc[summary.run_id, "status"] == "failed"
    assert runs.loc[summary.run_id, "error"] == summary.error
    assert not after.power_samples(summary.run_id).empty  # what fitted before the disk filled is kept
