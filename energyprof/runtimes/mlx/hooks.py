"""Layer timing for MLX models, which have no forward hooks: each hooked module INSTANCE gets its class swapped for a
subclass whose `__call__` times the call with its output evaluated (`mx.eval`), so that the time is the layer's work
and not only the building of a lazy graph. The instance stays the same object, so mlx-lm, which reads attributes of
its layers (`layer.use_sliding`, `self_attn.n_heads`, …), sees no difference; a wrapper module would break it. The
original classes come back on exit, also after an error.

Depths as for transformers: ``none``; ``blocks`` = the embedding, each of `model.layers`, the final norm and the head
(`lm_head`, or the embedding's `as_linear` when the model ties them); ``modules`` = also the attention and the MLP
inside each block. A pseudo-layer ``other`` stands for step time inside no top-level hooked module.

Evaluating every layer's output serialises MLX's lazy graph: work MLX would have fused or overlapped across layers
runs layer by layer, and work a step never evaluates (a prefill chunk's head) is done. That is the price of a per-layer
figure; bench/mlx_runtime.py measures it (decode time with blocks ÷ none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from energyprof.spec.records import DEPTHS, Call, Layer, number_layers

_ATTENTION_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn")
_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm")
_EMBEDDING_TYPES = (nn.Embedding, nn.QuantizedEmbedding)

SWAPPED_MARK = "_energyprof_swapped"
"""Set on every swapped subclass (so a test can check that none is left)."""
Around = Callable[[int, Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
"""What a swapped class calls: around(layer_id, original method, module, args, kwargs) -> the method's result."""


class TiedHead:
    """The head of a model that ties it to the embedding: the embedding's `as_linear`, as a callable layer."""

    def __init__(self, embedding: nn.Module) -> None:
        self.embedding = embedding

    def __call__(self, x: Any) -> Any:
        return self.embedding.as_linear(x)


def find_layers(model: nn.Module, depth: str) -> list[Layer]:
    """The layers to hook at this depth, in execution order, plus `other` last (empty for `none`)."""
    if depth not in DEPTHS:
        raise ValueError(f"Unknown layer depth {depth!r}; use one of {', '.join(DEPTHS)}.")
    if depth == "none":
        return []
    names = {id(m): n for n, m in model.named_modules()}
    blocks = list(getattr(model, "layers", None) or [])
    blocks_name = names.get(id(blocks[0]), "layers.0").rpartition(".")[0] if blocks else ""
    found: list[tuple[str, str, Any, list[tuple[str, str, Any]]]] = []
    embedding = _embedding(model, names, blocks)
    if embedding is not None:
        found.append(("embedding", names[id(embedding)], embedding, []))
    for i, block in enumerate(blocks):
        inner = _block_parts(block, f"{blocks_name}.{i}") if depth == "modules" else []
        found.append(("block", f"{blocks_name}.{i}", block, inner))
    norm = _final_norm(model, blocks_name)
    if norm is not None:
        found.append(("norm", names[id(norm)], norm, []))
    head = model.get("lm_head") if isinstance(model.get("lm_head"), nn.Module) else None
    if head is not None:
        found.append(("lm_head", "lm_head", head, []))
    elif embedding is not None and hasattr(embedding, "as_linear"):
        found.append(("lm_head", f"{names[id(embedding)]}.as_linear", TiedHead(embedding), []))
    return number_layers(found)


def _embedding(model: nn.Module, names: dict[int, str], blocks: list[Any]) -> nn.Module | None:
    """The token embedding: the first Embedding outside the blocks."""
    inside = {id(m) for block in blocks for _, m in block.named_modules()}
    for _, module in model.named_modules():
        if isinstance(module, _EMBEDDING_TYPES) and id(module) not in inside and id(module) in names:
            return module
    return None


def _final_norm(model: nn.Module, blocks_name: str) -> nn.Module | None:
    """The norm beside the block list (e.g. `model.norm`)."""
    parent_name = blocks_name.rpartition(".")[0]
    parent: Any = model
    for part in filter(None, parent_name.split(".")):
        parent = parent.get(part) if isinstance(parent, dict) else None
    if not isinstance(parent, nn.Module):
        return None
    for name, child in parent.children().items():
        if isinstance(child, nn.Module) and _is_norm(name, child):
            return child
    return None


def _is_norm(name: str, module: nn.Module) -> bool:
    lowered = name.lower()
    return "norm" in type(module).__name__.lower() or lowered in _NORM_NAMES or lowered.endswith("norm")


def _block_parts(block: nn.Module, prefix: str) -> list[tuple[str, str, Any]]:
    """Attention and MLP children of one block."""
    parts = []
    for name, child in block.children().items():
        if not isinstance(child, nn.Module) or _is_norm(name, child):
            continue
        lowered = name.lower()
        if any(w in lowered for w in _ATTENTION_WORDS):
            parts.append(("attention", f"{prefix}.{name}", child))
        elif any(w in lowered for w in _MLP_WORDS):
            parts.append(("mlp", f"{prefix}.{name}", child))
    return parts


class ClassSwap:
    """Swaps the class of every hooked module instance for a subclass that routes the hooked methods through
    `around`; `restore()` puts every original class back."""

    def __init__(self, layers: list[Layer], around: Around) -> None:
        self.layers = [layer for layer in layers if layer.module is not None]
        self.around = around
        self._swapped: list[tuple[Any, type]] = []

    def attach(self) -> None:
        """Swap every hooked instance's class (idempotent)."""
        if self._swapped:
            return
        methods: dict[int, tuple[Any, dict[str, int]]] = {}
        for layer in self.layers:
            target, method = (layer.module.embedding, "as_linear") if isinstance(layer.module, TiedHead) \
                else (layer.module, "__call__")
            methods.setdefault(id(target), (target, {}))[1][method] = layer.layer_id
        try:
            for target, hooked in methods.values():
                original = type(target)
                target.__class__ = _subclass(original, hooked, self.around)
                self._swapped.append((target, original))
        except BaseException:
            self.restore()
            raise

    def restore(self) -> None:
        """Put every original class back."""
        for target, original in reversed(self._swapped):
            target.__class__ = original
        self._swapped.clear()

    @property
    def attached(self) -> bool:
        return bool(self._swapped)

    def __enter__(self) -> ClassSwap:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _subclass(original: type, hooked: dict[str, int], around: Around) -> type:
    """A subclass of `original` whose hooked methods call `around(layer_id, original method, self, args, kwargs)`."""
    namespace: dict[str, Any] = {"__module__": original.__module__, "__qualname__": original.__qualname__,
                                 SWAPPED_MARK: True}
    for method, layer_id in hooked.items():
        namespace[method] = _routed(getattr(original, method), layer_id, around)
    return type(original.__name__, (original,), namespace)


def _routed(method: Callable[..., Any], layer_id: int, around: Around) -> Callable[..., Any]:
    def routed(self: Any, *args: Any, **kwargs: Any) -> Any:
        return around(layer_id, method, self, args, kwargs)
    return routed


def swapped_count(model: nn.Module) -> int:
    """Module instances of the model whose class is a swapped subclass (for tests: zero after a run)."""
    return sum(1 for _, m in model.named_modules() if SWAPPED_MARK in type(m).__dict__)


class LayerTimer:
    """Times every call of the hooked layers with its inputs and its output evaluated, tagged with the token step the
    loop is in: (layer_id, step, t0_ns, t1_ns). Use as a context manager (classes restored on exit)."""

    def __init__(self, model: nn.Module, depth: str) -> None:
        self.model = model
        self.depth = depth
        self.layers = find_layers(model, depth)
        self.step = 0
        self.calls: list[Call] = []
        self._swap = ClassSwap(self.layers, self._around)

    @property
    def hooked(self) -> bool:
        """True when there are layers to time (the loop then evaluates layer by layer)."""
        return bool(self._swap.layers)

    @property
    def top_level_ids(self) -> list[int]:
        return [layer.layer_id for layer in self.layers if layer.parent_id is None and layer.module is not None]

    @property
    def other_id(self) -> int | None:
        return self.layers[-1].layer_id if self.layers else None

    def _around(self, layer_id: int, method: Callable[..., Any], module: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        mx.eval(args, kwargs)
        t0 = time.perf_counter_ns()
        out = method(module, *args, **kwargs)
        mx.eval(out)
        self.calls.append((layer_id, self.step, t0, time.perf_counter_ns()))
        return out

    def take_calls(self) -> list[Call]:
        """The calls recorded so far; the timer starts a new list."""
        calls, self.calls = self.calls, []
        return calls

    def attach(self) -> None:
        self._swap.attach()

    def detach(self) -> None:
        self._swap.restore()

    @property
    def attached(self) -> bool:
        return self._swap.attached

    def __enter__(self) -> LayerTimer:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()
