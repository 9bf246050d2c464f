"""Attribution of sampled energy to intervals (tokens, layer calls, phases): pure numpy, exact, vectorised.

Inside one sample window power is taken as constant (window energy / window length). The energy of an
interval [a, b] for a component is the sum over windows of ``energy_w * overlap([a, b], w) / length_w``.

Method: the window edges cut the time axis into *segments*; on each segment the power of a component is
the sum of the powers of the windows covering it (gaps: none, 0 W; overlapping windows: several). The
cumulative energy E(t) is piecewise linear with breakpoints at the edges, so

    energy([a, b]) = E(b) - E(a)

which makes closure exact up to float rounding (intervals partitioning a span add up to its energy). An
interval inside one segment gets ``power * (b - a)`` directly, so short intervals keep full relative
precision; only the whole segments an interval spans go through the cumulative sum.

Times stay int64 nanoseconds; only differences are converted to float64, so no precision is lost to
the magnitude of ``perf_counter_ns`` values.

Unknown is never 0: an interval that overlaps (with positive length) a window whose value for a component
is None or absent gets NaN for that component; an interval that overlaps no window gets NaN everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from energyprof.components import ordered, whole_system_arrays
from energyprof.power.base import PowerWindow

NS_PER_MJ_AT_1W = 1e6
"""1 W over 1e6 ns is 1 mJ: energy_mj = power_w * duration_ns / 1e6."""


@dataclass
class Attribution:
    """Energy per component and resolution, one value per interval (NaN = unknown, never 0 for missing)."""

    energy_mj: dict[str, np.ndarray]
    resolution: np.ndarray
    """Interval length / total length of the windows it overlaps (1.0 = whole windows; NaN if no window)."""


@dataclass(frozen=True)
class _Windows:
    """Valid windows as arrays: int64 edges and float energy per component (NaN = unknown)."""

    t0: np.ndarray
    t1: np.ndarray
    energy: dict[str, np.ndarray]


def _components_of(windows: Sequence[PowerWindow]) -> list[str]:
    """Every component named by any window, in display order."""
    return ordered({c for w in windows for c in w.energy_mj})


def _window_arrays(windows: Sequence[PowerWindow], components: Sequence[str]) -> _Windows:
    """Arrays of the windows with t1 > t0; an absent or None component value becomes NaN."""
    valid = [w for w in windows if w.t1_ns > w.t0_ns]
    t0 = np.fromiter((w.t0_ns for w in valid), dtype=np.int64, count=len(valid))
    t1 = np.fromiter((w.t1_ns for w in valid), dtype=np.int64, count=len(valid))
    energy = {}
    for comp in components:
        values = (w.energy_mj.get(comp) for w in valid)
        energy[comp] = np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64,
                                   count=len(valid))
    return _Windows(t0, t1, energy)


def _as_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds as int64 ns plus a validity mask (float input may hold NaN for 'no time')."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False).ravel(), np.ones(arr.size, dtype=bool)
    arr = arr.astype(np.float64).ravel()
    ok = np.isfinite(arr)
    return np.where(ok, np.round(arr), 0).astype(np.int64), ok


def _overlap_counts(t0s_sorted: np.ndarray, t1s_sorted: np.ndarray, a: np.ndarray, b: np.ndarray,
                    weights0: np.ndarray | None = None, weights1: np.ndarray | None = None) -> np.ndarray:
    """Per interval: number (or weight sum) of windows overlapping it.

    Positive overlap for a < b (t0_w < b and t1_w > a); containment of the point for a == b
    (t0_w <= a <= t1_w). For a < b the windows ending at or before a all start before b, so
    count = #(t0_w < b) - #(t1_w <= a); the point case uses the closed comparisons."""
    point = a == b
    i0 = np.where(point, np.searchsorted(t0s_sorted, b, "right"), np.searchsorted(t0s_sorted, b, "left"))
    i1 = np.where(point, np.searchsorted(t1s_sorted, a, "left"), np.searchsorted(t1s_sorted, a, "right"))
    if weights0 is None or weights1 is None:
        return i0 - i1
    c0 = np.concatenate(([0], np.cumsum(weights0)))
    c1 = np.concatenate(([0], np.cumsum(weights1)))
    return c0[i0] - c1[i1]


def _segment_power(win: _Windows, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Power (mJ/ns) of each component on each segment [edges[k], edges[k+1]] (unknown windows count 0)."""
    s0 = np.searchsorted(edges, win.t0)
    s1 = np.searchsorted(edges, win.t1)
    counts = s1 - s0
    owner = np.repeat(np.arange(len(win.t0)), counts)
    starts = np.cumsum(counts) - counts
    seg = s0[owner] + (np.arange(owner.size) - starts[owner])
    length = (win.t1 - win.t0).astype(np.float64)
    n_seg = max(len(edges) - 1, 0)
    out = {}
    for comp, energy in win.energy.items():
        power = np.nan_to_num(energy, nan=0.0) / length
        out[comp] = np.bincount(seg, weights=power[owner], minlength=n_seg)[:n_seg]
    return out


def attribute_intervals(windows: Sequence[PowerWindow], t0_ns: np.ndarray, t1_ns: np.ndarray,
                        components: Sequence[str] | None = None) -> Attribution:
    """Energy of each interval [t0_ns[i], t1_ns[i]] per component, and its resolution (see module doc).

    Components default to every component named by the windows. Intervals with NaN bounds (float input)
    get NaN everywhere; an interval with t1 < t0 raises ValueError."""
    comps = list(components) if components is not None else _components_of(windows)
    a, ok_a = _as_ns(t0_ns)
    b, ok_b = _as_ns(t1_ns)
    if a.shape != b.shape:
        raise ValueError("t0_ns and t1_ns must have the same length")
    valid = ok_a & ok_b
    if np.any(valid & (b < a)):
        raise ValueError("an interval ends before it starts (t1_ns < t0_ns)")
    win = _window_arrays(windows, comps)
    n = a.size
    if win.t0.size == 0:
        return Attribution({c: np.full(n, np.nan) for c in comps}, np.full(n, np.nan))
    known_any = valid & (_overlap_counts(np.sort(win.t0), np.sort(win.t1), a, b) > 0)
    resolution = _resolution(win, a, b, known_any)
    edges = np.unique(np.concatenate((win.t0, win.t1)))
    powers = _segment_power(win, edges)
    energy = {}
    for comp in comps:
        e = _integrate(edges, powers[comp], a, b)
        unknown = _touches_unknown(win, comp, a, b)
        energy[comp] = np.where(known_any & ~unknown, e, np.nan)
    return Attribution(energy, resolution)


def _resolution(win: _Windows, a: np.ndarray, b: np.ndarray, known_any: np.ndarray) -> np.ndarray:
    """Interval length / total length of the windows it overlaps (exact int64 sums), NaN without windows."""
    length = win.t1 - win.t0
    o0 = np.argsort(win.t0, kind="stable")
    o1 = np.argsort(win.t1, kind="stable")
    covered = _overlap_counts(win.t0[o0], win.t1[o1], a, b, length[o0], length[o1])
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (b - a).astype(np.float64) / covered.astype(np.float64)
    return np.where(known_any, res, np.nan)


def _touches_unknown(win: _Windows, comp: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True for intervals overlapping a window whose value for comp is unknown."""
    missing = np.isnan(win.energy[comp])
    if not missing.any():
        return np.zeros(a.size, dtype=bool)
    return _overlap_counts(np.sort(win.t0[missing]), np.sort(win.t1[missing]), a, b) > 0


def _integrate(edges: np.ndarray, power: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integral of the piecewise-constant power over [a, b]: partial end segments plus whole segments between.

    Intervals are clipped to [edges[0], edges[-1]] (no window outside: no energy). Whole segments come
    from a cumulative sum, so adjacent intervals telescope; an interval inside one segment is
    power * length, keeping short intervals precise."""
    n_seg = len(edges) - 1
    if n_seg <= 0:
        return np.zeros(a.size)
    lo, hi = edges[0], edges[-1]
    ac = np.clip(a, lo, hi)
    bc = np.clip(b, lo, hi)
    seg_len = np.diff(edges).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum(power * seg_len)))
    ka = np.clip(np.searchsorted(edges, ac, "right") - 1, 0, n_seg - 1)
    kb = np.clip(np.searchsorted(edges, bc, "left") - 1, 0, n_seg - 1)
    same = ka == kb
    inside = power[ka] * (bc - ac).astype(np.float64)
    head = power[ka] * (edges[ka + 1] - ac).astype(np.float64)
    tail = power[kb] * (bc - edges[kb]).astype(np.float64)
    middle = cum[kb] - cum[np.minimum(ka + 1, kb)]
    out = np.where(same, inside, head + middle + tail)
    return np.where(bc > ac, out, 0.0)


def baseline_power_w(windows: Sequence[PowerWindow], t0_ns: int, t1_ns: int,
                     components: Sequence[str] | None = None) -> dict[str, float | None]:
    """Mean power (W) per component over the parts of [t0_ns, t1_ns] that windows cover; None when unknown.

    Each window counts with its overlap: sum(e_w * ov_w / len_w) / sum(ov_w). Gaps count neither energy
    nor time, so a gap in the samples does not pull the baseline down. A window with an unknown value
    overlapping the interval makes that component unknown, as in attribute_intervals."""
    comps = list(components) if components is not None else _components_of(windows)
    win = _window_arrays(windows, comps)
    if t1_ns <= t0_ns or win.t0.size == 0:
        return {c: None for c in comps}
    overlap = np.clip(np.minimum(win.t1, t1_ns) - np.maximum(win.t0, t0_ns), 0, None)
    touching = overlap > 0
    covered_ns = float(overlap[touching].sum())
    if covered_ns <= 0:
        return {c: None for c in comps}
    frac = overlap[touching] / (win.t1 - win.t0)[touching]
    out: dict[str, float | None] = {}
    for comp in comps:
        e = win.energy[comp][touching]
        out[comp] = None if np.isnan(e).any() else float((e * frac).sum()) * NS_PER_MJ_AT_1W / covered_ns
    return out


def net_energy_mj(gross_mj: np.ndarray, duration_ns: np.ndarray, baseline_w: float | None) -> np.ndarray:
    """Gross energy minus baseline power × duration, in mJ; NaN where either is unknown."""
    gross = np.asarray(gross_mj, dtype=np.float64)
    if baseline_w is None or not math.isfinite(baseline_w):
        return np.full(gross.shape, np.nan)
    return gross - baseline_w * np.asarray(duration_ns, dtype=np.float64) / NS_PER_MJ_AT_1W


def whole_system_mj(energy_mj: dict[str, np.ndarray]) -> np.ndarray:
    """Per interval, the whole-system energy (the one rule: energyprof.components.whole_system_arrays)."""
    return whole_system_arrays(energy_mj)


T_975: tuple[float, ...] = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
"""Two-sided 95% Student t quantiles (t_0.975) for df = 1..30, from the standard table."""

Z_975 = 1.959964


def t_quantile_975(df: int) -> float:
    """t_0.975 for df degrees of freedom: the table for df <= 30, beyond it the Cornish-Fisher expansion

    t ≈ z + (z³ + z)/(4 df) + (5z⁵ + 16z³ + 3z)/(96 df²), z = 1.96, which gives 2.042 at df = 30 (table:
    2.042), 2.000 at df = 60 and tends to 1.96; it is within 0.001 of the exact value for df > 30."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of its 95% confidence interval (Student t, sample std); None for fewer than 2.

    None and NaN values (unknown) are left out; no values gives (nan, None)."""
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return float("nan"), None
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, None
    sem = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, t_quantile_975(arr.size - 1) * sem
