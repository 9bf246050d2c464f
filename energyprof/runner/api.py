"""Python API: profile the generation of a model you already loaded, with the same engine as the CLI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from energyprof.runner.job import run_profile
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary

API_DEFAULTS: dict[str, Any] = {"repeats": 1, "warmup": 0, "baseline_s": 0.0}
"""Where the Python API's defaults differ from the parameter table's: one quick run of a model already loaded."""
FROM_THE_MODEL = frozenset({"model", "prompt", "prompts", "device", "dtype", "trust_remote_code"})
"""Parameters the API takes from the model object and the prompt argument, not from options."""



def profile_generation(model: Any, tokenizer: Any, prompt: str | Sequence[str], *, name: str | None = None,
                       db: str | os.PathLike[str] | None = None, **options: Any) -> RunSummary:
    """Profile `model` generating from `prompt` and store the run; returns the run's summary (RunSummary).

    `options` are the parameters of `energyprof profile` (energyprof.spec.params.ProfileParams: max_new_tokens,
    layers, source, interval_ms, repeats, warmup, baseline_s, batch, prompt_tokens, target_ci, max_seconds,
    layer_energy, cross_check, grid_g_per_kwh, …), with API_DEFAULTS for a quick run. A list of prompts is a batch,
    one sequence per prompt (`batch` defaults to their number; one prompt with `batch` N is copied N times).

    The model stays where it is (device and dtype are read from its parameters) and runs in eval mode (its
    training flag is restored afterwards); a causal LM is profiled token by token, any other model per forward pass.
    An MLX model (an mlx.nn.Module from mlx_lm.load, with its tokenizer) runs under the MLX runtime, one sequence.
    The run goes to `db` (default: $ENERGYPROF_DB or the user data folder), so the dashboard shows it. Raises
    TypeError for an unknown option, ValueError for an invalid value and JobAlreadyRunning when another profiling
    job is active; a run that fails or is interrupted (Ctrl-C) returns its summary with status `failed` or
    `cancelled`."""
    known = set(ProfileParams().to_dict()) - FROM_THE_MODEL
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"profile_generation() got unknown options {', '.join(unknown)}; it takes "
                        f"{', '.join(sorted(known))}.")
    label = name or _model_name(model)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    batch = options.pop("batch", None) or max(1, len(prompts))
    loaded = _mlx_loaded(model, tokenizer, label) if _is_mlx(model) else None
    if loaded is not None:
        device, dtype = loaded.device, loaded.dtype
    else:
        device, dtype = _placement(model)
    params = ProfileParams(**{**API_DEFAULTS, **options, "model": label, "prompt": prompts[0] if prompts else "",
                              "prompts": prompts if len(prompts) > 1 else None, "batch": batch, "device": device,
                              "dtype": dtype})
    params.validate(check_model=False)
    if loaded is None:
        from energyprof.runtimes.transformers.models import LoadedModel

        kind = "causal" if _can_generate(model) else "encoder"
        loaded = LoadedModel(model, tokenizer, kind, label, sum(p.numel() for p in model.parameters()), device,
                             dtype)
    store = Store(db)
    run_id = store.create_run("profile", source=params.source, model=label, device=device, dtype=dtype,
                              params=params.to_dict())
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        return run_profile(store, run_id, params, loaded=loaded)
    finally:
        model.train(was_training)


def _is_mlx(model: Any) -> bool:
    """An MLX model (an mlx.nn.Module), told apart without importing mlx for a torch model."""
    return any(cls.__module__.startswith("mlx.") for cls in type(model).__mro__)


def _mlx_loaded(model: Any, tokenizer: Any, label: str) -> Any:
    from energyprof.runtimes.mlx.models import handed_over

    return handed_over(model, tokenizer, label)


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
