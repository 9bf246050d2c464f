"""Migrations 4 and 5 (counters): `how` on step_energy and layer_calls, `source` on power_samples. A database written
before them keeps meaning what it meant: its windows are the run's own source, its figures are labelled on reading."""

from __future__ import annotations

import sqlite3

from energyprof.store import Store
from energyprof.store.schema import MIGRATIONS

MS = 1_000_000


def test_a_schema_3_database_reads_as_before_with_labels(db_path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:3], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO runs (id, kind, status, source, measured, created_at, clock_t0_ns) "
                 "VALUES (1, 'profile', 'running', 'powermetrics', 1, 0, 0)")
    conn.executemany("INSERT INTO power_samples (run_id, t0_ns, t1_ns, component, energy_mj) "
                     "VALUES (1, ?, ?, 'cpu', ?)",
                     [(0, 100 * MS, 500.0), (100 * MS, 200 * MS, 700.0)])
    conn.executemany("INSERT INTO steps (run_id, repeat, idx, phase, t0_ns, t1_ns, n_tokens) "
                     "VALUES (1, 0, ?, ?, ?, ?, 1)",
                     [(0, "prefill", 0, 100 * MS), (1, "decode", 100 * MS, 150 * MS)])
    conn.executemany("INSERT INTO step_energy (run_id, repeat, idx, component, energy_mj, resolution) "
                     "VALUES (1, 0, ?, 'cpu', ?, ?)", [(0, 500.0, 1.0), (1, 350.0, 0.5)])
    conn.commit()
    conn.close()
    store = Store(db_path)
    assert store.schema_version == len(MIGRATIONS)
    assert len(store.power_windows(1)) == 2 and store.power_windows(1, cross_check="rapl") == []
    assert store.power_totals(1)["energy_j"].iloc[0] == 1.2
    store.add_power_windows(1, store.power_windows(1), cross_check="rapl")  # a cross-check source beside it
    assert len(store.power_samples(1)) == 2 and len(store.power_samples(1, cross_check="rapl")) == 2
    assert store.power_totals(1)["energy_j"].iloc[0] == 1.2  # still the run's own source only
    assert list(store.step_energy(1)["how"]) == ["measured", "apportioned"]  # from the source and the resolution
    assert list(store.tokens_with_energy(1)["how"]) == ["measured", "apportioned"]
