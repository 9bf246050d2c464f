"""The ioreport source (energyprof/power/ioreport.py) driven through the zeus_apple_silicon stand-in."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ioreport_stand_in import STAND_INS, clean_env

from energyprof.power import ioreport
from energyprof.power.base import CounterReading, PowerSourceError, PowerWindow, total_energy_mj
from energyprof.power.ioreport import NO_CHANNELS, NOT_INSTALLED, IOReportSource
from energyprof.power.registry import auto_select, resolve_source
from energyprof.power.sampler import Sampler
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]


# -- the stand-in imitates the package's documented API ---------------------------------------------------


def test_stand_in_follows_the_documented_api(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "20")
    monitor = stand_in.AppleEnergyMonitor()
    metrics = monitor.get_cumulative_energy()
    assert isinstance(metrics, stand_in.AppleEnergyMetrics)
    for field in ("cpu_total_mj", "gpu_mj", "gpu_sram_mj", "ane_mj", "dram_mj", "efficiency_core_manager_mj"):
        assert isinstance(getattr(metrics, field), int)
    assert all(isinstance(v, int) for v in metrics.efficiency_cores_mj + metrics.performance_cluster_mj)
    monitor.begin_window("step")
    with pytest.raises(RuntimeError, match="already exists"):
        monitor.begin_window("step")
    monitor.begin_window("step", restart=True)
    time.sleep(0.05)
    window = monitor.end_window(key="step")
    assert window.cpu_total_mj >= 4 * 20  # 4 W for at least two 20 ms publications
    with pytest.raises(RuntimeError, match="No measurement"):
        monitor.end_window("step")
    monkeypatch.setenv("FAKE_IOREPORT_MISSING", "dram,gpu_sram")
    assert stand_in.AppleEnergyMonitor().get_cumulative_energy().dram_mj is None
    monkeypatch.setenv("FAKE_IOREPORT_FAIL", "no-subscription")
    with pytest.raises(RuntimeError, match="Failed to create IOReport subscription"):
        stand_in.AppleEnergyMonitor()


# -- availability: the package imports and a monitor starts ----------------------------------------------


def test_available_through_the_stand_in(stand_in) -> None:
    source = IOReportSource()
    ok, reason = source.available()
    assert ok and reason.startswith("IOReport Energy Model counters, no sudo (cpu, gpu, ane, dram)")
    assert source.components() == ("cpu", "gpu", "ane", "dram") and source.measured and source.is_counter


def test_missing_package_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # as on any machine without it
    assert IOReportSource().available() == (False, NOT_INSTALLED)
    assert "pip install zeus-apple-silicon" in NOT_INSTALLED and "macOS only" in NOT_INSTALLED


@pytest.mark.parametrize("fail, expect", [
    ("no-subscription", "IOReport refused an Energy Model subscription (Failed to create IOReport subscription)"),
    ("no-channels", NO_CHANNELS),
    ("crash", "IOReport refused an Energy Model subscription (the check crashed with signal 11)"),
])
def test_unavailable_reasons(stand_in, monkeypatch: pytest.MonkeyPatch, fail: str, expect: str) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_FAIL", fail)
    ok, reason = IOReportSource().available()  # the monitor starts in a child: a crash cannot take us down
    assert not ok and reason.startswith(expect) and reason.endswith(".")
    if fail != "crash":
        with pytest.raises(PowerSourceError) as err:
            IOReportSource().start(100)
        assert str(err.value).startswith(expect)


def test_missing_channel_is_unknown_never_zero(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_MISSING", "dram")
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "10")
    source = IOReportSource()
    ok, reason = source.available()
    assert ok and "dram unknown on this chip" in reason
    with source:
        source.start(20)
        windows = [w for _ in range(5) for w in source.read(0.2)]
    assert windows and all(w.energy_mj["dram"] is None for w in windows)
    assert all(w.energy_mj["cpu"] is not None for w in windows)


# -- readings ---------------------------------------------------------------------------------------------


def test_windows_are_the_counter_differences(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "5")
    source = IOReportSource()
    source.start(50)
    windows: list[PowerWindow] = []
    while len(windows) < 8:
        windows += source.read(0.2)
    source.stop()
    reads = list(stand_in.READS)
    for w in windows:
        # each window's energy is the stand-in's counter at its end minus at its start, in integer mJ
        (before,) = [r for t, r in reads if t <= w.t0_ns][-1:]
        (after,) = [r for t, r in reads if t <= w.t1_ns][-1:]
        assert w.energy_mj == {"cpu": after["cpu_total_mj"] - before["cpu_total_mj"],
                               "gpu": after["gpu_mj"] - before["gpu_mj"], "ane": 0,
                               "dram": after["dram_mj"] - before["dram_mj"]}
    # 4 W cpu, 8 W gpu, 1.5 W dram; GPU SRAM (0.25 W) is inside "GPU Energy", never added again
    span_s = (windows[-1].t1_ns - windows[0].t0_ns) / 1e9
    assert sum(w.energy_mj["gpu"] for w in windows) == pytest.approx(8 * 1e3 * span_s, abs=3)
    assert sum(w.energy_mj["cpu"] for w in windows) == pytest.approx(4 * 1e3 * span_s, abs=4 * 5 + 1)
    assert total_energy_mj(windows[0].energy_mj) == sum(windows[0].energy_mj.values())


def test_boundary_reads_and_the_sampler_share_one_monitor_safely(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in raises if two threads are inside the monitor at once, as the library promises no safety."""
    monkeypatch.setenv("FAKE_IOREPORT_READ_US", "300")
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "1")
    source = IOReportSource()
    got: list[PowerWindow] = []
    readings: list[CounterReading] = []
    with Sampler(source, got.extend, interval_ms=10, poll_s=0.001) as sampler:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # a token loop reading at every step boundary
            readings.append(source.read_counter())
            time.sleep(0.002)
    assert sampler.error is None and len(got) >= 25 and len(readings) >= 100
    assert all(a.t_ns < b.t_ns for a, b in zip(readings, readings[1:], strict=False))
    assert all(b.energy_mj["cpu"] >= a.energy_mj["cpu"] for a, b in zip(readings, readings[1:], strict=False))
    step = readings[-1].window_since(readings[0])
    assert step.t0_ns == readings[0].t_ns and step.energy_mj["gpu"] == pytest.approx(8 * 1e3 * step.duration_s, abs=2)


def test_read_counter_takes_one_clock_read_right_after_the_counters(stand_in) -> None:
    source = IOReportSource()
    source.start(100)
    reading = source.read_counter()
    source.stop()
    t_read, values = stand_in.READS[-1]
    assert 0 <= reading.t_ns - t_read < 5_000_000  # stamped after the read, not before it
    assert reading.energy_mj["cpu"] == values["cpu_total_mj"]
    with pytest.raises(PowerSourceError, match="before it was started"):
        source.read_counter()


# -- the registry, doctor and sample ----------------------------------------------------------------------


def test_auto_prefers_ioreport(stand_in) -> None:
    assert auto_select().name == "ioreport"
    assert resolve_source("ioreport").name == "ioreport"


def _energyprof(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], cwd=REPO, env=clean_env(**env),
                          capture_output=True, text=True, timeout=120, check=False)


def test_doctor_lists_ioreport_available_with_its_counter() -> None:
    done = _energyprof("doctor", "--json", FAKE_IOREPORT_UPDATE_MS="50")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    first = report["sources"][0]
    assert (first["name"], first["available"], first["measured"], report["auto"]) == (
        "ioreport", True, True, "ioreport")
    counter = first["counter"]
    # the stand-in publishes cpu/dram every 50 ms and moves gpu at every read; the probe recovers that
    assert counter["components"]["cpu"]["update_period_s"] == pytest.approx(0.05, rel=0.2)
    assert counter["components"]["cpu"]["quantum_mj"] == 200.0  # 4 W x 50 ms
    assert counter["components"]["gpu"]["update_period_s"] < 0.01
    assert counter["components"]["ane"] == {"changes": 0, "quantum_mj": None, "update_period_s": None}
    assert counter["update_period_s"] == pytest.approx(0.05, rel=0.2) and counter["reads"] > 50
    assert counter["untimed"] == ["ane"]
    text = _energyprof("doctor", "--probe-seconds", "0.5", FAKE_IOREPORT_UPDATE_MS="50")
    assert re.search(r"cpu every (4[5-9]|5[0-5])(\.\d)? ms in steps >= 200 mJ", text.stdout), text.stdout
    assert "ane untimed" in text.stdout
    assert "auto picks: ioreport" in text.stdout


def test_sample_with_ioreport(tmp_path: Path) -> None:
    db = tmp_path / "io.sqlite3"
    done = _energyprof("sample", "--source", "ioreport", "--seconds", "1", "--interval-ms", "50", "--json",
                       "--db", str(db), FAKE_IOREPORT_UPDATE_MS="10")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["source"], out["measured"], out["status"], out["samples_skipped"]) == ("ioreport", True, "done", 0)
    assert out["windows"] >= 10
    # 4 W cpu, 8 W gpu, 0 W ane, 1.5 W dram from the stand-in, in 1 mJ / 10 ms steps
    assert out["mean_w"]["gpu"] == pytest.approx(8.0, rel=0.02)
    assert out["mean_w"]["cpu"] == pytest.approx(4.0, rel=0.1) and out["mean_w"]["dram"] == pytest.approx(1.5, rel=0.1)
    assert out["energy_j"]["ane"] == 0.0
    store = Store(db)
    assert store.get_run(out["run_id"])["source"] == "ioreport"
    assert len(store.power_windows(out["run_id"])) == out["windows"]
    store.close()
    auto = _energyprof("sample", "--seconds", "0.3", "--json", "--db", str(db))
    assert json.loads(auto.stdout)["source"] == "ioreport"


def test_without_the_stand_in_nothing_picks_ioreport() -> None:
    assert importlib.util.find_spec("zeus_apple_silicon") is None or sys.platform == "darwin"
    assert str(STAND_INS) not in sys.path
    if sys.platform != "darwin":
        assert ioreport.IOReportSource().available() == (False, NOT_INSTALLED)
