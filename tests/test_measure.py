"""energyprof.measure(): a block's energy from a sampled source, optionally stored as a `measure` run."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import energyprof
from energyprof.analysis.attribution import attribute_intervals
from energyprof.export import export_trace
from energyprof.power.base import PolledSource, now_ns
from energyprof.power.estimate import EstimateSource
from energyprof.store import Store

CPU_W, GPU_W = 5.0, 2.0


class CounterSource(PolledSource):
    """Cumulative counters of a constant 5 W cpu and 2 W gpu, and a dram that is never known."""

    name = "fake-counter"
    measured = True
    default_interval_ms = 20

    def available(self) -> tuple[bool, str]:
        return True, "test counters"

    def components(self) -> tuple[str, ...]:
        return ("cpu", "gpu", "dram")

    def _open(self) -> None:
        self.origin = now_ns()

    def _counters_mj(self) -> dict[str, float | None]:
        elapsed_ns = now_ns() - self.origin
        return {"cpu": CPU_W * elapsed_ns / 1e6, "gpu": GPU_W * elapsed_ns / 1e6, "dram": None}


def test_energy_equals_attribution_of_the_known_truth() -> None:
    with energyprof.measure(source=CounterSource(), interval_ms=20) as m:
        with pytest.raises(RuntimeError, match="still running"):
            _ = m.energy_j
        time.sleep(0.15)
    assert m.source == "fake-counter" and m.measured and m.run_id is None
    assert m.complete and m.error is None
    assert m.duration_s >= 0.15
    assert m.energy_j["cpu"] == pytest.approx(CPU_W * m.duration_s, rel=1e-3)
    assert m.energy_j["gpu"] == pytest.approx(GPU_W * m.duration_s, rel=1e-3)
    assert m.energy_j["dram"] is None
    assert m.total_j == pytest.approx((CPU_W + GPU_W) * m.duration_s, rel=1e-3)
    assert m.mean_w == pytest.approx(CPU_W + GPU_W, rel=1e-3)
    again = attribute_intervals(m.windows, np.array([m.t0_ns]), np.array([m.t1_ns]))
    assert m.energy_j["cpu"] == pytest.approx(again.energy_mj["cpu"][0] / 1e3, rel=1e-12)
    assert 0 < m.resolution <= 1.0
    assert "J in" in repr(m)


def test_stored_as_a_measure_run(store: Store) -> None:
    with energyprof.measure(source=CounterSource(), interval_ms=20, db=store, label="my block") as m:
        time.sleep(0.06)
    run = store.get_run(m.run_id)
    assert run["kind"] == "measure" and run["status"] == "done" and run["measured"] is True
    assert run["params"]["label"] == "my block" and run["clock_t0_ns"] == m.t0_ns
    assert run["summary"]["total_energy_j"] == pytest.approx(m.total_j)
    assert len(store.power_windows(m.run_id)) == len(m.windows)
    trace = export_trace(store, m.run_id)
    block = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in block] == ["my block"]


def test_a_block_that_raises_is_stored_as_failed(db_path) -> None:
    with pytest.raises(ZeroDivisionError):
        with energyprof.measure(source=CounterSource(), interval_ms=20, db=db_path) as m:
            time.sleep(0.03)
            _ = 1 / 0
    run = Store(db_path).get_run(m.run_id)
    assert run["status"] == "failed" and "ZeroDivisionError" in run["error"]
    assert m.energy_j["cpu"] > 0


def test_with_the_estimate_source() -> None:
    with energyprof.measure(source="estimate", interval_ms=25) as m:
        deadline = time.perf_counter() + 0.2
        while time.perf_counter() < deadline:
            sum(i * i for i in range(1000))
    model = EstimateSource()
    assert m.source == "estimate" and m.measured is False
    assert m.energy_j["cpu"] > 0
    assert model.idle_w - 1e-9 <= m.mean_w <= model.max_w + 1e-9


def test_import_stays_light_and_measure_is_the_function() -> None:
    code = ("import sys, energyprof; assert 'numpy' not in sys.modules; "
            "f = energyprof.measure; import energyprof.measuring; "
            "assert energyprof.measure is f and callable(f) and energyprof.Measurement")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
