"""Python API: profile the generation of a model you already loaded, with the same engine as the CLI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from energyprof.profile.job import run_profile
from energyprof.profile.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary


def profile_generation(model: Any, tokenizer: Any, prompt: str | Sequence[str], *, max_new_tokens: int = 32,
                       layers: str = "blocks", source: str = "auto", interval_ms: int | None = None,
                       repeats: int = 1, warmup: int = 0, baseline_s: float = 0.0, ignore_eos: bool = False,
                       temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, batch: int | None = None,
                       prompt_tokens: int | None = None, target_ci: float | None = None, max_seconds: float = 60.0,
                       grid_g_per_kwh: float | None = None, name: str | None = None,
                       db: str | os.PathLike[str] | None = None) -> RunSummary:
    """Profile `model` generating from `prompt` and store the run; returns the run's summary (RunSummary).

    A list of prompts is a batch, one sequence per prompt (`batch` defaults to their number; one prompt with
    `batch` N is copied N times); `prompt_tokens` builds each prompt to exactly that many tokens; `target_ci` adds
    repeats until the decode J/token 95 % CI is within that % of the mean (at most `max_seconds` of repeats);
    `grid_g_per_kwh` adds gCO2e per 1,000 tokens at that grid intensity.

    The model stays where it is (device and dtype are read from its parameters) and runs in eval mode (its
    training flag is restored afterwards); a causal LM is profiled token by token, any other model per
    forward pass. The run goes to `db` (default: $ENERGYPROF_DB or the
    user data folder), so the dashboard shows it. Raises ValueError for invalid arguments and
    JobAlreadyRunning when another profiling job is active; a run that fails or is interrupted (Ctrl-C)
    returns its summary with status `failed` or `cancelled`."""
    from energyprof.profile.models import LoadedModel

    device, dtype = _placement(model)
    label = name or _model_name(model)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    params = ProfileParams(model=label, prompt=prompts[0] if prompts else "", max_new_tokens=max_new_tokens,
                           ignore_eos=ignore_eos, device=device, dtype=dtype, source=source, interval_ms=interval_ms,
                           layers=layers, repeats=repeats, warmup=warmup, baseline_s=baseline_s,
                           temperature=temperature, top_p=top_p, seed=seed, batch=batch or max(1, len(prompts)),
                           prompts=prompts if len(prompts) > 1 else None, prompt_tokens=prompt_tokens,
                           target_ci=target_ci, max_seconds=max_seconds, grid_g_per_kwh=grid_g_per_kwh)
    params.validate(check_model=False)
    kind = "causal" if _can_generate(model) else "encoder"
    loaded = LoadedModel(model, tokenizer, kind, label, sum(p.numel() for p in model.parameters()), device, dtype)
    store = Store(db)
    run_id = store.create_run("profile", source=source, model=label, device=device, dtype=dtype,
                              params=params.to_dict())
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        return run_profile(store, run_id, params, loaded=loaded)
    finally:
        model.train(was_training)


def _placement(model: Any) -> tuple[str, str]:
    """(device, dtype name) of the model's first parameter."""
    param = next(model.parameters(), None)
    if param is None:
        return "cpu", "float32"
    device = param.device.type if param.device.index is None else f"{param.device.type}:{param.device.index}"
    return device, str(param.dtype).removeprefix("torch.")


def _model_name(model: Any) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "name_or_path", None) or type(model).__name__


def _can_generate(model: Any) -> bool:
    """True for models that produce next-token logits (causal LMs)."""
    check = getattr(model, "can_generate", None)
    try:
        return bool(check()) if callable(check) else False
    except Exception:  # a model without generation support may raise here
        return False
