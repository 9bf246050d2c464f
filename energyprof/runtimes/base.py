"""The seam between the engine (power sampler, idle baseline, warm-up, repeats, attribution, summary, exports) and
the work a run measures: a runtime implements `Workload`.

A workload loads what it needs, then runs one repeat at a time into a `Generation` (its steps stamped with the
engine's clock at every step boundary); the engine does everything else. `ModelWorkload` is a model loaded here
(transformers: the token loop and the layer hooks); `MlxWorkload` (energyprof.runtimes.mlx.workload) one run with
mlx-lm; `EndpointWorkload` (energyprof.runtimes.endpoint.workload)
streams completions from an OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from energyprof.summary import RunSummary

Clock = Callable[[], int]


class Workload(Protocol):
    """The interface the engine drives."""

    runtime: str
    """`transformers`, `mlx` or `endpoint` (RunSummary.runtime)."""
    layers: list[Any]
    """Hooked layers (energyprof.runtimes.transformers.hooks.Layer); empty when the work cannot be hooked."""

    def load(self) -> dict[str, Any]:
        """Get ready (phase `loading`); return the run-row columns that describe the work (model, device, dtype)."""

    def tokens_per_repeat(self) -> int:
        """Steps one repeat is expected to record (for progress)."""

    def generation(self, repeat: int) -> Any:
        """An empty Generation for a repeat (negative: a warm-up run)."""

    def run(self, gen: Any, clock: Clock) -> None:
        """One repeat into `gen`, reading `clock` at every step boundary."""

    def cut_short(self, gen: Any) -> None:
        """Make what an interrupted repeat recorded writable (its token texts, its layer calls)."""

    def replayer(self, **options: Any) -> Any:
        """A replay of the hooked layers (only asked for when `layers` is not empty): an object with `outcome` (a
        ReplayOutcome) and `run(prompt_ids, loop_options, decode_step)`; `options` are seconds, trials, source,
        on_phase, on_trial."""

    def processes(self) -> set[int]:
        """Other processes that are part of the workload, so not background."""

    def describe(self, summary: RunSummary) -> None:
        """Fill the summary's fields about the work (model, device, tokens; the server for an endpoint)."""
