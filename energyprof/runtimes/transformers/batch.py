"""A batch of prompts for the token loop: each sequence's token ids (of an exact length on request), left padding,
and the attention mask and position ids that go with it.

Sequences are padded on the left, so every sequence's next token is at the last position. When the prompts
differ in length, the loop passes a 2-D attention mask (0 over the padding) covering the cache and the new tokens,
and position ids counted from each sequence's first real token (as transformers' generate() derives them from the
mask); when they are all the same length there is no padding, and no mask or position ids are passed at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from energyprof.runtimes.text import exact_length_ids as exact_length_ids
from energyprof.runtimes.text import sequence_ids as sequence_ids

CONTEXT_ATTRIBUTES: tuple[str, ...] = ("max_position_embeddings", "n_positions", "max_sequence_length")
"""Config attributes that hold a model's longest sequence (Llama and BERT, GPT-2, others)."""
LEARNED_POSITIONS = "n_positions"
"""GPT-2-style configs: one learned embedding per position, so no token may sit beyond it (a rotary model such as
Llama runs past its max_position_embeddings, only less well)."""


def model_context(model: Any) -> int | None:
    """The longest sequence the model's config allows, when it says."""
    config = getattr(model, "config", None)
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(model: Any, prompt_tokens: int, max_new_tokens: int) -> None:
    """ValueError (one sentence) when the longest prompt, or the prompt with the new tokens, does not fit the
    model's context (checked when the model loads, before any measuring: a rotary model such as Llama would run
    past its context, only producing text it was never trained for, and a learned-position model would fail)."""
    limit = model_context(model)
    if limit is not None and prompt_tokens > limit:
        raise ValueError(f"The prompt ({prompt_tokens} tokens) is longer than the model's context of {limit} tokens; "
                         "ask for fewer prompt tokens.")
    learned = getattr(getattr(model, "config", None), LEARNED_POSITIONS, None)
    limit = learned if isinstance(learned, int) else limit
    if limit is not None and prompt_tokens + max_new_tokens > limit:
        raise ValueError(f"The prompt ({prompt_tokens} tokens) plus max-new-tokens ({max_new_tokens}) is longer than "
                         f"the model's context of {limit} tokens; ask for fewer prompt or new tokens.")


def pad_token_id(tokenizer: Any, model: Any) -> int:
    """The id written into padding (it is masked out, so any valid id works): the pad, else the EOS id, else 0."""
    config = getattr(model, "config", None)
    for value in (getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None),
                  getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int) and value >= 0:
            return value
    return 0


@dataclass
class PaddedBatch:
    """The model inputs of one step: token ids (batch × length) and, when the prompts differ in length, the
    attention mask over the cache and these tokens, and the position ids of these tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None

    @property
    def padded(self) -> bool:
        return self.attention_mask is not None

    def kwargs(self) -> dict[str, torch.Tensor]:
        """The keyword arguments for the model's forward (input_ids, and the mask and positions when padded)."""
        out = {"input_ids": self.input_ids}
        if self.attention_mask is not None:
            out["attention_mask"] = self.attention_mask
        if self.position_ids is not None:
            out["position_ids"] = self.position_ids
        return out

    def advance(self, tokens: torch.Tensor) -> PaddedBatch:
        """The next decode step's inputs: one token per sequence (batch × 1), the mask one column longer."""
        if self.attention_mask is None:
            return PaddedBatch(tokens)
        mask = torch.cat([self.attention_mask, self.attention_mask.new_ones((tokens.shape[0], 1))], dim=-1)
        return PaddedBatch(tokens, mask, self.position_ids[:, -1:] + 1)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: str) -> PaddedBatch:
    """The prefill inputs of a batch: prompts padded on the left to the longest, with a mask only when needed."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every sequence of a batch needs at least one prompt token.")
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=device)
    if all(len(p) == width for p in prompts):
        return PaddedBatch(ids)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device)
    return PaddedBatch(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))


def right_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: str) -> PaddedBatch:
    """An encoder's inputs: prompts padded on the right to the longest, with an attention mask (no position ids:
    every sequence starts at position 0) only when needed."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every sequence of a batch needs at least one prompt token.")
    width = max(len(p) for p in prompts)
    ids = torch.tensor([list(p) + [pad_id] * (width - len(p)) for p in prompts], dtype=torch.long, device=device)
    if all(len(p) == width for p in prompts):
        return PaddedBatch(ids)
    mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts], dtype=torch.long, device=device)
    return PaddedBatch(ids, mask)
