"""From replay trials and power readings to per-layer figures: energy and power per call, CI over trials, closure.

Per trial (one timed loop of `calls` calls over [t0, t1]) the mean power per component comes from:
- `counter`: the source's counter read at both ends of the loop (a counter source): (E1 - E0) / (t1 - t0);
- `windows`: the sample windows lying wholly inside the loop, their energy over their length: the layer ran alone
  for the whole of each, so nothing is shared out by time (the loop's partial first and last windows are left out);
- `apportioned`: a loop shorter than any whole window gets its time share of the windows (flagged by its method).
Then, per call: time = (t1 - t0) / calls, energy = power × time, net energy = (power - idle baseline power) × time.
A layer whose inputs hold a KV cache has the `(cache restore)` reference's time and energy per restore subtracted.
Figures are means over the trials with a 95 % CI (Student t) and the coefficient of variation (CV).

The replay closure of a phase: the summed energy per call of the replayed top-level layers (embedding, blocks,
norm, lm_head) over the measured energy of that step (mean over repeats). It is not 1: a layer alone, warm, in a
tight loop skips the Python between layers, the token choice and the launch overheads of a real step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from energyprof.analysis.attribution import NS_PER_MJ_AT_1W, attribute_intervals, mean_ci95
from energyprof.analysis.results import Row, energies, step_table
from energyprof.components import whole_system_arrays
from energyprof.power.base import PowerWindow
from energyprof.spec.records import Generation, Layer, ReplayOutcome, ReplayTrial
from energyprof.store.replay import RESTORE_LAYER_ID
from energyprof.summary import MeanCI
from energyprof.units import finite_or_none

COUNTER, WINDOWS, APPORTIONED = "counter", "windows", "apportioned"
COVERED = 0.999
"""A trial without a whole window inside it needs windows over this share of it (else its power is unknown)."""


@dataclass
class TrialPower:
    """One trial's mean power per component (W, NaN = unknown), how it was read, and whole windows inside it."""

    power_w: dict[str, float]
    method: str
    windows: int


@dataclass
class ReplayFigures:
    """The replay's figures; every field is a RunSummary field of the same name (RunSummary.take)."""

    replay_steps: dict[str, int] = field(default_factory=dict)
    replay_s: float | None = None
    replay_wall_s: float | None = None
    replay_skipped: list[str] = field(default_factory=list)
    replay_layers: int = 0
    replay_flagged: int = 0
    replay_sum_j: dict[str, float | None] = field(default_factory=dict)
    replay_step_j: dict[str, float | None] = field(default_factory=dict)
    replay_closure: dict[str, float | None] = field(default_factory=dict)
    replay_closure_net: dict[str, float | None] = field(default_factory=dict)


@dataclass
class ReplayResults:
    """What the attributing phase writes for a replay, and the figures the summary takes."""

    trial_rows: list[Row]
    layer_rows: list[Row]
    energy_rows: list[Row]
    figures: ReplayFigures


@dataclass
class WindowArrays:
    """Sample windows as arrays sorted by start (built once for all the trials of a run)."""

    t0: np.ndarray
    t1: np.ndarray
    energy: dict[str, np.ndarray]
    longest: int
    windows: Sequence[PowerWindow]

    @classmethod
    def of(cls, windows: Sequence[PowerWindow], components: Sequence[str]) -> WindowArrays:
        valid = sorted((w for w in windows if w.t1_ns > w.t0_ns), key=lambda w: w.t0_ns)
        t0 = np.array([w.t0_ns for w in valid], dtype=np.int64)
        t1 = np.array([w.t1_ns for w in valid], dtype=np.int64)
        energy = {c: np.array([_nan(w.energy_mj.get(c)) for w in valid], dtype=np.float64) for c in components}
        return cls(t0, t1, energy, int((t1 - t0).max()) if valid else 0, valid)

    def near(self, a: int, b: int) -> slice:
        """The windows that can overlap [a, b] (a superset: every window starting before b, ending after a)."""
        return slice(int(np.searchsorted(self.t0, a - self.longest, "left")), int(np.searchsorted(self.t0, b, "left")))


def trial_power(trial: ReplayTrial, windows: WindowArrays, components: Sequence[str]) -> TrialPower:
    """Mean power per component over one trial (see the module docstring for the three methods); NaN when unknown,
    e.g. a trial that the windows do not cover (a cancelled run's last one)."""
    a, b = trial.t0_ns, trial.t1_ns
    near = windows.near(a, b)
    t0, t1 = windows.t0[near], windows.t1[near]
    inside = (t0 >= a) & (t1 <= b)
    if trial.counter0 is not None and trial.counter1 is not None and b > a:
        span = trial.counter1.window_since(trial.counter0)
        power = {c: _nan(span.energy_mj.get(c)) * NS_PER_MJ_AT_1W / (b - a) for c in components}
        return TrialPower(power, COUNTER, int(inside.sum()))
    if inside.any():
        length = float((t1[inside] - t0[inside]).sum())
        power = {c: float(windows.energy[c][near][inside].sum()) * NS_PER_MJ_AT_1W / length for c in components}
        return TrialPower(power, WINDOWS, int(inside.sum()))
    covered = float(np.clip(np.minimum(t1, b) - np.maximum(t0, a), 0, None).sum())
    if b <= a or covered < COVERED * (b - a):
        return TrialPower({c: math.nan for c in components}, APPORTIONED, 0)
    shared = attribute_intervals(windows.windows[near], np.array([a], dtype=np.int64), np.array([b], dtype=np.int64),
                                 components)
    power = {c: float(shared.energy_mj[c][0]) * NS_PER_MJ_AT_1W / (b - a) for c in components}
    return TrialPower(power, APPORTIONED, 0)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass
class _Group:
    """The trials of one layer (or the reference) in one phase, per call, as arrays over trials."""

    trials: list[ReplayTrial]
    time_ns: np.ndarray
    gross: dict[str, np.ndarray]
    net: dict[str, np.ndarray]
    whole: np.ndarray
    net_whole: np.ndarray
    methods: list[str]
    windows: list[int]


def _group(trials: list[ReplayTrial], powers: list[TrialPower], components: Sequence[str],
           baseline_w: dict[str, float | None] | None) -> _Group:
    time_ns = np.array([(t.t1_ns - t.t0_ns) / t.calls for t in trials], dtype=np.float64)
    gross = {c: np.array([p.power_w[c] for p in powers]) * time_ns / NS_PER_MJ_AT_1W for c in components}
    base = baseline_w or {}
    net = {c: (np.array([p.power_w[c] for p in powers]) - _nan(base.get(c))) * time_ns / NS_PER_MJ_AT_1W
           for c in components}
    return _Group(trials, time_ns, gross, net, whole_system_arrays(gross) if gross else np.full(len(trials), np.nan),
                  whole_system_arrays(net) if net else np.full(len(trials), np.nan),
                  [p.method for p in powers], [p.windows for p in powers])


def _stat(values: np.ndarray, minus: MeanCI | None = None) -> MeanCI:
    """Mean and 95 % CI over trials, less a reference (its CI added in quadrature); unknown trials left out."""
    mean, ci = mean_ci95(values.tolist())
    n = int(np.sum(~np.isnan(values)))
    if math.isnan(mean):
        return MeanCI(None, None, 0)
    if minus is not None:
        if minus.mean is None:
            return MeanCI(None, None, n)
        mean -= minus.mean
        if ci is not None and minus.ci95 is not None:
            ci = math.hypot(ci, minus.ci95)
    return MeanCI(mean, ci, n)


def _cv(values: np.ndarray, shift: float) -> float | None:
    """Coefficient of variation of the trials (less the reference mean), None for fewer than two."""
    known = values[~np.isnan(values)] - shift
    if known.size < 2 or np.mean(known) == 0:
        return None
    return float(np.std(known, ddof=1) / abs(np.mean(known)))


def replay_results(outcome: ReplayOutcome, windows: Sequence[PowerWindow], components: Sequence[str],
                   baseline_w: dict[str, float | None] | None, layers: Sequence[Layer],
                   generations: Sequence[Generation]) -> ReplayResults:
    """Rows for replay_trials, layer_replay and layer_replay_energy, and the replay's RunSummary fields."""
    comps = list(components)
    arrays = WindowArrays.of(windows, comps)
    groups: dict[tuple[int, str], tuple[list[ReplayTrial], list[TrialPower]]] = {}
    for trial in outcome.trials:
        entry = groups.setdefault((trial.layer_id, trial.phase), ([], []))
        entry[0].append(trial)
        entry[1].append(trial_power(trial, arrays, comps))
    built = {key: _group(trials, powers, comps, baseline_w) for key, (trials, powers) in groups.items()}
    trial_rows = [row for g in built.values() for row in _trial_rows(g)]
    layer_rows: list[Row] = []
    energy_rows: list[Row] = []
    per_call: dict[tuple[int, str], float | None] = {}
    per_call_net: dict[tuple[int, str], float | None] = {}
    for (layer_id, phase), g in built.items():
        reference = built.get((RESTORE_LAYER_ID, phase)) if layer_id != RESTORE_LAYER_ID and g.trials[0].restored \
            else None
        row, comp_rows = _layer_rows(layer_id, phase, g, reference, comps)
        layer_rows.append(row)
        energy_rows.extend(comp_rows)
        per_call[(layer_id, phase)], per_call_net[(layer_id, phase)] = row[6], row[7]
    figures = _figures(outcome, layers, generations, windows, comps, baseline_w, per_call, per_call_net, layer_rows)
    return ReplayResults(trial_rows, layer_rows, energy_rows, figures)


def _trial_rows(g: _Group) -> list[Row]:
    """(layer_id, phase, step_idx, trial, t0_ns, t1_ns, calls, energy_mj, net_energy_mj) per trial, whole loop."""
    return [(t.layer_id, t.phase, t.step, t.trial, t.t0_ns, t.t1_ns, t.calls, finite_or_none(g.whole[i] * t.calls),
             finite_or_none(g.net_whole[i] * t.calls)) for i, t in enumerate(g.trials)]


def _layer_rows(layer_id: int, phase: str, g: _Group, reference: _Group | None,
                components: Sequence[str]) -> tuple[Row, list[Row]]:
    """One layer_replay row and its layer_replay_energy rows (energy per call, reference subtracted)."""
    def ref(values: np.ndarray | None) -> MeanCI | None:
        return _stat(values) if reference is not None and values is not None else None

    time_ref = ref(reference.time_ns if reference else None)
    time = _stat(g.time_ns, time_ref)
    gross = _stat(g.whole, ref(reference.whole if reference else None))
    net = _stat(g.net_whole, ref(reference.net_whole if reference else None))
    power = _power(gross.mean, time.mean)
    net_power = _power(net.mean, time.mean)
    shift = (ref(reference.whole if reference else None) or MeanCI(0.0)).mean or 0.0
    method = APPORTIONED if APPORTIONED in g.methods else g.methods[0]
    flagged = gross.wider_than_mean or net.wider_than_mean
    row = (layer_id, phase, g.trials[0].step, gross.n, int(sum(t.calls for t in g.trials)), time.mean, gross.mean,
           net.mean, power, net_power, gross.ci95, net.ci95, _cv(g.whole, shift), int(flagged), method,
           min(g.windows), int(reference is not None))
    comp_rows = []
    for comp in components:
        c_gross = _stat(g.gross[comp], ref(reference.gross[comp] if reference else None))
        c_net = _stat(g.net[comp], ref(reference.net[comp] if reference else None))
        comp_rows.append((layer_id, phase, comp, c_gross.mean, c_net.mean, c_gross.ci95))
    return row, comp_rows


def _power(energy_mj: float | None, time_ns: float | None) -> float | None:
    if energy_mj is None or time_ns is None or time_ns <= 0:
        return None
    return energy_mj * NS_PER_MJ_AT_1W / time_ns


def _figures(outcome: ReplayOutcome, layers: Sequence[Layer], generations: Sequence[Generation],
             windows: Sequence[PowerWindow], components: Sequence[str], baseline_w: dict[str, float | None] | None,
             per_call: dict[tuple[int, str], float | None], per_call_net: dict[tuple[int, str], float | None],
             layer_rows: list[Row]) -> ReplayFigures:
    """The replay closure per phase, the replayed and measured step energies, counts."""
    top = [x.layer_id for x in layers if x.parent_id is None and x.module is not None]
    measured, measured_net = measured_step_energy_j(generations, windows, components, baseline_w, outcome.steps)
    sums = {phase: _sum_j(per_call, top, phase) for phase in outcome.steps}
    sums_net = {phase: _sum_j(per_call_net, top, phase) for phase in outcome.steps}
    return ReplayFigures(
        replay_steps=dict(outcome.steps),
        replay_s=outcome.seconds_per_trial,
        replay_wall_s=outcome.wall_s,
        replay_skipped=list(outcome.skipped),
        replay_layers=sum(1 for r in layer_rows if r[0] != RESTORE_LAYER_ID and r[6] is not None),
        replay_flagged=sum(1 for r in layer_rows if r[0] != RESTORE_LAYER_ID and r[13]),
        replay_sum_j=sums,
        replay_step_j=measured,
        replay_closure={p: _ratio(sums[p], measured.get(p)) for p in outcome.steps},
        replay_closure_net={p: _ratio(sums_net[p], measured_net.get(p)) for p in outcome.steps},
    )


def _sum_j(per_call: dict[tuple[int, str], float | None], top: Sequence[int], phase: str) -> float | None:
    """The summed energy per call (J) of the top-level layers in one phase; None when any of them is unknown."""
    values = [per_call.get((layer_id, phase)) for layer_id in top]
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / 1e3


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return part / whole


def measured_step_energy_j(generations: Sequence[Generation], windows: Sequence[PowerWindow],
                           components: Sequence[str], baseline_w: dict[str, float | None] | None,
                           steps: dict[str, int]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Whole-system gross and net energy (J) of each replayed step in the measured repeats, mean over repeats."""
    table = step_table([g for g in generations if g.steps])
    if table.t0.size == 0:
        return {}, {}
    e = energies(windows, table.t0, table.t1, components, baseline_w)
    gross: dict[str, float | None] = {}
    net: dict[str, float | None] = {}
    for phase, idx in steps.items():
        mask = (table.phase == phase) & (table.idx == idx)
        gross[phase] = _mean_j(e.whole[mask])
        net[phase] = _mean_j(e.net_whole[mask]) if baseline_w is not None else None
    return gross, net


def _mean_j(values: np.ndarray) -> float | None:
    known = values[~np.isnan(values)]
    return float(known.mean()) / 1e3 if known.size else None
