"""The run summary: the one record every writer fills (profile job, `profile_generation`, `measure(db=)`,
`sample`, `import-powermetrics`) and every reader trusts (the pages, `runs`, exports, `--json`).

It is stored as JSON in the run row (`RunSummary.to_dict()`, flat keys, units in the names) and read back with
`RunSummary.from_dict()`, which tolerates summaries written by older versions (unknown keys are ignored, a value
of the wrong shape is dropped rather than trusted). Per-component figures are `{component: value}` dicts with
None for unknown; whole-system figures follow the one rule in `energyprof.components`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from energyprof.analysis.counter_health import BATCHED, UNTRUSTED, ComponentHealth
from energyprof.components import ordered, whole_system
from energyprof.machine import UNKNOWN_MACHINE, Machine
from energyprof.provenance import Provenance, source_provenance
from energyprof.textsafe import terminal_text
from energyprof.units import finite_or_none

ComponentValues = dict[str, float | None]
"""A figure per component (J or W, as the field name says); None = unknown, never 0."""

PHASES: tuple[str, ...] = ("prefill", "decode", "forward")
CLOSURE_FAR: tuple[float, float] = (0.5, 2.0)
"""A replay closure outside this range is flagged with its likely cause (summary.replay_closure_problem): a layer
alone in a loop differs from the real step by tens of percent (README), not by a factor of two."""

PEAK_MEMORY_SOURCES: dict[str, str] = {
    "mlx": "MLX's peak allocation: weights, activations, KV cache",
    "cuda": "torch's peak CUDA allocation",
    "mps": "the Metal driver's allocation, largest after a repeat",
    "rss": "the process's peak resident memory, model loading included",
}
"""What each kind of peak-memory figure counts (RunSummary.peak_memory_source)."""
DISTURBED_CORES = 0.10
"""A run whose other processes used this many more (or fewer) CPU cores during the workload than during the idle
baseline is *disturbed*: the baseline no longer describes what the rest of the machine drew."""


@dataclass(frozen=True)
class ProcessCpu:
    """Another process's mean CPU use over a span (cores = CPU seconds per wall second)."""

    pid: int
    name: str
    cores: float
    dashboard: bool = False
    """The process belongs to the dashboard (the Streamlit server or a browser), recognised by its command line."""

    def describe(self) -> str:
        """For people: name (escaped, bounded: energyprof.textsafe), pid and cores."""
        tag = ", dashboard" if self.dashboard else ""
        return f"{terminal_text(self.name, 60)} (pid {self.pid}{tag}) {self.cores:.2f} cores"

    @classmethod
    def from_value(cls, value: Any) -> ProcessCpu | None:
        if not isinstance(value, dict) or finite_or_none(value.get("cores")) is None:
            return None
        return cls(int(value.get("pid") or 0), str(value.get("name") or "?"), float(value["cores"]),
                   bool(value.get("dashboard")))


@dataclass
class MeanCI:
    """A mean over repeats and the half-width of its 95 % confidence interval (Student t); None when unknown."""

    mean: float | None = None
    ci95: float | None = None
    n: int = 0

    @property
    def relative_ci(self) -> float | None:
        """ci95 / |mean| (None when either is unknown or the mean is 0)."""
        if self.mean is None or self.ci95 is None or self.mean == 0:
            return None
        return self.ci95 / abs(self.mean)

    @property
    def wider_than_mean(self) -> bool:
        """True when the 95 % CI is wider than the mean itself: the figure is flagged, not hidden."""
        return self.mean is not None and self.ci95 is not None and self.ci95 > abs(self.mean)

    @classmethod
    def from_value(cls, value: Any) -> MeanCI | None:
        if isinstance(value, MeanCI):
            return value
        if not isinstance(value, dict):
            return None
        return cls(finite_or_none(value.get("mean")), finite_or_none(value.get("ci95")), int(value.get("n") or 0))


@dataclass
class Agreement:
    """A component as two sources saw it over the workload (energyprof.analysis.cross_check): each one's energy, and
    how well their mean power agrees on a common time grid."""

    primary_j: float | None = None
    """The run's own source: the energy over the grid's bins (the workload, cut into whole bins)."""
    cross_check_j: float | None = None
    """The cross-check source over the same bins."""
    ratio: float | None = None
    """cross_check_j / primary_j."""
    correlation: float | None = None
    """Pearson correlation of the two sources' mean power per bin (None with fewer than 3 bins or a flat series)."""
    bins: int = 0
    bin_s: float | None = None

    @classmethod
    def from_value(cls, value: Any) -> Agreement | None:
        if isinstance(value, Agreement):
            return value
        if not isinstance(value, dict):
            return None
        return cls(*(finite_or_none(value.get(k)) for k in ("primary_j", "cross_check_j", "ratio", "correlation")),
                   int(value.get("bins") or 0), finite_or_none(value.get("bin_s")))


@dataclass
class RunSummary:
    """What a run found. Fields that do not apply to a run's kind stay None (or empty)."""

    # -- the run
    run_id: int | None = None
    kind: str = "profile"
    status: str = "running"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    power_incomplete: bool = False
    machine: Machine | None = None
    """The machine that made the run (energyprof.machine); None for runs written before machines were recorded."""
    # -- the power source
    source: str | None = None
    measured: bool | None = None
    interval_ms: int | None = None
    windows: int = 0
    samples_skipped: int = 0
    # -- the model and workload (profile runs)
    runtime: str | None = None
    """How the model ran: `transformers`, `mlx` (a model loaded here) or `endpoint` (a server)."""
    runtime_reason: str | None = None
    """Why that runtime (asked for, or what `auto` saw in the model's files)."""
    model: str | None = None
    model_kind: str | None = None
    n_params: int | None = None
    device: str | None = None
    dtype: str | None = None
    quantization: str | None = None
    """How the weights are quantised (e.g. `4-bit affine, group 32` for an MLX model); None: full precision."""
    peak_memory_mb: float | None = None
    """Peak memory of the run (model loaded, warm-up and repeats), MB; what it counts is `peak_memory_source`."""
    peak_memory_source: str | None = None
    """`mlx` (mx.get_peak_memory after a reset at load), `cuda` (torch's peak allocated), `mps` (the Metal driver's
    allocation after each repeat, the largest) or `rss` (the process's peak resident memory, model loading
    included)."""
    layers: str | None = None
    prompt_tokens: int | None = None
    """Prompt tokens per sequence (the longest, when the sequences of a batch differ)."""
    prompt_tokens_each: list[int] = field(default_factory=list)
    """Prompt tokens of each sequence of the batch."""
    batch: int | None = None
    """Sequences generated together; a step's tokens are one per sequence (the prefill: every prompt token)."""
    new_tokens: list[int] = field(default_factory=list)
    """Generated tokens of each measured repeat, every sequence of the batch counted."""
    repeats: int = 0
    repeats_requested: int | None = None
    target_ci_pct: float | None = None
    """The precision asked for: decode J/token 95 % CI half-width as a % of the mean (None: fixed repeats)."""
    max_seconds: float | None = None
    """The time cap on the repeats that goes with target_ci_pct."""
    target_ci_met: bool | None = None
    """Whether the run's decode J/token CI is within target_ci_pct (None without a target)."""
    ci_pct: float | None = None
    """The decode (encoder: forward) J/token 95 % CI half-width reached, as a % of the mean."""
    repeats_stop: str | None = None
    """Why repeats stopped being added under a target: "met", "time cap" or "repeat cap"."""
    baseline_s: float | None = None
    text: str | None = None
    # -- energy and power over the workload (profile, measure) or the recording (sample, capture)
    duration_s: float | None = None
    energy_j: ComponentValues = field(default_factory=dict)
    net_energy_j: ComponentValues | None = None
    total_energy_j: float | None = None
    net_total_energy_j: float | None = None
    baseline_w: ComponentValues | None = None
    mean_w: ComponentValues = field(default_factory=dict)
    peak_w: ComponentValues = field(default_factory=dict)
    # -- per token
    j_per_token: dict[str, MeanCI] = field(default_factory=dict)
    net_j_per_token: dict[str, MeanCI] | None = None
    tokens_per_s: float | None = None
    prefill_tokens_per_s: float | None = None
    # -- the units people quote, per phase, from the gross J/token mean (energyprof.analysis.quoted)
    tokens_per_j: dict[str, float | None] = field(default_factory=dict)
    wh_per_1000_tokens: dict[str, float | None] = field(default_factory=dict)
    grid_g_co2e_per_kwh: float | None = None
    """The grid carbon intensity the user stated (never looked up); None: no CO2e figures."""
    g_co2e_per_1000_tokens: dict[str, float | None] | None = None
    # -- checks
    closure_error: float | None = None
    closure: dict[str, float | None] = field(default_factory=dict)
    step_resolution_median: float | None = None
    unknown_steps: int = 0
    # -- measured per-layer energy by replay (a runtime's replay; per phase: prefill, decode or forward)
    layer_energy: str | None = None
    """How per-layer energy was obtained: `apportioned` (time shares of the windows) or `replay` (measured)."""
    replay_steps: dict[str, int] = field(default_factory=dict)
    """The step whose layer inputs were replayed, per phase (prefill 0, the chosen decode step)."""
    replay_s: float | None = None
    """Seconds per replay trial."""
    replay_trials: int | None = None
    """Trials per layer and phase, as asked for."""
    replay_wall_s: float | None = None
    """Wall time of the whole replay (capture and every trial)."""
    replay_layers: int = 0
    """Layer × phase figures the replay measured."""
    replay_flagged: int = 0
    """Of those, how many have a 95 % CI wider than their mean (flagged on the run page and in the export)."""
    replay_skipped: list[str] = field(default_factory=list)
    """One sentence per module that could not be replayed alone."""
    replay_sum_j: dict[str, float | None] = field(default_factory=dict)
    """Per phase: the summed energy per call (J) of the replayed top-level layers."""
    replay_step_j: dict[str, float | None] = field(default_factory=dict)
    """Per phase: the measured energy (J) of the replayed step, mean over the repeats."""
    replay_closure: dict[str, float | None] = field(default_factory=dict)
    """Per phase: replay_sum_j / replay_step_j, the replay's own closure check (gross, whole system)."""
    replay_closure_net: dict[str, float | None] = field(default_factory=dict)
    """The same ratio net of the idle baseline."""
    replay_disturbed: bool | None = None
    """True when other processes' CPU during the replay differed from the baseline's by more than DISTURBED_CORES
    (the background monitor covers the replay as it covers the repeats)."""
    replay_background_top: list[ProcessCpu] = field(default_factory=list)
    """The busiest other processes during the replay."""
    # -- the rest of the machine (energyprof.runner.background)
    background_cpu: dict[str, float | None] = field(default_factory=dict)
    """Mean CPU cores used by other processes: {"baseline": …, "workload": …}; on a machine running Ray also the part
    of Ray's own processes: {"ray_baseline": …, "ray_workload": …} (energyprof.runner.background)."""
    background_top: list[ProcessCpu] = field(default_factory=list)
    """The busiest other processes during the workload."""
    # -- a counter source read at every step boundary (energyprof.analysis.counter_chain)
    boundary_reads: int = 0
    """Counter readings taken at step boundaries (0: the source has no counter, or was not read at them)."""
    counter_update_period_s: ComponentValues | None = None
    """Per component: how often its counter moved, measured at the start of the run; None = untimed (idle, or
    slower than the probe), and those components' tokens are apportioned from the sampler's windows."""
    counter_quantum_mj: ComponentValues | None = None
    """Per component: the smallest change of its counter seen by the probe."""
    counter_read_us: float | None = None
    """Median wall time of one counter read (the price of a step boundary)."""
    counter_probe_s: float | None = None
    """How long the counter was probed (while the model loaded)."""
    tokens_measured_share: float | None = None
    """Share (0-1) of the steps whose whole-system energy is measured; the rest are apportioned (or estimated)."""
    tokens_measured_share_by_component: ComponentValues | None = None
    """Per component, the share (0-1) of steps whose energy is measured."""
    # -- can the counters be trusted (energyprof.analysis.counter_health), and what the totals cover
    counter_health: dict[str, str] = field(default_factory=dict)
    """Per component of a measured source: ok, stalled, batched or implausible. A stalled or implausible component's
    energy is unknown (None) for the run in every figure; a batched one's steps shorter than its publication period
    are apportioned."""
    counter_health_detail: dict[str, ComponentHealth] = field(default_factory=dict)
    """Per component: the verdict with its sentence, publication period, longest still time, peak and ceiling."""
    chip: str | None = None
    """The chip or board the source read (e.g. "Apple M4 Max"), which picks the power ceiling; None when unknown."""
    scope: str | None = None
    """What the whole-system figures cover, in the source's words (PowerSource.scope())."""
    scope_package_includes_dram: bool | None = None
    """Whether the source's package figure already holds DRAM (None: it has no package figure)."""
    total_lacks: list[str] = field(default_factory=list)
    """Components the source reports whose energy is unknown for the run, so the whole-system figures leave them
    out (energyprof.components.lacking)."""
    # -- a second opinion: another source recorded during the same run (energyprof.analysis.cross_check)
    cross_check: str | None = None
    cross_check_error: str | None = None
    """Why the cross-check source recorded nothing or stopped (the run itself is not affected)."""
    cross_check_windows: int = 0
    cross_check_agreement: dict[str, Agreement] = field(default_factory=dict)
    """Per component both sources report."""
    disturbed: bool | None = None
    """True when the background CPU of the workload differs from the baseline's by more than DISTURBED_CORES."""
    # -- an OpenAI-compatible server (endpoint runs: energyprof.runtimes.endpoint)
    endpoint: str | None = None
    """The API base URL profiled; None for a model loaded by energyprof."""
    api: str | None = None
    """`chat` or `completions`: the streaming API called."""
    server_model: str | None = None
    """The model id the server named in its stream (the requested name is `model`)."""
    ttft_s: MeanCI | None = None
    """Time to first token (the prefill step: request sent to first text received), mean and 95% CI over repeats."""
    tokens_approximate: bool = False
    """The server sent no (believable) `usage`: token counts are counted stream chunks, not tokens."""
    usage_rejected: str | None = None
    """Why the server's usage was not believed (e.g. more completion tokens than max_tokens); None when it was, or
    when it sent none (energyprof.runtimes.endpoint.workload.checked_usage)."""
    stream_chunks: list[int] = field(default_factory=list)
    """Chunks with text streamed in each measured repeat; fewer than `new_tokens` when the server sends several
    tokens in one chunk (the per-step token counts are then spread over the chunks; phase totals stay exact)."""
    server_pid: int | None = None
    """The server process whose CPU and memory were recorded (with its child processes)."""
    server_process: str | None = None
    server_cpu_s: list[float] = field(default_factory=list)
    """CPU seconds of the server (and its children) during each measured repeat."""
    server_cores: float | None = None
    """The server's mean CPU use over the repeats (CPU seconds per wall second); not counted as background."""
    server_rss_mb: list[float] = field(default_factory=list)
    """Resident memory of the server (and its children) at the end of each measured repeat, MB."""
    server_note: str | None = None
    """Why the server's CPU and memory are not recorded (e.g. it runs on another machine)."""
    # -- a measured block (measure runs)
    label: str | None = None
    resolution: float | None = None
    block_t0_ns: int | None = None
    block_t1_ns: int | None = None

    # -- JSON ---------------------------------------------------------------------------------
    def take(self, figures: Any) -> RunSummary:
        """Copy a figure record's fields (a dataclass whose every field names a RunSummary field) into this summary;
        a field RunSummary lacks raises, so a misspelt figure is never a silent hole."""
        known = {f.name for f in dataclasses.fields(self)}
        for f in dataclasses.fields(figures):
            if f.name not in known:
                raise AttributeError(f"{type(figures).__name__}.{f.name} is not a RunSummary field")
            setattr(self, f.name, getattr(figures, f.name))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the run row and printed by `--json` (flat, units in the key names)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunSummary:
        """A summary from stored JSON; unknown keys are ignored and values of the wrong shape dropped."""
        data = data if isinstance(data, dict) else {}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = _shaped(data[f.name], hints[f.name])
                if value is not _DROP:
                    values[f.name] = value
        return cls(**values)

    # -- figures readers need -------------------------------------------------------------------
    @property
    def provenance(self) -> Provenance:
        return source_provenance(self.source, self.measured)

    @property
    def machine_name(self) -> str:
        """The machine's label, or "unknown machine" (a run written before machines were recorded)."""
        return self.machine.name if self.machine is not None else UNKNOWN_MACHINE

    @property
    def estimated(self) -> bool:
        return self.provenance == "estimated"

    @property
    def components(self) -> list[str]:
        """Every component the summary has a figure for, in display order."""
        return ordered({*self.energy_j, *self.mean_w})

    @property
    def gross_total_j(self) -> float | None:
        """Whole-system gross energy."""
        return self.total_energy_j if self.total_energy_j is not None else whole_system(self.energy_j)

    @property
    def net_total_j(self) -> float | None:
        """Whole-system net energy (gross − idle baseline × duration); None without a baseline."""
        return self.net_total_energy_j if self.net_total_energy_j is not None else whole_system(self.net_energy_j)

    @property
    def mean_total_w(self) -> float | None:
        return whole_system(self.mean_w)

    @property
    def peak_total_w(self) -> float | None:
        """Whole-system peak: the package peak, else the sum of each component's peak (an upper bound)."""
        return whole_system(self.peak_w)

    @property
    def baseline_total_w(self) -> float | None:
        return whole_system(self.baseline_w)

    @property
    def tokens_per_repeat(self) -> int | None:
        return max(self.new_tokens) if self.new_tokens else None

    @property
    def tokens_total(self) -> int | None:
        return sum(self.new_tokens) if self.new_tokens else None

    @property
    def profiled(self) -> bool:
        """True for runs with per-token figures."""
        return bool(self.j_per_token)

    def notes(self, run_power_incomplete: bool = False) -> str:
        """Flags a reader must see next to the run's numbers: disturbed by other processes, power incomplete, a
        counter that could not be trusted (its energy unknown)."""
        flags = ["disturbed"] if self.disturbed else []
        if self.replay_disturbed:
            flags.append("replay disturbed")
        if run_power_incomplete or self.power_incomplete:
            flags.append("power incomplete")
        flags += [f"{c} counter {status}: unknown" for c, status in self.untrusted_counters().items()]
        return ", ".join(flags)

    def untrusted_counters(self) -> dict[str, str]:
        """{component: stalled | implausible} for the components whose energy is unknown for this run."""
        return {c: self.counter_health[c] for c in ordered(self.counter_health) if self.counter_health[c] in UNTRUSTED}

    def health_warnings(self) -> list[str]:
        """One sentence per stalled or implausible component: what was seen and what to do."""
        return [self._health_note(c) for c in self.untrusted_counters()]

    def batched_notes(self) -> list[str]:
        """One sentence per batched component: what is apportioned and smoothed."""
        return [self._health_note(c) for c in ordered(self.counter_health) if self.counter_health[c] == BATCHED]

    def _health_note(self, component: str) -> str:
        detail = self.counter_health_detail.get(component)
        if detail is not None and detail.note:
            return detail.note
        status = self.counter_health[component]
        return f"The {component} energy counter is {status}: its energy is unknown for this run."

    def publication_s(self) -> dict[str, float]:
        """Per batched component, the publication period (s) its figures and charts are smoothed over."""
        return {c: d.publication_s for c, d in self.counter_health_detail.items()
                if d.status == BATCHED and d.publication_s is not None}

    def total_sentence(self) -> str | None:
        """What the whole-system figures cover and which components they lack, e.g. `Whole system = SoC rails: …;
        without cpu (its energy is unknown for this run).` (None when the source stated no scope)."""
        if not self.scope:
            return None
        text = f"Whole system = {self.scope}"
        if self.total_lacks:
            text += f"; without {', '.join(self.total_lacks)} (unknown for this run)"
        return text + "."

    def measured_sentence(self) -> str | None:
        """`Tokens measured: 96 % whole-system (cpu 100 %, gpu 92 %); the rest are time-apportioned.` (None when the
        run has no per-token figures)."""
        if self.tokens_measured_share is None:
            return None
        by = self.tokens_measured_share_by_component or {}
        parts = ", ".join(f"{c} {_percent(by[c])}" for c in ordered(by))
        rest = "estimated" if self.estimated else "time-apportioned"
        detail = f" ({parts})" if parts else ""
        return f"Tokens measured: {_percent(self.tokens_measured_share)} whole-system{detail}; the rest are {rest}."

    def disturbance(self) -> str | None:
        """One sentence when the run was disturbed by other processes (None otherwise)."""
        if not self.disturbed:
            return None
        base, work = self.background_cpu.get("baseline") or 0.0, self.background_cpu.get("workload") or 0.0
        busiest = "; ".join(p.describe() for p in self.background_top[:3]) or "none could be named"
        if work >= base:
            effect = ("the background rose during the workload, so the net energy is too high (it holds the other "
                      "processes' extra work)")
        else:
            effect = ("the background fell during the workload, so the idle baseline over-subtracts and the net "
                      "energy is too low")
        return (f"Disturbed: other processes used {work:.2f} CPU cores during the workload against {base:.2f} during "
                f"the idle baseline: {effect}. Busiest: {busiest}. Close them (or the dashboard's live view) and "
                "profile again.")

    def replay_disturbance(self) -> str | None:
        """One sentence when the replay ran on a machine busier (or quieter) than during the idle baseline."""
        if not self.replay_disturbed:
            return None
        base, replay = self.background_cpu.get("baseline") or 0.0, self.background_cpu.get("replay") or 0.0
        busiest = "; ".join(p.describe() for p in self.replay_background_top[:3]) or "none could be named"
        return (f"Replay disturbed: other processes used {replay:.2f} CPU cores during the replay against {base:.2f} "
                f"during the idle baseline, so the replayed layers' net energy is not theirs alone. Busiest: "
                f"{busiest}. Replay on a quiet machine.")

    def replay_closure_problem(self) -> str | None:
        """One sentence when a phase's replay closure is far from 1 (outside CLOSURE_FAR), with its likely cause."""
        low, high = CLOSURE_FAR
        closure = self.replay_closure or {}
        far = {p: c for p, c in sorted(closure.items(), key=lambda item: _phase_order(item[0]))
               if c is not None and not low <= c <= high}
        if not far:
            return None
        shown = ", ".join(f"{c:.3g} ({p})" for p, c in far.items())
        if self.replay_disturbed:
            base, replay = self.background_cpu.get("baseline") or 0.0, self.background_cpu.get("replay") or 0.0
            cause = (f"the machine was busy during the replay (other processes {replay:.2f} CPU cores against "
                     f"{base:.2f} in the baseline), so the replayed loops' energy holds their work; replay on a "
                     "quiet machine")
        elif self.estimated:
            cause = ("the estimate source turns the whole machine's CPU utilisation into watts, which a layer in a "
                     "tight loop does not change as the real step does; use a measured source")
        else:
            cause = ("a layer alone in a tight loop is not the layer inside a real step (warm caches, no Python or "
                     "sampling between layers, fused work serialised); read the replayed figures as relative costs")
        return f"Replay closure {shown} is far from 1: most likely {cause}."

    def server_activity(self) -> str | None:
        """One sentence on the server process's CPU and memory during the repeats (endpoint runs only)."""
        if self.endpoint is None or not self.repeats:
            return None
        if self.server_pid is None:
            return f"Server process: not recorded ({(self.server_note or 'unknown').rstrip('.')})."
        if not self.server_cpu_s:
            return None
        cores = "unknown" if self.server_cores is None else f"{self.server_cores:.2f}"
        others = self.background_cpu.get("workload")
        rss = f", {max(self.server_rss_mb):,.0f} MB resident" if self.server_rss_mb else ""
        return (f"Server process {self.server_process or '?'} (pid {self.server_pid}, with its children): {cores} CPU "
                f"cores during the repeats{rss}; other processes {'unknown' if others is None else f'{others:.2f}'} "
                "cores. The server is the workload here, so it is not counted as background (nor in the "
                "disturbed check).")

    def token_note(self) -> str | None:
        """One sentence when an endpoint run's token counts are approximate or spread over chunks (None otherwise)."""
        if self.endpoint is None:
            return None
        if self.usage_rejected:
            return (f"Token counts are approximate: {self.usage_rejected.rstrip('.')}, which cannot be true of this "
                    "stream, so each streamed chunk was counted as one token instead.")
        if self.tokens_approximate:
            return ("Token counts are approximate: the server sent no usage, so each streamed chunk was counted as "
                    "one token.")
        if self.stream_chunks and self.stream_chunks != self.new_tokens:
            return (f"The server streamed {sum(self.new_tokens):,} tokens in {sum(self.stream_chunks):,} chunks, so "
                    "each decode step's token count is spread over the chunks it carried; the per-phase totals "
                    "(J/token, tokens/s) use the server's usage.")
        return None

    def runtime_sentence(self) -> str | None:
        """`Runtime: mlx (auto: …); weights 4-bit affine, group 32.` (None when the run names no runtime)."""
        if self.runtime is None:
            return None
        why = f" ({self.runtime_reason.rstrip('.')})" if self.runtime_reason else ""
        weights = f"; weights {self.quantization}" if self.quantization else ""
        return f"Runtime: {self.runtime}{why}{weights}."

    def peak_memory_text(self) -> str | None:
        """`489 MB (the process's peak resident memory, …)`; None when not recorded."""
        if self.peak_memory_mb is None:
            return None
        what = PEAK_MEMORY_SOURCES.get(self.peak_memory_source or "")
        return f"{self.peak_memory_mb:,.1f} MB" + (f" ({what})" if what else "")

    def per_token(self, phase: str, *, net: bool = False) -> MeanCI:
        """J/token of one phase (gross, or net of the idle baseline); an empty MeanCI when unknown."""
        table = (self.net_j_per_token or {}) if net else self.j_per_token
        return table.get(phase) or MeanCI()


_DROP = object()


def _phase_order(phase: str) -> int:
    """Phases in the order of a generation (prefill, decode, forward), others after."""
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f} %"


def _components(value: Any) -> Any:
    if not isinstance(value, dict):
        return _DROP
    return {str(k): finite_or_none(v) for k, v in value.items()}


def _shaped(value: Any, hint: Any) -> Any:
    """A stored value checked against its field's type; _DROP when it has the wrong shape."""
    text = str(hint)
    if value is None:
        return None if "None" in text else _DROP
    if "Machine" in text:
        return Machine.from_value(value) or _DROP
    if "ProcessCpu" in text:
        if not isinstance(value, list):
            return _DROP
        return [p for p in (ProcessCpu.from_value(v) for v in value) if p is not None]
    if "ComponentHealth" in text:
        if not isinstance(value, dict):
            return _DROP
        return {str(k): h for k, h in ((k, ComponentHealth.from_value(v)) for k, v in value.items()) if h is not None}
    if "Agreement" in text:
        if not isinstance(value, dict):
            return _DROP
        return {str(k): Agreement.from_value(v) or Agreement() for k, v in value.items()}
    if "MeanCI" in text and text.startswith("dict"):
        if not isinstance(value, dict):
            return _DROP
        return {str(k): MeanCI.from_value(v) or MeanCI() for k, v in value.items()}
    if "MeanCI" in text:
        return MeanCI.from_value(value) or _DROP
    if text.startswith("dict[str, float | None]") or "ComponentValues" in text:
        return _components(value)
    if text.startswith("list[int]"):
        return [int(v) for v in value if isinstance(v, int | float)] if isinstance(value, list) else _DROP
    if text.startswith("list[float]"):
        return [n for n in (finite_or_none(v) for v in value) if n is not None] if isinstance(value, list) else _DROP
    if text.startswith("list[str]"):
        return [str(v) for v in value] if isinstance(value, list) else _DROP
    if text.startswith("dict"):
        return value if isinstance(value, dict) else _DROP
    if "bool" in text:
        return bool(value)
    if "float" in text:
        number = finite_or_none(value)
        return _DROP if number is None else number
    if "int" in text:
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else _DROP
    if "str" in text:
        return str(value)
    return value
