"""An *estimate* of CPU power from utilisation, for machines without a measured source.

Model (linear, per window): ``P = idle_w + (max_w - idle_w) × utilisation``, where utilisation is the
share of non-idle CPU time of the whole machine between two polls (psutil.cpu_times; idle and iowait
count as idle). The defaults, idle 10 W and max 65 W for component ``cpu``, are generic guesses for a
desktop-class CPU package, not a measurement of this machine: set them with the constructor arguments
or ``$ENERGYPROF_ESTIMATE_IDLE_W`` / ``$ENERGYPROF_ESTIMATE_MAX_W``. Every figure from this source is
labelled estimated (``measured = False``).
"""

from __future__ import annotations

import math
import os

import psutil

from energyprof.power.base import CPU, PolledSource, Scope

DEFAULT_IDLE_W = 10.0
DEFAULT_MAX_W = 65.0
ENV_IDLE = "ENERGYPROF_ESTIMATE_IDLE_W"
ENV_MAX = "ENERGYPROF_ESTIMATE_MAX_W"
_IDLE_FIELDS = ("idle", "iowait")
_GUEST_FIELDS = ("guest", "guest_nice")


def _watts(value: float | None, env: str, default: float) -> float:
    """The argument, else the environment variable, else the default; a clear ValueError when invalid."""
    if value is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"${env}={text!r} is not a number of watts; set it to e.g. {default:g}.") from None
    if not math.isfinite(value) or value < 0:
        what = env.removeprefix("ENERGYPROF_ESTIMATE_").removesuffix("_W").lower()
        raise ValueError(f"the estimate's {what} power {value!r} is not a finite number of watts >= 0; "
                         f"set it to e.g. {default:g}.")
    return float(value)


def cpu_busy_total() -> tuple[float, float]:
    """(busy seconds, total seconds) of all CPUs since boot; guest time is already inside user/nice."""
    times = psutil.cpu_times()._asdict()
    total = sum(v for k, v in times.items() if k not in _GUEST_FIELDS)
    idle = sum(times.get(k, 0.0) for k in _IDLE_FIELDS)
    return total - idle, total


class EstimateSource(PolledSource):
    """Estimated CPU energy: utilisation × a stated linear power model (never a measurement)."""

    name = "estimate"
    measured = False
    default_interval_ms = 100
    is_counter = False

    def __init__(self, idle_w: float | None = None, max_w: float | None = None) -> None:
        super().__init__()
        self.idle_w = _watts(idle_w, ENV_IDLE, DEFAULT_IDLE_W)
        self.max_w = _watts(max_w, ENV_MAX, DEFAULT_MAX_W)
        if self.max_w < self.idle_w:
            raise ValueError(f"the estimate's max power ({self.max_w:g} W) is below its idle power "
                             f"({self.idle_w:g} W); set ${ENV_MAX} above ${ENV_IDLE}.")

    def components(self) -> tuple[str, ...]:
        return (CPU,)

    def scope(self) -> Scope:
        return Scope("a model of CPU power (utilisation × a linear power model): it measures nothing")

    def available(self) -> tuple[bool, str]:
        return True, (f"estimated, not measured: CPU utilisation (psutil) in a linear model "
                      f"P = {self.idle_w:g} W + ({self.max_w:g} W - {self.idle_w:g} W) * utilisation; "
                      f"set ${ENV_IDLE} and ${ENV_MAX} for this machine.")

    def power_w(self, utilisation: float) -> float:
        """The model's power at a utilisation in [0, 1]."""
        return self.idle_w + (self.max_w - self.idle_w) * min(1.0, max(0.0, utilisation))

    def _open(self) -> None:
        return None

    def _counters_mj(self) -> dict[str, float | None]:
        busy, total = cpu_busy_total()
        return {"busy": busy, "total": total}

    def _window_energy(self, before: dict[str, float | None], after: dict[str, float | None],
                       dt_ns: int) -> dict[str, float | None]:
        d_total = (after["total"] or 0.0) - (before["total"] or 0.0)
        d_busy = (after["busy"] or 0.0) - (before["busy"] or 0.0)
        utilisation = d_busy / d_total if d_total > 0 else 0.0
        return {CPU: self.power_w(utilisation) * dt_ns / 1e6}
