"""Precision on request: keep adding repeats until the decode J/token is known to a stated 95 % CI, within a time cap.

After the minimum number of repeats (the `repeats` parameter), the engine asks `PrecisionGoal.decide` before
each further repeat. The figure checked is the J/token of the decode phase (the forward pass for an encoder),
from the power windows that already cover whole repeats (a repeat whose end no window covers yet waits for the
next check, so the loop never idles waiting for the source). The final summary states the outcome from the
run's own attribution: `target_ci_met`, the CI reached and why the repeats stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from energyprof.analysis.results import per_token_over
from energyprof.spec.params import MAX_REPEATS
from energyprof.summary import MeanCI

MET = "met"
TIME_CAP = "time cap"
REPEAT_CAP = "repeat cap"


def relative_ci_pct(stat: MeanCI | None) -> float | None:
    """The 95 % CI half-width as a percentage of the mean (None when unknown: fewer than two repeats)."""
    rel = stat.relative_ci if stat is not None else None
    return None if rel is None else 100.0 * rel


def checked_phase(j_per_token: dict[str, MeanCI]) -> str:
    """The phase whose J/token the goal is about: decode, or forward for an encoder."""
    return "decode" if "decode" in j_per_token or "forward" not in j_per_token else "forward"


@dataclass(frozen=True)
class PrecisionGoal:
    """Stop adding repeats when the CI is at most `target_pct` % of the mean, or the next repeat would end more
    than `max_seconds` after the first began, or `max_repeats` are done."""

    target_pct: float
    max_seconds: float
    min_repeats: int
    max_repeats: int

    def met(self, stat: MeanCI | None) -> bool:
        pct = relative_ci_pct(stat)
        return pct is not None and pct <= self.target_pct

    def decide(self, stat: MeanCI | None, done: int, elapsed_s: float) -> str | None:
        """None to run another repeat, else why to stop (MET, TIME_CAP, REPEAT_CAP); `done` repeats took
        `elapsed_s` seconds, and the next is expected to take as long as their mean."""
        if done < self.min_repeats:
            return None
        if self.met(stat):
            return MET
        if done >= self.max_repeats:
            return REPEAT_CAP
        if done and elapsed_s + elapsed_s / done > self.max_seconds:
            return TIME_CAP
        return None

    def phase_label(self, repeat: int) -> str:
        """The live phase of repeat `repeat` (0-based) once past the minimum."""
        return f"repeat {repeat + 1} (until the CI is within {self.target_pct:g}%)"


def goal_of(params: Any) -> PrecisionGoal | None:
    """The goal a run's parameters ask for (target_ci set), else None."""
    if params.target_ci is None:
        return None
    return PrecisionGoal(float(params.target_ci), float(params.max_seconds), int(params.repeats), MAX_REPEATS)


def covered_stat(windows: Sequence[Any], generations: Sequence[Any], components: Sequence[str],
                 latest_ns: int) -> MeanCI:
    """J/token (decode, or forward) over the repeats whose whole span the windows cover (end <= latest_ns)."""
    covered = [g for g in generations if g.span_ns and g.span_ns[1] <= latest_ns]
    if len(covered) < 2:
        return MeanCI()
    table = per_token_over(windows, covered, components)
    return table.get(checked_phase(table)) or MeanCI()
