"""`energyprof doctor --cross-check`: a few seconds of two power sources side by side under a small load.

Both sources sample at once while this process keeps one CPU core busy (a plain Python loop, the kind of work a
token loop is); then, per component both report, the two energies over the load and their ratio and correlation
(energyprof.analysis.cross_check), and the first source's counter health over the same seconds
(energyprof.analysis.counter_health). On a Mac, ioreport and powermetrics read the same IOReport counters, so a ratio
far from 1 or a counter that stays still under the load says which figures not to trust before profiling anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from energyprof.analysis.counter_health import ComponentHealth, used_components
from energyprof.analysis.cross_check import agreements
from energyprof.power.base import PolledSource, PowerSource, PowerSourceError, PowerWindow, now_ns
from energyprof.power.sampler import Sampler
from energyprof.runner.health import run_health
from energyprof.summary import Agreement

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 3.0
SETTLE_S = 0.3
"""Both sources run this long before the load, so that each has a window before it starts."""
INTERVAL_MS = 100


def busy(seconds: float) -> None:
    """Keep one CPU core busy for `seconds` (a Python loop, like a token loop's host work)."""
    deadline = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < deadline:
        for i in range(10_000):
            x = (x + i * i) % 1_000_003


@dataclass
class SecondOpinion:
    """Two sources over the same load: their agreement per component, and the first one's counter health."""

    primary: str
    other: str
    seconds: float = 0.0
    agreement: dict[str, Agreement] = field(default_factory=dict)
    health: dict[str, ComponentHealth] = field(default_factory=dict)
    error: str | None = None
    """Why there is no comparison (a source could not start or stopped), one sentence."""

    def to_json(self) -> dict[str, Any]:
        return {"primary": self.primary, "cross_check": self.other, "seconds": self.seconds, "error": self.error,
                "agreement": {c: vars(a) for c, a in self.agreement.items()},
                "health": {c: h.to_json() for c, h in self.health.items()}}

    def lines(self) -> list[str]:
        """One line per component for people (or the sentence saying why there are none)."""
        if self.error:
            return [f"cross-check: {self.error}"]
        out = [f"cross-check: {self.primary} vs {self.other} over {self.seconds:.1f} s of one busy CPU core"]
        for comp, a in self.agreement.items():
            ratio = "n/a" if a.ratio is None else f"{a.ratio:.3g}"
            corr = "n/a" if a.correlation is None else f"{a.correlation:.2f}"
            out.append(f"  {comp}: {self.primary} {_j(a.primary_j)} vs {self.other} {_j(a.cross_check_j)}, "
                       f"ratio {ratio}, correlation {corr}")
        if not self.agreement:
            out.append("  no component that both report had a figure over the load")
        return out


def _j(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g} J"


def second_opinion(primary: PowerSource, other: PowerSource, seconds: float = DEFAULT_SECONDS,
                   load: Callable[[float], None] = busy) -> SecondOpinion:
    """Sample both (unstarted) sources while `load` runs for `seconds`; never raises for a source that fails."""
    result = SecondOpinion(primary.name, other.name)
    if isinstance(primary, PolledSource):
        primary.poll_readings = []
    first: list[PowerWindow] = []
    second: list[PowerWindow] = []
    samplers: list[Sampler] = []
    try:
        for source, sink in ((primary, first), (other, second)):
            sampler = Sampler(source, sink.extend, INTERVAL_MS)
            sampler.start()
            samplers.append(sampler)
        time.sleep(SETTLE_S)
        t0 = now_ns()
        load(seconds)
        t1 = now_ns()
        time.sleep(SETTLE_S + INTERVAL_MS / 1e3)
    except PowerSourceError as exc:
        result.error = f"{str(exc).rstrip('.')}."
        return result
    finally:
        for sampler in samplers:
            sampler.stop()
    failed = [s for s in samplers if s.error]
    if failed:
        result.error = f"the {failed[0].source.name} source stopped during the load ({failed[0].error.rstrip('.')})."
        return result
    result.seconds = (t1 - t0) / 1e9
    result.agreement = agreements(first, second, [(t0, t1)])
    readings = list(getattr(primary, "poll_readings", None) or [])
    result.health = run_health(primary.name, primary.hardware(), readings, first, None,
                               sorted({c for w in first for c in w.energy_mj}), [(t0, t1)], used_components("cpu"))
    log.info("second opinion %s vs %s: %s", primary.name, other.name, result.agreement)
    return result
