"""Per-token energy from a counter source read at every step boundary: one chain of readings, coarsened per component.

A counter source (IOReport, NVML's total energy, RAPL) keeps cumulative energy counters that can be read at any
instant. The job keeps two kinds of readings of the same counters, all on the one clock:

* **boundary readings**: the token loop reads the counter right after each step's device sync
  (energyprof.runner.boundary_reads.BoundaryClock); each reading's ``t_ns`` *is* that step boundary, so the steps'
  ``t0_ns``/``t1_ns`` are these very stamps;
* **poll readings**: the sampler's periodic polls (the windows the timeline shows are their differences).

How they become energy, per component ``c`` whose update period ``P`` was measured at the start of the run
(energyprof.power.counter.probe_counter):

1. **One chain.** All readings, in time order. Between two readings the energy is the counter difference; adjacent
   windows of the chain tile the recording, so merging windows is adding differences and loses nothing.
2. **Coarsen, so that no window is shorter than P.** A counter moves only when the hardware publishes a value, so a
   difference over less than P may be 0 or a whole publication: not a measurement of that interval. Edges are kept:

   a. always: the first and last step boundary of each measured repeat (so the steps of a repeat add up to the
      counter difference across it), and the first and last reading (so the chain covers the whole recording);
   b. other boundary readings, in time order, when at least P after the last kept edge (greedy); a kept edge less
      than P before a forced one is dropped again, so only a repeat shorter than P leaves a window under P;
   c. poll readings, only in the gaps: one is kept when it is at least P from the kept edges on both sides
      (loading, the idle baseline, between repeats).

   Every window of the result is the difference between two real readings, at least P long (except inside a repeat
   shorter than P).
3. **Attribute** with the existing machinery (energyprof.analysis.attribution): power is constant inside a window.
   A step whose two boundaries are kept edges covers whole windows, so its energy is exactly the counter
   difference across it; when it also lasts at least P it is **measured**. A step inside a coarser window gets a
   time share of it (**apportioned**), and so does a step shorter than P. The labels come from energyprof.provenance
   (interval_provenance with the step's resolution, duration and P).
4. **Closure.** The steps of a repeat partition it and both its ends are kept edges; the attribution integrates a
   power whose integral between kept edges is the counter difference, so the steps add up to
   ``counter(end) - counter(start)`` of the repeat, per component, to float rounding.

A component without an update period (*untimed*: idle during the probe, or publishing more slowly than the probe can
see) is not coarsened from boundary readings: it uses the sampler's periodic windows, as a non-counter source
does, and its steps are apportioned unless they happen to cover whole windows. One exception
(:func:`with_still_components`): a component whose counter did not move at all during the run (an idle ANE) spent
no energy in any part of it, since the counters only grow, so every step's 0 is a measurement; it keeps every
reading as an edge. Only a component the work does not use may count as still that way: a used one whose counter
never moved is judged by energyprof.analysis.counter_health (stalled: unknown), never measured at 0.

A **batched** component (energyprof.analysis.counter_health: published about once a second or slower) is chained
differently (:func:`change_edges`): its edges are the readings at which its counter changed, i.e. the first reading
after each publication, plus the first and last readings. A batch published at p holds the energy spent since the
publication before, so the window between two such edges holds the energy spent between the two publications, late
only by the time between a publication and the next reading: the windows are about one period long and unbiased. A
repeat shorter than the period keeps no edge of its own (it would get a whole batch or none: the 0 W / spike
saw-tooth in per-token form); its steps are apportioned, and the steps vs window closure still holds
(:func:`resampled` gives the sampler's windows the same smoothing).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from energyprof.analysis.attribution import attribute_intervals
from energyprof.power.base import CounterReading, PowerWindow


def kept_edges(boundaries: Sequence[int], polls: Sequence[int], forced: Iterable[int], period_ns: int) -> list[int]:
    """The chain's edges for one component (times in ns, sorted), chosen as the module docstring says (2a-2c)."""
    forced_set = set(forced)
    kept: list[tuple[int, bool]] = []
    for t in sorted(set(boundaries) | forced_set):
        is_forced = t in forced_set
        if is_forced:
            if kept and not kept[-1][1] and t - kept[-1][0] < period_ns:
                kept.pop()
            kept.append((t, True))
        elif not kept or t - kept[-1][0] >= period_ns:
            kept.append((t, False))
    edges = [t for t, _ in kept]
    for t in sorted(set(polls) - set(edges)):
        i = bisect.bisect_left(edges, t)
        before_ok = i == 0 or t - edges[i - 1] >= period_ns
        after_ok = i == len(edges) or edges[i] - t >= period_ns
        if before_ok and after_ok:
            edges.insert(i, t)
    return edges


def chain_windows(readings: Mapping[int, CounterReading], edges: Sequence[int], component: str) -> list[PowerWindow]:
    """The windows between consecutive edges: the counter difference of one component (None when either is)."""
    out = []
    for a, b in zip(edges, edges[1:], strict=False):
        before, after = readings[a].energy_mj.get(component), readings[b].energy_mj.get(component)
        out.append(PowerWindow(a, b, {component: None if before is None or after is None else after - before}))
    return out


def component_chains(boundary: Sequence[CounterReading], polls: Sequence[CounterReading],
                     periods_ns: Mapping[str, int | None], repeat_spans: Iterable[tuple[int, int]],
                     periodic: Sequence[PowerWindow], unforced: Iterable[str] = ()) -> dict[str, list[PowerWindow]]:
    """Per component, the windows its steps are attributed from (see the module docstring).

    `periods_ns` names every component to attribute: its update period, or None when untimed (then the sampler's
    `periodic` windows are used). `repeat_spans` are the measured repeats' (first step start, last step end);
    `unforced` components (batched) keep no repeat edges."""
    readings: dict[int, CounterReading] = {}
    for reading in sorted([*polls, *boundary], key=lambda r: r.t_ns):
        readings.setdefault(reading.t_ns, reading)
    boundary_t = [r.t_ns for r in boundary]
    poll_t = [r.t_ns for r in polls]
    ends = {min(readings), max(readings)} if readings else set()
    forced = {t for span in repeat_spans for t in span if t in readings} | ends
    unforced = set(unforced)
    chains: dict[str, list[PowerWindow]] = {}
    for component, period in periods_ns.items():
        if period is None or not readings:
            chains[component] = [PowerWindow(w.t0_ns, w.t1_ns, {component: w.energy_mj.get(component)})
                                 for w in periodic]
            continue
        if component in unforced:
            edges = change_edges(readings, component)
        else:
            edges = kept_edges(boundary_t, poll_t, forced, max(1, int(period)))
        chains[component] = chain_windows(readings, edges, component)
    return chains


def change_edges(readings: Mapping[int, CounterReading], component: str) -> list[int]:
    """The times of the first and last readings and of every reading whose value of `component` differs from the
    reading before (the first reading after a publication), sorted."""
    times = sorted(readings)
    edges = times[:1]
    for before, now in zip(times, times[1:], strict=False):
        if readings[now].energy_mj.get(component) != readings[before].energy_mj.get(component):
            edges.append(now)
    if times and edges[-1] != times[-1]:
        edges.append(times[-1])
    return edges


def resampled(windows: Sequence[PowerWindow], chains: Mapping[str, Sequence[PowerWindow]],
              components: Iterable[str]) -> list[PowerWindow]:
    """The windows with these components' energy replaced by their time share of the components' chain windows (a
    batched counter's periodic windows smoothed over its publication period); other components unchanged."""
    components = [c for c in components if chains.get(c)]
    if not components or not windows:
        return list(windows)
    t0 = np.array([w.t0_ns for w in windows], dtype=np.int64)
    t1 = np.array([w.t1_ns for w in windows], dtype=np.int64)
    shares = {c: attribute_intervals(chains[c], t0, t1, [c]).energy_mj[c] for c in components}
    out = []
    for i, w in enumerate(windows):
        energy = dict(w.energy_mj)
        for c in components:
            if c in energy:
                energy[c] = None if np.isnan(shares[c][i]) else float(shares[c][i])
        out.append(PowerWindow(w.t0_ns, w.t1_ns, energy))
    return out


def forget(readings: Iterable[CounterReading], components: Iterable[str]) -> list[CounterReading]:
    """The readings with these components unknown (None): a counter judged untrustworthy for the run."""
    gone = set(components)
    if not gone:
        return list(readings)
    return [CounterReading(r.t_ns, {c: None if c in gone else v for c, v in r.energy_mj.items()}) for r in readings]


def forget_windows(windows: Iterable[PowerWindow], components: Iterable[str]) -> list[PowerWindow]:
    """The windows with these components unknown (None)."""
    gone = set(components)
    if not gone:
        return list(windows)
    return [PowerWindow(w.t0_ns, w.t1_ns, {c: None if c in gone else v for c, v in w.energy_mj.items()})
            for w in windows]


STILL_PERIOD_NS = 1
"""The period given to a component whose counter never moved: every reading is an edge, every step measured."""


def with_still_components(periods_ns: Mapping[str, int | None], readings: Iterable[CounterReading],
                          used: Iterable[str] = ()) -> dict[str, int | None]:
    """The periods, with STILL_PERIOD_NS for each untimed component whose counter kept one known value throughout,
    unless the work uses it (`used`: a used component that never moves is judged by counter_health, not measured)."""
    used = set(used)
    values: dict[str, set[float | None]] = {c: set() for c, p in periods_ns.items() if p is None and c not in used}
    for reading in readings:
        for comp, seen in values.items():
            if len(seen) < 2:
                seen.add(reading.energy_mj.get(comp))
    still = {c for c, seen in values.items() if len(seen) == 1 and None not in seen}
    return {c: STILL_PERIOD_NS if c in still else p for c, p in periods_ns.items()}
