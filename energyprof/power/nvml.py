"""NVIDIA GPU energy through NVML (package nvidia-ml-py, imported as `pynvml`).

Component ``gpu`` is the sum over all GPUs, or one GPU when ``device_index`` is given. Each GPU is read
from its cumulative energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver loaded,
Volta and newer; it steps about every 100 ms). A GPU without that counter (NotSupported) is read by
power polling instead: ``nvmlDeviceGetPowerUsage`` (mW) integrated over time by the trapezoid rule
between polls. The NVML module can be injected (``nvml=``) so tests can imitate a driver.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

from energyprof.power.base import GPU, PolledSource, PowerSourceError, Scope, now_ns

NVML_ERROR_NOT_SUPPORTED = 3
SCOPE = Scope("the GPU board: each GPU's chip, memory and power delivery (not the CPU, the host's DRAM, or wall power)")


def _is_not_supported(nvml: Any, exc: BaseException) -> bool:
    cls = getattr(nvml, "NVMLError_NotSupported", None)
    if isinstance(cls, type) and isinstance(exc, cls):
        return True
    return getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED)


class _Device:
    """One GPU: its handle, how it is read, and (for power polling) the integrated energy so far."""

    def __init__(self, nvml: Any, index: int) -> None:
        self.nvml = nvml
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.counter = self._has_counter()
        self.total_mj = 0.0
        self.last: tuple[int, float] | None = None

    def _has_counter(self) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            return True
        except self.nvml.NVMLError as exc:
            if not _is_not_supported(self.nvml, exc):
                raise
        self.nvml.nvmlDeviceGetPowerUsage(self.handle)
        return False

    @property
    def name(self) -> str:
        name = self.nvml.nvmlDeviceGetName(self.handle) if hasattr(self.nvml, "nvmlDeviceGetName") else "GPU"
        return name.decode() if isinstance(name, bytes) else str(name)

    @property
    def label(self) -> str:
        return f"{self.index}: {self.name} ({'energy counter' if self.counter else 'power polling'})"

    def energy_mj(self) -> float:
        """Cumulative energy in mJ: the driver's counter, or the trapezoid integral of polled power."""
        if self.counter:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        t, power_mw = now_ns(), float(self.nvml.nvmlDeviceGetPowerUsage(self.handle))
        if self.last is not None:
            t_prev, p_prev = self.last
            self.total_mj += (p_prev + power_mw) / 2 * (t - t_prev) / 1e9
        self.last = (t, power_mw)
        return self.total_mj


class NvmlSource(PolledSource):
    """Measured NVIDIA GPU energy (board power) from NVML."""

    name = "nvml"
    measured = True
    default_interval_ms = 100

    def __init__(self, device_index: int | None = None, nvml: ModuleType | Any | None = None) -> None:
        super().__init__()
        self.device_index = device_index
        self._nvml = nvml
        self._devices: list[_Device] = []
        self._initialised = False
        self._hardware: str | None = None

    @property
    def is_counter(self) -> bool:  # type: ignore[override]
        """True once started when every GPU is read from its energy counter (none falls back to power polling)."""
        return bool(self._devices) and all(d.counter for d in self._devices)

    def components(self) -> tuple[str, ...]:
        return (GPU,)

    def scope(self) -> Scope:
        return SCOPE

    def hardware(self) -> str | None:
        """The GPUs' names, known once the source has started (kept after it stops)."""
        return self._hardware

    def _module(self) -> Any:
        if self._nvml is None:
            self._nvml = importlib.import_module("pynvml")
        return self._nvml

    def _init_devices(self) -> list[_Device]:
        """nvmlInit and the chosen devices; raises PowerSourceError with the sentence for doctor."""
        try:
            nvml = self._module()
        except ImportError as exc:
            raise PowerSourceError("the nvidia-ml-py package is not installed (import pynvml failed); "
                                   "install it with `pip install nvidia-ml-py`.") from exc
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise PowerSourceError(f"no NVIDIA driver/GPU found (NVML could not initialise: {exc}); "
                                   "use another power source on this machine.") from exc
        self._initialised = True
        try:
            count = nvml.nvmlDeviceGetCount()
            if self.device_index is not None and not 0 <= self.device_index < count:
                raise PowerSourceError(f"there is no NVIDIA GPU {self.device_index} (this machine has {count}); "
                                       "choose a device index below that.")
            indices = [self.device_index] if self.device_index is not None else list(range(count))
            if not indices:
                raise PowerSourceError("NVML found no NVIDIA GPU; use another power source on this machine.")
            return [_Device(nvml, i) for i in indices]
        except nvml.NVMLError as exc:
            self._shutdown()
            raise PowerSourceError(f"NVML cannot report this GPU's energy or power ({exc}); "
                                   "use another power source on this machine.") from exc
        except PowerSourceError:
            self._shutdown()
            raise

    def _shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def available(self) -> tuple[bool, str]:
        if self._devices:
            return True, "NVIDIA GPU " + "; ".join(d.label for d in self._devices) + "."
        try:
            devices = self._init_devices()
        except PowerSourceError as exc:
            return False, str(exc)
        try:
            return True, "NVIDIA GPU " + "; ".join(d.label for d in devices) + "."
        finally:
            self._shutdown()

    def _open(self) -> None:
        self._devices = self._init_devices()
        self._hardware = ", ".join(dict.fromkeys(d.name for d in self._devices)) or None

    def _counters_mj(self) -> dict[str, float | None]:
        try:
            return {GPU: sum(d.energy_mj() for d in self._devices)}
        except self._nvml.NVMLError as exc:
            raise PowerSourceError(f"NVML stopped answering ({exc}); check the GPU with nvidia-smi and "
                                   "start the run again.") from exc

    def _close(self) -> None:
        self._devices = []
        self._shutdown()
