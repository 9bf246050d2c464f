"""What one boundary read costs: microseconds per read_counter() call, per counter source.

The token loop reads a counter source once per step, so this is energyprof's price per token. Every row
here runs on this machine with stand-ins for hardware it does not have, so each measures energyprof's
own work (the lock, the clock read, the reading object) plus what the stand-in costs, not the hardware:

* rapl: the real RaplSource over a powercap tree of plain files in a temporary folder (a sysfs read of a
  real /sys/class/powercap counter costs about the same order: one small file read per zone);
* ioreport: the real IOReportSource over the zeus_apple_silicon stand-in (tests/stand_ins). A real
  IOReport sample copies every Energy Model channel (321 on an M1 Ultra), reported at about 3.5 ms per
  sample there (lablup/all-smi PR 424); only a Mac can measure this row for real;
* nvml: the real NvmlSource over the fake NVML module of the tests (a real driver call is ~10s of us);
* estimate: has no counter; the row is one poll of its utilisation model (psutil.cpu_times), the work a
  boundary read would replace, for comparison.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.rows import row
from energyprof.power.estimate import cpu_busy_total
from energyprof.power.nvml import NvmlSource
from energyprof.power.rapl import RaplSource

TESTS = Path(__file__).resolve().parents[1] / "tests"


def per_call_us(call: Callable[[], Any], calls: int, rounds: int = 5) -> float:
    """Median over rounds of the mean wall time of one call, in microseconds."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        results.append((time.perf_counter_ns() - started) / calls / 1e3)
    return statistics.median(results)


def _rapl_us(calls: int) -> float:
    sys.path.insert(0, str(TESTS))
    from fake_powercap import make_zone

    with tempfile.TemporaryDirectory() as root:
        for zone, name in (("0", "package-0"), ("0:0", "core"), ("0:1", "uncore"), ("0:2", "dram")):
            make_zone(Path(root), zone, name, 1_000_000)
        source = RaplSource(root=root)
        source.start(100)
        try:
            return per_call_us(source.read_counter, calls)
        finally:
            source.stop()


def _ioreport_us(calls: int) -> float:
    sys.path.insert(0, str(TESTS / "stand_ins"))
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FAKE_IOREPORT_")}
    try:
        from energyprof.power.ioreport import IOReportSource

        source = IOReportSource(module=__import__("zeus_apple_silicon"))
        source.start(100)
        try:
            return per_call_us(source.read_counter, calls)
        finally:
            source.stop()
    finally:
        os.environ.update(saved)
        sys.modules.pop("zeus_apple_silicon", None)


def _nvml_us(calls: int) -> float:
    sys.path.insert(0, str(TESTS))
    from fake_nvml import fake_nvml

    source = NvmlSource(nvml=fake_nvml([{"name": "H100", "counter": 0, "step_mj": 25}]))
    source.start(100)
    try:
        return per_call_us(source.read_counter, calls)
    finally:
        source.stop()


def run(quick: bool) -> list[dict[str, Any]]:
    calls = 200 if quick else 5000
    setup = f"median of 5 rounds of {calls} calls"
    return [
        row("counter read: rapl (fake powercap files)", _rapl_us(calls), "us",
            f"{setup}; RaplSource.read_counter over 4 zone files in a temporary folder"),
        row("counter read: ioreport (zeus stand-in)", _ioreport_us(calls), "us",
            f"{setup}; IOReportSource.read_counter over tests/stand_ins/zeus_apple_silicon: energyprof's "
            "overhead only, a real IOReport sample costs more"),
        row("counter read: nvml (fake module)", _nvml_us(calls), "us",
            f"{setup}; NvmlSource.read_counter over the tests' fake NVML: energyprof's overhead only"),
        row("utilisation poll: estimate (no counter)", per_call_us(cpu_busy_total, calls), "us",
            f"{setup}; psutil.cpu_times, what the estimate does per poll (it cannot be read at a boundary)"),
    ]


if __name__ == "__main__":
    for r in run(quick=False):
        print(f"{r['name']}: {r['value']:.4g} {r['unit']}")
