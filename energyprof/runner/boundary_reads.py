"""A counter source read at every step boundary: the token loop's clock, the probe of the counter, the chains.

When the run's power source is a counter (``is_counter``), the engine's clock is a :class:`BoundaryClock`: the token
loop calls it once right after each step's device sync, it reads the counters (one ``read_counter()``, whose own
clock read *is* the boundary) and keeps the reading. Meanwhile a :class:`CounterProbe` measures the counter's update
period and quantum on a thread while the model loads. At the end, :func:`chains` merges the boundary readings with
the sampler's poll readings into each component's windows (energyprof.analysis.counter_chain explains how).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from energyprof.analysis.counter_chain import component_chains, forget, forget_windows, with_still_components
from energyprof.analysis.counter_health import BATCHED, ComponentHealth, trusted_periods
from energyprof.power.base import CounterReading, PowerSource, PowerSourceError, PowerWindow, now_ns
from energyprof.power.counter import CounterCharacteristics, probe_counter
from energyprof.summary import ComponentValues

PROBE_S = 1.0
"""How long the counter is probed at the start of a run (while the model loads)."""

log = logging.getLogger(__name__)


class BoundaryClock:
    """The token loop's clock for a counter source: one counter read per step boundary, every reading kept.

    If the source stops answering, the loop goes on with the plain clock (the sampler reports the failure)."""

    def __init__(self, source: PowerSource) -> None:
        self.source = source
        self.readings: list[CounterReading] = []
        self.error: str | None = None

    def __call__(self) -> int:
        if self.error is None:
            try:
                reading = self.source.read_counter()
            except PowerSourceError as exc:
                self.error = str(exc)
                log.info("counter read at a step boundary failed, later boundaries use the plain clock: %s", exc)
            else:
                self.readings.append(reading)
                return reading.t_ns
        return now_ns()


class CounterProbe:
    """probe_counter on a daemon thread; `result()` waits for it (None when the probe failed)."""

    def __init__(self, source: PowerSource, seconds: float | None = None) -> None:
        self.source, self.seconds = source, PROBE_S if seconds is None else seconds
        self.characteristics: CounterCharacteristics | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._probe, name="energyprof-counter-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _probe(self) -> None:
        try:
            self.characteristics = probe_counter(self.source, self.seconds)
        except Exception as exc:  # a failed probe leaves every component untimed, never the run failed
            self.error = str(exc)
            log.info("counter probe of %s failed (every component untimed): %s", self.source.name, exc)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout_s: float | None = None) -> CounterCharacteristics | None:
        if self._thread.ident is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.seconds + 5.0)
        return self.characteristics


def periods_ns(characteristics: CounterCharacteristics | None, components: Iterable[str]) -> dict[str, int | None]:
    """Each component's update period in ns; None when untimed or not probed."""
    found = characteristics.components if characteristics is not None else {}
    out: dict[str, int | None] = {}
    for comp in components:
        period = found[comp].update_period_s if comp in found else None
        out[comp] = None if period is None else max(1, round(period * 1e9))
    return out


def chains(clock: BoundaryClock, polls: list[CounterReading] | None, periodic: list[PowerWindow],
           characteristics: CounterCharacteristics | None, components: Iterable[str],
           repeat_spans: list[tuple[int, int]], health: dict[str, ComponentHealth] | None = None,
           used: Iterable[str] = ()) -> tuple[dict[str, list[PowerWindow]], dict[str, int | None]]:
    """Per component, the windows its steps are attributed from and the update period (ns) that labels them
    (energyprof.analysis.counter_chain). With the run's counter `health`: a stalled or implausible component is
    unknown throughout, a batched one is coarsened to its publication period without repeat edges. A component the
    work does not use (not in `used`) whose counter never moved counts as timed at every reading."""
    health = health or {}
    untrusted = [c for c, h in health.items() if not h.trusted]
    readings, polls = forget(clock.readings, untrusted), forget(polls or [], untrusted)
    periods = trusted_periods(health, periods_ns(characteristics, components))
    periods = with_still_components(periods, [*readings, *polls], used)
    periods.update({c: None for c in untrusted if c in periods})
    batched = [c for c, h in health.items() if h.status == BATCHED]
    return component_chains(readings, polls, periods, repeat_spans, forget_windows(periodic, untrusted),
                            unforced=batched), periods


@dataclass
class CounterFigures:
    """The counter's characteristics and boundary reads; every field is a RunSummary field (RunSummary.take)."""

    boundary_reads: int = 0
    counter_update_period_s: ComponentValues | None = None
    counter_quantum_mj: ComponentValues | None = None
    counter_read_us: float | None = None
    counter_probe_s: float | None = None


def figures(clock: BoundaryClock, characteristics: CounterCharacteristics | None,
            components: Iterable[str]) -> CounterFigures:
    """The figures that describe the counter and its boundary reads."""
    components = list(components)
    found = characteristics.components if characteristics is not None else {}
    return CounterFigures(
        boundary_reads=len(clock.readings),
        counter_update_period_s={c: found[c].update_period_s if c in found else None for c in components},
        counter_quantum_mj={c: found[c].quantum_mj if c in found else None for c in components},
        counter_read_us=characteristics.read_us if characteristics is not None else None,
        counter_probe_s=characteristics.seconds if characteristics is not None else None,
    )
