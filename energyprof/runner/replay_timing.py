"""How long each replay trial lasts and which decode step is replayed: the run's choice, the same for every
runtime's replay (energyprof.runtimes.transformers.replay, energyprof.runtimes.mlx.replay)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from energyprof.power.base import PowerSource, PowerSourceError
from energyprof.power.counter import probe_counter
from energyprof.spec.replay_plan import default_replay_step, trial_seconds

log = logging.getLogger(__name__)

COUNTER_PROBE_S = 2.5
"""How long a counter source is probed for its update period before a replay whose trial length is automatic
(long enough to time a counter that publishes about once a second, as IOReport's CPU channels do)."""


def replay_step_of(params: Any) -> int | None:
    """The decode step to replay: the parameter, else the middle decode step."""
    return params.replay_step if params.replay_step is not None else default_replay_step(params.max_new_tokens)


def replay_seconds(replay_s: float | None, source: PowerSource | None, interval_ms: float | None,
                   on_phase: Callable[[str], None] | None = None) -> float:
    """Seconds per trial: replay_s when set; else 10 sample windows or, for a counter source, 10 updates of its
    counter (probed now), at least 1 s (energyprof.spec.replay_plan.trial_seconds)."""
    if replay_s:
        log.info("replay: %g s per trial (--replay-s)", replay_s)
        return float(replay_s)
    period = None
    if source is not None and source.is_counter:
        if on_phase is not None:
            on_phase("replay: timing the energy counter")
        try:
            period = probe_counter(source, COUNTER_PROBE_S).update_period_s
        except PowerSourceError as exc:
            log.info("replay: the counter could not be timed (%s)", exc)
            period = None
    seconds = trial_seconds(None, interval_ms, period)
    log.info("replay: %g s per trial (sample interval %s ms, counter update period %s s)", seconds, interval_ms,
             period)
    return seconds
