"""Layer discovery (Llama, GPT-2, BERT), call recording per step, and hooks always removed."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from energyprof.runtimes.transformers.hooks import LayerRecorder, find_layers, hook_count
from energyprof.runtimes.transformers.loop import generate
from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer
from energyprof.spec.records import LoopOptions


@pytest.fixture(scope="module")
def tiny():
    return build_builtin("tiny")


def kinds(layers) -> list[str]:
    return [layer.kind for layer in layers]


def test_blocks_depth_on_llama(tiny) -> None:
    layers = find_layers(tiny, "blocks")
    assert kinds(layers) == ["embedding", "block", "block", "block", "block", "norm", "lm_head", "other"]
    assert [layer.name for layer in layers][:2] == ["model.embed_tokens", "model.layers.0"]
    assert layers[-2].name == "lm_head" and layers[-3].name == "model.norm"
    assert [layer.position for layer in layers] == list(range(len(layers)))
    assert all(layer.parent_id is None for layer in layers)
    assert find_layers(tiny, "none") == []


def test_modules_depth_adds_attention_and_mlp_inside_blocks(tiny) -> None:
    layers = find_layers(tiny, "modules")
    block = next(layer for layer in layers if layer.name == "model.layers.1")
    children = [layer for layer in layers if layer.parent_id == block.layer_id]
    assert [(c.name, c.kind) for c in children] == [("model.layers.1.self_attn", "attention"),
                                                   ("model.layers.1.mlp", "mlp")]
    assert kinds(layers).count("attention") == kinds(layers).count("mlp") == 4


def test_gpt2_and_bert_layers_are_found() -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64))
    names = [(layer.name, layer.kind) for layer in find_layers(gpt2, "modules")]
    assert names == [("transformer.wte", "embedding"), ("transformer.h.0", "block"),
                     ("transformer.h.0.attn", "attention"), ("transformer.h.0.mlp", "mlp"),
                     ("transformer.h.1", "block"), ("transformer.h.1.attn", "attention"),
                     ("transformer.h.1.mlp", "mlp"), ("transformer.ln_f", "norm"), ("lm_head", "lm_head"),
                     ("other", "other")]
    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                vocab_size=100))
    names = [(layer.name, layer.kind) for layer in find_layers(bert, "modules")]
    assert names[:5] == [("embeddings", "embedding"), ("encoder.layer.0", "block"),
                         ("encoder.layer.0.attention", "attention"), ("encoder.layer.0.intermediate", "mlp"),
                         ("encoder.layer.0.output", "mlp")]
    assert names[-1] == ("other", "other") and "lm_head" not in [k for _, k in names]


def test_calls_are_tagged_with_their_step_and_lie_inside_it(tiny) -> None:
    tok = builtin_tokenizer()
    with LayerRecorder(tiny, "modules") as recorder:
        gen = generate(tiny, tok, [72, 105], LoopOptions(max_new_tokens=4, ignore_eos=True), "cpu", recorder)
    assert hook_count(tiny) == 0
    top = set(recorder.top_level_ids)
    assert len(top) == 7
    per_step = {}
    for lid, step, t0, t1 in gen.calls:
        _, _, s0, s1, _, _ = gen.steps[step]
        assert s0 <= t0 <= t1 <= s1
        if lid in top:
            per_step[step] = per_step.get(step, 0) + 1
    assert per_step == {0: 7, 1: 7, 2: 7, 3: 7}
    assert len(gen.calls) == 4 * (7 + 8)


def test_hooks_are_removed_after_an_exception(tiny) -> None:
    with pytest.raises(RuntimeError, match="boom"), LayerRecorder(tiny, "modules") as recorder:
        assert hook_count(tiny) == 2 * (len(recorder.layers) - 1)
        raise RuntimeError("boom")
    assert hook_count(tiny) == 0


def test_unknown_depth_is_rejected(tiny) -> None:
    with pytest.raises(ValueError, match="Unknown layer depth 'all'"):
        find_layers(tiny, "all")


def test_recorder_takes_calls_once(tiny) -> None:
    with LayerRecorder(tiny, "blocks") as recorder, torch.inference_mode():
        tiny(input_ids=torch.tensor([[70, 71]]))
    assert len(recorder.take_calls()) == 7
    assert recorder.take_calls() == []
