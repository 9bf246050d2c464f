"""A model loaded here with transformers, generating with the token loop and the layer hooks (the `Workload` of
energyprof.runtimes.base)."""

from __future__ import annotations

from typing import Any

from energyprof.runtimes.base import Clock
from energyprof.runtimes.choice import RuntimeChoice, check_runtime
from energyprof.runtimes.transformers.batch import check_context, pad_token_id, sequence_ids
from energyprof.runtimes.transformers.hooks import LayerRecorder
from energyprof.runtimes.transformers.loop import forward_batch, generate_batch, token_texts
from energyprof.runtimes.transformers.memory import peak_bytes, peak_source, reset_peak
from energyprof.runtimes.transformers.models import load_model
from energyprof.runtimes.transformers.replay import Replayer
from energyprof.spec.params import ProfileParams
from energyprof.spec.records import Generation
from energyprof.summary import RunSummary


class ModelWorkload:
    """A model loaded here (or handed over already loaded), generating with the token loop and the layer hooks."""

    runtime = "transformers"

    def __init__(self, params: ProfileParams, loaded: Any = None, choice: RuntimeChoice | None = None) -> None:
        self.params = params
        self.loaded = loaded
        self.choice = choice or RuntimeChoice("transformers", "the model object was handed over (a torch module)")
        self.peak_memory_bytes = 0
        self.recorder: Any = None
        self.layers: list[Any] = []
        self.prompt_ids: list[int] = []
        self.sequences: list[list[int]] = []
        """The prompt ids of each sequence of the batch (see batch.py); prompt_ids is the first."""

    def load(self) -> dict[str, Any]:
        p = self.params
        if self.loaded is None:
            check_runtime(self.choice, p.model)
            self.loaded = load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        self.sequences = sequence_ids(self.loaded.tokenizer, p.sequence_texts(), self.loaded.kind, p.prompt_tokens)
        self.prompt_ids = self.sequences[0]
        check_context(self.loaded.model, max(map(len, self.sequences)),
                      p.max_new_tokens if self.loaded.kind == "causal" else 0)
        self.recorder = LayerRecorder(self.loaded.model, p.layers, self.loaded.device)
        self.layers = self.recorder.layers
        reset_peak(self.loaded.device)
        return {"model": self.loaded.name, "device": self.loaded.device, "dtype": self.loaded.dtype}

    def tokens_per_repeat(self) -> int:
        """Tokens one repeat generates: every sequence of the batch (one forward pass for an encoder)."""
        if self.loaded is not None and self.loaded.kind == "encoder":
            return 1
        return self.params.max_new_tokens * self.params.batch

    def generation(self, repeat: int) -> Any:
        return Generation(repeat, list(self.prompt_ids))

    def run(self, gen: Any, clock: Clock) -> None:
        """One generation (or encoder forward pass) of the whole batch with the layer hooks attached."""
        loaded = self.loaded
        try:
            with self.recorder:
                if loaded.kind == "encoder":
                    forward_batch(loaded.model, self.sequences, loaded.device,
                                  pad_token_id(loaded.tokenizer, loaded.model), self.recorder, gen, clock)
                else:
                    generate_batch(loaded.model, loaded.tokenizer, self.sequences, self.params.loop_options(),
                                   loaded.device, self.recorder, gen, clock)
        finally:
            self.peak_memory_bytes = max(self.peak_memory_bytes, peak_bytes(loaded.device) or 0)

    def cut_short(self, gen: Any) -> None:
        if self.recorder is not None:
            gen.calls.extend(self.recorder.take_calls())
            self.recorder.detach()
        gen.texts = token_texts(self.loaded.tokenizer, [s[5] for s in gen.steps])

    def replayer(self, **options: Any) -> Any:
        """The transformers replay of the hooked layers (energyprof.runtimes.transformers.replay.Replayer)."""
        return Replayer(self.loaded, self.layers, **options)

    def processes(self) -> set[int]:
        return set()

    def describe(self, summary: RunSummary) -> None:
        loaded, p = self.loaded, self.params
        summary.runtime = self.runtime
        summary.runtime_reason = self.choice.reason
        summary.model = loaded.name if loaded is not None else p.model
        summary.model_kind = loaded.kind if loaded is not None else None
        summary.n_params = loaded.n_params if loaded is not None else None
        summary.device = loaded.device if loaded is not None else p.device
        summary.dtype = loaded.dtype if loaded is not None else p.dtype
        summary.layers = p.layers
        summary.prompt_tokens = max(map(len, self.sequences)) if self.sequences else None
        summary.prompt_tokens_each = [len(ids) for ids in self.sequences]
        summary.batch = p.batch
        summary.peak_memory_mb = self.peak_memory_bytes / 1e6 if self.peak_memory_bytes else None
        summary.peak_memory_source = peak_source(loaded.device) if self.peak_memory_bytes and loaded else None
