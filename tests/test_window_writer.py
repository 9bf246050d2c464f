"""WindowWriter (energyprof/store/writer.py): batched window writes that survive a locked database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from energyprof.power.base import PowerWindow
from energyprof.store import Store, StoreError, db
from energyprof.store.writer import WindowWriter


def _windows(start: int, n: int) -> list[PowerWindow]:
    return [PowerWindow(i * 100, (i + 1) * 100, {"cpu": float(i), "gpu": None}) for i in range(start, start + n)]


def test_a_locked_database_loses_no_window(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    store = Store(db_path)
    run_id = store.create_run("sample", source="estimate", measured=False, params={})
    writer = WindowWriter(store, run_id, keep=True)
    writer.add(_windows(0, 3))
    writer.flush()
    writer.add(_windows(3, 2))
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    with pytest.raises(StoreError, match="locked"):
        writer.flush()
    writer.add(_windows(5, 1))  # the sampler keeps adding meanwhile
    other.execute("ROLLBACK")
    other.close()
    writer.flush()
    assert store.power_windows(run_id) == _windows(0, 6)
    assert writer.windows == _windows(0, 6)
    store.close()
