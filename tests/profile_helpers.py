"""Helpers for the profiling-engine tests: small saved models, the powermetrics stand-in, closure checks."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from energyprof.power.base import total_energy_mj
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
FAKE_POWERMETRICS = REPO / "tests" / "fake_powermetrics.py"

FAST = {"model": "tiny", "prompt": "Hello energy", "max_new_tokens": 6, "ignore_eos": True, "device": "cpu",
        "source": "estimate", "interval_ms": 20, "layers": "blocks", "repeats": 2, "warmup": 0, "baseline_s": 0.1}
"""Engine parameters that keep a run well under a second on a slow CPU."""


def fast_params(**overrides: Any) -> Any:
    from energyprof.spec.params import ProfileParams

    return ProfileParams(**{**FAST, **overrides})


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll predicate every 50 ms until it is true; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def use_fake_powermetrics(monkeypatch: pytest.MonkeyPatch, pidfile: Path | None = None, **env: str) -> None:
    """Point the powermetrics source at the stand-in (inherited by job subprocesses too)."""
    monkeypatch.setenv("ENERGYPROF_POWERMETRICS", f"{sys.executable} {FAKE_POWERMETRICS}")
    if pidfile is not None:
        monkeypatch.setenv("FAKE_POWERMETRICS_PIDFILE", str(pidfile))
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def save_gpt2(folder: Path) -> Path:
    """A tiny GPT-2 causal LM and a byte tokenizer, saved with save_pretrained."""
    from transformers import ByT5Tokenizer, GPT2Config, GPT2LMHeadModel

    tok = ByT5Tokenizer()
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(tok), n_positions=256,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_bert(folder: Path) -> Path:
    """A tiny BERT encoder (BertModel) and a byte tokenizer, saved with save_pretrained."""
    from transformers import BertConfig, BertModel, ByT5Tokenizer

    tok = ByT5Tokenizer()
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                        vocab_size=len(tok), max_position_embeddings=256)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _windows(store: Store, run_id: int) -> list[tuple[int, int, float]]:
    """(t0, t1, whole-system mJ) of every stored window, straight from power_samples."""
    return [(w.t0_ns, w.t1_ns, total_energy_mj(w.energy_mj) or 0.0) for w in store.power_windows(run_id)]


def measured_in(windows: list[tuple[int, int, float]], a: int, b: int) -> float:
    """Energy of [a, b] from the windows (power constant inside each), computed independently of the engine."""
    total = 0.0
    for t0, t1, energy in windows:
        overlap = min(t1, b) - max(t0, a)
        if overlap > 0:
            total += energy * overlap / (t1 - t0)
    return total


def assert_closure(store: Store, run_id: int, rel: float = 1e-6) -> dict[str, float]:
    """Steps, and top-level layers + other, add up to the energy measured in the run's workload windows."""
    tokens = store.tokens_with_energy(run_id)
    assert not tokens.empty
    windows = _windows(store, run_id)
    spans = [(int(g["t0_ns"].min()), int(g["t1_ns"].max())) for _, g in store.step_times_ns(run_id).groupby("repeat")]
    measured = sum(measured_in(windows, a, b) for a, b in spans)
    step_total = float(tokens["energy_j"].sum()) * 1e3
    assert measured > 0
    assert step_total == pytest.approx(measured, rel=rel)
    out = {"measured_mj": measured, "steps_mj": step_total}
    layers = store.layers(run_id)
    if not layers.empty:
        top = set(layers.loc[layers["parent_id"].isna(), "name"])
        calls = store.layer_calls(run_id)
        layer_total = float(calls.loc[calls["layer"].isin(top), "energy_mj"].sum())
        assert layer_total == pytest.approx(measured, rel=rel)
        out["layers_mj"] = layer_total
    return out



def save_gpt2_bpe(folder: Path) -> Path:
    """A tiny GPT-2 causal LM with a byte-level BPE tokenizer (multi-character tokens, as real GPT-2 has), trained
    here on a few sentences and saved with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["The quick brown fox jumps over the lazy dog."] * 50 +
                            ["Where does the energy of a transformer go? Energy per token is small."] * 50, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(tok), n_positions=256,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
