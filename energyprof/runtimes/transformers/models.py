"""Models to profile: built-in Llama-shaped models with seeded random weights, or any local/Hub model."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch
from torch import nn

from energyprof.errors import EnergyprofError, detail
from energyprof.spec.params import DEVICE_NAMES, DTYPE_NAMES

ModelKind = Literal["causal", "encoder"]

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}
DEVICES: tuple[str, ...] = DEVICE_NAMES
BUILTIN_SEED = 0
HUB_PROBE_TIMEOUT_S = 3.0

BUILTIN_MODELS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "small": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "num_key_value_heads": 4},
    "medium": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 24,
               "num_attention_heads": 16, "num_key_value_heads": 8},
}
"""Llama shapes of the built-in models: tiny ≈ 3M parameters (tests), small ≈ 100M, medium ≈ 290M."""


class ModelLoadError(EnergyprofError, ValueError):
    """A model, device or dtype could not be loaded; the message is one sentence a user can act on."""


@dataclass
class LoadedModel:
    """A model ready to profile, with the tokenizer that goes with it."""

    model: nn.Module
    tokenizer: Any
    kind: ModelKind
    name: str
    n_params: int
    device: str
    dtype: str


def resolve_device(device: str) -> str:
    """'auto' becomes cuda, mps or cpu (first available); an unavailable device raises ModelLoadError."""
    base = device.split(":", 1)[0]
    if base not in DEVICES:
        raise ModelLoadError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    if base == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} is not available here: torch.cuda.is_available() is False; use --device cpu.")
    if base == "mps" and not _mps_available():
        raise ModelLoadError(
            f"Device {device!r} is not available here: torch.backends.mps.is_available() is False; "
            "use --device cpu.")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_dtype(dtype: str) -> torch.dtype:
    """The torch dtype for float32/float16/bfloat16; anything else raises ModelLoadError."""
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}.") from None


def synchronize(device: str) -> None:
    """Wait for queued work on an asynchronous device (no-op on cpu)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device.startswith("mps"):
        torch.mps.synchronize()


def builtin_tokenizer() -> Any:
    """The byte-level tokenizer of the built-in models (ByT5: needs no files)."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def builtin_config(name: str) -> Any:
    """The LlamaConfig of a built-in model, its vocabulary and special ids matching the ByT5 tokenizer."""
    from transformers import LlamaConfig

    tok = builtin_tokenizer()
    return LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, bos_token_id=None,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
                       **BUILTIN_MODELS[name])


def build_builtin(name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A built-in model with seeded random weights (the same weights on every call)."""
    from transformers import LlamaForCausalLM

    config = builtin_config(name)
    devices = ["cuda"] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(BUILTIN_SEED)
        model = LlamaForCausalLM(config)
    return model.to(dtype=dtype).eval()


def load_model(name_or_path: str, device: str = "cpu", dtype: str = "float32",
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a built-in model, a local model folder or a Hugging Face id, on device in dtype."""
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    if name_or_path in BUILTIN_MODELS:
        model: nn.Module = build_builtin(name_or_path, torch_dtype)
        tokenizer, kind = builtin_tokenizer(), "causal"
    else:
        model, tokenizer, kind = _load_pretrained(name_or_path, torch_dtype, trust_remote_code)
    model = model.to(dev).eval()
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, kind, name_or_path, n_params, dev, dtype)


def _load_pretrained(name: str, dtype: torch.dtype, trust_remote_code: bool) -> tuple[nn.Module, Any, ModelKind]:
    """A local folder or Hub id through AutoConfig, then AutoModelForCausalLM or AutoModel."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    local = Path(name).expanduser()
    is_local = local.is_dir()
    if not is_local:
        _check_hub_reachable(name)
    source = str(local) if is_local else name
    kwargs = {"trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        kind = model_kind(config)
        auto = AutoModelForCausalLM if kind == "causal" else AutoModel
        model = auto.from_pretrained(source, config=config, dtype=dtype, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_load_failure(name, is_local, exc)) from exc
    return model, tokenizer, kind


def _load_failure(name: str, is_local: bool, exc: Exception) -> str:
    """One sentence on why a model could not be loaded."""
    why = detail(exc)
    if "trust_remote_code" in str(exc):
        return (f"Could not load model {name!r}: it needs code from its repository ({why}); "
                "pass --trust-remote-code only if you trust that code.")
    if is_local:
        return f"Could not load model {name!r} from its local folder ({why}); check that it holds a model."
    return (f"Could not load model {name!r}: it is not a built-in ({', '.join(BUILTIN_MODELS)}), not a local "
            f"folder, and could not be fetched from the Hugging Face Hub ({why}). "
            "Check the name, or pass a local folder.")


def _check_hub_reachable(name: str) -> None:
    """Fail fast, instead of retrying for half a minute, when an id cannot be fetched from the Hub."""
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    prefix = (f"Could not load model {name!r}: it is not a built-in ({', '.join(BUILTIN_MODELS)}), not a local "
              "folder, and could not be fetched from the Hugging Face Hub")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelLoadError(f"{prefix} (it is not a valid Hub id). Check the name, or pass a local folder.") \
            from None
    if _in_hub_cache(name) or constants.HF_HUB_OFFLINE:
        return
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ModelLoadError(f"{prefix} ({host} is unreachable: {exc}). Check the name, or pass a local folder.") \
            from None


def _in_hub_cache(name: str) -> bool:
    """True when the Hub cache already holds this id's config (so it loads without the network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # a cache lookup problem only means 'not cached'
        return False
    return isinstance(found, str) and os.path.exists(found)


def model_kind(config: Any) -> ModelKind:
    """'causal' for decoder-only language models, 'encoder' for encoder-only ones; else ModelLoadError."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"Model type {config.model_type!r} is an encoder-decoder model; energyprof profiles decoder-only "
            "and encoder-only models.")
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        causal = any(a in causal_classes or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
        return "causal" if causal else "encoder"
    if getattr(config, "is_decoder", False) or (
            config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not hasattr(config, "type_vocab_size")):
        return "causal"
    return "encoder"


def encode_prompt(tokenizer: Any, prompt: str, kind: ModelKind) -> list[int]:
    """Token ids of the prompt; a causal prompt loses a trailing EOS that some tokenizers append (ByT5)."""
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    eos = getattr(tokenizer, "eos_token_id", None)
    if kind == "causal" and len(ids) > 1 and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return ids
