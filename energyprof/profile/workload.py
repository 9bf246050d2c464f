"""What a profiling run measures: the seam between the engine (power sampler, idle baseline, warm-up, repeats,
attribution, summary, exports) and the work itself.

A workload loads what it needs, then runs one repeat at a time into a `Generation` (its steps stamped with the
engine's clock at every step boundary); the engine does everything else. `ModelWorkload` is a model loaded here
(transformers: the token loop and the layer hooks); `EndpointWorkload` (energyprof.profile.endpoint.workload)
streams completions from an OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from energyprof.profile.params import ProfileParams
from energyprof.summary import RunSummary

Clock = Callable[[], int]


class Workload(Protocol):
    """The interface the engine drives."""

    layers: list[Any]
    """Hooked layers (energyprof.profile.hooks.Layer); empty when the work cannot be hooked."""

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

    def processes(self) -> set[int]:
        """Other processes that are part of the workload, so not background."""

    def describe(self, summary: RunSummary) -> None:
        """Fill the summary's fields about the work (model, device, tokens; the server for an endpoint)."""


def workload_for(params: ProfileParams, loaded: Any = None) -> Workload:
    """The workload these parameters ask for: an endpoint when one is given, else a model loaded here."""
    if params.mode == "endpoint":
        from energyprof.profile.endpoint.workload import EndpointWorkload

        return EndpointWorkload(params)
    return ModelWorkload(params, loaded)


class ModelWorkload:
    """A model loaded here (or handed over already loaded), generating with the token loop and the layer hooks."""

    def __init__(self, params: ProfileParams, loaded: Any = None) -> None:
        self.params = params
        self.loaded = loaded
        self.recorder: Any = None
        self.layers: list[Any] = []
        self.prompt_ids: list[int] = []
        self.sequences: list[list[int]] = []
        """The prompt ids of each sequence of the batch (energyprof.profile.batch); prompt_ids is the first."""

    def load(self) -> dict[str, Any]:
        from energyprof.profile.batch import check_context, sequence_ids
        from energyprof.profile.hooks import LayerRecorder
        from energyprof.profile.models import load_model

        p = self.params
        if self.loaded is None:
            self.loaded = load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        self.sequences = sequence_ids(self.loaded.tokenizer, p.sequence_texts(), self.loaded.kind, p.prompt_tokens)
        self.prompt_ids = self.sequences[0]
        check_context(self.loaded.model, max(map(len, self.sequences)),
                      p.max_new_tokens if self.loaded.kind == "causal" else 0)
        self.recorder = LayerRecorder(self.loaded.model, p.layers, self.loaded.device)
        self.layers = self.recorder.layers
        return {"model": self.loaded.name, "device": self.loaded.device, "dtype": self.loaded.dtype}

    def tokens_per_repeat(self) -> int:
        """Tokens one repeat generates: every sequence of the batch (one forward pass for an encoder)."""
        if self.loaded is not None and self.loaded.kind == "encoder":
            return 1
        return self.params.max_new_tokens * self.params.batch

    def generation(self, repeat: int) -> Any:
        from energyprof.profile.loop import Generation

        return Generation(repeat, list(self.prompt_ids))

    def run(self, gen: Any, clock: Clock) -> None:
        """One generation (or encoder forward pass) of the whole batch with the layer hooks attached."""
        from energyprof.profile.batch import pad_token_id
        from energyprof.profile.loop import forward_batch, generate_batch

        loaded = self.loaded
        with self.recorder:
            if loaded.kind == "encoder":
                forward_batch(loaded.model, self.sequences, loaded.device,
                              pad_token_id(loaded.tokenizer, loaded.model), self.recorder, gen, clock)
            else:
                generate_batch(loaded.model, loaded.tokenizer, self.sequences, self.params.loop_options(),
                               loaded.device, self.recorder, gen, clock)

    def cut_short(self, gen: Any) -> None:
        from energyprof.profile.loop import token_texts

        if self.recorder is not None:
            gen.calls.extend(self.recorder.take_calls())
            self.recorder.detach()
        gen.texts = token_texts(self.loaded.tokenizer, [s[5] for s in gen.steps])

    def processes(self) -> set[int]:
        return set()

    def describe(self, summary: RunSummary) -> None:
        loaded, p = self.loaded, self.params
        summary.model = loaded.name if loaded is not None else p.model
        summary.model_kind = loaded.kind if loaded is not None else None
        summary.n_params = loaded.n_params if loaded is not None else None
        summary.device = loaded.device if loaded is not None else p.device
        summary.dtype = loaded.dtype if loaded is not None else p.dtype
        summary.layers = p.layers
        summary.prompt_tokens = max(map(len, self.sequences)) if self.sequences else None
        summary.prompt_tokens_each = [len(ids) for ids in self.sequences]
        summary.batch = p.batch
