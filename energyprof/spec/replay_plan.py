"""What a replay will do and roughly how long it takes, known before it starts (no torch: the form imports it).

A replay (a runtime's replay module) calls every hooked module alone, once per phase (prefill and one decode
step; an encoder's one forward pass), for `trials` trials of `seconds_per_trial` each, plus one reference row
per phase of a model with a KV cache (the cache restore, measured alone and subtracted). So it takes about
(modules × phases + references) × trials × (seconds per trial + a little warm-up) after the measured repeats.

Seconds per trial, unless the user sets them: long enough for the meter to see the loop, i.e. at least
UPDATES_PER_TRIAL counter updates (a counter source's measured update period) or sample windows (the
sampling interval), and never under MIN_TRIAL_S.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_TRIAL_S = 1.0
UPDATES_PER_TRIAL = 10
"""A trial spans at least this many counter updates or sample windows (so one update is at most a tenth)."""
DEFAULT_INTERVAL_MS = 100
"""Every source's default sampling interval (energyprof.power: powermetrics, ioreport, nvml, rapl, estimate)."""
WARMUP_CALLS = 2
"""Unmeasured calls of a module before each of its trials (warm caches, lazy initialisation)."""
TRIAL_OVERHEAD_S = 0.02
"""Rough time per trial outside the measured loop (warm-up calls, the progress write), for the estimate."""
AUTOMATIC_NOTE = (" Trials last longer when the power source's counter updates more slowly than that (10 updates per "
                  "trial); set the seconds per trial to bound it.")
BUILTIN_BLOCKS: dict[str, int] = {"tiny": 4, "small": 12, "medium": 24}
"""Decoder blocks of the built-in models (energyprof.runtimes.transformers.models.BUILTIN_MODELS; a test
checks they match)."""


ESTIMATE_SOURCE = "estimate"
REPLAY_WITH_ESTIMATE = ("the estimate source turns CPU utilisation into watts, so a replay with it measures how long "
                        "each layer runs, not how much power it draws: read the replayed figures as time, not as "
                        "module power (a measured source, e.g. ioreport, nvml or rapl, measures power).")
"""Said before a replay with the estimate source starts (CLI, form) and on its results (summary, run page)."""


def replay_measures_time(source: str | None) -> bool:
    """True when a replay with this (resolved) source measures time only: the estimate's power follows CPU
    utilisation, which a busy loop keeps at the same level whatever the layer does."""
    return source == ESTIMATE_SOURCE


def default_replay_step(max_new_tokens: int) -> int | None:
    """The middle decode step of a generation of max_new_tokens tokens (steps 1..N-1), None without one."""
    return max_new_tokens // 2 if max_new_tokens >= 2 else None


def trial_seconds(replay_s: float | None, interval_ms: float | None = None,
                  update_period_s: float | None = None) -> float:
    """The seconds of one trial: replay_s when set, else UPDATES_PER_TRIAL windows or counter updates (≥ 1 s)."""
    if replay_s:
        return float(replay_s)
    window_s = (interval_ms or DEFAULT_INTERVAL_MS) / 1e3
    return max(MIN_TRIAL_S, UPDATES_PER_TRIAL * max(window_s, update_period_s or 0.0))


def builtin_modules(model: str, depth: str) -> int | None:
    """Modules hooked at this depth in a built-in model (embedding, blocks, norm, lm_head; at `modules` also each
    block's attention and MLP); None for any other model (known once it is loaded)."""
    blocks = BUILTIN_BLOCKS.get(model)
    if blocks is None:
        return None
    return {"none": 0, "blocks": blocks + 3, "modules": 3 * blocks + 3}.get(depth)


@dataclass(frozen=True)
class ReplayPlan:
    """How much replaying a run does; `modules` is None while the model is not known."""

    modules: int | None
    phases: int
    references: int
    trials: int
    seconds_per_trial: float
    automatic: bool = False
    """The trial length was not set: it follows the source (a counter that updates slowly makes trials longer)."""

    @property
    def trial_count(self) -> int | None:
        """Loops to run: every module in every phase, plus the references, times the trials."""
        if self.modules is None:
            return None
        return (self.modules * self.phases + self.references) * self.trials

    @property
    def total_s(self) -> float | None:
        """About how long the replay takes (seconds), after the measured repeats."""
        count = self.trial_count
        return None if count is None else count * (self.seconds_per_trial + TRIAL_OVERHEAD_S)

    def per_module_s(self) -> float:
        """Seconds one module costs: its phases × trials × seconds per trial."""
        return self.phases * self.trials * (self.seconds_per_trial + TRIAL_OVERHEAD_S)

    def describe(self) -> str:
        """One sentence for people: what replay will do and how long it takes."""
        seconds = f"{self.seconds_per_trial:g} s"
        if self.modules is None:
            return (f"Replay after the measured repeats: each hooked module × {self.phases} phases × {self.trials} "
                    f"trials × {seconds}, about {_duration(self.per_module_s())} per module (the count of modules "
                    "is known once the model is loaded).")
        refs = f" + {self.references} cache-restore references" if self.references else ""
        text = (f"Replay after the measured repeats: {self.modules} modules × {self.phases} phases{refs}, "
                f"× {self.trials} trials × {seconds} ≈ {_duration(self.total_s or 0.0)}.")
        return text + (AUTOMATIC_NOTE if self.automatic else "")


def plan_replay(params: Any, *, modules: int | None = None, phases: int | None = None, causal: bool = True,
                interval_ms: float | None = None, update_period_s: float | None = None) -> ReplayPlan:
    """The plan for these ProfileParams (modules from the built-in model's shape unless given; phases: prefill and
    decode for a causal model that generates at least two tokens, else one)."""
    if modules is None:
        modules = builtin_modules(params.model, params.layers)
    if phases is None:
        phases = 2 if causal and default_replay_step(params.max_new_tokens) is not None else 1
    seconds = trial_seconds(params.replay_s, interval_ms or params.interval_ms, update_period_s)
    return ReplayPlan(modules, phases, phases if causal else 0, int(params.replay_trials), seconds,
                      automatic=not params.replay_s)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
