"""A fake NVML module (the functions energyprof calls, NVML's error classes and codes) for machines without a GPU."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any


class FakeNVMLError(Exception):
    """Imitates pynvml.NVMLError: carries the NVML return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {1: "Uninitialized", 3: "Not Supported", 9: "Driver Not Loaded", 15: "GPU is lost"}.get(
            self.value, f"error {self.value}")


class FakeNotSupported(FakeNVMLError):
    def __init__(self, value: int = 3) -> None:
        super().__init__(value)


def fake_nvml(devices: list[dict[str, Any]], init_error: int | None = None) -> SimpleNamespace:
    """A module-like object with NVML's functions: a device's 'counter' steps by 'step_mj' per read, or raises
    NotSupported and then 'power_mw' is constant; 'lost' makes every read fail like a GPU that fell off the bus.

    A device with 'watts' and 'update_ms' instead of 'step_mj' behaves like a real driver's total-energy counter:
    constant power, published every update_ms on time.perf_counter_ns() (the job clock), in whole mJ; each read is
    kept in state["reads"] as (perf_counter_ns() at the read, the value returned)."""
    state: dict[str, Any] = {"init": 0, "shutdown": 0, "reads": []}

    def init() -> None:
        if init_error is not None:
            raise FakeNVMLError(init_error)
        state["init"] += 1

    def energy(handle: dict[str, Any]) -> int:
        if handle.get("lost"):
            raise FakeNVMLError(15)
        if "counter" not in handle:
            raise FakeNotSupported()
        if "watts" in handle:
            t = time.perf_counter_ns()
            period = int(handle["update_ms"] * 1e6)
            value = handle["counter"] + int(handle["watts"] * (t - t % period) / 1e6)
            state["reads"].append((t, value))
            return value
        handle["counter"] += handle["step_mj"]
        return handle["counter"]

    def power(handle: dict[str, Any]) -> int:
        if "power_mw" not in handle:
            raise FakeNotSupported()
        return handle["power_mw"]

    return SimpleNamespace(
        NVMLError=FakeNVMLError, NVMLError_NotSupported=FakeNotSupported, NVML_ERROR_NOT_SUPPORTED=3,
        nvmlInit=init, nvmlShutdown=lambda: state.__setitem__("shutdown", state["shutdown"] + 1),
        nvmlDeviceGetCount=lambda: len(devices), nvmlDeviceGetHandleByIndex=lambda i: devices[i],
        nvmlDeviceGetName=lambda h: h["name"].encode(), nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetPowerUsage=power, state=state)
