"""Built-in models, loading by folder, and the clear errors for missing models, devices and dtypes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from profile_helpers import save_bert, save_gpt2

from energyprof.runtimes.transformers import models
from energyprof.runtimes.transformers.models import ModelLoadError, builtin_config, encode_prompt, load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", "cpu")


def test_builtin_tokenizer_and_config_agree() -> None:
    tok = models.builtin_tokenizer()
    config = builtin_config("tiny")
    assert config.vocab_size == len(tok) == 384
    assert config.eos_token_id == tok.eos_token_id
    assert config.pad_token_id == tok.pad_token_id


def test_tiny_is_small_seeded_and_causal(tiny) -> None:
    assert tiny.kind == "causal" and tiny.name == "tiny" and tiny.device == "cpu" and tiny.dtype == "float32"
    assert 1_000_000 < tiny.n_params < 10_000_000
    again = models.build_builtin("tiny")
    for a, b in zip(tiny.model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "low", "high"), [("small", 100e6, 150e6), ("medium", 200e6, 400e6)])
def test_bigger_builtins_have_the_promised_size(name: str, low: float, high: float) -> None:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(builtin_config(name))
    assert low < sum(p.numel() for p in model.parameters()) < high


def test_dtype_is_applied_and_validated() -> None:
    assert load_model("tiny", "cpu", "bfloat16").model.lm_head.weight.dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="Unknown dtype 'float8'"):
        load_model("tiny", "cpu", "float8")


def test_missing_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match=r"Device 'cuda' is not available here: "
                                              r"torch.cuda.is_available\(\) is False; use --device cpu"):
        load_model("tiny", "cuda")
    with pytest.raises(ModelLoadError, match="Unknown device 'tpu'"):
        models.resolve_device("tpu")
    assert models.resolve_device("auto") in ("cpu", "mps")


def test_unknown_model_fails_fast_naming_what_was_tried() -> None:
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_model("no-such-org/no-such-model", "cpu")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "'no-such-org/no-such-model'" in message and "not a built-in (tiny, small, medium)" in message
    assert "not a local folder" in message and "Hugging Face Hub" in message
    with pytest.raises(ModelLoadError, match="not a valid Hub id"):
        load_model("./missing/folder", "cpu")


def test_unreachable_hub_fails_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="127.0.0.1 is unreachable"):
        models._check_hub_reachable("some-org/some-model")
    assert time.monotonic() - started < 5


def test_local_gpt2_folder_loads_as_causal(tmp_path: Path) -> None:
    loaded = load_model(str(save_gpt2(tmp_path / "gpt2")), "cpu")
    assert loaded.kind == "causal" and type(loaded.model).__name__ == "GPT2LMHeadModel"


def test_local_bert_folder_loads_as_encoder(tmp_path: Path) -> None:
    loaded = load_model(str(save_bert(tmp_path / "bert")), "cpu")
    assert loaded.kind == "encoder" and type(loaded.model).__name__ == "BertModel"


def test_broken_local_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="from its local folder"):
        load_model(str(tmp_path / "empty"), "cpu")


def test_causal_prompt_loses_the_trailing_eos() -> None:
    tok = models.builtin_tokenizer()
    assert encode_prompt(tok, "hi", "causal") == [ord("h") + 3, ord("i") + 3]
    assert encode_prompt(tok, "hi", "encoder")[-1] == tok.eos_token_id
