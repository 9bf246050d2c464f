"""The machine a run was made on: chip, cores, memory, GPU, OS, software versions, power source and a stable id.

Every writer puts `this_machine(source)` in its RunSummary (field `machine`), and the store mirrors its id and label
in the run row (`runs.machine_id`, `runs.machine_label`), so that runs from several machines can sit side by side
in one database (a bundle copies both). A run written before machines were recorded has none: "unknown machine".

Nothing here names a person or a serial number: no host name, no user name, no path. The id is a salted sha256 of
the operating system's own machine identifier (Linux `/etc/machine-id`, macOS `IOPlatformUUID`), truncated, so
the same machine always gets the same id and the id cannot be turned back into the identifier. Versions come from
the installed packages' metadata (`importlib.metadata`): nothing is imported to learn its version (no torch import).
Commands (`sysctl`, `ioreg`) run with list arguments and a timeout, never through a shell.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import logging
import platform
import re
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from energyprof.units import finite_or_none

log = logging.getLogger(__name__)

UNKNOWN_MACHINE = "unknown machine"
"""How a run without a recorded machine (written before machines were recorded) is shown."""
ID_SALT = "energyprof machine id v1"
"""Mixed into the hashed machine identifier, so the id cannot be matched against the raw identifier elsewhere."""
ID_HEX = 16
PACKAGES: tuple[str, ...] = ("torch", "transformers", "mlx", "mlx-lm", "zeus-apple-silicon", "energyprof")
"""Distributions whose installed version every run records (None when not installed)."""
COMMAND_TIMEOUT_S = 5.0
MACHINE_ID_FILES: tuple[str, ...] = ("/etc/machine-id", "/var/lib/dbus/machine-id")


@dataclass(frozen=True)
class Machine:
    """One machine as a run recorded it; None where it could not be told."""

    machine_id: str | None = None
    """Salted, truncated sha256 of the OS machine identifier: stable, and names no person or serial number."""
    label: str | None = None
    """A short name for lists and filters, e.g. `Apple M4 Max · 16 cores · 64 GB`."""
    chip: str | None = None
    """Apple chip name (`Apple M4 Max`) on a Mac, else the CPU model."""
    hw_model: str | None = None
    """The hardware model identifier (`Mac16,5`; sysctl hw.model), where the OS tells it."""
    cpu_model: str | None = None
    arch: str | None = None
    cores_physical: int | None = None
    cores_logical: int | None = None
    memory_gb: float | None = None
    gpu: str | None = None
    """NVIDIA GPU name(s) from NVML (`NVIDIA H100 80GB HBM3`); on a Mac the GPU is part of `chip`."""
    gpu_count: int = 0
    os_name: str | None = None
    os_version: str | None = None
    os_build: str | None = None
    python_version: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    """Installed version of each of PACKAGES; None when not installed."""
    power_source: str | None = None
    power_measured: bool | None = None
    power_scope: str | None = None
    """What the power source's figures cover (its boundary, PowerSource.scope())."""
    counter_update_period_s: float | None = None
    """The source's counter update period as probed at the start of the run (profile runs with a counter source)."""
    counter_quantum_mj: float | None = None
    recorded_here: bool = True
    """False for a recording made by another program (a powermetrics capture): only what its file says is known."""

    @property
    def name(self) -> str:
        """The label, or "unknown machine"."""
        return self.label or UNKNOWN_MACHINE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: Any) -> Machine | None:
        """A machine from stored JSON; None for anything that is not one (keys it does not know are ignored)."""
        if isinstance(value, Machine):
            return value
        if not isinstance(value, dict):
            return None
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in value:
                shaped = _shaped(f.name, value[f.name])
                if shaped is not _DROP:
                    values[f.name] = shaped
        return cls(**values)

    def facts(self) -> list[tuple[str, str]]:
        """(what, value) rows for a table: every known fact, in reading order, as text."""
        rows = [("machine", self.name), ("machine id", self.machine_id or "—"), ("chip", self.chip),
                ("hardware model", self.hw_model), ("CPU", self.cpu_model), ("architecture", self.arch),
                ("cores", _cores(self)), ("memory", None if self.memory_gb is None else f"{self.memory_gb:.1f} GB"),
                ("GPU", f"{self.gpu} × {self.gpu_count}" if self.gpu and self.gpu_count > 1 else self.gpu),
                ("OS", " ".join(p for p in (self.os_name, self.os_version) if p) or None),
                ("OS build", self.os_build), ("Python", self.python_version)]
        rows += [(name, version or "not installed") for name, version in self.packages.items()]
        rows += [("power source", self.power_source), ("source scope", self.power_scope),
                 ("counter update period", None if self.counter_update_period_s is None
                  else f"{self.counter_update_period_s * 1e3:.3g} ms"),
                 ("counter quantum", None if self.counter_quantum_mj is None else f"{self.counter_quantum_mj:.3g} mJ")]
        if not self.recorded_here:
            rows.append(("recorded by", "another program (only what its file says is known)"))
        return [(k, str(v)) for k, v in rows if v is not None]


def this_machine(source: Any = None, counter: Any = None) -> Machine:
    """The machine this process runs on, with `source` (a PowerSource or its name) and, when the run probed its
    counter, `counter` (energyprof.power.counter.CounterCharacteristics): its update period and quantum."""
    base = _hardware()
    return dataclasses.replace(base, **source_facts(source, counter))


def source_facts(source: Any, counter: Any = None) -> dict[str, Any]:
    """The power-source fields of a Machine: name, measured, scope, probed update period and quantum."""
    if source is None:
        return {}
    name = source if isinstance(source, str) else getattr(source, "name", None)
    measured = None if isinstance(source, str) else getattr(source, "measured", None)
    scope = getattr(source, "scope", None) if not isinstance(source, str) else None
    scope = scope() if callable(scope) else scope  # PowerSource.scope(): a Scope, whose text says what it covers
    text = getattr(scope, "text", scope)
    return {"power_source": name, "power_measured": None if measured is None else bool(measured),
            "power_scope": str(text) if text else None,
            "counter_update_period_s": getattr(counter, "update_period_s", None),
            "counter_quantum_mj": getattr(counter, "quantum_mj", None)}


def capture_machine(hw_model: str | None, os_build: str | None, macos: str | None, scope: str | None) -> Machine:
    """The Mac a powermetrics capture names (its file holds the hardware model and the OS build, nothing else);
    `scope`: what powermetrics' figures cover."""
    label = f"{hw_model or 'unknown Mac'} (powermetrics capture)"
    return Machine(label=label, hw_model=hw_model, os_name="macOS", os_version=macos, os_build=os_build,
                   power_source="powermetrics", power_measured=True, power_scope=scope, recorded_here=False)


@functools.lru_cache(maxsize=1)
def _hardware() -> Machine:
    """What does not change while this process runs (read once)."""
    return read_machine()


def read_machine(nvml: Any = None) -> Machine:
    """Read the machine now (uncached); `nvml` replaces the pynvml module (tests)."""
    system = platform.system()
    apple = _apple_facts() if system == "Darwin" else {}
    cpu_model = apple.get("chip") or _cpu_model(system)
    gpus = _nvml_gpus(nvml)
    memory = psutil.virtual_memory().total
    machine = Machine(
        machine_id=machine_id(system), chip=apple.get("chip") or cpu_model, hw_model=apple.get("hw_model"),
        cpu_model=cpu_model, arch=platform.machine() or None, cores_physical=psutil.cpu_count(logical=False),
        cores_logical=psutil.cpu_count(logical=True), memory_gb=round(memory / 2**30, 1) if memory else None,
        gpu=", ".join(dict.fromkeys(gpus)) or None, gpu_count=len(gpus), os_name=_os_name(system),
        os_version=apple.get("os_version") or _os_version(system), os_build=apple.get("os_build") or _os_build(system),
        python_version=platform.python_version(), packages={name: package_version(name) for name in PACKAGES})
    return dataclasses.replace(machine, label=label_of(machine))


def label_of(machine: Machine) -> str:
    """`chip · N cores · M GB[ · GPU]`: what tells two machines apart at a glance."""
    parts = [machine.chip or machine.cpu_model or machine.arch or "unknown CPU"]
    if machine.cores_logical:
        parts.append(f"{machine.cores_logical} cores")
    if machine.memory_gb:
        parts.append(f"{machine.memory_gb:.0f} GB")
    if machine.gpu:
        parts.append(machine.gpu if machine.gpu_count <= 1 else f"{machine.gpu_count}× {machine.gpu}")
    return " · ".join(parts)


def machine_id(system: str | None = None) -> str | None:
    """The salted, truncated hash of this machine's OS identifier; None when the OS does not provide one."""
    raw = _raw_machine_id(system or platform.system())
    if not raw:
        log.info("no machine identifier found: runs of this machine have no machine id")
        return None
    return hashed_id(raw)


def hashed_id(raw: str) -> str:
    return hashlib.sha256(f"{ID_SALT}\0{raw.strip().lower()}".encode()).hexdigest()[:ID_HEX]


def package_version(name: str) -> str | None:
    """The installed distribution's version (its metadata only; nothing is imported); None when not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _raw_machine_id(system: str) -> str | None:
    if system == "Darwin":
        out = _command(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"])
        found = re.search(r'"IOPlatformUUID"\s*=\s*"([^"]+)"', out or "")
        return found.group(1) if found else None
    for name in MACHINE_ID_FILES:
        try:
            text = Path(name).read_text(encoding="ascii", errors="ignore").strip()
        except OSError:
            continue
        if text:
            return text
    return None


def _apple_facts() -> dict[str, str | None]:
    """Chip name, hardware model and OS build from sysctl, and the macOS version."""
    return {"chip": _command(["sysctl", "-n", "machdep.cpu.brand_string"]),
            "hw_model": _command(["sysctl", "-n", "hw.model"]),
            "os_build": _command(["sysctl", "-n", "kern.osversion"]),
            "os_version": platform.mac_ver()[0] or None}


def _command(argv: list[str]) -> str | None:
    """A command's stripped output (list arguments, no shell, bounded); None when it fails or prints nothing."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", argv[0], exc)
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and text else None


def _cpu_model(system: str) -> str | None:
    if system == "Linux":
        try:
            for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
        except OSError:
            pass
    return platform.processor() or None


def _os_name(system: str) -> str | None:
    return {"Darwin": "macOS"}.get(system, system or None)


def _os_version(system: str) -> str | None:
    """macOS: its version; Linux: the distribution (/etc/os-release); else platform.release()."""
    if system == "Linux":
        try:
            release = platform.freedesktop_os_release()
            return release.get("PRETTY_NAME") or release.get("VERSION_ID")
        except OSError:
            return None
    if system == "Windows":
        return platform.version() or None
    return platform.release() or None


def _os_build(system: str) -> str | None:
    """macOS: the build (kern.osversion, read with the Apple facts); Linux: the kernel release."""
    return None if system == "Darwin" else (platform.release() or None)


def _nvml_gpus(nvml: Any = None) -> list[str]:
    """Names of the NVIDIA GPUs NVML sees (empty without NVML or a GPU)."""
    try:
        module = nvml if nvml is not None else importlib.import_module("pynvml")
    except ImportError:
        return []
    try:
        module.nvmlInit()
    except Exception as exc:  # NVMLError: no driver, no GPU
        log.debug("NVML not usable: %s", exc)
        return []
    try:
        names = []
        for index in range(int(module.nvmlDeviceGetCount())):
            name = module.nvmlDeviceGetName(module.nvmlDeviceGetHandleByIndex(index))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    except Exception as exc:  # a GPU that fell off the bus: the machine is still described
        log.debug("NVML device names failed: %s", exc)
        return []
    finally:
        try:
            module.nvmlShutdown()
        except Exception as exc:  # nothing to undo
            log.debug("nvmlShutdown failed: %s", exc)


def _cores(machine: Machine) -> str | None:
    if machine.cores_logical is None:
        return None
    physical = f"{machine.cores_physical} physical, " if machine.cores_physical else ""
    return f"{physical}{machine.cores_logical} logical"


_DROP = object()
_INTS = frozenset({"cores_physical", "cores_logical", "gpu_count"})
_FLOATS = frozenset({"memory_gb", "counter_update_period_s", "counter_quantum_mj"})
_BOOLS = frozenset({"power_measured", "recorded_here"})


def _shaped(name: str, value: Any) -> Any:
    """A stored value checked against its field; _DROP when it has the wrong shape."""
    if name == "packages":
        if not isinstance(value, dict):
            return _DROP
        return {str(k): None if v is None else str(v) for k, v in value.items()}
    if value is None:
        return _DROP if name in ("gpu_count", "recorded_here") else None
    if name in _BOOLS:
        return bool(value)
    if name in _INTS:
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else _DROP
    if name in _FLOATS:
        number = finite_or_none(value)
        return _DROP if number is None else number
    return str(value)

