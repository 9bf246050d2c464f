"""The token loop: a manual KV-cache loop (not model.generate) so every step has exact start and end times.

Step 0 is the prefill (the prompt's forward pass, yielding the first token); each following step is one
decode forward pass yielding one token. Steps are contiguous: a step ends when the next begins, so the
steps of a repeat partition its workload span. On cuda/mps the device is synchronised at every step
boundary. Encoder-only models get one `forward` step per repeat.

A batch of N sequences (batch.py beside this: left padding, attention mask, position ids) runs the same
steps, each for all N at once: a step's `n_tokens` is the prompt tokens of every sequence (prefill) or the
tokens it generated (decode: one per sequence that has not ended). A sequence that generates an end-of-sequence
token ends there; it stays in the batch (its later tokens are neither kept nor counted) until all have ended.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from energyprof.power.base import now_ns
from energyprof.runtimes.text import token_texts as token_texts
from energyprof.runtimes.transformers.batch import left_pad, pad_token_id, right_pad
from energyprof.runtimes.transformers.hooks import LayerRecorder
from energyprof.runtimes.transformers.models import synchronize
from energyprof.spec.records import Generation, LoopOptions


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
    """The next token of each sequence, shape (batch, 1): argmax when greedy, else temperature + top-p sampling
    (on the CPU)."""
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
    """Generate up to max_new_tokens tokens from one prompt (see generate_batch)."""
    return generate_batch(model, tokenizer, [prompt_ids], options, device, recorder, out, clock)


def generate_batch(model: nn.Module, tokenizer: Any, prompts: Sequence[Sequence[int]], options: LoopOptions,
                   device: str, recorder: LayerRecorder | None = None, out: Generation | None = None,
                   clock: Callable[[], int] = now_ns) -> Generation:
    """Generate up to max_new_tokens tokens for every prompt together, one timed step per forward pass; returns
    the Generation.

    `clock` is read once at every step boundary, right after the device sync: its value *is* the boundary (a
    counter source's clock reads the energy counter there and returns that reading's time)."""
    out = out if out is not None else Generation(0, list(prompts[0]))
    params = forward_parameters(model)
    cache_key = _cache_keyword(params)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    generator = None
    if options.temperature > 0:
        generator = torch.Generator().manual_seed(options.seed)
    stop_ids = set() if options.ignore_eos else eos_ids(model, tokenizer)
    inputs = left_pad(prompts, pad_token_id(tokenizer, model), device)
    if inputs.padded and not {"attention_mask", "position_ids"} <= params:
        raise ValueError("This model's forward takes no attention mask and position ids, so prompts of different "
                         "lengths cannot be batched; give prompts of one length (e.g. --prompt-tokens N).")
    out.sequences = [[] for _ in prompts]
    active = [True] * len(prompts)
    n_in, cache = sum(len(p) for p in prompts), None
    with torch.inference_mode():
        synchronize(device)
        t_prev = clock()
        for idx in range(options.max_new_tokens):
            if recorder is not None:
                recorder.step = idx
            kwargs = {cache_key: cache} if cache is not None else {}
            output = model(**inputs.kwargs(), use_cache=True, **kwargs, **extra)
            cache = _cache_of(output)
            token = choose_token(output.logits[:, -1, :], options, generator)
            token_ids = token.view(-1).tolist()
            synchronize(device)
            t = clock()
            first = token_ids[0] if active[0] else None
            for seq, token_id in enumerate(token_ids):
                if active[seq]:
                    out.sequences[seq].append(token_id)
                    active[seq] = token_id not in stop_ids
            out.steps.append((idx, "prefill" if idx == 0 else "decode", t_prev, t, n_in, first))
            t_prev, n_in = t, sum(active)
            if not any(active) or cache is None:
                break
            inputs = inputs.advance(token.view(-1, 1))
    if recorder is not None:
        out.calls.extend(recorder.take_calls())
    out.texts = token_texts(tokenizer, [s[5] for s in out.steps])
    return out


def forward_once(model: nn.Module, input_ids: list[int], device: str, recorder: LayerRecorder | None = None,
                 out: Generation | None = None, clock: Callable[[], int] = now_ns) -> Generation:
    """One timed forward pass of an encoder-only model (phase `forward`)."""
    return forward_batch(model, [input_ids], device, 0, recorder, out, clock)


def forward_batch(model: nn.Module, prompts: Sequence[Sequence[int]], device: str, pad_id: int,
                  recorder: LayerRecorder | None = None, out: Generation | None = None,
                  clock: Callable[[], int] = now_ns) -> Generation:
    """One timed forward pass of an encoder-only model over every prompt together (padded on the right, with an
    attention mask when they differ in length); phase `forward`, n_tokens = every prompt's tokens."""
    out = out if out is not None else Generation(0, list(prompts[0]))
    inputs = right_pad(prompts, pad_id, device)
    with torch.inference_mode():
        if recorder is not None:
            recorder.step = 0
        synchronize(device)
        t0 = clock()
        model(**inputs.kwargs())
        synchronize(device)
        out.steps.append((0, "forward", t0, clock(), sum(len(p) for p in prompts), None))
    if recorder is not None:
        out.calls.extend(recorder.take_calls())
    out.texts = [None]
    return out
