"""A stand-in for the `zeus-apple-silicon` package (1.1.0), for machines without Apple Silicon.

It implements the package's documented Python API exactly (README "API Reference", bindings in
bindings/energy_bindings.hpp): ``AppleEnergyMonitor()``, ``get_cumulative_energy()``,
``begin_window(key, restart=False)`` and ``end_window(key)`` returning ``AppleEnergyMetrics``, whose
fields are integer mJ or ``None`` when the chip lacks the channel. ``begin_window`` with a key still
open (without ``restart=True``) and ``end_window`` with an unknown key raise ``RuntimeError`` with the
real messages; a failed subscription raises ``RuntimeError("Failed to create IOReport subscription.")``.

Its counters behave like the real ones: cumulative since an arbitrary origin (here a boot-like offset),
integer mJ, and they change only when the "driver" publishes. Measurements of the real counters
(lablup/all-smi issues 410/415, M1 Ultra and M5 Max) show the mJ channels (CPU, ANE, DRAM, GPU SRAM)
published in batches about 1 s apart (twice per ~2.1 s on the M1 Ultra), while the "GPU Energy" channel
(kept in nJ by the driver, converted to integer mJ by the package) moves at every read. So, by default,
cpu/ane/dram/gpu_sram step every 1000 ms and gpu at every read, quantised to 1 mJ. Power is constant.

Environment (read when a monitor is created):
  FAKE_IOREPORT_UPDATE_MS=1000       publication period of the cpu, ane, dram and gpu_sram counters
  FAKE_IOREPORT_GPU_UPDATE_MS=0      publication period of the gpu counter (0: every read)
  FAKE_IOREPORT_CPU_W=4  _GPU_W=8  _ANE_W=0  _DRAM_W=1.5  _GPU_SRAM_W=0.25   constant power per channel
  FAKE_IOREPORT_MISSING=dram,...     fields this "chip" lacks (None), e.g. dram on chips without it
  FAKE_IOREPORT_FAIL=no-subscription the constructor raises RuntimeError, as when IOReport refuses
  FAKE_IOREPORT_FAIL=no-channels     the monitor starts but every field is None (no Energy Model group)
  FAKE_IOREPORT_FAIL=crash           the constructor kills the process with SIGSEGV, as native code can
  FAKE_IOREPORT_READ_US=0            take this long per read (the real one samples every channel), with the
                                     GIL released: the worst case for callers that do not serialise reads
  FAKE_IOREPORT_READ_LOG=PATH        append every read to this file, one JSON line [t_ns, {field: mJ}] (READS for
                                     a test that drives the monitor in another process)

How these counters fail in the field (see energyprof.analysis.counter_health), each on request; times count from
the moment this module was imported (the process's first use of the package):
  FAKE_IOREPORT_STALL=cpu_total_mj   these fields stop moving FAKE_IOREPORT_STALL_S seconds in (default 0: never
  FAKE_IOREPORT_STALL_S=0            move at all), as the "CPU Energy" channel does on macOS 27 betas (macmon #76,
                                     mactop #82, stats #3621)
  FAKE_IOREPORT_UPDATE_MS=2000 with FAKE_IOREPORT_GPU_UPDATE_MS=2000: every channel published in one batch every
                                     2 s, as on M5 Max (lablup/all-smi #410, #415)
  FAKE_IOREPORT_GPU_UNIT=nJ          the driver keeps "GPU Energy" in nJ (HardwareVisualizer #1977) and the package
                                     converts it to integer mJ, as its contract says (floor of nJ / 10^6)
  FAKE_IOREPORT_GPU_UNIT=nJ-raw      the same channel handed on in nJ without the conversion: 10^6 times too large
  FAKE_IOREPORT_BACKWARDS=cpu_total_mj  these fields restart from 0 (a counter reset: it goes backwards)
  FAKE_IOREPORT_BACKWARDS_S=0        ... this many seconds in

The library promises nothing about threads, so two threads inside one monitor at once raise
RuntimeError here (callers must serialise their reads). Counter values are a function of
time.perf_counter_ns() (the job clock on the same host), so a test can compute what any read returned:
``counter_mj(field, t_ns)``. Every read is also kept in ``READS``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import deque

__all__ = ["AppleEnergyMetrics", "AppleEnergyMonitor"]

SCALAR_FIELDS = ("cpu_total_mj", "efficiency_core_manager_mj", "performance_core_manager_mj", "dram_mj", "gpu_mj",
                 "gpu_sram_mj", "ane_mj")
LIST_FIELDS = ("efficiency_cores_mj", "performance_cores_mj", "efficiency_cluster_mj", "performance_cluster_mj")
ORIGIN_MJ = 123_456_789
"""The counters' value at perf_counter_ns() == 0: "an unspecified point fixed over the lifetime of the monitor"."""
READS: deque[tuple[int, dict[str, int | None]]] = deque(maxlen=100_000)
"""(perf_counter_ns() at the read, the scalar fields it returned), for tests."""
IMPORTED_NS = time.perf_counter_ns()
"""When this module was imported: the failure modes' clock starts here."""
NJ_PER_MJ = 1_000_000

_POWER_ENV = {"cpu_total_mj": ("FAKE_IOREPORT_CPU_W", 4.0), "gpu_mj": ("FAKE_IOREPORT_GPU_W", 8.0),
              "ane_mj": ("FAKE_IOREPORT_ANE_W", 0.0), "dram_mj": ("FAKE_IOREPORT_DRAM_W", 1.5),
              "gpu_sram_mj": ("FAKE_IOREPORT_GPU_SRAM_W", 0.25)}
_E_CORES, _P_CORES = 4, 4
_CORE_SHARE, _MANAGER_SHARE = 0.1, 0.05
"""Per-core and cluster-manager channels: fixed shares of the CPU total (8 cores x 10% + 2 x 5% = 90%)."""


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    return float(text) if text else default


def power_w(field: str) -> float:
    """The constant power behind a field, from the environment."""
    name, default = _POWER_ENV.get(field, _POWER_ENV["cpu_total_mj"])
    return _env_float(name, default)


def update_ns(field: str) -> int:
    """How often a field's counter is published (0: at every read)."""
    if field == "gpu_mj":
        return int(_env_float("FAKE_IOREPORT_GPU_UPDATE_MS", 0.0) * 1e6)
    return int(_env_float("FAKE_IOREPORT_UPDATE_MS", 1000.0) * 1e6)


def _fields(name: str) -> set[str]:
    return {f.strip() for f in os.environ.get(name, "").split(",") if f.strip()}


def _since_import_ns(name: str) -> int:
    return IMPORTED_NS + int(_env_float(name, 0.0) * 1e9)


def counter_mj(field: str, t_ns: int) -> int:
    """The integer mJ a read of `field` (a scalar one) returns at perf_counter_ns() == t_ns (failure modes included)."""
    period = update_ns(field)
    published = t_ns - t_ns % period if period > 0 else t_ns
    if field in _fields("FAKE_IOREPORT_STALL"):
        published = min(published, _since_import_ns("FAKE_IOREPORT_STALL_S"))
    if field in _fields("FAKE_IOREPORT_BACKWARDS"):
        reset = _since_import_ns("FAKE_IOREPORT_BACKWARDS_S")
        if published >= reset:
            return int(power_w(field) * (published - reset) / 1e6)
    if field == "gpu_mj" and os.environ.get("FAKE_IOREPORT_GPU_UNIT", "").strip() in ("nJ", "nJ-raw"):
        nanojoules = ORIGIN_MJ * NJ_PER_MJ + int(power_w(field) * published)  # W x ns = nJ
        return nanojoules if os.environ["FAKE_IOREPORT_GPU_UNIT"].strip() == "nJ-raw" else nanojoules // NJ_PER_MJ
    return ORIGIN_MJ + int(power_w(field) * published / 1e6)


class AppleEnergyMetrics:
    """Energy per SoC subsystem in mJ; None where the chip has no such channel."""

    def __init__(self) -> None:
        for name in SCALAR_FIELDS + LIST_FIELDS:
            setattr(self, name, None)

    def __repr__(self) -> str:
        return "\n".join(f"{name}: {getattr(self, name)}" for name in SCALAR_FIELDS + LIST_FIELDS)


class AppleEnergyMonitor:
    """Cumulative energy counters and labelled measurement windows, like the real monitor."""

    def __init__(self) -> None:
        fail = os.environ.get("FAKE_IOREPORT_FAIL", "").strip()
        if fail == "no-subscription":
            raise RuntimeError("Failed to create IOReport subscription.")
        if fail == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        self._no_channels = fail == "no-channels"
        self._missing = {f.strip() for f in os.environ.get("FAKE_IOREPORT_MISSING", "").split(",") if f.strip()}
        self._read_ns = int(_env_float("FAKE_IOREPORT_READ_US", 0.0) * 1e3)
        self._log = os.environ.get("FAKE_IOREPORT_READ_LOG", "").strip() or None
        self._windows: dict[str, AppleEnergyMetrics] = {}
        self._inside = threading.Lock()

    def _has(self, field: str) -> bool:
        return not self._no_channels and field.removesuffix("_mj") not in self._missing and field not in self._missing

    def get_cumulative_energy(self) -> AppleEnergyMetrics:
        if not self._inside.acquire(blocking=False):
            raise RuntimeError("two threads read one AppleEnergyMonitor at once")
        try:
            return self._read()
        finally:
            self._inside.release()

    def _read(self) -> AppleEnergyMetrics:
        if self._read_ns:
            time.sleep(self._read_ns / 1e9)
        t = time.perf_counter_ns()
        out = AppleEnergyMetrics()
        for field in ("cpu_total_mj", "gpu_mj", "gpu_sram_mj", "ane_mj", "dram_mj"):
            if self._has(field):
                setattr(out, field, counter_mj(field, t))
        cpu = out.cpu_total_mj
        if cpu is not None:
            core = int((cpu - ORIGIN_MJ) * _CORE_SHARE)
            manager = int((cpu - ORIGIN_MJ) * _MANAGER_SHARE)
            out.efficiency_cores_mj = [core] * _E_CORES
            out.performance_cores_mj = [core] * _P_CORES
            out.efficiency_cluster_mj = [core * _E_CORES + manager]
            out.performance_cluster_mj = [core * _P_CORES + manager]
            out.efficiency_core_manager_mj = manager
            out.performance_core_manager_mj = manager
        READS.append((t, {field: getattr(out, field) for field in SCALAR_FIELDS}))
        if self._log is not None:
            with open(self._log, "a") as log:
                log.write(json.dumps([t, READS[-1][1]]) + "\n")
        return out

    def begin_window(self, key: str, restart: bool = False) -> None:
        if key in self._windows and not restart:
            raise RuntimeError("Measurement with specified key already exists.")
        self._windows[key] = self.get_cumulative_energy()

    def end_window(self, key: str) -> AppleEnergyMetrics:
        if key not in self._windows:
            raise RuntimeError("No measurement with provided key had been started.")
        start, end = self._windows.pop(key), self.get_cumulative_energy()
        out = AppleEnergyMetrics()
        for name in SCALAR_FIELDS + LIST_FIELDS:
            a, b = getattr(start, name), getattr(end, name)
            if a is not None and b is not None:
                setattr(out, name, [y - x for x, y in zip(a, b, strict=True)] if isinstance(a, list) else b - a)
        return out
