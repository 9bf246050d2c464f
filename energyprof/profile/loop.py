"""The token loop: a manual KV-cache loop (not model.generate) so every step has exact start and end times.

Step 0 is the prefill (the prompt's forward pass, yielding the first token); each following step is one
decode forward pass yielding one token. Steps are contiguous: a step ends when the next begins, so the
steps of a repeat partition its workload span. On cuda/mps the device is synchronised at every step
boundary. Encoder-only models get one `forward` step per repeat.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from energyprof.power.base import now_ns
from energyprof.profile.hooks import Call, LayerRecorder
from energyprof.profile.models import synchronize

StepTuple = tuple[int, str, int, int, int, int | None]
"""(idx, phase, t0_ns, t1_ns, n_tokens, token_id): what the loop records per step, cheaply."""

DECODE_CONTEXT = 8
"""Previous tokens decoded with each token, so multi-byte characters and leading spaces come out right."""


@dataclass(frozen=True)
class LoopOptions:
    """How to generate: length, stopping and sampling (temperature 0 = greedy)."""

    max_new_tokens: int = 32
    ignore_eos: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Generation:
    """What one repeat recorded; filled while it runs, so a cancelled repeat keeps its steps."""

    repeat: int
    prompt_ids: list[int]
    steps: list[StepTuple] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)

    @property
    def new_tokens(self) -> int:
        """Tokens generated (one per causal step; 0 for an encoder forward pass)."""
        return sum(1 for s in self.steps if s[5] is not None)

    @property
    def span_ns(self) -> tuple[int, int] | None:
        """[first step start, last step end], the repeat's workload window."""
        return (self.steps[0][2], self.steps[-1][3]) if self.steps else None

    def step_rows(self) -> list[tuple[Any, ...]]:
        """Rows for Store.add_steps: (repeat, idx, phase, t0_ns, t1_ns, n_tokens, token_id, token_text)."""
        texts = self.texts + [None] * (len(self.steps) - len(self.texts))
        return [(self.repeat, idx, phase, t0, t1, n, tok, text)
                for (idx, phase, t0, t1, n, tok), text in zip(self.steps, texts, strict=True)]


def forward_parameters(model: nn.Module) -> set[str]:
    """Names the model's forward accepts."""
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _cache_keyword(params: set[str]) -> str:
    """`cache` (transformers 5.2x) or the older `past_key_values`."""
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(output: Any) -> Any:
    for key in ("cache", "past_key_values"):
        value = output.get(key) if hasattr(output, "get") else getattr(output, key, None)
        if value is not None:
            return value
    return None


def eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    """Every id that ends generation: the model config's eos ids and the tokenizer's."""
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def choose_token(logits: torch.Tensor, options: LoopOptions, generator: torch.Generator | None) -> torch.Tensor:
    """The next token, shape (1, 1): argmax when greedy, else temperature + top-p sampling (on the CPU)."""
    if options.temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = torch.softmax(logits.float().cpu() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs > options.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        pick = torch.multinomial(sorted_probs, 1, generator=generator)
        token = order.gather(-1, pick)
    else:
        token = torch.multinomial(probs, 1, generator=generator)
    return token.to(logits.device)


def generate(model: nn.Module, tokenizer: Any, prompt_ids: list[int], options: LoopOptions, device: str,
             recorder: LayerRecorder | None = None, out: Generation | None = None,
             clock: Callable[[], int] = now_ns) -> Generation:
    """Generate up to max_new_tokens tokens, one timed step per forward pass; returns the Generation.

    `clock` is read once at every step boundary, right after the device sync: its value *is* the boundary (a
    counter source's clock reads the energy counter there and returns that reading's time)."""
    out = out if out is not None else Generation(0, list(prompt_ids))
    params = forward_parameters(model)
    cache_key = _cache_keyword(params)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    generator = None
    if options.temperature > 0:
        generator = torch.Generator().manual_seed(options.seed)
    stop_ids = set() if options.ignore_eos else eos_ids(model, tokenizer)
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    n_in, cache = len(prompt_ids), None
    with torch.inference_mode():
        synchronize(device)
        t_prev = clock()
        for idx in range(options.max_new_tokens):
            if recorder is not None:
                recorder.step = idx
            kwargs = {cache_key: cache} if cache is not None else {}
            output = model(input_ids=input_ids, use_cache=True, **kwargs, **extra)
            cache = _cache_of(output)
            token = choose_token(output.logits[:, -1, :], options, generator)
            token_id = int(token.item())
            synchronize(device)
            t = clock()
            out.steps.append((idx, "prefill" if idx == 0 else "decode", t_prev, t, n_in, token_id))
            t_prev, n_in = t, 1
            if token_id in stop_ids or cache is None:
                break
            input_ids = token.view(1, 1)
    if recorder is not None:
        out.calls.extend(recorder.take_calls())
    out.texts = token_texts(tokenizer, [s[5] for s in out.steps])
    return out


def forward_once(model: nn.Module, input_ids: list[int], device: str, recorder: LayerRecorder | None = None,
                 out: Generation | None = None, clock: Callable[[], int] = now_ns) -> Generation:
    """One timed forward pass of an encoder-only model (phase `forward`)."""
    out = out if out is not None else Generation(0, list(input_ids))
    ids = torch.tensor([input_ids], dtype=torch.long, device=device)
    with torch.inference_mode():
        if recorder is not None:
            recorder.step = 0
        synchronize(device)
        t0 = clock()
        model(input_ids=ids)
        synchronize(device)
        out.steps.append((0, "forward", t0, clock(), len(input_ids), None))
    if recorder is not None:
        out.calls.extend(recorder.take_calls())
    out.texts = [None]
    return out


def token_texts(tokenizer: Any, ids: list[int | None]) -> list[str | None]:
    """Text of each generated token: the difference between decoding with and without it (after context)."""
    texts: list[str | None] = []
    for pos, token in enumerate(ids):
        if token is None:
            texts.append(None)
            continue
        context = [i for i in ids[max(0, pos - DECODE_CONTEXT):pos] if i is not None]
        texts.append(_text_delta(tokenizer, context, token))
    return texts


def _text_delta(tokenizer: Any, context: list[int], token: int) -> str:
    """What decoding `token` after `context` adds (undecodable bytes become U+FFFD or nothing)."""
    try:
        before = tokenizer.decode(context) if context else ""
        after = tokenizer.decode([*context, token])
    except Exception:  # a token without text must not fail the run
        return ""
    if after.startswith(before):
        return after[len(before):]
    common = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        common += 1
    return after[common:]
