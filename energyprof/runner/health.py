"""A run's counter health (energyprof.analysis.counter_health) from what the job recorded, and the windows its figures
may use: the readings of the run's own source, the span of the profiled work, the probe's update periods and the
power ceiling of the chip the source reads (energyprof.power.chips)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from energyprof.analysis.counter_chain import forget_windows, resampled
from energyprof.analysis.counter_health import (
    BATCHED,
    ComponentHealth,
    assess,
    series_from_windows,
    series_of,
    statuses,
)
from energyprof.components import lacking
from energyprof.power.base import CounterReading, PowerWindow
from energyprof.power.chips import ceiling_for
from energyprof.power.counter import CounterCharacteristics


def run_health(source: str, hardware: str | None, readings: Sequence[CounterReading], windows: Sequence[PowerWindow],
               characteristics: CounterCharacteristics | None, components: Sequence[str],
               spans: Sequence[tuple[int, int]], used: Iterable[str], origin_ns: int | None = None
               ) -> dict[str, ComponentHealth]:
    """Each component's verdict for one run of a measured source. `readings`: every counter reading the run took
    (boundary reads and polls; empty for a windowed source, whose `windows` are accumulated instead)."""
    series = series_of(readings, components) if readings else series_from_windows(windows, components)
    spans = [s for s in spans if s and s[1] > s[0]]
    work = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None
    found = characteristics.components if characteristics is not None else {}
    periods = {c: found[c].update_period_s if c in found else None for c in components}
    ceiling = ceiling_for(source, hardware)
    return assess(series, work, periods, {c: ceiling.watts for c in components}, used,
                  ceiling_source=ceiling.describe(hardware), origin_ns=origin_ns)


@dataclass
class HealthFigures:
    """The run's counter health and what its totals lack; every field is a RunSummary field (RunSummary.take)."""

    counter_health: dict[str, str] = field(default_factory=dict)
    counter_health_detail: dict[str, ComponentHealth] = field(default_factory=dict)
    total_lacks: list[str] = field(default_factory=list)


def figures(health: Mapping[str, ComponentHealth], energy_j: Mapping[str, float | None]) -> HealthFigures:
    """The verdicts, and the components the whole-system figures leave out (unknown energy)."""
    return HealthFigures(statuses(health), dict(health), lacking(energy_j))


def figure_windows(windows: Sequence[PowerWindow], health: dict[str, ComponentHealth],
                   chains: dict[str, list[PowerWindow]] | None) -> list[PowerWindow]:
    """The sampler's windows as the run's figures may use them (idle baseline, peak power, a windowed source's
    attribution): an untrusted component unknown, a batched one smoothed over its publication period."""
    out = forget_windows(windows, [c for c, h in health.items() if not h.trusted])
    batched = [c for c, h in health.items() if h.status == BATCHED]
    return resampled(out, chains, batched) if chains and batched else out
