"""Attribution: accuracy against an independent reference, closure, and throughput.

Synthetic traces: ~100 ms windows with jitter, some gaps and some overlapping windows, a random
constant power per window. The reference integrates each interval window by window (bisect to the
windows it touches, exact fractions summed with math.fsum), independently of the cumulative method.
"""

from __future__ import annotations

import bisect
import math
import sys
import time
from typing import Any

import numpy as np

from bench.rows import row
from energyprof.analysis.attribution import attribute_intervals
from energyprof.power.base import PowerWindow

MS = 1_000_000
ORIGIN = 123_456_789_000_000_000


def synthetic_windows(rng: np.random.Generator, n: int) -> list[PowerWindow]:
    """Jittery ~100 ms windows: 10% followed by a gap, 10% overlapping the previous one by up to 5 ms."""
    lengths = rng.integers(95 * MS, 110 * MS, n)
    shift = np.where(rng.random(n) < 0.1, rng.integers(1 * MS, 30 * MS, n), 0)
    shift -= np.where(rng.random(n) < 0.1, rng.integers(0, 5 * MS, n), 0)
    starts = ORIGIN + np.concatenate(([0], np.cumsum(lengths[:-1] + shift[:-1])))
    cpu = rng.uniform(0.5, 40.0, n) * lengths / 1e6
    gpu = rng.uniform(0.0, 10.0, n) * lengths / 1e6
    return [PowerWindow(int(s), int(s + length), {"cpu": float(c), "gpu": float(g)})
            for s, length, c, g in zip(starts, lengths, cpu, gpu, strict=True)]


def random_intervals(rng: np.random.Generator, windows: list[PowerWindow], n: int) -> tuple[np.ndarray, np.ndarray]:
    """From 10 µs layer calls to multi-window phases, all inside the traced span."""
    lo, hi = windows[0].t0_ns, windows[-1].t1_ns
    length = (10 ** rng.uniform(4, 9.5, n)).astype(np.int64)
    a = rng.integers(lo, hi - 1, n)
    return a, np.minimum(a + length, hi)


def reference_energy(windows: list[PowerWindow], a: np.ndarray, b: np.ndarray, comp: str) -> np.ndarray:
    """Each interval's energy from the windows it overlaps, summed exactly (math.fsum)."""
    by_start = sorted(windows, key=lambda w: w.t0_ns)
    starts = [w.t0_ns for w in by_start]
    longest = max(w.t1_ns - w.t0_ns for w in windows)
    out = np.empty(len(a))
    for i, (lo, hi) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        first = bisect.bisect_left(starts, lo - longest)
        last = bisect.bisect_left(starts, hi)
        terms = []
        for w in by_start[first:last]:
            overlap = min(hi, w.t1_ns) - max(lo, w.t0_ns)
            if overlap > 0:
                terms.append(w.energy_mj[comp] * overlap / (w.t1_ns - w.t0_ns))
        out[i] = math.fsum(terms)
    return out


def accuracy(quick: bool) -> float:
    """Largest relative error of attributed vs reference energy over seeds, components and intervals."""
    worst = 0.0
    for seed in range(3 if quick else 10):
        rng = np.random.default_rng(seed)
        windows = synthetic_windows(rng, 300 if quick else 2000)
        a, b = random_intervals(rng, windows, 2000 if quick else 20000)
        got = attribute_intervals(windows, a, b)
        for comp in ("cpu", "gpu"):
            want = reference_energy(windows, a, b, comp)
            ok = want > 0
            err = np.abs(got.energy_mj[comp][ok] - want[ok]) / want[ok]
            worst = max(worst, float(err.max()) if not np.isnan(err).any() else math.inf)
    return worst


def closure(quick: bool) -> float:
    """Largest |sum of a partition's energies - the span's energy| / span energy (plain float sum)."""
    worst = 0.0
    for seed in range(3 if quick else 10):
        rng = np.random.default_rng(100 + seed)
        windows = synthetic_windows(rng, 500 if quick else 18000)
        lo, hi = windows[0].t0_ns, windows[-1].t1_ns
        cuts = np.sort(rng.integers(lo, hi, (10000 if quick else 200000) - 1))
        edges = np.concatenate(([lo], cuts, [hi]))
        parts = attribute_intervals(windows, edges[:-1], edges[1:], ["cpu"]).energy_mj["cpu"]
        span = math.fsum(w.energy_mj["cpu"] for w in windows)
        known = parts[~np.isnan(parts)]  # intervals wholly inside a gap are unknown and carry no energy
        worst = max(worst, abs(float(known.sum()) - span) / span)
    return worst


def throughput(quick: bool) -> tuple[float, int, int]:
    """Intervals per second attributing 200k back-to-back intervals over 18k windows (best of 3)."""
    n_windows, n_intervals = (1800, 20000) if quick else (18000, 200000)
    rng = np.random.default_rng(7)
    windows = synthetic_windows(rng, n_windows)
    lo, hi = windows[0].t0_ns, windows[-1].t1_ns
    edges = np.concatenate(([lo], np.sort(rng.integers(lo, hi, n_intervals - 1)), [hi]))
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        attribute_intervals(windows, edges[:-1], edges[1:])
        best = min(best, time.perf_counter() - started)
    return n_intervals / best, n_windows, n_intervals


def run(quick: bool) -> list[dict[str, Any]]:
    setup = "jittery ~100 ms windows (10% gaps, 10% overlaps), cpu+gpu, random constant power per window"
    rate, n_windows, n_intervals = throughput(quick)
    return [
        row("attribution max relative error vs reference", accuracy(quick), "ratio",
            f"{setup}; intervals 10 µs .. 3 s; reference: per-window fsum", at_most=1e-9),
        row("attribution closure error", closure(quick), "ratio",
            f"{setup}; random partitions of the whole span", at_most=1e-9),
        row("attribution throughput", rate, "intervals/s",
            f"{n_intervals} intervals over {n_windows} windows, 2 components, best of 3", at_least=200_000),
    ]


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
