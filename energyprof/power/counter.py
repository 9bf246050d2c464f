"""How finely a counter source can be read: its measured update period and quantum, per component.

A cumulative counter (IOReport, NVML's total energy, RAPL) can be read at any instant, but it only
moves when the hardware or driver publishes a new value, and then by whole quanta. A step shorter than
the update period cannot be measured by a counter difference (it is time-apportioned instead), so both
are measured on the machine itself: :func:`probe_counter` polls ``read_counter()`` for about a second
and reports, per component, the median time between changes (the update period), the smallest
positive change (the quantum), and the median cost of one read.

A component that changed fewer than twice during the probe is *untimed*: its update period is None,
because it is idle (an ANE at 0 W never moves) or publishes more slowly than the probe can see (the
IOReport CPU channels publish about once a second: probe for several seconds to time them). The
summary's update period is the slowest timed component's, and ``untimed`` names the others: a step at
least ``update_period_s`` long spans an update of every timed component; an untimed component's share
of a step can only be time-apportioned.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass, field, replace

from energyprof.power.base import CounterReading, PowerSource, PowerSourceError, now_ns

DEFAULT_PROBE_S = 1.0
POLL_S = 0.0002
"""Pause between reads while probing (a read itself may take longer, e.g. ~ms for IOReport)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentCounter:
    """One component's counter as probed: None where the probe could not tell."""

    update_period_s: float | None
    quantum_mj: float | None
    changes: int


@dataclass(frozen=True)
class CounterCharacteristics:
    """A counter source as probed (see the module docstring)."""

    update_period_s: float | None
    quantum_mj: float | None
    reads: int
    changes: int
    """Reads at which at least one component had changed."""
    read_us: float
    """Median wall time of one read_counter() call, in microseconds."""
    seconds: float
    components: dict[str, ComponentCounter] = field(default_factory=dict)
    untimed: tuple[str, ...] = ()
    """Components with no update period: idle, or publishing more slowly than the probe can see."""
    hardware: str | None = None
    """The chip or board the source read (PowerSource.hardware()), when probe_source started it."""
    readings: tuple[CounterReading, ...] = field(default=(), repr=False, compare=False)
    """Every reading the probe took (for the counter's health, energyprof.analysis.counter_health; not in JSON)."""

    def to_json(self) -> dict:
        out = asdict(replace(self, readings=()))
        del out["readings"]
        return out


def probe_counter(source: PowerSource, seconds: float = DEFAULT_PROBE_S, poll_s: float = POLL_S
                  ) -> CounterCharacteristics:
    """Poll a started counter source for `seconds` (the sampler may poll it meanwhile).

    PowerSourceError when the source has no counter. The quantum is the smallest change seen: at low
    power, or when a counter publishes seldom, it can be larger than the counter's resolution."""
    if not source.is_counter:
        raise PowerSourceError(f"the {source.name} source has no energy counter to probe.")
    readings, costs = [], []
    deadline = now_ns() + int(seconds * 1e9)
    while True:
        before = time.perf_counter_ns()
        reading = source.read_counter()
        costs.append(time.perf_counter_ns() - before)
        readings.append(reading)
        if reading.t_ns >= deadline:
            break
        time.sleep(poll_s)
    components: dict[str, ComponentCounter] = {}
    any_change = [False] * len(readings)
    for comp in readings[0].energy_mj:
        times, steps = [], []
        for i in range(1, len(readings)):
            a, b = readings[i - 1].energy_mj.get(comp), readings[i].energy_mj.get(comp)
            if a is not None and b is not None and b != a:
                times.append(readings[i].t_ns)
                steps.append(abs(b - a))
                any_change[i] = True
        gaps = [(t1 - t0) / 1e9 for t0, t1 in zip(times, times[1:], strict=False)]
        components[comp] = ComponentCounter(statistics.median(gaps) if gaps else None,
                                            min(steps) if steps else None, len(times))
    periods = [c.update_period_s for c in components.values() if c.update_period_s is not None]
    quanta = [c.quantum_mj for c in components.values() if c.quantum_mj is not None]
    found = CounterCharacteristics(
        update_period_s=max(periods) if periods else None, quantum_mj=min(quanta) if quanta else None,
        reads=len(readings), changes=sum(any_change), read_us=statistics.median(costs) / 1e3,
        seconds=(readings[-1].t_ns - readings[0].t_ns) / 1e9, components=components,
        untimed=tuple(name for name, c in components.items() if c.update_period_s is None), readings=tuple(readings))
    log.info("counter probe of %s over %.2f s: %d reads, update period %s s, quantum %s mJ, untimed %s",
             source.name, found.seconds, found.reads, found.update_period_s, found.quantum_mj,
             ", ".join(found.untimed) or "none")
    return found


def probe_source(source: PowerSource, seconds: float = DEFAULT_PROBE_S) -> CounterCharacteristics | None:
    """Start an unstarted source, probe its counter when it has one, stop it; None when it has none."""
    source.start(source.default_interval_ms)
    try:
        if not source.is_counter:
            return None
        return replace(probe_counter(source, seconds), hardware=source.hardware())
    finally:
        source.stop()


def describe_counter(c: CounterCharacteristics) -> str:
    """One line for `doctor`: each component's update period and quantum, the untimed ones, the cost of a read."""
    timed = [f"{name} every {comp.update_period_s * 1e3:.3g} ms in steps >= {comp.quantum_mj:.4g} mJ"
             for name, comp in c.components.items() if comp.update_period_s is not None and comp.quantum_mj is not None]
    text = "counter: " + ("; ".join(timed) if timed else "no component could be timed")
    if c.untimed:
        text += (f"; {', '.join(c.untimed)} untimed (idle, or slower than the {c.seconds:.2g} s probe: "
                 "try --probe-seconds 5)")
    return f"{text}. One read takes {c.read_us:.3g} us."
