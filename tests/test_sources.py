"""RAPL over a fake powercap tree, NVML over a fake module, the estimate over real psutil, the registry, summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_nvml import fake_nvml
from fake_powercap import make_zone as _zone

from energyprof.analysis.recording import summarise_windows
from energyprof.power import rapl as rapl_module
from energyprof.power.base import PowerSourceError, PowerWindow, SourceStatus
from energyprof.power.estimate import EstimateSource
from energyprof.power.nvml import NvmlSource
from energyprof.power.rapl import MISSING, NO_PERMISSION, RaplSource
from energyprof.power.registry import (
    SOURCE_NAMES,
    all_statuses,
    auto_name,
    auto_select,
    make_source,
    resolve_source,
)
from energyprof.power.sampler import Sampler

# -- RAPL ------------------------------------------------------------------------------------------------


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two sockets like /sys/class/powercap: package-0 with core/uncore/dram, package-1 with core, and psys."""
    root = tmp_path / "powercap"
    _zone(root, "0", "package-0", 1_000_000)
    _zone(root, "0:0", "core", 500_000)
    _zone(root, "0:1", "uncore", 900_000, max_uj=1_000_000)
    _zone(root, "0:2", "dram", 200_000)
    _zone(root, "1", "package-1", 3_000_000)
    _zone(root, "1:0", "core", 700_000)
    _zone(root, "2", "psys", 9_000_000)
    return root


def _set(root: Path, zone: str, energy_uj: int) -> None:
    (root / f"intel-rapl:{zone}" / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_reads_zones_sums_sockets_and_handles_wraparound(powercap: Path) -> None:
    source = RaplSource(root=powercap)
    ok, reason = source.available()
    assert ok and "uncore = integrated graphics" in reason
    assert source.components() == ("cpu", "gpu", "dram", "package")
    source.start(10)
    _set(powercap, "0", 1_250_000)      # +250 000 uJ
    _set(powercap, "1", 3_100_000)      # +100 000 uJ  -> package = 350 mJ over both sockets
    _set(powercap, "0:0", 600_000)      # +100 000 uJ
    _set(powercap, "1:0", 750_000)      # +50 000 uJ   -> cpu = 150 mJ
    _set(powercap, "0:1", 100_000)      # wrapped at 1 000 000: 100 000 + 1 000 000 - 900 000 = 200 000 uJ
    _set(powercap, "0:2", 230_000)      # +30 000 uJ   -> dram = 30 mJ
    _set(powercap, "2", 99_000_000)     # psys is ignored
    windows = source.read(1.0)
    source.stop()
    assert len(windows) == 1
    assert windows[0].energy_mj == pytest.approx({"cpu": 150.0, "gpu": 200.0, "dram": 30.0, "package": 350.0})


def test_rapl_missing_tree(tmp_path: Path) -> None:
    source = RaplSource(root=tmp_path / "nothing")
    assert source.available() == (False, MISSING)
    assert source.components() == ("cpu", "gpu", "dram", "package")
    with pytest.raises(PowerSourceError, match="no RAPL powercap interface"):
        source.start(100)


def test_rapl_unreadable_counters(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Any) -> int:
        raise PermissionError(13, "Permission denied", str(self.path / "energy_uj"))

    monkeypatch.setattr(rapl_module._Zone, "read_uj", denied)  # tests run as root, so chmod would not stop us
    source = RaplSource(root=powercap)
    assert source.available() == (False, NO_PERMISSION)
    with pytest.raises(PowerSourceError, match="readable only by root"):
        source.start(100)


# -- NVML ------------------------------------------------------------------------------------------------


def test_nvml_sums_counter_and_polled_devices() -> None:
    nvml = fake_nvml([{"name": "H100", "counter": 1_000_000, "step_mj": 25},
                      {"name": "T4", "power_mw": 70_000}])
    source = NvmlSource(nvml=nvml)
    ok, reason = source.available()
    assert ok and "H100 (energy counter)" in reason and "T4 (power polling)" in reason
    assert nvml.state["shutdown"] == 1  # the probe does not keep NVML open
    source.start(20)
    windows = source.read(1.0)
    source.stop()
    assert nvml.state["shutdown"] == 2
    (w,) = windows
    # H100: the counter moved 25 mJ between the two polls; T4: 70 W constant, trapezoid = 70 W × window
    # (the window is the PolledSource poll gap, the T4 integral uses its own poll times: equal to within 1%)
    assert w.energy_mj["gpu"] == pytest.approx(25 + 70_000 * w.duration_s, rel=0.01)


def test_nvml_one_device_by_index() -> None:
    nvml = fake_nvml([{"name": "A", "counter": 0, "step_mj": 5}, {"name": "B", "counter": 0, "step_mj": 500}])
    source = NvmlSource(device_index=1, nvml=nvml)
    source.start(10)
    (w,) = source.read(1.0)
    source.stop()
    assert w.energy_mj == {"gpu": 500}
    ok, reason = NvmlSource(device_index=2, nvml=nvml).available()
    assert not ok and "there is no NVIDIA GPU 2" in reason


def test_nvml_without_driver() -> None:
    ok, reason = NvmlSource(nvml=fake_nvml([], init_error=9)).available()
    assert not ok
    assert reason.startswith("no NVIDIA driver/GPU found (NVML could not initialise: Driver Not Loaded)")


def test_nvml_without_energy_or_power() -> None:
    ok, reason = NvmlSource(nvml=fake_nvml([{"name": "old"}])).available()
    assert not ok and "cannot report" in reason and "Not Supported" in reason


def test_nvml_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` now raises ImportError
    ok, reason = NvmlSource().available()
    assert not ok and "pip install nvidia-ml-py" in reason


def test_nvml_gpu_lost_mid_run() -> None:
    device = {"name": "H100", "counter": 0, "step_mj": 10}
    source = NvmlSource(nvml=fake_nvml([device]))
    source.start(10)
    device["lost"] = True
    with pytest.raises(PowerSourceError, match="NVML stopped answering"):
        source.read(1.0)
    source.stop()


# -- estimate --------------------------------------------------------------------------------------------


def test_estimate_over_real_psutil() -> None:
    source = EstimateSource()
    ok, reason = source.available()
    assert ok and reason.startswith("estimated, not measured") and source.measured is False
    source.start(50)
    windows: list[PowerWindow] = []
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        sum(i * i for i in range(20_000))  # some CPU load between polls
        windows += source.read(0.01)
    source.stop()
    assert len(windows) >= 5
    for w in windows:
        assert set(w.energy_mj) == {"cpu"}
        assert 10.0 - 1e-9 <= w.power_w("cpu") <= 65.0 + 1e-9


def test_estimate_model_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYPROF_ESTIMATE_IDLE_W", "4")
    monkeypatch.setenv("ENERGYPROF_ESTIMATE_MAX_W", "24")
    source = EstimateSource()
    assert (source.power_w(0.0), source.power_w(0.5), source.power_w(1.0)) == (4.0, 14.0, 24.0)
    assert EstimateSource(idle_w=1, max_w=2).power_w(1.0) == 2.0
    # 50% utilisation over 0.2 s: P = 4 + (24 - 4) × 0.5 = 14 W -> 2.8 J
    energy = source._window_energy({"busy": 10.0, "total": 20.0}, {"busy": 10.5, "total": 21.0}, 200_000_000)
    assert energy == {"cpu": pytest.approx(2800.0)}


def test_estimate_bad_settings_are_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYPROF_ESTIMATE_IDLE_W", "lots")
    with pytest.raises(ValueError, match=r"ENERGYPROF_ESTIMATE_IDLE_W='lots' is not a number of watts"):
        EstimateSource()
    monkeypatch.delenv("ENERGYPROF_ESTIMATE_IDLE_W")
    with pytest.raises(ValueError, match="below its idle power"):
        EstimateSource(idle_w=50, max_w=20)
    status = all_statuses()[-1]
    assert status.name == "estimate" and status.available


# -- registry --------------------------------------------------------------------------------------------


def test_registry_names_and_errors() -> None:
    assert SOURCE_NAMES == ("ioreport", "powermetrics", "nvml", "rapl", "estimate")
    with pytest.raises(ValueError, match="choose one of ioreport, powermetrics, nvml, rapl, estimate or auto"):
        make_source("watts")
    assert make_source("rapl", root="/nonexistent").available()[0] is False
    assert [s.name for s in all_statuses()] == list(SOURCE_NAMES)


def test_auto_prefers_measured_sources() -> None:
    def status(name: str, ok: bool, measured: bool = True) -> SourceStatus:
        return SourceStatus(name, ok, "", (), measured, 100)

    assert auto_name([status("powermetrics", False), status("nvml", True), status("rapl", True),
                      status("estimate", True, False)]) == "nvml"
    assert auto_name([status("powermetrics", False), status("estimate", True, False)]) == "estimate"
    assert auto_name([status("estimate", False, False)]) == "none"


def test_auto_select_and_resolve_on_this_machine() -> None:
    statuses = all_statuses()
    assert auto_select().name == auto_name(statuses)
    assert resolve_source("auto").name == auto_name(statuses)
    assert resolve_source("estimate").measured is False
    if not statuses[1].available:
        with pytest.raises(PowerSourceError, match="the powermetrics power source is not available here: "):
            resolve_source("powermetrics")


def test_resolve_passes_options() -> None:
    fake = [sys.executable, str(Path(__file__).parent / "fake_powermetrics.py")]
    source = resolve_source("powermetrics", command=fake)
    assert source.name == "powermetrics" and source.command == fake


# -- summary ---------------------------------------------------------------------------------------------


def test_summary_keeps_unknown_apart_from_zero() -> None:
    windows = [PowerWindow(0, 1_000_000_000, {"cpu": 2000.0, "gpu": None, "dram": None}),
               PowerWindow(1_000_000_000, 3_000_000_000, {"cpu": 1000.0, "gpu": 600.0, "dram": None})]
    summary = summarise_windows(windows, components=("cpu", "gpu", "ane", "dram"))
    assert summary.windows == 2 and summary.duration_s == 3.0
    # cpu: 3 J over 3 s = 1 W; gpu: 0.6 J over the 2 s where it is known = 0.3 W; ane/dram: no figure at all
    assert summary.energy_j == {"cpu": 3.0, "gpu": 0.6, "ane": None, "dram": None}
    assert summary.mean_w == {"cpu": 1.0, "gpu": 0.3, "ane": None, "dram": None}
    empty = summarise_windows([])
    assert (empty.windows, empty.duration_s, empty.energy_j, empty.mean_w) == (0, 0.0, {}, {})


def test_every_source_answers_drain_and_skipped(powercap: Path) -> None:
    """The Sampler and the job call drain() and read skipped on any source, with no getattr fallback."""
    nvml = fake_nvml([{"name": "H100", "counter": 0, "step_mj": 5}])
    for source in (EstimateSource(), RaplSource(root=powercap), NvmlSource(nvml=nvml)):
        got: list[PowerWindow] = []
        with Sampler(source, got.extend, interval_ms=10):
            time.sleep(0.1)
        assert source.skipped == 0 and source.drain() == [] and got
