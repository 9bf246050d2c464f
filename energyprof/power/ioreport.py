"""Apple Silicon energy from IOReport's "Energy Model" counters, through the `zeus-apple-silicon` package: no sudo.

The package (Zeus team, Apache-2.0; import name ``zeus_apple_silicon``) subscribes to the same counters
powermetrics reads, without root. ``AppleEnergyMonitor().get_cumulative_energy()`` returns
``AppleEnergyMetrics`` whose fields are integer **mJ** since an arbitrary point fixed for the monitor's
life, or ``None`` where the chip has no such channel. Components:

* ``cpu`` = ``cpu_total_mj`` (the "CPU Energy" channels, summed over dies on Ultra chips);
* ``gpu`` = ``gpu_mj`` (the "GPU Energy" channel);
* ``ane`` = ``ane_mj``; ``dram`` = ``dram_mj`` (many chips report DRAM here, unlike powermetrics on macOS 13+).

A ``None`` field is unknown, never 0. **GPU SRAM is neither added to gpu nor its own component**: on the
one chip where it was checked (M1 Ultra, lablup/all-smi PR 424), "GPU Energy" already matched the GPU
block plus its SRAM channel within 3% (GPU0 = 0.938 and GPU SRAM = 0.029 of it), so adding
``gpu_sram_mj`` would count it twice, and a separate ``gpu_sram`` component would be counted twice by
the whole-system total (:func:`energyprof.power.base.total_energy_mj`, which sums the parts).

These are Apple's model-based estimates inside the SoC (powermetrics says the same of its figures):
the SoC boundary, not wall power, and cpu + gpu + ane + dram is not all of the SoC (fabric, media
engines and I/O are left out). Resolution is 1 mJ, and the counters only move when the driver
publishes them: the CPU/ANE/DRAM channels have been seen to publish about once a second, the GPU one at
every read (see :func:`energyprof.power.counter.probe_counter`, which measures it on each machine).

**Availability** is decided by importing the package and starting a monitor, never by the platform
name: a stand-in module on ``sys.path`` runs the real code path. The check runs in a child process of
this interpreter (with this ``sys.path``), so a machine whose IOReport lacks the Energy Model group
cannot crash the profiler with it. The library promises nothing about threads, so every read of the
monitor holds the source's one lock (:class:`~energyprof.power.base.PolledSource`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

from energyprof.power.base import ANE, CPU, DRAM, GPU, PolledSource, PowerSourceError, Scope
from energyprof.power.chips import apple_chip

SCOPE = Scope("SoC rails: CPU + GPU + ANE + DRAM, Apple's own estimates inside the chip (not fans, display, SSD, "
              "the rest of the machine, or wall power)")
MODULE = "zeus_apple_silicon"
FIELDS: dict[str, str] = {CPU: "cpu_total_mj", GPU: "gpu_mj", ANE: "ane_mj", DRAM: "dram_mj"}
"""Component -> AppleEnergyMetrics field (integer mJ or None)."""
PROBE_TIMEOUT_S = 20.0

NOT_INSTALLED = ("the zeus-apple-silicon package is not installed: on an Apple Silicon Mac run "
                 "`pip install zeus-apple-silicon` (it exists for macOS only); elsewhere use nvml, rapl or estimate.")
NO_CHANNELS = ("IOReport has no Energy Model channels for the CPU, GPU, ANE or DRAM here (not an Apple Silicon "
               "Mac?); use powermetrics or the estimate.")

_PROBE = f"""
import json
from {MODULE} import AppleEnergyMonitor
metrics = AppleEnergyMonitor().get_cumulative_energy()
print(json.dumps({{c: getattr(metrics, f, None) is not None for c, f in {FIELDS!r}.items()}}))
"""


def _broken(exc: BaseException) -> str:
    return (f"zeus_apple_silicon could not be loaded ({exc}); reinstall it on an Apple Silicon Mac with "
            "`pip install --force-reinstall zeus-apple-silicon`.")


def _refused(detail: str) -> str:
    return (f"IOReport refused an Energy Model subscription ({detail}): this is not an Apple Silicon Mac, or macOS "
            "withholds the counters here; use powermetrics or the estimate.")


def _mj(value: Any) -> float | None:
    return None if value is None else float(value)


def probe_in_child(timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str, tuple[str, ...]]:
    """(available, reason, components with a channel): import the package and start a monitor in a child."""
    if importlib.util.find_spec(MODULE) is None:
        return False, NOT_INSTALLED, ()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return False, f"starting an IOReport monitor did not finish within {timeout_s:g} s; use powermetrics.", ()
    except OSError as exc:
        return False, f"the IOReport check could not run ({exc}); use powermetrics or the estimate.", ()
    if done.returncode < 0:
        return False, _refused(f"the check crashed with signal {-done.returncode}"), ()
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit {done.returncode}"
        kind, _, message = last.partition(": ")
        if kind in ("ImportError", "ModuleNotFoundError"):
            return False, _broken(message), ()
        return False, _refused((message if kind.isidentifier() and message else last).rstrip(".")), ()
    try:
        present = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, _refused("the check printed no result"), ()
    return _verdict(tuple(c for c in FIELDS if present.get(c)))


def _verdict(found: tuple[str, ...]) -> tuple[bool, str, tuple[str, ...]]:
    if not found:
        return False, NO_CHANNELS, ()
    missing = [c for c in FIELDS if c not in found]
    unknown = f"; {', '.join(missing)} unknown on this chip" if missing else ""
    return True, (f"IOReport Energy Model counters, no sudo ({', '.join(found)}{unknown}); Apple's SoC estimates "
                  "in 1 mJ steps, not wall power."), found


class IOReportSource(PolledSource):
    """Measured CPU/GPU/ANE/DRAM energy of an Apple Silicon SoC from IOReport (zeus-apple-silicon), without sudo."""

    name = "ioreport"
    measured = True
    default_interval_ms = 100

    def __init__(self, module: Any | None = None) -> None:
        super().__init__()
        self._module = module
        self._monitor: Any | None = None
        self._probe: tuple[bool, str, tuple[str, ...]] | None = None

    def components(self) -> tuple[str, ...]:
        return tuple(FIELDS)

    def scope(self) -> Scope:
        return SCOPE

    def hardware(self) -> str | None:
        return apple_chip()

    def available(self) -> tuple[bool, str]:
        if self._probe is None:
            self._probe = self._probe_in_process() if self._module is not None else probe_in_child()
        return self._probe[:2]

    def _probe_in_process(self) -> tuple[bool, str, tuple[str, ...]]:
        """With an injected module (tests): start a monitor here and see which fields it has."""
        try:
            metrics = self._new_monitor().get_cumulative_energy()
        except PowerSourceError as exc:
            return False, str(exc), ()
        return _verdict(tuple(c for c, f in FIELDS.items() if getattr(metrics, f, None) is not None))

    def _new_monitor(self) -> Any:
        try:
            module = self._module if self._module is not None else importlib.import_module(MODULE)
        except ModuleNotFoundError as exc:
            raise PowerSourceError(NOT_INSTALLED) from exc
        except ImportError as exc:
            raise PowerSourceError(_broken(exc)) from exc
        try:
            return module.AppleEnergyMonitor()
        except (RuntimeError, ValueError, OSError) as exc:
            raise PowerSourceError(_refused(str(exc).rstrip("."))) from exc

    def _open(self) -> None:
        self._monitor = self._new_monitor()
        try:
            metrics = self._monitor.get_cumulative_energy()
        except (RuntimeError, ValueError) as exc:
            raise PowerSourceError(_refused(str(exc).rstrip("."))) from exc
        if all(getattr(metrics, f, None) is None for f in FIELDS.values()):
            self._monitor = None
            raise PowerSourceError(NO_CHANNELS)

    def _counters_mj(self) -> dict[str, float | None]:
        try:
            metrics = self._monitor.get_cumulative_energy()
        except (RuntimeError, ValueError) as exc:
            raise PowerSourceError(f"IOReport stopped answering ({exc}); start the run again.") from exc
        return {CPU: _mj(metrics.cpu_total_mj), GPU: _mj(metrics.gpu_mj), ANE: _mj(metrics.ane_mj),
                DRAM: _mj(metrics.dram_mj)}

    def _close(self) -> None:
        self._monitor = None
