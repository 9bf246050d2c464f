"""Layer hooks: time every call of the chosen modules, tagged with the token step the loop is in.

Depths: ``none`` (no hooks), ``blocks`` (embedding, each decoder block, final norm, lm_head) and
``modules`` (also attention and MLP inside each block). Modules are found generically (Llama, GPT-2,
BERT-like): the block list is the biggest ``nn.ModuleList`` of same-class children, the embedding and
lm_head come from get_input_embeddings / get_output_embeddings, the final norm sits next to the block
list. A pseudo-layer ``other`` stands for step time inside no top-level hooked module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from energyprof.runtimes.transformers.models import synchronize
from energyprof.spec.records import DEPTHS, Call, Layer, number_layers

_ATTENTION_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn", "intermediate")
_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm")


def find_layers(model: nn.Module, depth: str) -> list[Layer]:
    """The layers to hook at this depth, in execution order, plus `other` last (empty for `none`)."""
    if depth not in DEPTHS:
        raise ValueError(f"Unknown layer depth {depth!r}; use one of {', '.join(DEPTHS)}.")
    if depth == "none":
        return []
    names = {id(m): n for n, m in model.named_modules()}
    blocks_name, blocks = _block_list(model)
    found: list[tuple[str, str, nn.Module, list[tuple[str, str, nn.Module]]]] = []
    embedding = _embedding_module(model, names, blocks_name)
    if embedding is not None:
        found.append(("embedding", names[id(embedding)], embedding, []))
    for i, block in enumerate(blocks or []):
        inner = _block_parts(block, f"{blocks_name}.{i}") if depth == "modules" else []
        found.append(("block", f"{blocks_name}.{i}", block, inner))
    norm = _final_norm(model, blocks_name)
    if norm is not None:
        found.append(("norm", names[id(norm)], norm, []))
    head = _output_module(model)
    if head is not None and all(head is not m for _, _, m, _ in found):
        found.append(("lm_head", names.get(id(head), "lm_head"), head, []))
    return number_layers(found)


def _block_list(model: nn.Module) -> tuple[str, nn.ModuleList | None]:
    """The ModuleList of decoder/encoder blocks: same-class children, the most parameters (ties: most children)."""
    best: tuple[int, int] = (-1, -1)
    chosen: tuple[str, nn.ModuleList | None] = ("", None)
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        key = (sum(p.numel() for p in module.parameters()), len(module))
        if key > best:
            best, chosen = key, (name, module)
    return chosen


def _embedding_module(model: nn.Module, names: dict[int, str], blocks_name: str) -> nn.Module | None:
    """The input embedding, or its container (e.g. BERT's embeddings) when that holds nothing else of note."""
    embedding = _call_quietly(model, "get_input_embeddings")
    if embedding is None or id(embedding) not in names:
        return None
    name = names[id(embedding)]
    parent_name = name.rpartition(".")[0]
    if not parent_name or blocks_name == parent_name or blocks_name.startswith(parent_name + "."):
        return embedding
    parent = model.get_submodule(parent_name)
    if model is parent or _output_module(model) in set(parent.modules()):
        return embedding
    return parent


def _output_module(model: nn.Module) -> nn.Module | None:
    return _call_quietly(model, "get_output_embeddings")


def _call_quietly(model: nn.Module, method: str) -> nn.Module | None:
    """model.method() when it exists and works, else None."""
    fn = getattr(model, method, None)
    if fn is None:
        return None
    try:
        result = fn()
    except (NotImplementedError, AttributeError):
        return None
    return result if isinstance(result, nn.Module) else None


def _final_norm(model: nn.Module, blocks_name: str) -> nn.Module | None:
    """The first norm module among the block list's siblings after it."""
    if not blocks_name:
        return None
    parent_name, _, list_name = blocks_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    after = False
    for name, child in parent.named_children():
        if name == list_name:
            after = True
        elif after and _is_norm(name, child):
            return child
    return None


def _is_norm(name: str, module: nn.Module) -> bool:
    lowered = name.lower()
    return "norm" in type(module).__name__.lower() or lowered in _NORM_NAMES or lowered.endswith("norm")


def _block_parts(block: nn.Module, prefix: str) -> list[tuple[str, str, nn.Module]]:
    """Attention and MLP children of one block (BERT's `intermediate` and `output` both count as MLP)."""
    children = list(block.named_children())
    has_intermediate = any("intermediate" in n.lower() for n, _ in children)
    parts = []
    for name, child in children:
        lowered = name.lower()
        if _is_norm(name, child) or lowered.startswith("ln_"):
            continue
        if any(w in lowered for w in _ATTENTION_WORDS):
            parts.append(("attention", f"{prefix}.{name}", child))
        elif any(w in lowered for w in _MLP_WORDS) or (lowered == "output" and has_intermediate):
            parts.append(("mlp", f"{prefix}.{name}", child))
    return parts


class LayerRecorder:
    """Hooks the layers of one model and records every call as (layer_id, step, t0_ns, t1_ns).

    Use as a context manager (hooks are removed on exit, also on errors). The token loop sets `step`.
    """

    def __init__(self, model: nn.Module, depth: str, device: str = "cpu") -> None:
        self.model = model
        self.depth = depth
        self.layers = find_layers(model, depth)
        self.sync = not device.startswith("cpu")
        self.device = device
        self.step = 0
        self.calls: list[Call] = []
        self._handles: list[Any] = []

    @property
    def top_level_ids(self) -> list[int]:
        """Ids of hooked layers without a parent (their calls never overlap; other fills the rest)."""
        return [layer.layer_id for layer in self.layers if layer.parent_id is None and layer.module is not None]

    @property
    def other_id(self) -> int | None:
        return self.layers[-1].layer_id if self.layers else None

    def attach(self) -> None:
        """Register the pre/post hooks (idempotent)."""
        if self._handles:
            return
        for layer in self.layers:
            if layer.module is None:
                continue
            pre, post = self._hooks(layer.layer_id)
            self._handles.append(layer.module.register_forward_pre_hook(pre))
            self._handles.append(layer.module.register_forward_hook(post))

    def detach(self) -> None:
        """Remove every hook this recorder registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def take_calls(self) -> list[Call]:
        """The calls recorded so far; the recorder starts a new list."""
        calls, self.calls = self.calls, []
        return calls

    def _hooks(self, layer_id: int) -> tuple[Callable[..., None], Callable[..., None]]:
        """A pre and a post hook for one layer: cheap closures writing to python lists."""
        clock = time.perf_counter_ns
        start = [0]
        recorder = self
        if self.sync:
            device = self.device

            def pre(module: nn.Module, args: Any) -> None:
                synchronize(device)
                start[0] = clock()

            def post(module: nn.Module, args: Any, output: Any) -> None:
                synchronize(device)
                recorder.calls.append((layer_id, recorder.step, start[0], clock()))
        else:
            def pre(module: nn.Module, args: Any) -> None:
                start[0] = clock()

            def post(module: nn.Module, args: Any, output: Any) -> None:
                recorder.calls.append((layer_id, recorder.step, start[0], clock()))
        return pre, post

    def __enter__(self) -> LayerRecorder:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


@contextmanager
def recording(model: nn.Module, depth: str, device: str = "cpu") -> Iterator[LayerRecorder]:
    """Hook the model for the duration of the block; hooks are always removed."""
    recorder = LayerRecorder(model, depth, device)
    with recorder:
        yield recorder


def hook_count(model: nn.Module) -> int:
    """Forward (pre) hooks registered on any module of the model (for tests: zero after a run)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
