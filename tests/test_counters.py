"""Counter sources read at any instant (read_counter) and probed for update period and quantum (probe_counter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_nvml import fake_nvml
from fake_powercap import Kernel, make_zone

from energyprof.power.base import CounterReading, PowerSourceError, PowerWindow
from energyprof.power.counter import describe_counter, probe_counter, probe_source
from energyprof.power.estimate import EstimateSource
from energyprof.power.ioreport import IOReportSource
from energyprof.power.nvml import NvmlSource
from energyprof.power.rapl import RaplSource
from energyprof.power.sampler import Sampler


def test_window_since_is_the_counter_difference() -> None:
    a = CounterReading(1_000, {"cpu": 10.0, "gpu": 5.0, "dram": None})
    b = CounterReading(3_000, {"cpu": 14.5, "gpu": 5.0, "dram": 2.0})
    assert b.window_since(a) == PowerWindow(1_000, 3_000, {"cpu": 4.5, "gpu": 0.0, "dram": None})


def test_sources_without_counters_say_so() -> None:
    estimate = EstimateSource()
    estimate.start(50)
    try:
        assert estimate.is_counter is False
        with pytest.raises(PowerSourceError, match="the estimate source has no energy counter"):
            estimate.read_counter()
        with pytest.raises(PowerSourceError, match="no energy counter to probe"):
            probe_counter(estimate, 0.1)
    finally:
        estimate.stop()
    assert probe_source(EstimateSource(), 0.1) is None


# -- RAPL: a powercap tree whose counter a "kernel" thread advances every 10 ms ---------------------------


def test_rapl_counter_period_and_quantum(tmp_path: Path) -> None:
    package = make_zone(tmp_path, "0", "package-0", 1_000_000)
    kernel = Kernel(package, step_uj=6_104, period_s=0.01)  # 400 RAPL units of 15.26 uJ every 10 ms: 0.61 W
    kernel.start()
    source = RaplSource(root=tmp_path)
    source.start(100)
    try:
        assert source.is_counter
        first = source.read_counter()
        c = probe_counter(source, 0.6)
    finally:
        source.stop()
        kernel.halt.set()
    assert first.energy_mj == {"package": 0.0}  # a running total from the start
    pkg = c.components["package"]
    assert pkg.update_period_s == pytest.approx(0.01, rel=0.3) and pkg.quantum_mj == pytest.approx(6.104)
    assert c.update_period_s == pkg.update_period_s and c.quantum_mj == pkg.quantum_mj
    assert c.reads > pkg.changes >= 30 and c.read_us > 0
    assert "package every" in describe_counter(c)


# -- NVML: the fake driver's counter moves by step_mj at every read ---------------------------------------


def test_nvml_counter_is_probed_and_polling_gpus_are_not_counters() -> None:
    nvml = fake_nvml([{"name": "H100", "counter": 1_000_000, "step_mj": 25},
                      {"name": "A100", "counter": 7, "step_mj": 5}])
    source = NvmlSource(nvml=nvml)
    assert source.is_counter is False  # not known before it starts
    source.start(100)
    try:
        assert source.is_counter
        a, b = source.read_counter(), source.read_counter()
        assert b.energy_mj["gpu"] - a.energy_mj["gpu"] == 30 and b.t_ns > a.t_ns
        c = probe_counter(source, 0.2)
    finally:
        source.stop()
    gpu = c.components["gpu"]
    assert gpu.quantum_mj == 30 and gpu.changes == c.reads - 1 and gpu.update_period_s < 0.01

    mixed = NvmlSource(nvml=fake_nvml([{"name": "H100", "counter": 0, "step_mj": 25},
                                       {"name": "T4", "power_mw": 70_000}]))
    mixed.start(100)
    try:
        assert mixed.is_counter is False
        with pytest.raises(PowerSourceError, match="no energy counter"):
            mixed.read_counter()
    finally:
        mixed.stop()


# -- ioreport: the stand-in's configured publication period is recovered ----------------------------------


def test_ioreport_probe_recovers_the_stand_in_period_while_the_sampler_runs(
        stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "30")
    monkeypatch.setenv("FAKE_IOREPORT_CPU_W", "10")
    source = IOReportSource()
    got: list[PowerWindow] = []
    with Sampler(source, got.extend, interval_ms=20) as sampler:
        c = probe_counter(source, 0.8)
    assert sampler.error is None and got
    cpu, gpu, ane = c.components["cpu"], c.components["gpu"], c.components["ane"]
    assert cpu.update_period_s == pytest.approx(0.03, rel=0.2) and cpu.quantum_mj == 300  # 10 W x 30 ms
    assert c.components["dram"].update_period_s == pytest.approx(0.03, rel=0.2)
    assert gpu.update_period_s < 0.005 and gpu.quantum_mj <= 3  # moves at every read, in whole mJ
    assert ane.changes == 0 and ane.update_period_s is None and c.untimed == ("ane",)  # 0 W: no information
    assert c.update_period_s == max(cpu.update_period_s, c.components["dram"].update_period_s)
    assert c.quantum_mj == gpu.quantum_mj


def test_a_counter_slower_than_the_probe_is_untimed(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "1000")  # about what the real CPU channel does
    c = probe_source(IOReportSource(), 0.3)
    assert c is not None and c.untimed == ("cpu", "ane", "dram")
    assert all(c.components[name].update_period_s is None for name in c.untimed)
    assert c.update_period_s == c.components["gpu"].update_period_s < 0.005  # the one component that was timed
    assert "cpu, ane, dram untimed (idle, or slower than the 0.3 s probe: try --probe-seconds 5)" in (
        describe_counter(c))
