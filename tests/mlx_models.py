"""Model folders for the MLX runtime tests: the tiny built-in written as an MLX-quantised folder (as mlx_lm.convert
writes one), and the tiny transformers built-in saved with save_pretrained (a Hugging Face-format llama folder that
both runtimes load)."""

from __future__ import annotations

import json
from pathlib import Path


def save_quantised_tiny(folder: Path, bits: int = 4) -> Path:
    """The tiny built-in, MLX-quantised to `bits` (group 32), with config.json and the ByT5 tokenizer."""
    from energyprof.runtimes.mlx.models import save_builtin

    return save_builtin("tiny", folder, bits=bits)


def save_hf_llama(folder: Path) -> Path:
    """The tiny transformers built-in (LlamaForCausalLM, safetensors) and its tokenizer, saved with save_pretrained."""
    from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer

    build_builtin("tiny").save_pretrained(folder)
    builtin_tokenizer().save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes: object) -> None:
    """Change entries of a saved model's config.json (None removes one)."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
