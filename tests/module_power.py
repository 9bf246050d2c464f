"""A test power source whose power depends on which module the job is running: hardware that draws more for an MLP
than for attention, which no machine here can show, imitated exactly.

`ModulePower.attach(model)` puts a forward pre-hook and a post-hook on every module of a model and keeps count of the
modules being executed. The power is MLP_W while an MLP runs (its Linear layers included), ATTENTION_W while an
attention module runs (and no MLP), REST_W inside any other module (norms, embeddings, lm_head, a block's own code),
IDLE_W outside every module (the token loop's Python, the replay loop's bookkeeping, the idle baseline). Every change
of power is stamped with the job clock and integrated exactly, so `ModulePowerSource` is a counter source (like
RAPL or IOReport) whose counter and polled windows carry no noise at all: a test on it measures the method, not a
meter. The power follows what the job really executes (the hooks fire in the measured repeats and in replay alike).
"""

from __future__ import annotations

import threading
from typing import Any

from torch import nn

from energyprof.power.base import CPU, PolledSource, now_ns

MLP_W, ATTENTION_W, REST_W, IDLE_W = 300.0, 120.0, 40.0, 10.0
MLP, ATTENTION, OTHER = "mlp", "attention", "other"


def module_kind(module: nn.Module) -> str:
    """mlp, attention or other, from the class name (LlamaMLP, GPT2MLP, LlamaAttention, GPT2Attention, …)."""
    name = type(module).__name__.lower()
    if "mlp" in name:
        return MLP
    return ATTENTION if "attention" in name else OTHER


class ModulePower:
    """The power of the job's current module, integrated on the job clock (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = {MLP: 0, ATTENTION: 0, OTHER: 0}
        self._power_w = IDLE_W
        self._t_ns = now_ns()
        self._energy_mj = 0.0
        self.handles: list[Any] = []

    def attach(self, model: nn.Module) -> ModulePower:
        for module in model.modules():
            kind = module_kind(module)
            self.handles.append(module.register_forward_pre_hook(lambda m, a, kind=kind: self._change(kind, +1)))
            self.handles.append(module.register_forward_hook(lambda m, a, o, kind=kind: self._change(kind, -1),
                                                             always_call=True))
        return self

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _level(self) -> float:
        running = self._running
        if running[MLP]:
            return MLP_W
        if running[ATTENTION]:
            return ATTENTION_W
        return REST_W if running[OTHER] else IDLE_W

    def _change(self, kind: str, step: int) -> None:
        with self._lock:
            t = now_ns()
            self._energy_mj += self._power_w * (t - self._t_ns) / 1e6
            self._t_ns = t
            self._running[kind] += step
            self._power_w = self._level()

    def energy_mj(self) -> float:
        """The energy spent since this object was made, now."""
        with self._lock:
            return self._energy_mj + self._power_w * (now_ns() - self._t_ns) / 1e6


class ModulePowerSource(PolledSource):
    """A measured counter source reading ModulePower (component cpu)."""

    name = "module-power"
    measured = True
    default_interval_ms = 100

    def __init__(self, power: ModulePower) -> None:
        super().__init__()
        self.power = power

    def available(self) -> tuple[bool, str]:
        return True, "a test source: power from the module the job is running"

    def components(self) -> tuple[str, ...]:
        return (CPU,)

    def _open(self) -> None:
        return None

    def _counters_mj(self) -> dict[str, float | None]:
        return {CPU: self.power.energy_mj()}
