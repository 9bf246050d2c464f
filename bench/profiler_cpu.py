"""The profiler's own CPU use per second of profiling: sampler thread, stream framing and plist parsing.

Measured as this process's CPU time (user + system, all threads) while the main thread sleeps and
a Sampler runs a source, so everything the profiler adds on top of the workload is counted. The
powermetrics rows use the stand-in executable in tests/ (its own CPU, like real powermetrics', is
another process and is not counted).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.rows import row
from energyprof.power.base import PowerWindow
from energyprof.power.registry import make_source
from energyprof.power.sampler import Sampler

STAND_IN = Path(__file__).resolve().parents[1] / "tests" / "fake_powermetrics.py"


def cpu_fraction(source_name: str, interval_ms: int, seconds: float, **options: Any) -> tuple[float, int]:
    """(CPU seconds per wall second of this process while sampling, windows received)."""
    received: list[PowerWindow] = []
    sampler = Sampler(make_source(source_name, **options), received.extend, interval_ms=interval_ms)
    sampler.start()
    try:
        time.sleep(min(1.0, seconds / 4))  # let start-up settle; it is not steady-state cost
        before_cpu, before_wall, before_n = time.process_time(), time.perf_counter(), len(received)
        time.sleep(seconds)
        cpu, wall = time.process_time() - before_cpu, time.perf_counter() - before_wall
        windows = len(received) - before_n
    finally:
        sampler.stop()
    return cpu / wall, windows


def run(quick: bool) -> list[dict[str, Any]]:
    seconds = 2.0 if quick else 20.0
    stand_in = [sys.executable, str(STAND_IN)]
    rows = []
    for interval in (100, 10):
        frac, n = cpu_fraction("powermetrics", interval, seconds, command=stand_in)
        rows.append(row(f"profiler CPU, powermetrics stand-in @ {interval} ms", frac * 100, "% of one core",
                        f"{seconds:g} s, {n} windows; CPU time of this process (all threads) per wall second, which "
                        "other load on the machine does not inflate; the stand-in replays the M1 (x2) and M2 Ultra "
                        "cpu+gpu+thermal recordings (29-65 KB per document)",
                        at_most=1.0 if interval == 100 else None))
    frac, n = cpu_fraction("estimate", 100, seconds)
    rows.append(row("profiler CPU, estimate @ 100 ms", frac * 100, "% of one core",
                    f"{seconds:g} s, {n} windows (psutil CPU times)", at_most=1.0))
    return rows
