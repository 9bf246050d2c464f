"""A model run with MLX (mlx-lm) here: the MLX token loop and layer timing (the `Workload` of
energyprof.runtimes.base). mlx (and this folder's modules that import it) is imported only when the model loads,
after the runtime check, so a missing mlx is one sentence on a failed run, not an ImportError."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from energyprof.runtimes.base import Clock
from energyprof.runtimes.choice import RuntimeChoice, check_runtime
from energyprof.runtimes.mlx.errors import MlxError
from energyprof.runtimes.text import sequence_ids, token_texts
from energyprof.spec.params import ProfileParams, mlx_batch_sentence
from energyprof.spec.records import Generation
from energyprof.summary import RunSummary

log = logging.getLogger(__name__)
BYTES_PER_MB = 1e6


class MlxWorkload:
    """A model loaded with mlx-lm (or handed over already loaded), generating one sequence with the MLX token loop."""

    runtime = "mlx"

    def __init__(self, params: ProfileParams, choice: RuntimeChoice, loaded: Any = None) -> None:
        self.params = params
        self.choice = choice
        self.loaded = loaded
        self.recorder: Any = None
        self.layers: list[Any] = []
        self.prompt_ids: list[int] = []
        self.peak_memory_bytes = 0
        self._parts: Any = None
        """mlx and the runtime's modules that import it (models, hooks, loop, replay), imported by `load`."""

    @property
    def runtime_reason(self) -> str:
        return self.choice.reason

    def load(self) -> dict[str, Any]:
        p = self.params
        if p.batch > 1:
            raise MlxError(mlx_batch_sentence(p.batch))
        found = check_runtime(self.choice, p.model) if self.loaded is None else None
        import mlx.core as mx

        from energyprof.runtimes.mlx import hooks, loop, models, replay

        self._parts = SimpleNamespace(mx=mx, hooks=hooks, loop=loop, models=models, replay=replay)
        if self.loaded is None:
            self.loaded = models.load_model(p.model, found, p.device, p.dtype, p.trust_remote_code)
        self.prompt_ids = sequence_ids(self.loaded.tokenizer, p.sequence_texts()[:1], "causal", p.prompt_tokens)[0]
        self.recorder = hooks.LayerTimer(self.loaded.model, p.layers)
        self.layers = self.recorder.layers
        mx.reset_peak_memory()
        return {"model": self.loaded.name, "device": self.loaded.device, "dtype": self.loaded.dtype}

    def tokens_per_repeat(self) -> int:
        return self.params.max_new_tokens

    def generation(self, repeat: int) -> Any:
        return Generation(repeat, list(self.prompt_ids))

    def run(self, gen: Any, clock: Clock) -> None:
        """One generation with the layers timed (their classes swapped for the repeat)."""
        try:
            with self.recorder:
                self._parts.loop.generate(self.loaded, self.prompt_ids, self.params.loop_options(), self.recorder,
                                          gen, clock)
        finally:
            self.peak_memory_bytes = max(self.peak_memory_bytes, int(self._parts.mx.get_peak_memory()))

    def cut_short(self, gen: Any) -> None:
        if self.recorder is not None:
            gen.calls.extend(self.recorder.take_calls())
            self.recorder.detach()
        gen.texts = token_texts(self.loaded.tokenizer, [s[5] for s in gen.steps])

    def replayer(self, **options: Any) -> Any:
        """The MLX replay of the hooked layers (energyprof.runtimes.mlx.replay.Replayer)."""
        return self._parts.replay.Replayer(self.loaded, self.layers, **options)

    def processes(self) -> set[int]:
        return set()

    def describe(self, summary: RunSummary) -> None:
        loaded, p = self.loaded, self.params
        summary.runtime = self.runtime
        summary.runtime_reason = self.choice.reason
        summary.model = loaded.name if loaded is not None else p.model
        summary.model_kind = "causal"
        summary.n_params = loaded.n_params if loaded is not None else None
        summary.device = loaded.device if loaded is not None else p.device
        summary.dtype = loaded.dtype if loaded is not None else p.dtype
        summary.quantization = loaded.quantization if loaded is not None else None
        summary.layers = p.layers
        summary.prompt_tokens = len(self.prompt_ids) if self.prompt_ids else None
        summary.prompt_tokens_each = [len(self.prompt_ids)] if self.prompt_ids else []
        summary.batch = 1
        summary.peak_memory_mb = self.peak_memory_bytes / BYTES_PER_MB if self.peak_memory_bytes else None
        summary.peak_memory_source = "mlx" if self.peak_memory_bytes else None
