"""Models for the MLX runtime: built-ins with seeded random weights (the transformers built-ins' shapes and the ByT5
tokenizer), a local folder mlx-lm can load (MLX-quantised or not, or a Hugging Face-format folder it converts), or a
Hub id already in the local Hugging Face cache.

A built-in can be written to a folder, optionally MLX-quantised (`save_builtin`), the way `mlx_lm.convert` writes
one: that folder is an MLX model any mlx-lm tool opens offline."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from energyprof.errors import detail
from energyprof.runtimes.choice import ModelFormat
from energyprof.runtimes.mlx.errors import MlxError
from energyprof.spec.builtins import BUILTIN_CONTEXT, BUILTIN_MODELS, BUILTIN_SEED
from energyprof.spec.params import DEVICE_NAMES

log = logging.getLogger(__name__)

DTYPES: dict[str, Any] = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
RMS_NORM_EPS = 1e-6
"""transformers' LlamaConfig default, so a built-in has the same norm under both runtimes."""
ROPE_THETA = 10000.0
QUANT_GROUP_SIZES: tuple[int, ...] = (32, 64, 128)
"""Group sizes mlx's affine quantisation supports."""


@dataclass
class MlxLoaded:
    """An MLX model ready to profile, with the tokenizer that goes with it."""

    model: nn.Module
    tokenizer: Any
    """The Hugging Face tokenizer (encode, decode)."""
    eos_ids: set[int]
    name: str
    n_params: int
    device: str
    dtype: str
    quantization: str | None = None
    """How the weights are quantised (e.g. `4-bit affine, group 32`); None for full-precision weights."""
    kind: str = "causal"
    config: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> tuple[Any, str]:
    """(mlx device, its name) for the device parameter: auto = mlx's default; cpu; mps/cuda = mlx's GPU (Metal on a
    Mac, CUDA with mlx[cuda]); an unavailable one raises MlxError."""
    base, _, index = device.partition(":")
    if base not in DEVICE_NAMES:
        raise MlxError(f"Unknown device {device!r}; use one of {', '.join(DEVICE_NAMES)}.")
    if base == "auto":
        chosen = mx.default_device()
    elif base == "cpu":
        chosen = mx.Device(mx.cpu)
    else:
        gpu = "Metal" if sys.platform == "darwin" else "CUDA"
        wanted = "mps" if sys.platform == "darwin" else "cuda"
        if base != wanted or not mx.is_available(mx.gpu):
            raise MlxError(f"Device {device!r} is not available to mlx here (mlx's GPU is {gpu} on this platform and "
                           f"mx.is_available(mx.gpu) is {mx.is_available(mx.gpu)}); use --device cpu or auto.")
        chosen = mx.Device(mx.gpu, int(index) if index.isdigit() else 0)
    return chosen, "cpu" if chosen.type == mx.cpu else "gpu"


def builtin_tokenizer() -> Any:
    """The byte-level tokenizer of the built-in models (ByT5: needs no files)."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def builtin_config(name: str) -> dict[str, Any]:
    """The config.json of a built-in model: the transformers built-in's Llama shapes and the ByT5 tokenizer's ids."""
    tok = builtin_tokenizer()
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": len(tok),
            "max_position_embeddings": BUILTIN_CONTEXT, "rms_norm_eps": RMS_NORM_EPS, "rope_theta": ROPE_THETA,
            "tie_word_embeddings": False, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "bos_token_id": None, **BUILTIN_MODELS[name]}


def build_builtin(name: str, dtype: str = "float32") -> nn.Module:
    """A built-in model with seeded random weights (the same weights on every call), evaluated."""
    from mlx_lm.models import llama

    args = llama.ModelArgs.from_dict(builtin_config(name))
    mx.random.seed(BUILTIN_SEED)
    model = llama.Model(args)
    if dtype != "float32":
        model.set_dtype(_dtype(dtype))
    mx.eval(model.parameters())
    return model.eval()


def quantize(model: nn.Module, bits: int = 4, group_size: int = 32) -> dict[str, Any]:
    """MLX-quantise the model in place (every Linear and Embedding whose input size the group divides, as
    mlx_lm.convert does); returns the config's `quantization` entry."""
    if group_size not in QUANT_GROUP_SIZES:
        raise MlxError(f"Group size {group_size} is not one mlx supports; use one of "
                       f"{', '.join(map(str, QUANT_GROUP_SIZES))}.")

    def fits(_path: str, module: nn.Module) -> bool:
        return hasattr(module, "to_quantized") and module.weight.shape[-1] % group_size == 0

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=fits)
    return {"group_size": group_size, "bits": bits, "mode": "affine"}


def save_builtin(name: str, folder: str | Path, *, bits: int | None = None, group_size: int = 32,
                 dtype: str = "float32") -> Path:
    """Write a built-in model to `folder` as an MLX model (weights, config.json, the ByT5 tokenizer), MLX-quantised
    to `bits` when given; returns the folder."""
    from mlx_lm.utils import save_config, save_model

    out = Path(folder)
    model = build_builtin(name, dtype)
    config = builtin_config(name)
    if bits is not None:
        config["quantization"] = quantize(model, bits, group_size)
    save_model(out, model)
    save_config(config, out / "config.json")
    builtin_tokenizer().save_pretrained(str(out))
    return out


def load_model(name: str, found: ModelFormat, device: str = "auto", dtype: str = "float32",
               trust_remote_code: bool = False) -> MlxLoaded:
    """Load a built-in, a local folder or a cached Hub id with mlx-lm on the device; full-precision weights are cast
    to `dtype`, quantised ones stay as they were saved. Raises MlxError with one sentence."""
    chosen, device_name = resolve_device(device)
    mx.set_default_device(chosen)
    if found.where == "builtin":
        model = build_builtin(name, dtype)
        tokenizer = builtin_tokenizer()
        loaded = MlxLoaded(model, tokenizer, {tokenizer.eos_token_id}, name, _n_params(model), device_name, dtype,
                           None, config=builtin_config(name))
    else:
        loaded = _load_folder(name, _folder_of(name, found), device_name, dtype, trust_remote_code)
    _check_runs(loaded)
    log.info("loaded %s with mlx on %s: %s parameters, %s%s", name, device_name, loaded.n_params, loaded.dtype,
             f", {loaded.quantization}" if loaded.quantization else "")
    return loaded


def handed_over(model: nn.Module, tokenizer: Any, name: str) -> MlxLoaded:
    """An MLX model (and its tokenizer: a Hugging Face tokenizer or mlx-lm's TokenizerWrapper) that the caller already
    loaded, on mlx's default device, as it is."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    eos = eos_ids(tokenizer)
    quantized = next((m for _, m in model.named_modules() if hasattr(m, "bits") and hasattr(m, "group_size")), None)
    quantization = None if quantized is None else describe_quantization(
        {"bits": quantized.bits, "group_size": quantized.group_size, "mode": getattr(quantized, "mode", "affine")})
    device = "cpu" if mx.default_device().type == mx.cpu else "gpu"
    return MlxLoaded(model, hf, eos, name, _n_params(model), device, float_dtype(model), quantization)


def _folder_of(name: str, found: ModelFormat) -> Path:
    if found.where == "missing":
        raise MlxError(f"There is no folder {name}; check the path.")
    if found.path is None:
        raise MlxError(f"Model {name!r} is not a built-in, not a local folder, and not in the local Hugging Face "
                       "cache; the MLX runtime loads Hub ids from the cache only: download it first (e.g. `hf "
                       f"download {name}`) or give a local folder.")
    return found.path


def _load_folder(name: str, folder: Path, device: str, dtype: str, trust_remote_code: bool) -> MlxLoaded:
    """mlx_lm.load of a folder, its failures as one sentence each."""
    from mlx_lm import load

    try:
        model, wrapper, config = load(str(folder), return_config=True, trust_remote_code=trust_remote_code)
    except FileNotFoundError as exc:
        raise MlxError(f"Model {name} has no model*.safetensors files, which mlx-lm reads weights from "
                       f"({detail(exc)}); save the model with safetensors, or use --runtime transformers.") from exc
    except ValueError as exc:
        raise MlxError(_load_failure(name, folder, exc)) from exc
    except Exception as exc:  # a damaged or incomplete folder: one sentence, never a traceback
        raise MlxError(f"Model {name} could not be loaded by mlx-lm ({type(exc).__name__}: {detail(exc)}); check "
                       "that the folder holds a complete model, or use --runtime transformers.") from exc
    quantization = describe_quantization(config.get("quantization"))
    if quantization is None and dtype in DTYPES:
        model.set_dtype(_dtype(dtype))
        mx.eval(model.parameters())
    elif quantization is not None:
        log.info("%s is quantised (%s): its weights stay as saved, the dtype parameter does not apply", name,
                 quantization)
    tokenizer = getattr(wrapper, "_tokenizer", wrapper)
    return MlxLoaded(model.eval(), tokenizer, eos_ids(wrapper), name, _n_params(model), device, float_dtype(model),
                     quantization, config=config)


def _load_failure(name: str, folder: Path, exc: ValueError) -> str:
    """One sentence for a ValueError from mlx_lm.load (unknown architecture, quantisation, custom code)."""
    text = detail(exc)
    if "not supported" in text and "Model type" in text:
        model_type = _config_model_type(folder)
        return (f"The architecture {model_type!r} of model {name} is not one mlx-lm knows ({text}); use --runtime "
                "transformers.")
    if "trust_remote_code" in text:
        return (f"Model {name} needs its own Python code to build its architecture; pass --trust-remote-code only if "
                "you trust that code.")
    if "quantiz" in text.lower() or "group size" in text.lower() or "bits" in text.lower():
        return (f"The quantisation of model {name} cannot run with mlx ({text}); use a model quantised with "
                "mlx_lm.convert (2-8 bits, group size 32, 64 or 128), or another model.")
    return f"Model {name} could not be loaded by mlx-lm ({text}); check the folder, or use --runtime transformers."


def _check_runs(loaded: MlxLoaded) -> None:
    """One token through the model on its device, evaluated: a quantisation or kernel this device cannot run fails
    here, at load, with one sentence."""
    from mlx_lm.models.cache import make_prompt_cache

    try:
        out = loaded.model(mx.array([[0]]), cache=make_prompt_cache(loaded.model))
        mx.eval(out)
    except Exception as exc:  # any kernel or shape failure becomes the sentence below
        what = f" ({loaded.quantization})" if loaded.quantization else ""
        raise MlxError(f"Model {loaded.name}{what} cannot run with mlx on the {loaded.device}: {type(exc).__name__}: "
                       f"{detail(exc)}; try another device or a model quantised with mlx_lm.convert.") from exc


def eos_ids(tokenizer: Any) -> set[int]:
    """Every id that ends generation: mlx-lm's TokenizerWrapper's `eos_token_ids` (the config's and the
    tokenizer's) and the Hugging Face tokenizer's `eos_token_id`."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    ids: set[int] = set()
    for value in (getattr(tokenizer, "eos_token_ids", None), getattr(hf, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple | set | frozenset):
            ids.update(int(v) for v in value if isinstance(v, int))
    return ids


def describe_quantization(entry: Any) -> str | None:
    """`4-bit affine, group 32` for a config's `quantization` entry; None when there is none."""
    if not isinstance(entry, dict) or "bits" not in entry:
        return None
    return f"{entry.get('bits')}-bit {entry.get('mode', 'affine')}, group {entry.get('group_size', '?')}"


def float_dtype(model: nn.Module) -> str:
    """The floating dtype of the model's parameters (the activations'), e.g. `float16`."""
    for _, value in tree_flatten(model.parameters()):
        if isinstance(value, mx.array) and mx.issubdtype(value.dtype, mx.floating):
            return str(value.dtype).rpartition(".")[2]
    return "float32"


def _n_params(model: nn.Module) -> int:
    from mlx_lm.utils import get_total_parameters

    return int(get_total_parameters(model))


def _dtype(name: str) -> Any:
    try:
        return DTYPES[name]
    except KeyError:
        raise MlxError(f"Unknown dtype {name!r}; use one of {', '.join(DTYPES)}.") from None


def _config_model_type(folder: Path) -> str | None:
    import json

    try:
        value = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
