"""Prompt ids and token texts for any runtime that tokenises with a Hugging Face-style tokenizer (transformers, MLX):
no torch, no mlx.

`encode_prompt` and `sequence_ids` turn the run's prompt texts into ids (or an exact number of tokens on request);
`token_texts` turns generated ids back into the text each token added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

ModelKind = Literal["causal", "encoder"]
DECODE_CONTEXT = 8
"""Previous tokens decoded with each token, so multi-byte characters and leading spaces come out right."""


def encode_prompt(tokenizer: Any, prompt: str, kind: ModelKind) -> list[int]:
    """Token ids of the prompt; a causal prompt loses a trailing EOS that some tokenizers append (ByT5)."""
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    eos = getattr(tokenizer, "eos_token_id", None)
    if kind == "causal" and len(ids) > 1 and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return ids


def exact_length_ids(tokenizer: Any, text: str, n_tokens: int, kind: ModelKind) -> list[int]:
    """Token ids of exactly `n_tokens` tokens for this tokenizer: the text, repeated (joined by spaces) until it
    encodes to at least that many tokens, cut there. The same text and tokenizer always give the same ids."""
    seed = text.strip()
    ids = encode_prompt(tokenizer, seed, kind) if seed else []
    if not ids:
        raise ValueError("The prompt encodes to no tokens; give some text to build the prompt from.")
    repeated = seed
    while len(ids) < n_tokens:
        repeated = f"{repeated} {repeated}"
        ids = encode_prompt(tokenizer, repeated, kind)
    return ids[:n_tokens]


def sequence_ids(tokenizer: Any, texts: Sequence[str], kind: ModelKind, prompt_tokens: int | None) -> list[list[int]]:
    """The prompt ids of each sequence: each text encoded, or built to exactly `prompt_tokens` tokens."""
    if prompt_tokens is not None:
        return [exact_length_ids(tokenizer, text, prompt_tokens, kind) for text in texts]
    out = [encode_prompt(tokenizer, text, kind) for text in texts]
    if any(not ids for ids in out):
        raise ValueError("A prompt encodes to no tokens; give some text to profile.")
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
