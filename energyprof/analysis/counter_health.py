"""Counter health, per component, per run: ok, stalled, batched or implausible (pure numpy).

Every *measured* figure rests on a counter that can fail in the field without saying so (see DESIGN.md, "How these
counters fail in the field"): on macOS 27 betas the "CPU Energy" counter stops moving (CPU reads 0 W: macmon #76,
mactop #82, stats #3621); on M5 Max the counters are published in batches ~2 s apart, so raw differences alternate
between 0 W and inflated values (lablup/all-smi #410, #415); channels differ in units (mJ vs nJ, HardwareVisualizer
#1977), so a figure can be 10^6 times too large; a counter can be reset and go backwards. :func:`assess` looks at the
readings a run took of each component's cumulative counter (the step-boundary reads and the sampler's polls, or a
windowed source's windows accumulated, :func:`series_from_windows`), the span of the profiled work, the counter's
publication period and the chip's power ceiling (energyprof.power.chips), and gives each component one verdict:

* **implausible** — the counter went *backwards* (any negative difference between two readings: a reset; the
  counters only grow), or some window at least CEILING_PERIODS publication periods (and MIN_CEILING_WINDOW_S) long
  averaged more than the chip's ceiling. Windows that short-of-a-publication are never judged against the ceiling:
  a batch landing in a 100 ms window would look 20 times too large without being wrong.
* **stalled** — a component the work uses (:func:`used_components`) whose counter did not move for at least
  STALL_PERIODS publication periods, and at least MIN_STALL_S, while the work ran, or did not move at all over the
  whole work and for that long around it. Three periods: one late or missed publication (the publication jitter seen
  on real chips) still leaves two that must have landed, and any block a Python token loop keeps busy draws far more
  than one quantum (1 mJ) per period: an M-series CPU running the loop draws watts, i.e. hundreds of mJ per second.
  At least a second: the failure looked for is a counter that stops (on the macOS 27 betas it stays put for the whole
  session), not a hiccup of a counter that publishes every millisecond, whose reader thread a busy process can starve
  for a few ms (seen here with RAPL-like counters).
  A component the work does not use (the ANE under torch or MLX) may rest: its counter not moving is 0 J, measured.
* **batched** — the counter publishes at most about once a second (publication period ≥ BATCHED_S): figures over
  intervals shorter than that period are not measurements (a step either sees a whole batch or nothing), so those
  steps and windows are apportioned from windows at least one period long, and the power chart is smoothed over
  the period. Its figures over longer spans are trustworthy.
* **ok** — none of the above.

The publication period of a component is the probe's update period (energyprof.power.counter), else the median
time between the changes seen in the run's own readings, else the slowest period among the source's other
components (IOReport publishes a group's channels together), else DEFAULT_PUBLICATION_S.

A stalled or implausible component's energy is **unknown** for that run (None: never 0, never measured) in every
figure (energyprof.runner.engine). A cross-check source recorded beside the run (`--cross-check`) adds its figure
for the component to the verdict's sentence (:func:`with_cross_check`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from energyprof.components import CPU, DRAM, GPU, PACKAGE
from energyprof.power.base import CounterReading, PowerWindow

log = logging.getLogger(__name__)

OK, STALLED, BATCHED, IMPLAUSIBLE = "ok", "stalled", "batched", "implausible"
HealthStatus = Literal["ok", "stalled", "batched", "implausible"]
UNTRUSTED: frozenset[str] = frozenset({STALLED, IMPLAUSIBLE})
"""Verdicts whose component's energy is unknown for the run."""

STALL_PERIODS = 3
"""A used component's counter still for this many publication periods while the work runs is stalled ..."""
MIN_STALL_S = 1.0
"""... and for at least this long (see the module docstring)."""
BATCHED_S = 0.9
"""A publication period at least this long is a batch: about once a second or slower (0.9, not 1.0, so that a 1 s
publication measured at 0.98 s by the probe's polling is called the same)."""
DEFAULT_PUBLICATION_S = 1.0
"""The period assumed when nothing times a component: the slowest IOReport channels publish about once a second."""
CEILING_PERIODS = 2
"""The ceiling is checked on windows of at least this many publication periods: such a window holds at most
CEILING_PERIODS + 1 publications, so a real figure reads at most 1.5 times its power there, which the ceiling's own
margin (energyprof.power.chips.CEILING_MARGIN) absorbs."""
MIN_CEILING_WINDOW_S = 0.1
"""... and at least this long, so a 1 mJ quantum cannot read as more than 10 mW of excess."""

ALWAYS_USED: frozenset[str] = frozenset({CPU, DRAM, PACKAGE})
"""What any profiled work keeps busy: the CPU (the token loop, or the client of an endpoint), memory, the package."""
GPU_DEVICES: frozenset[str] = frozenset({"mps", "cuda"})


@dataclass(frozen=True)
class ComponentHealth:
    """One component's counter over one run (see the module docstring)."""

    status: HealthStatus
    note: str
    """One sentence for people: what was seen, what it means for the figures and what to do."""
    publication_s: float | None = None
    """The publication period the verdict used (see the module docstring)."""
    still_s: float | None = None
    """The longest time the counter did not move while the work ran (None: not judged, the work does not use it)."""
    peak_w: float | None = None
    """The highest mean power over the windows checked against the ceiling."""
    ceiling_w: float | None = None
    used: bool = True
    """Whether the profiled work uses this component (only a used component can be stalled)."""
    judged: bool = True
    """False when the work was too short to tell a stalled counter from a slow one (the note says how long is
    needed); the status is then `ok` or `batched` by default, and the figures are apportioned."""

    @property
    def trusted(self) -> bool:
        return self.status not in UNTRUSTED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: Any) -> ComponentHealth | None:
        if not isinstance(value, dict) or value.get("status") not in (OK, STALLED, BATCHED, IMPLAUSIBLE):
            return None
        numbers = {k: float(value[k]) if isinstance(value.get(k), int | float) and not isinstance(value.get(k), bool)
                   else None for k in ("publication_s", "still_s", "peak_w", "ceiling_w")}
        return cls(value["status"], str(value.get("note") or ""), **numbers, used=bool(value.get("used", True)),
                   judged=bool(value.get("judged", True)))


def used_components(device: str | None, runtime: str | None = None) -> frozenset[str]:
    """The components a profiled workload keeps busy: always the CPU, DRAM and package; the GPU on mps/cuda (and for
    MLX, which runs on the GPU through Metal on a Mac). Never the ANE: neither torch nor MLX runs on it."""
    if device in GPU_DEVICES or runtime == "mlx":
        return ALWAYS_USED | {GPU}
    return ALWAYS_USED


# -- the readings -----------------------------------------------------------------------------------------------
Series = tuple[np.ndarray, np.ndarray]
"""(times in ns, int64; cumulative values in mJ, float64, NaN where unknown), sorted by time."""


def series_of(readings: Iterable[CounterReading], components: Iterable[str]) -> dict[str, Series]:
    """Each component's counter values over time from counter readings (one value per distinct time)."""
    by_time: dict[int, CounterReading] = {}
    for reading in sorted(readings, key=lambda r: r.t_ns):
        by_time.setdefault(reading.t_ns, reading)
    times = np.array(list(by_time), dtype=np.int64)
    out = {}
    for comp in components:
        values = [r.energy_mj.get(comp) for r in by_time.values()]
        out[comp] = (times, np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64))
    return out


def series_from_windows(windows: Sequence[PowerWindow], components: Iterable[str]) -> dict[str, Series]:
    """A windowed source's windows as cumulative readings: 0 at the first window's start, then the running sum at
    each window's end (a window of unknown energy leaves the sum unknown from there on, which is no judgement)."""
    ordered_windows = sorted(windows, key=lambda w: (w.t1_ns, w.t0_ns))
    if not ordered_windows:
        return {c: (np.zeros(0, dtype=np.int64), np.zeros(0)) for c in components}
    times = np.array([ordered_windows[0].t0_ns] + [w.t1_ns for w in ordered_windows], dtype=np.int64)
    out = {}
    for comp in components:
        energy = [w.energy_mj.get(comp) for w in ordered_windows]
        steps = np.array([np.nan if e is None else float(e) for e in energy], dtype=np.float64)
        out[comp] = (times, np.concatenate([[0.0], np.cumsum(steps)]))
    return out


# -- the verdict ------------------------------------------------------------------------------------------------
def assess(series: Mapping[str, Series], work: tuple[int, int] | None, periods_s: Mapping[str, float | None],
           ceilings_w: Mapping[str, float | None], used: Iterable[str], *, ceiling_source: str = "",
           origin_ns: int | None = None) -> dict[str, ComponentHealth]:
    """Each component's verdict (see the module docstring); components without any known reading are left out.

    `work`: the span of the profiled work (first step start, last step end) on the readings' clock, None when nothing
    was profiled (no stall can be judged then). `periods_s`: the probe's update period per component (None:
    untimed). `ceilings_w`: the most each component can draw (None: unbounded); `ceiling_source` says where that
    figure comes from, for the sentence. `origin_ns`: the run's clock start, for times in sentences."""
    used = set(used)
    known = {c: _clean(t, v) for c, (t, v) in series.items()}
    known = {c: tv for c, tv in known.items() if tv[0].size}
    own = {c: _period_s(periods_s.get(c), t, v) for c, (t, v) in known.items()}
    slowest = max((p for p in own.values() if p is not None), default=None)
    origin = origin_ns if origin_ns is not None else min((int(t[0]) for t, _ in known.values()), default=0)
    out: dict[str, ComponentHealth] = {}
    for comp, (t, v) in known.items():
        out[comp] = _judge(comp, t, v, work, own[comp], slowest or DEFAULT_PUBLICATION_S, ceilings_w.get(comp),
                           comp in used, ceiling_source, origin)
        log.info("counter health of %s: %s (%s)", comp, out[comp].status, out[comp].note)
    return out


def _clean(t: np.ndarray, v: np.ndarray) -> Series:
    """The known readings, in time order."""
    t, v = np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64)
    keep = ~np.isnan(v)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], v[keep][order]


def _period_s(probed: float | None, t: np.ndarray, v: np.ndarray) -> float | None:
    """The probe's period, else the median time between the changes seen in the run (None with fewer than two)."""
    if probed is not None and probed > 0:
        return float(probed)
    changed = t[1:][np.diff(v) != 0]
    return float(np.median(np.diff(changed))) / 1e9 if changed.size >= 2 else None


def _judge(comp: str, t: np.ndarray, v: np.ndarray, work: tuple[int, int] | None, own_s: float | None,
           fallback_s: float, ceiling_w: float | None, used: bool, ceiling_source: str, origin: int
           ) -> ComponentHealth:
    """One component's verdict. `own_s`: its own publication period (None: nothing timed it); `fallback_s`: the
    period assumed for the stall and ceiling checks when it has none. Only its own period can make it batched."""
    period_s = own_s or fallback_s
    base = {"publication_s": period_s, "ceiling_w": ceiling_w, "used": used}
    drop = _backwards(t, v)
    if drop is not None:
        at_s, by_mj = drop
        return ComponentHealth(IMPLAUSIBLE, (
            f"The {comp} energy counter went backwards by {by_mj:,.0f} mJ {(at_s - origin) / 1e9:.1f} s into the run "
            "(a counter reset): its energy is unknown for this run; profile again, and report it with "
            "scripts/mac_check.sh if it repeats."), **base)
    peak_w, peak_window_s = _peak_power(t, v, period_s)
    base["peak_w"] = peak_w
    if ceiling_w is not None and peak_w is not None and peak_w > ceiling_w:
        where = f" ({ceiling_source})" if ceiling_source else ""
        return ComponentHealth(IMPLAUSIBLE, (
            f"The {comp} energy counter read {peak_w:.3g} W over {peak_window_s:.2g} s, above the {ceiling_w:,.0f} W "
            f"any {comp} here can draw{where}: a unit or counter error, so its energy is unknown for this run; "
            "report it with scripts/mac_check.sh."), **base)
    still_s, whole, judged = (None, False, True) if not used or work is None else _still_s(t, v, work, period_s)
    base["still_s"] = still_s
    if still_s is not None and still_s >= stall_threshold_s(period_s):
        work_s = (work[1] - work[0]) / 1e9
        around = f", nor for {still_s - work_s:.3g} s around it" if still_s > work_s * 1.01 else ""
        seen = (f"did not move at all during the {work_s:.3g} s of work{around}" if whole
                else f"did not move during {still_s:.3g} s of work")
        return ComponentHealth(STALLED, (
            f"The {comp} energy counter {seen} (it publishes about every {_period_text(period_s)}): its energy is "
            "unknown for this run, not 0; cross-check it with powermetrics (--cross-check powermetrics) and report it "
            "with scripts/mac_check.sh."), **base)
    if not judged:
        base["judged"] = False
    if own_s is not None and own_s >= BATCHED_S:
        return ComponentHealth(BATCHED, (
            f"The {comp} energy counter publishes in batches about every {_period_text(period_s)}: steps and windows "
            f"shorter than that are apportioned, and the power chart is smoothed over {_period_text(period_s)}."),
            **base)
    if not judged:
        return ComponentHealth(OK, (
            f"The {comp} energy counter did not move during the work nor around it ({still_s:.2g} s), too short to "
            f"tell a stalled counter from a slow one (that takes {stall_threshold_s(period_s):.2g} s): its figures are "
            "apportioned."), **base)
    if not used and v[-1] == v[0]:
        return ComponentHealth(OK, f"The {comp} energy counter did not move: this work does not use the {comp}, so "
                                   "its 0 J is measured.", **base)
    return ComponentHealth(OK, f"The {comp} energy counter moved about every {_period_text(period_s)}.", **base)


def stall_threshold_s(period_s: float) -> float:
    """How long a used counter must stay still while the work runs to be stalled (see the module docstring)."""
    return max(STALL_PERIODS * period_s, MIN_STALL_S)


def _period_text(period_s: float) -> str:
    return f"{period_s:.2g} s" if period_s >= 1 else f"{period_s * 1e3:.3g} ms"


def _backwards(t: np.ndarray, v: np.ndarray) -> tuple[int, float] | None:
    """(time, size in mJ) of the largest drop between consecutive readings; None when the counter only grows."""
    drops = np.diff(v)
    if drops.size == 0 or drops.min() >= 0:
        return None
    i = int(np.argmin(drops))
    return int(t[i + 1]), float(-drops[i])


def _peak_power(t: np.ndarray, v: np.ndarray, period_s: float) -> tuple[float | None, float | None]:
    """The highest mean power (W) over consecutive windows at least max(CEILING_PERIODS periods, 100 ms) long, and
    that window's length (s); (None, None) when the readings span less than one such window."""
    need_ns = int(max(CEILING_PERIODS * period_s, MIN_CEILING_WINDOW_S) * 1e9)
    best, best_s, anchor = None, None, 0
    ends = np.searchsorted(t, t + need_ns, side="left")
    while anchor < t.size:
        end = int(ends[anchor])
        if end >= t.size:
            break
        seconds = (t[end] - t[anchor]) / 1e9
        watts = (v[end] - v[anchor]) / 1e3 / seconds
        if best is None or watts > best:
            best, best_s = float(watts), float(seconds)
        anchor = end
    return best, best_s


def _still_s(t: np.ndarray, v: np.ndarray, work: tuple[int, int], period_s: float) -> tuple[float, bool, bool]:
    """The longest time (s) the counter did not move while the work ran, whether that still time covers the whole work,
    and whether it settles the question.

    A run of equal readings counts by its part inside the work; one that covers the whole work counts in full (the
    counter did not move over the whole workload nor around it). Not settled: the counter never moved during a work
    shorter than the stall threshold, and the still run around it is shorter than that too."""
    w0, w1 = work
    changes = np.flatnonzero(np.diff(v) != 0)
    starts = np.concatenate([[0], changes + 1])
    stops = np.concatenate([changes, [v.size - 1]])
    best, covered = 0.0, False
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        ta, tb = int(t[a]), int(t[b])
        if tb <= w0 or ta >= w1:
            continue
        if ta <= w0 and tb >= w1:
            covered = True
            best = max(best, (tb - ta) / 1e9)
        else:
            best = max(best, (min(tb, w1) - max(ta, w0)) / 1e9)
    settled = not covered or best >= stall_threshold_s(period_s)
    return best, covered, settled


def with_cross_check(health: Mapping[str, ComponentHealth], agreements: Mapping[str, Any],
                     cross_check: str | None) -> dict[str, ComponentHealth]:
    """The verdicts with a cross-check source's figure for each component added to their sentences (agreements:
    energyprof.summary.Agreement per component, over the workload)."""
    out = dict(health)
    for comp, h in health.items():
        agreement = agreements.get(comp)
        other = getattr(agreement, "cross_check_j", None)
        if not cross_check or other is None:
            continue
        ratio = getattr(agreement, "ratio", None)
        if h.trusted and ratio is not None:
            said = f" {cross_check} measured {other:.4g} J over the same work, {ratio:.3g} times this source's figure."
        else:
            said = f" {cross_check} measured {other:.4g} J of {comp} over the same work."
        out[comp] = replace(h, note=h.note + said)
    return out


def trusted_periods(health: Mapping[str, ComponentHealth], periods_ns: Mapping[str, int | None]
                    ) -> dict[str, int | None]:
    """The periods that label each component's figures: a batched component's publication period (so that anything
    shorter is apportioned); the others unchanged."""
    out = dict(periods_ns)
    for comp, h in health.items():
        if h.status == BATCHED and h.publication_s is not None:
            out[comp] = max(out.get(comp) or 0, round(h.publication_s * 1e9))
    return out


def statuses(health: Mapping[str, ComponentHealth]) -> dict[str, str]:
    """{component: status}, the JSON summary's `counter_health`."""
    return {c: h.status for c, h in health.items()}
