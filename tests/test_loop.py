"""The manual token loop: exact contiguous steps, the same tokens as model.generate, stopping and sampling."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from energyprof.runtimes.transformers.loop import forward_once, generate, token_texts
from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer
from energyprof.spec.records import LoopOptions

PROMPT = [75, 104, 111, 111, 114]


@pytest.fixture(scope="module")
def tiny():
    return build_builtin("tiny")


@pytest.fixture(scope="module")
def tok():
    return builtin_tokenizer()


def test_steps_are_prefill_then_decode_and_contiguous(tiny, tok) -> None:
    gen = generate(tiny, tok, PROMPT, LoopOptions(max_new_tokens=6, ignore_eos=True), "cpu")
    assert [s[0] for s in gen.steps] == list(range(6))
    assert [s[1] for s in gen.steps] == ["prefill"] + ["decode"] * 5
    assert [s[4] for s in gen.steps] == [len(PROMPT)] + [1] * 5
    for before, after in zip(gen.steps, gen.steps[1:], strict=False):
        assert before[3] == after[2]
    assert all(s[3] > s[2] for s in gen.steps)
    assert gen.new_tokens == 6 and gen.span_ns == (gen.steps[0][2], gen.steps[-1][3])
    rows = gen.step_rows()
    assert rows[0][:3] == (0, 0, "prefill") and len(rows[0]) == 8


def test_greedy_tokens_match_model_generate(tiny, tok) -> None:
    gen = generate(tiny, tok, PROMPT, LoopOptions(max_new_tokens=8, ignore_eos=True), "cpu")
    with torch.inference_mode():
        expected = tiny.generate(torch.tensor([PROMPT]), max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert [s[5] for s in gen.steps] == expected[0, len(PROMPT):].tolist()


def test_eos_stops_unless_ignored(tiny, tok) -> None:
    first = generate(tiny, tok, PROMPT, LoopOptions(max_new_tokens=3, ignore_eos=True), "cpu").steps[0][5]
    original = tiny.config.eos_token_id
    tiny.config.eos_token_id = first
    try:
        assert len(generate(tiny, tok, PROMPT, LoopOptions(max_new_tokens=5), "cpu").steps) == 1
        assert len(generate(tiny, tok, PROMPT, LoopOptions(max_new_tokens=5, ignore_eos=True), "cpu").steps) == 5
    finally:
        tiny.config.eos_token_id = original


def test_sampling_is_reproducible_with_a_seed(tiny, tok) -> None:
    def tokens(seed: int) -> list[int]:
        options = LoopOptions(max_new_tokens=12, ignore_eos=True, temperature=1.5, top_p=0.95, seed=seed)
        return [s[5] for s in generate(tiny, tok, PROMPT, options, "cpu").steps]

    assert tokens(7) == tokens(7)
    assert tokens(7) != tokens(8)


def test_token_texts_handle_multibyte_characters(tok) -> None:
    ids = tok("aé€b", add_special_tokens=False)["input_ids"]
    texts = token_texts(tok, ids)
    assert "".join(texts) == "aé€b"
    assert texts[0] == "a" and texts[-1] == "b"


def test_encoder_gets_one_forward_step() -> None:
    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                vocab_size=300)).eval()
    gen = forward_once(bert, [5, 6, 7], "cpu")
    assert len(gen.steps) == 1
    idx, phase, t0, t1, n, token = gen.steps[0]
    assert (idx, phase, n, token) == (0, "forward", 3, None) and t1 > t0
    assert gen.new_tokens == 0
