"""The MLX token loop: mlx-lm's model, cache and sampler, the steps of `mlx_lm.generate.generate_step`, and the
engine's clock read at every step boundary AFTER that step's output is evaluated.

mlx-lm's own loop is pipelined: it queues step n+1 (`mx.async_eval`) before it waits for token n, so a counter read
when a token comes out does not bound that token's work. Here a step ends when its token is evaluated (`mx.eval`),
the clock is read, and only then is the next step's work started. Without layer timing the next step's graph is
still *built* (Python, no computing) while the current step computes, as mlx-lm does; only the overlap of one
step's computing with the next one's is given up (bench/mlx_runtime.py measures what that costs).

Steps, as mlx-lm runs them: the prompt but its last token in chunks of PREFILL_STEP tokens (each chunk a `prefill`
step with no token; mlx-lm evaluates only the KV cache of a chunk), then the last prompt token, which yields the
first new token (`prefill`), then one `decode` step per further token. Greedy decoding is mlx-lm's
(`argmax` of the log-probabilities), so the tokens equal `mlx_lm.generate`'s for the same prompt ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

from energyprof.power.base import now_ns
from energyprof.runtimes.text import token_texts
from energyprof.spec.records import Generation, LoopOptions

PREFILL_STEP = 2048
"""Prompt tokens per prefill chunk (mlx_lm.generate's DEFAULT_PREFILL_STEP_SIZE)."""
CLEAR_CACHE_EVERY = 256
"""Tokens between mx.clear_cache() calls, as in mlx-lm's loop."""


def sampler_of(options: LoopOptions) -> Callable[[Any], Any]:
    """mlx-lm's sampler for these options (greedy at temperature 0); seeds mlx's generator when sampling."""
    from mlx_lm.sample_utils import make_sampler

    if options.temperature > 0:
        mx.random.seed(options.seed)
    return make_sampler(temp=options.temperature, top_p=options.top_p)


def _step(model: Any, cache: list[Any], tokens: Any, sampler: Callable[[Any], Any]) -> Any:
    """One forward pass of `tokens` and the next token (lazy): mlx-lm's `_step`."""
    logits = model(tokens[None], cache=cache)[:, -1, :]
    return sampler(logits - mx.logsumexp(logits, keepdims=True))


def generate(loaded: Any, prompt_ids: Sequence[int], options: LoopOptions, recorder: Any = None,
             out: Generation | None = None, clock: Callable[[], int] = now_ns,
             prefill_step: int = PREFILL_STEP) -> Generation:
    """Generate up to max_new_tokens tokens from one prompt, one timed step per chunk or token; returns the
    Generation. `recorder` (a LayerTimer, or replay's capturer) is told the step; with hooked layers every layer
    evaluates its own output, so nothing of the next step is built early."""
    from mlx_lm.generate import generation_stream, wired_limit
    from mlx_lm.models.cache import make_prompt_cache

    out = out if out is not None else Generation(0, list(prompt_ids))
    out.sequences = [[]]
    model = loaded.model
    sampler = sampler_of(options)
    stop = set() if options.ignore_eos else set(loaded.eos_ids)
    layered = recorder is not None and getattr(recorder, "hooked", False)
    cache = make_prompt_cache(model)
    prompt = mx.array(list(prompt_ids))
    with wired_limit(model, [generation_stream]), mx.stream(generation_stream):
        mx.eval(prompt)
        t_prev, idx = clock(), 0
        while prompt.size > 1:
            n = min(prefill_step, prompt.size - 1)
            _at(recorder, idx)
            model(prompt[:n][None], cache=cache)
            mx.eval([c.state for c in cache])
            t = clock()
            out.steps.append((idx, "prefill", t_prev, t, n, None))
            t_prev, idx, prompt = t, idx + 1, prompt[n:]
            mx.clear_cache()
        _at(recorder, idx)
        pending, n_in = _step(model, cache, prompt, sampler), prompt.size
        mx.async_eval(pending)
        for k in range(options.max_new_tokens):
            last = k + 1 == options.max_new_tokens
            following = None if layered or last else _step(model, cache, pending, sampler)
            mx.eval(pending)
            token = pending.item()
            t = clock()
            out.sequences[0].append(token)
            out.steps.append((idx, "prefill" if k == 0 else "decode", t_prev, t, n_in, token))
            t_prev, n_in, idx = t, 1, idx + 1
            if last or token in stop:
                break
            if k % CLEAR_CACHE_EVERY == 0:
                mx.clear_cache()
            _at(recorder, idx)
            if following is None:
                following = _step(model, cache, pending, sampler)
            mx.async_eval(following)
            pending = following
    if recorder is not None and hasattr(recorder, "take_calls"):
        out.calls.extend(recorder.take_calls())
    out.texts = token_texts(loaded.tokenizer, [s[5] for s in out.steps])
    return out


def _at(recorder: Any, idx: int) -> None:
    if recorder is not None:
        recorder.step = idx
