"""Which runtime runs a local model (`--runtime auto|transformers|mlx`), and why: no torch, no mlx imported.

`auto` picks **mlx** for an MLX model and **transformers** otherwise. An MLX model is a folder whose weights mlx-lm
wrote or quantised (config.json has mlx-lm's `quantization` entry, the safetensors hold `.scales`/`.biases` of
MLX-quantised layers, or their metadata says `format: mlx`), a Hugging Face id of such a model in the local cache,
or an `mlx-community/…` id. Built-in models run under transformers unless mlx is asked for.

`choose_runtime` never raises (the engine must get as far as its run to mark it failed); `check_runtime`, called
when the workload loads, says in one sentence why the chosen runtime cannot load the model: a folder that is
neither an MLX nor a transformers model, MLX-quantised weights under transformers, mlx not installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from energyprof.errors import EnergyprofError
from energyprof.spec.builtins import BUILTIN_MODELS

if TYPE_CHECKING:  # the parameter table imports energyprof.runtimes.endpoint.url, so not at run time
    from energyprof.spec.params import ProfileParams

log = logging.getLogger(__name__)

MLX_HUB_PREFIX = "mlx-community/"
INSTALL_MLX = 'pip install -e ".[mlx]"'
"""How to get the MLX runtime from a clone (on an Apple Silicon Mac `pip install -e .` already brings it)."""
MLX_WEIGHT_SUFFIXES: tuple[str, ...] = (".scales", ".biases")
"""Tensor name endings of MLX-quantised layers (mlx.nn.QuantizedLinear / QuantizedEmbedding)."""
MAX_HEADER_BYTES = 100_000_000
"""A safetensors header larger than this is not read (a damaged or hostile file)."""


class RuntimeChoiceError(EnergyprofError, ValueError):
    """The chosen runtime cannot load this model (or is not installed); one sentence saying what to do."""


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime a local model runs under, and the reason (shown on the run page and by the CLI)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ModelFormat:
    """What the model name points at, as far as can be told without loading it."""

    where: str
    """`builtin`, `folder`, `hub` (an id, cached or not) or `missing` (a path that does not exist)."""
    path: Path | None
    """The folder holding config.json (a local folder, or the id's snapshot in the Hugging Face cache)."""
    mlx_marker: str | None
    """Why this is an MLX model (None: it is not one, as far as the files say)."""
    mlx_quantized: bool
    """The weights are MLX-quantised (transformers cannot read them)."""
    has_config: bool
    model_type: str | None


def mlx_installed() -> bool:
    """True when mlx and mlx-lm can be imported here (checked without importing them)."""
    try:
        return importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class RuntimeStatus:
    """Whether a runtime can run here, and what with (for `energyprof doctor`)."""

    name: str
    available: bool
    detail: str


def mlx_status() -> RuntimeStatus:
    """The MLX runtime here: mlx and mlx-lm versions and mlx's default device, or how to install it."""
    if not mlx_installed():
        return RuntimeStatus("mlx", False, mlx_missing_sentence())
    from importlib.metadata import PackageNotFoundError, version

    try:
        import mlx.core as mx

        device = "gpu" if mx.default_device().type == mx.gpu else "cpu"
        versions = ", ".join(f"{pkg} {version(pkg)}" for pkg in ("mlx", "mlx-lm"))
    except (ImportError, OSError, PackageNotFoundError) as exc:
        return RuntimeStatus("mlx", False, f"mlx is installed but cannot be used here ({type(exc).__name__}: "
                                           f"{str(exc).strip()[:200]}); reinstall it with {INSTALL_MLX}.")
    return RuntimeStatus("mlx", True, f"{versions}; mlx's default device here is the {device}")


def mlx_missing_sentence() -> str:
    return (f"The MLX runtime is not installed here (mlx and mlx-lm); install it with {INSTALL_MLX} (on an Apple "
            "Silicon Mac `pip install -e .` brings it), or use --runtime transformers.")


def model_format(name: str) -> ModelFormat:
    """Look at the files a model name points at (config.json and the safetensors headers; nothing is loaded)."""
    if name in BUILTIN_MODELS:
        return ModelFormat("builtin", None, None, False, True, "llama")
    local = Path(name).expanduser()
    if local.is_dir():
        return _folder_format("folder", local)
    if _looks_like_path(name):
        return ModelFormat("missing", None, None, False, False, None)
    cached = _hub_snapshot(name)
    if cached is not None:
        found = _folder_format("hub", cached)
        if found.mlx_marker is None and name.startswith(MLX_HUB_PREFIX):
            return ModelFormat("hub", cached, f"an {MLX_HUB_PREFIX}… id", found.mlx_quantized, found.has_config,
                               found.model_type)
        return found
    marker = f"an {MLX_HUB_PREFIX}… id" if name.startswith(MLX_HUB_PREFIX) else None
    return ModelFormat("hub", None, marker, False, False, None)


def choose_runtime(params: ProfileParams) -> RuntimeChoice:
    """The runtime for these parameters and why (never raises: check_runtime says what cannot work)."""
    asked = params.runtime
    if asked in ("transformers", "mlx"):
        choice = RuntimeChoice(asked, f"asked for with --runtime {asked}")
    else:
        found = model_format(params.model)
        if found.mlx_marker is not None:
            choice = RuntimeChoice("mlx", f"auto: {found.mlx_marker}, so an MLX model")
        elif found.where == "builtin":
            choice = RuntimeChoice("transformers", "auto: a built-in model runs under transformers unless "
                                                   "--runtime mlx is given")
        else:
            choice = RuntimeChoice("transformers", "auto: not an MLX model (no MLX-quantised weights, not an "
                                                   f"{MLX_HUB_PREFIX}… id)")
    log.info("runtime %s for model %r: %s", choice.name, params.model, choice.reason)
    return choice


def loaded_runtime(loaded: Any) -> str:
    """The runtime a model handed over already loaded belongs to (an MLX model, else transformers)."""
    module = type(loaded).__module__
    return "mlx" if module.startswith(("energyprof.runtimes.mlx", "mlx.")) else "transformers"


def check_runtime(choice: RuntimeChoice, model: str) -> ModelFormat:
    """RuntimeChoiceError (one sentence) when the chosen runtime cannot load this model; else what the files say."""
    found = model_format(model)
    if found.where == "folder" and not found.has_config:
        raise RuntimeChoiceError(
            f"The folder {model} is neither an MLX nor a transformers model: it has no config.json; give a folder "
            "saved by transformers' save_pretrained or by mlx-lm (mlx_lm.convert), or a built-in model name.")
    if choice.name == "transformers" and found.mlx_quantized:
        raise RuntimeChoiceError(
            f"Model {model} is an MLX-quantised model ({found.mlx_marker}) and transformers cannot read its "
            "weights; use --runtime mlx (or auto).")
    if choice.name == "mlx" and not mlx_installed():
        raise RuntimeChoiceError(mlx_missing_sentence())
    return found


def _looks_like_path(name: str) -> bool:
    """A name that can only be a path (a Hub id is `owner/name`, without these)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _hub_snapshot(name: str) -> Path | None:
    """The local snapshot folder of a Hub id whose config.json is in the Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # an invalid id or a cache problem only means 'not cached'
        return None
    return Path(found).parent if isinstance(found, str) and Path(found).is_file() else None


def _folder_format(where: str, folder: Path) -> ModelFormat:
    config = _read_config(folder / "config.json")
    if config is None:
        return ModelFormat(where, folder, None, False, False, None)
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    if isinstance(config.get("quantization"), dict):
        return ModelFormat(where, folder, "its config.json has mlx-lm's quantization entry",
                           True, True, model_type)
    names, formats = _safetensors_facts(folder)
    if any(n.endswith(MLX_WEIGHT_SUFFIXES) for n in names):
        return ModelFormat(where, folder, "its safetensors hold MLX-quantised layers (.scales and .biases)", True, True,
                           model_type)
    if "mlx" in formats:
        return ModelFormat(where, folder, "its safetensors were written by mlx", False, True,
                           model_type)
    return ModelFormat(where, folder, None, False, True, model_type)


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _safetensors_facts(folder: Path) -> tuple[list[str], set[str]]:
    """Tensor names and `format` metadata of the folder's safetensors files (their headers only)."""
    names: list[str] = []
    formats: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        header = _safetensors_header(file)
        meta = header.pop("__metadata__", None)
        if isinstance(meta, dict) and isinstance(meta.get("format"), str):
            formats.add(meta["format"])
        names.extend(header)
    return names, formats


def _safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file (8-byte little-endian length, then JSON); {} when unreadable."""
    try:
        with file.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                return {}
            data = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    return data if isinstance(data, dict) else {}
