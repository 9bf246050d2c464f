"""From recorded steps, layer calls and power windows to stored rows and the run's summary (pure numpy).

Steps get per-component gross and net energy; every layer call gets whole-system energy; the pseudo-layer
`other` per step is the step minus its top-level layer calls (time and energy), so layers + other = step.

Every figure says how it was obtained (`how`: measured / apportioned / estimated, energyprof.provenance). For a
counter source read at step boundaries, each component is attributed from its own chain of windows
(energyprof.analysis.counter_chain) and a step is measured only when it covers whole windows and lasts at least
that component's update period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from energyprof.analysis.attribution import (
    attribute_intervals,
    baseline_power_w,
    mean_ci95,
    net_energy_mj,
    whole_system_mj,
)
from energyprof.power.base import PowerWindow
from energyprof.provenance import (
    MEASURED,
    UNKNOWN,
    Provenance,
    interval_provenance_array,
    measured_share,
    whole_system_provenance,
)
from energyprof.spec.records import Generation, Layer
from energyprof.summary import ComponentValues, MeanCI
from energyprof.units import plain_or_none

Row = tuple[Any, ...]


@dataclass
class StepTable:
    """Every recorded step of the measured repeats as arrays, one entry per step."""

    repeat: np.ndarray
    idx: np.ndarray
    phase: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    n_tokens: np.ndarray
    offsets: dict[int, int]
    """Row of each repeat's step 0."""

    @property
    def duration(self) -> np.ndarray:
        return (self.t1 - self.t0).astype(np.float64)


@dataclass
class CallTable:
    """Every layer call of the measured repeats: layer id, global step row, start and end."""

    layer: np.ndarray
    step_row: np.ndarray
    t0: np.ndarray
    t1: np.ndarray

    @property
    def duration(self) -> np.ndarray:
        return (self.t1 - self.t0).astype(np.float64)


@dataclass
class Energies:
    """Per-component gross and net energy (mJ), whole-system totals and resolution of some intervals."""

    gross: dict[str, np.ndarray]
    net: dict[str, np.ndarray]
    whole: np.ndarray
    net_whole: np.ndarray
    resolution: np.ndarray
    """The worst (smallest) resolution over the components, per interval."""
    resolution_by: dict[str, np.ndarray] | None = None
    """Per component, when components are attributed from their own windows (None: `resolution` for all)."""

    def component_resolution(self, component: str) -> np.ndarray:
        return self.resolution if self.resolution_by is None else self.resolution_by[component]


@dataclass(frozen=True)
class HowContext:
    """What labels a figure: the source's provenance and, per component, its counter's update period in ns (None:
    untimed or not a counter, so only the resolution decides)."""

    source_kind: Provenance = MEASURED
    periods_ns: dict[str, int | None] | None = None

    def labels(self, e: Energies, duration_ns: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per component and whole-system: how each interval's energy was obtained (unknown energy: unknown)."""
        by = {}
        for comp, gross in e.gross.items():
            labels = interval_provenance_array(self.source_kind, e.component_resolution(comp), duration_ns,
                                               (self.periods_ns or {}).get(comp))
            labels[np.isnan(gross)] = UNKNOWN
            by[comp] = labels
        return by, whole_system_provenance(by) if by else np.full(duration_ns.size, UNKNOWN, dtype=object)


@dataclass
class EnergyFigures:
    """The run's energy figures; every field is a RunSummary field of the same name (RunSummary.take)."""

    energy_j: ComponentValues = field(default_factory=dict)
    net_energy_j: ComponentValues | None = None
    total_energy_j: float | None = None
    net_total_energy_j: float | None = None
    baseline_w: ComponentValues | None = None
    j_per_token: dict[str, MeanCI] = field(default_factory=dict)
    net_j_per_token: dict[str, MeanCI] | None = None
    tokens_per_s: float | None = None
    prefill_tokens_per_s: float | None = None
    duration_s: float | None = None
    mean_w: ComponentValues = field(default_factory=dict)
    peak_w: ComponentValues = field(default_factory=dict)
    closure_error: float | None = None
    closure: dict[str, float | None] = field(default_factory=dict)
    step_resolution_median: float | None = None
    unknown_steps: int = 0
    tokens_measured_share: float | None = None
    tokens_measured_share_by_component: ComponentValues | None = None


@dataclass
class Attributed:
    """Everything the attributing phase writes, plus the figures the summary takes."""

    step_energy_rows: list[Row]
    layer_call_rows: list[Row]
    layer_energy_rows: list[Row]
    figures: EnergyFigures


def step_table(generations: Sequence[Generation]) -> StepTable:
    """The steps of these generations, in order, as arrays."""
    steps = [(g.repeat, *s[:5]) for g in generations for s in g.steps]
    offsets, row = {}, 0
    for g in generations:
        offsets[g.repeat] = row
        row += len(g.steps)
    if not steps:
        empty = np.zeros(0, dtype=np.int64)
        return StepTable(empty, empty, np.zeros(0, dtype=object), empty, empty, empty, offsets)
    rep, idx, phase, t0, t1, n = zip(*steps, strict=True)
    return StepTable(np.array(rep), np.array(idx), np.array(phase, dtype=object), np.array(t0, dtype=np.int64),
                     np.array(t1, dtype=np.int64), np.array(n), offsets)


def call_table(generations: Sequence[Generation], steps: StepTable) -> CallTable:
    """The layer calls of these generations whose step was recorded (a cancelled step's calls are dropped)."""
    layer, row, t0, t1 = [], [], [], []
    for g in generations:
        base, n = steps.offsets[g.repeat], len(g.steps)
        for lid, step, a, b in g.calls:
            if step < n:
                layer.append(lid)
                row.append(base + step)
                t0.append(a)
                t1.append(b)
    return CallTable(np.array(layer, dtype=np.int64), np.array(row, dtype=np.int64),
                     np.array(t0, dtype=np.int64), np.array(t1, dtype=np.int64))


def energies(windows: Sequence[PowerWindow], t0: np.ndarray, t1: np.ndarray, components: Sequence[str],
             baseline_w: dict[str, float | None] | None,
             chains: dict[str, list[PowerWindow]] | None = None) -> Energies:
    """Attribute intervals and derive net energy and whole-system totals; with `chains`, each component from its own
    windows (energyprof.analysis.counter_chain)."""
    resolution_by = None
    if chains is None:
        att = attribute_intervals(windows, t0, t1, components)
        gross, resolution = att.energy_mj, att.resolution
    else:
        gross, resolution_by = {}, {}
        for comp in components:
            att = attribute_intervals(chains.get(comp, windows), t0, t1, [comp])
            gross[comp], resolution_by[comp] = att.energy_mj[comp], att.resolution
        resolution = (np.fmin.reduce(list(resolution_by.values())) if resolution_by
                      else np.full(np.asarray(t0).size, np.nan))
    duration = (t1 - t0).astype(np.float64)
    net = {c: net_energy_mj(e, duration, (baseline_w or {}).get(c)) for c, e in gross.items()}
    return Energies(gross, net, whole_system_mj(gross) if gross else np.full(t0.size, np.nan),
                    whole_system_mj(net) if net else np.full(t0.size, np.nan), resolution, resolution_by)


def baseline_of(windows: Sequence[PowerWindow], span: tuple[int, int] | None,
                components: Sequence[str]) -> dict[str, float | None] | None:
    """Baseline power per component over the idle span, or None when no baseline was taken."""
    if span is None or span[1] <= span[0]:
        return None
    return baseline_power_w(windows, span[0], span[1], components)


def attribute_run(windows: Sequence[PowerWindow], generations: Sequence[Generation], layers: Sequence[Layer],
                  components: Sequence[str], baseline_span: tuple[int, int] | None, *,
                  chains: dict[str, list[PowerWindow]] | None = None, how: HowContext | None = None) -> Attributed:
    """Rows for step_energy, layer_calls and layer_energy, and the energy part of the summary.

    `windows` are the sampler's periodic windows (baseline, peaks); `chains`, when given, the windows each component's
    steps and calls are attributed from; `how` labels every figure (default: a measured source without counter)."""
    how = how or HowContext()
    generations = [g for g in generations if g.steps]
    steps = step_table(generations)
    baseline = baseline_of(windows, baseline_span, components)
    step_e = energies(windows, steps.t0, steps.t1, components, baseline, chains)
    step_how, step_whole_how = how.labels(step_e, steps.duration)
    step_rows = _step_energy_rows(steps, step_e, step_how)
    call_rows: list[Row] = []
    layer_rows: list[Row] = []
    layer_closure = None
    if layers:
        calls = call_table(generations, steps)
        call_e = energies(windows, calls.t0, calls.t1, components, baseline, chains)
        top = np.isin(calls.layer, [x.layer_id for x in layers if x.parent_id is None and x.module is not None])
        other = _other(steps, step_e, calls, call_e, top, components, baseline)
        other_id = layers[-1].layer_id
        call_rows = (_call_rows(steps, calls, call_e, how.labels(call_e, calls.duration)[1])
                     + _other_rows(steps, other, other_id, how.labels(other.energy, other.time)[1]))
        layer_rows = _layer_energy_rows(layers, calls, call_e, other, other_id, components, baseline)
        layer_closure = _closure(float(np.nansum(step_e.whole)),
                                 float(np.nansum(call_e.whole[top]) + np.nansum(other.energy.whole)))
    figures = _energy_figures(windows, generations, steps, step_e, components, baseline, layer_closure, chains)
    figures.tokens_measured_share = measured_share(step_whole_how)
    figures.tokens_measured_share_by_component = {c: measured_share(labels) for c, labels in step_how.items()}
    return Attributed(step_rows, call_rows, layer_rows, figures)


def per_token_over(windows: Sequence[PowerWindow], generations: Sequence[Generation],
                   components: Sequence[str]) -> dict[str, MeanCI]:
    """Gross J/token per phase of these generations from the windows alone (what a precision goal checks)."""
    generations = [g for g in generations if g.steps]
    steps = step_table(generations)
    return _per_token(generations, steps, energies(windows, steps.t0, steps.t1, components, None).whole)


@dataclass
class Other:
    """The pseudo-layer `other`, one value per step: time outside top-level layers and its energy."""

    time: np.ndarray
    energy: Energies


def _other(steps: StepTable, step_e: Energies, calls: CallTable, call_e: Energies, top: np.ndarray,
           components: Sequence[str], baseline: dict[str, float | None] | None) -> Other:
    """Per step: the step minus its top-level layer calls, in time and per-component energy."""
    n = steps.t0.size
    rows = calls.step_row[top]

    def per_step(values: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=values[top], minlength=n)[:n] if n else np.zeros(0)

    time = steps.duration - per_step(calls.duration)
    gross = {c: step_e.gross[c] - per_step(call_e.gross[c]) for c in components}
    net = {c: net_energy_mj(gross[c], time, (baseline or {}).get(c)) for c in components}
    whole = step_e.whole - per_step(call_e.whole)
    net_whole = whole_system_mj(net) if net else np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(steps.duration > 0, time / steps.duration, np.nan)
    resolution = np.clip(step_e.resolution * share, 0, None)
    resolution_by = None if step_e.resolution_by is None else {
        c: np.clip(r * share, 0, None) for c, r in step_e.resolution_by.items()}
    return Other(time, Energies(gross, net, whole, net_whole, resolution, resolution_by))


def _step_energy_rows(steps: StepTable, e: Energies, how: dict[str, np.ndarray]) -> list[Row]:
    """(repeat, idx, component, energy_mj, net_energy_mj, resolution, how) per step and component."""
    rows: list[Row] = []
    for comp in e.gross:
        rows.extend(zip(steps.repeat.tolist(), steps.idx.tolist(), [comp] * steps.t0.size,
                        _nullable(e.gross[comp]), _nullable(e.net[comp]), _nullable(e.component_resolution(comp)),
                        how[comp].tolist(), strict=True))
    return rows


def _nullable(values: np.ndarray) -> list[Any]:
    """A float array as a list with None for NaN."""
    arr = np.asarray(values, dtype=np.float64)
    out = arr.astype(object)
    out[np.isnan(arr)] = None
    return out.tolist()


def _call_rows(steps: StepTable, calls: CallTable, e: Energies, how: np.ndarray) -> list[Row]:
    """(repeat, step_idx, layer_id, t0_ns, t1_ns, time_ns, energy_mj, resolution, how) per call."""
    return list(zip(steps.repeat[calls.step_row].tolist(), steps.idx[calls.step_row].tolist(), calls.layer.tolist(),
                    calls.t0.tolist(), calls.t1.tolist(), (calls.t1 - calls.t0).tolist(), _nullable(e.whole),
                    _nullable(e.resolution), how.tolist(), strict=True))


def _other_rows(steps: StepTable, other: Other, other_id: int, how: np.ndarray) -> list[Row]:
    """One `other` call per step, without start and end (it is the step's time outside hooked layers)."""
    n = steps.t0.size
    return list(zip(steps.repeat.tolist(), steps.idx.tolist(), [other_id] * n, [None] * n, [None] * n,
                    np.round(other.time).astype(np.int64).tolist(), _nullable(other.energy.whole),
                    _nullable(other.energy.resolution), how.tolist(), strict=True))


def _layer_energy_rows(layers: Sequence[Layer], calls: CallTable, e: Energies, other: Other, other_id: int,
                       components: Sequence[str], baseline: dict[str, float | None] | None) -> list[Row]:
    """(layer_id, component, calls, time_ns, energy_mj, net_energy_mj, resolution) per layer and component."""
    rows: list[Row] = []
    for layer in layers:
        if layer.layer_id == other_id:
            continue
        mask = calls.layer == layer.layer_id
        rows.extend(_aggregate(layer.layer_id, int(mask.sum()), calls.duration[mask],
                               {c: e.gross[c][mask] for c in components}, e.resolution[mask], components, baseline))
    rows.extend(_aggregate(other_id, other.time.size, other.time, other.energy.gross, other.energy.resolution,
                           components, baseline))
    return rows


def _aggregate(layer_id: int, n_calls: int, time: np.ndarray, gross: dict[str, np.ndarray], resolution: np.ndarray,
               components: Sequence[str], baseline: dict[str, float | None] | None) -> list[Row]:
    """One layer_energy row per component: sums over calls (unknown if any call is unknown)."""
    total_time = float(time.sum())
    res = float(np.nanmean(resolution)) if resolution.size and not np.all(np.isnan(resolution)) else None
    rows = []
    for comp in components:
        energy = float(gross[comp].sum()) if gross[comp].size else 0.0
        net = net_energy_mj(np.array([energy]), np.array([total_time]), (baseline or {}).get(comp))[0]
        rows.append((layer_id, comp, n_calls, int(round(total_time)), plain_or_none(energy), plain_or_none(net), res))
    return rows


def _closure(reference: float, parts: float) -> float | None:
    """|parts - reference| / reference, None when the reference is zero or unknown."""
    if not math.isfinite(reference) or reference == 0:
        return None
    return abs(parts - reference) / abs(reference)


def _energy_figures(windows: Sequence[PowerWindow], generations: Sequence[Generation], steps: StepTable,
                    e: Energies, components: Sequence[str], baseline: dict[str, float | None] | None,
                    layer_closure: float | None, chains: dict[str, list[PowerWindow]] | None = None) -> EnergyFigures:
    """Energy totals, J/token, throughput, power and closure checks."""
    spans = [g.span_ns for g in generations if g.span_ns]
    span_t0 = np.array([s[0] for s in spans], dtype=np.int64)
    span_t1 = np.array([s[1] for s in spans], dtype=np.int64)
    window_e = energies(windows, span_t0, span_t1, components, None, chains)
    steps_total = float(np.nansum(e.whole))
    window_closure = _closure(float(np.nansum(window_e.whole)), steps_total)
    checks = [c for c in (layer_closure, window_closure) if c is not None]
    duration_ns = float((span_t1 - span_t0).sum())
    return EnergyFigures(
        energy_j={c: _sum_j(e.gross[c]) for c in components},
        net_energy_j={c: _sum_j(e.net[c]) for c in components} if baseline is not None else None,
        total_energy_j=_sum_j(e.whole),
        net_total_energy_j=_sum_j(e.net_whole) if baseline is not None else None,
        baseline_w=baseline,
        j_per_token=_per_token(generations, steps, e.whole),
        net_j_per_token=_per_token(generations, steps, e.net_whole) if baseline is not None else None,
        tokens_per_s=_tokens_per_s(steps),
        prefill_tokens_per_s=_prefill_tokens_per_s(steps),
        duration_s=duration_ns / 1e9,
        mean_w={c: _mean_w(e.gross[c], duration_ns) for c in components},
        peak_w=_peak_w(windows, spans, components),
        closure_error=max(checks) if checks else None,
        closure={"layers_vs_steps": layer_closure, "steps_vs_window": window_closure},
        step_resolution_median=plain_or_none(float(np.nanmedian(e.resolution))) if np.any(~np.isnan(e.resolution))
        else None,
        unknown_steps=int(np.isnan(e.whole).sum()),
    )


def _sum_j(values: np.ndarray) -> float | None:
    """Sum in joules; None when any part is unknown (or nothing was recorded)."""
    if values.size == 0 or np.isnan(values).any():
        return None
    return float(values.sum()) / 1e3


def _mean_w(values: np.ndarray, duration_ns: float) -> float | None:
    total = _sum_j(values)
    return None if total is None or duration_ns <= 0 else total / (duration_ns / 1e9)


def _per_token(generations: Sequence[Generation], steps: StepTable, whole: np.ndarray) -> dict[str, MeanCI]:
    """J/token per phase: mean and 95% CI half-width over repeats (prefill per prompt token)."""
    per_phase: dict[str, list[float]] = {"prefill": [], "decode": [], "forward": []}
    for g in generations:
        rows = slice(steps.offsets[g.repeat], steps.offsets[g.repeat] + len(g.steps))
        for phase in per_phase:
            mask = steps.phase[rows] == phase
            tokens = int(steps.n_tokens[rows][mask].sum())
            if tokens:
                per_phase[phase].append(float(whole[rows][mask].sum()) / 1e3 / tokens)
    out = {phase: _mean_ci(values) for phase, values in per_phase.items()}
    if not per_phase["forward"]:
        del out["forward"]
    return out


def _mean_ci(values: list[float]) -> MeanCI:
    mean, half = mean_ci95(values)
    return MeanCI(plain_or_none(mean), plain_or_none(half), sum(1 for v in values if not math.isnan(v)))


def _tokens_per_s(steps: StepTable) -> float | None:
    """Decode tokens per second, mean over repeats."""
    rates = []
    for repeat in np.unique(steps.repeat):
        mask = (steps.repeat == repeat) & (steps.phase == "decode")
        seconds = float(steps.duration[mask].sum()) / 1e9
        if mask.any() and seconds > 0:
            rates.append(int(steps.n_tokens[mask].sum()) / seconds)
    return float(np.mean(rates)) if rates else None


def _prefill_tokens_per_s(steps: StepTable) -> float | None:
    """Prompt tokens per second of the prefill (or forward) step, mean over repeats (an endpoint that did not say
    its prompt's size records 0 tokens: left out)."""
    mask = np.isin(steps.phase, ["prefill", "forward"]) & (steps.duration > 0) & (steps.n_tokens > 0)
    if not mask.any():
        return None
    return float(np.mean(steps.n_tokens[mask] / (steps.duration[mask] / 1e9)))


def _peak_w(windows: Sequence[PowerWindow], spans: Sequence[tuple[int, int]],
            components: Sequence[str]) -> dict[str, float | None]:
    """Highest mean power of any window overlapping the workload, per component."""
    peak: dict[str, float | None] = {c: None for c in components}
    for w in windows:
        if not any(w.t0_ns < b and w.t1_ns > a for a, b in spans):
            continue
        for comp in components:
            p = w.power_w(comp)
            if p is not None and (peak[comp] is None or p > peak[comp]):
                peak[comp] = p
    return peak
