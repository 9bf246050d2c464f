"""SQLite ingest rate of layer calls and power windows through the Store's batched writes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.rows import row
from energyprof.power.base import PowerWindow
from energyprof.store import Store


def _layer_rows(n: int, layers: int = 50) -> list[tuple]:
    return [(0, i // layers, i % layers, i * 1000, i * 1000 + 900, 900, 0.5, 0.01) for i in range(n)]


def run(quick: bool) -> list[dict[str, Any]]:
    n = 20_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3")
        run_id = store.create_run("profile")
        rows = _layer_rows(n)
        started = time.perf_counter()
        for i in range(0, n, 50_000):
            store.add_layer_calls(run_id, rows[i:i + 50_000])
        layer_rate = n / (time.perf_counter() - started)
        windows = [PowerWindow(i * 100_000_000, (i + 1) * 100_000_000,
                               {"cpu": 1.0, "gpu": 2.0, "ane": 0.0, "dram": None}) for i in range(n // 4)]
        started = time.perf_counter()
        inserted = store.add_power_windows(run_id, windows)
        sample_rate = inserted / (time.perf_counter() - started)
        store.close()
    setup = f"{n:,} rows in 50,000-row executemany batches, WAL, synchronous=NORMAL, file in a temp folder"
    return [row("sqlite ingest: layer calls", layer_rate, "rows/s", setup, at_least=200_000),
            row("sqlite ingest: power sample rows", sample_rate, "rows/s", setup)]
