"""A second opinion on the same run: how well two power sources agree, component by component (pure numpy).

A run may record a second source beside its own (`--cross-check SOURCE`): ioreport against powermetrics on a Mac,
nvml against rapl on a Linux box. For each component both report, over the workload (the measured repeats' spans):

* each source's energy, attributed from its own windows (energyprof.analysis.attribution), and their **ratio**
  (cross-check / the run's own source); the ratio of the energies over the same spans is the ratio of the mean
  powers;
* the **correlation** (Pearson) of the two sources' mean power per bin of a common time grid: each span is cut into
  whole bins as long as the coarser source's typical window (a span shorter than that is one bin), and each source's
  energy in each bin is attributed from its windows. 1 means they rise and fall together; near 0, one of them does
  not see what the other sees. Fewer than 3 bins, or a source flat over all of them, give no correlation.

The two sources rarely draw the same boundary (powermetrics and IOReport both stop at the SoC; NVML is the board,
RAPL the CPU package), so a ratio away from 1 with a high correlation is a different boundary, not a fault.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from energyprof.analysis.attribution import attribute_intervals
from energyprof.components import ordered
from energyprof.power.base import PowerWindow
from energyprof.summary import Agreement

MIN_BINS_FOR_CORRELATION = 3


def typical_window_ns(windows: Sequence[PowerWindow]) -> int:
    """The median window length in ns (0 without windows)."""
    lengths = [w.t1_ns - w.t0_ns for w in windows if w.t1_ns > w.t0_ns]
    return int(np.median(lengths)) if lengths else 0


def grid(spans: Sequence[tuple[int, int]], bin_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole bins of bin_ns inside each span (a span shorter than one bin is one bin): (t0 array, t1 array)."""
    t0, t1 = [], []
    for a, b in spans:
        if b <= a:
            continue
        count = (b - a) // bin_ns if bin_ns > 0 else 0
        if count < 1:
            t0.append(a)
            t1.append(b)
            continue
        starts = a + np.arange(count, dtype=np.int64) * bin_ns
        t0.extend(starts.tolist())
        t1.extend((starts + bin_ns).tolist())
    return np.array(t0, dtype=np.int64), np.array(t1, dtype=np.int64)


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation of two equal-length series; None with fewer than 3 points or a flat series."""
    if x.size < MIN_BINS_FOR_CORRELATION:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    if denominator == 0:
        return None
    return float(np.clip((dx * dy).sum() / denominator, -1.0, 1.0))


def _known(windows: Sequence[PowerWindow], component: str) -> bool:
    return any(w.energy_mj.get(component) is not None for w in windows)


def agreement(primary: Sequence[PowerWindow], second: Sequence[PowerWindow], spans: Sequence[tuple[int, int]],
              component: str, bin_ns: int | None = None) -> Agreement:
    """One component as both sources saw it over the spans (see the module docstring)."""
    bin_ns = bin_ns or max(typical_window_ns(primary), typical_window_ns(second))
    span_t0 = np.array([a for a, _ in spans], dtype=np.int64)
    span_t1 = np.array([b for _, b in spans], dtype=np.int64)
    a_total = attribute_intervals(primary, span_t0, span_t1, [component]).energy_mj[component]
    b_total = attribute_intervals(second, span_t0, span_t1, [component]).energy_mj[component]
    primary_mj = None if a_total.size == 0 or np.isnan(a_total).any() else float(a_total.sum())
    second_mj = None if b_total.size == 0 or np.isnan(b_total).any() else float(b_total.sum())
    ratio = second_mj / primary_mj if primary_mj and second_mj is not None else None
    t0, t1 = grid(spans, bin_ns)
    a = attribute_intervals(primary, t0, t1, [component]).energy_mj[component]
    b = attribute_intervals(second, t0, t1, [component]).energy_mj[component]
    known = ~np.isnan(a) & ~np.isnan(b)
    seconds = (t1 - t0)[known] / 1e9
    correlation = pearson(a[known] / 1e3 / seconds, b[known] / 1e3 / seconds) if known.any() else None
    return Agreement(None if primary_mj is None else primary_mj / 1e3, None if second_mj is None else second_mj / 1e3,
                     ratio, correlation, int(known.sum()), bin_ns / 1e9 if bin_ns else None)


def agreements(primary: Sequence[PowerWindow], second: Sequence[PowerWindow],
               spans: Sequence[tuple[int, int]]) -> dict[str, Agreement]:
    """Per component that both sources report (a known value in some window of each), in display order."""
    if not primary or not second or not spans:
        return {}
    names = {c for w in primary for c in w.energy_mj} & {c for w in second for c in w.energy_mj}
    bin_ns = max(typical_window_ns(primary), typical_window_ns(second))
    return {c: agreement(primary, second, spans, c, bin_ns) for c in ordered(names)
            if _known(primary, c) and _known(second, c)}
