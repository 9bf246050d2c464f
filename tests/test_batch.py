"""Batches and exact prompt lengths: a batch generates what its prompts generate one by one, every token of every
sequence is counted, a prompt can be exactly N tokens for any tokenizer, prompt files give one prompt per
sequence, and layer hooks keep closing with batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from profile_helpers import assert_closure, fast_params, save_bert, save_gpt2, save_gpt2_bpe

from energyprof.cli import main
from energyprof.commands.prompt_file import file_format, parse_prompts
from energyprof.runner.job import profile_foreground
from energyprof.runtimes.transformers.batch import exact_length_ids, left_pad
from energyprof.runtimes.transformers.loop import generate, generate_batch
from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer, encode_prompt, load_model
from energyprof.spec.params import ProfileParams
from energyprof.spec.records import LoopOptions
from energyprof.store import Store

TEXTS = ("Hi", "Hello energy profiler", "A much longer prompt, so that the others need padding", "x y")


@pytest.fixture(scope="module")
def tiny():
    return build_builtin("tiny"), builtin_tokenizer()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory):
    loaded = load_model(str(save_gpt2_bpe(tmp_path_factory.mktemp("gpt2") / "bpe")), "cpu")
    return loaded.model, loaded.tokenizer


@pytest.mark.parametrize("which", ["tiny", "gpt2"])
def test_greedy_batch_equals_the_prompts_one_by_one(which: str, request: pytest.FixtureRequest) -> None:
    model, tok = request.getfixturevalue(which)
    prompts = [encode_prompt(tok, text, "causal") for text in TEXTS]
    assert len({len(p) for p in prompts}) == len(prompts)  # every prompt a different length: padding matters
    options = LoopOptions(max_new_tokens=10, ignore_eos=True)
    batch = generate_batch(model, tok, prompts, options, "cpu")
    alone = [generate(model, tok, p, options, "cpu").sequences[0] for p in prompts]
    assert batch.sequences == alone
    assert [s[5] for s in batch.steps] == alone[0]  # the step rows carry the first sequence's tokens
    assert batch.new_tokens == 4 * 10


def test_padding_mask_and_positions_count_from_each_first_real_token() -> None:
    padded = left_pad([[5, 6, 7], [8]], pad_id=0, device="cpu")
    assert padded.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert padded.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert padded.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]
    step = padded.advance(torch.tensor([[9], [10]]))
    assert step.attention_mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert step.position_ids.tolist() == [[3], [1]]
    same = left_pad([[5, 6], [7, 8]], pad_id=0, device="cpu")
    assert same.attention_mask is None and set(same.kwargs()) == {"input_ids"}  # no padding: nothing extra


def test_a_sequence_that_ends_stops_counting_and_the_others_go_on(tiny) -> None:
    model, tok = tiny
    prompts = [encode_prompt(tok, text, "causal") for text in TEXTS[:3]]
    free = generate_batch(model, tok, prompts, LoopOptions(max_new_tokens=6, ignore_eos=True), "cpu").sequences
    stop = free[1][1]  # the second sequence's second token becomes the end-of-sequence token
    assert stop not in free[0] and stop not in free[2]
    original = model.config.eos_token_id
    model.config.eos_token_id = stop
    try:
        gen = generate_batch(model, tok, prompts, LoopOptions(max_new_tokens=6), "cpu")
    finally:
        model.config.eos_token_id = original
    assert gen.sequences == [free[0], free[1][:2], free[2]]
    assert [s[4] for s in gen.steps] == [sum(map(len, prompts)), 3, 2, 2, 2, 2]  # decode: tokens generated
    assert gen.new_tokens == 6 + 2 + 6


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_token_counts_are_exact_at_every_batch_size(store: Store, batch: int) -> None:
    summary = profile_foreground(store, fast_params(batch=batch, max_new_tokens=8, prompt_tokens=16, layers="none"))
    assert summary.status == "done", summary.error
    assert summary.batch == batch and summary.prompt_tokens == 16 and summary.prompt_tokens_each == [16] * batch
    assert summary.new_tokens == [batch * 8, batch * 8]
    steps = store.steps(summary.run_id)
    assert steps.groupby("repeat")["n_tokens"].apply(list).tolist() == [[16 * batch] + [batch] * 7] * 2
    tokens = store.tokens_with_energy(summary.run_id)
    decode = tokens[tokens["phase"] == "decode"]
    per_repeat = decode.groupby("repeat")["energy_j"].sum() / (batch * 7)
    assert summary.j_per_token["decode"].mean == pytest.approx(per_repeat.mean())
    assert store.get_run(summary.run_id)["tokens_done"] == 2 * batch * 8


def test_layer_hooks_close_with_a_batch_of_different_prompts(store: Store) -> None:
    params = fast_params(batch=3, prompts=list(TEXTS[:3]), max_new_tokens=5, layers="modules")
    summary = profile_foreground(store, params)
    assert summary.status == "done", summary.error
    assert summary.prompt_tokens_each == [len(t) for t in TEXTS[:3]]  # the byte tokenizer: one token per byte
    assert summary.new_tokens == [15, 15]
    calls = store.layer_calls(summary.run_id)
    assert set(calls["step_idx"]) == set(range(5)) and {"attention", "mlp"} <= set(calls["kind"])
    assert_closure(store, summary.run_id)


def test_an_encoder_takes_a_batch_in_one_forward_pass(store: Store, tmp_path: Path) -> None:
    folder = save_bert(tmp_path / "bert")
    summary = profile_foreground(store, fast_params(model=str(folder), batch=2, prompts=["short", "a bit longer"]))
    assert summary.status == "done", summary.error
    steps = store.steps(summary.run_id)
    assert steps["phase"].unique().tolist() == ["forward"] and steps["n_tokens"].unique().tolist() == [5 + 12 + 2]


@pytest.mark.parametrize("n", [1, 7, 64, 300])
def test_exact_prompt_lengths_for_the_builtin_and_a_bpe_tokenizer(n: int, tiny, gpt2) -> None:
    for _, tok in (tiny, gpt2):
        ids = exact_length_ids(tok, "The quick brown fox jumps over the lazy dog.", n, "causal")
        assert len(ids) == n
        assert ids == exact_length_ids(tok, "The quick brown fox jumps over the lazy dog.", n, "causal")
    bpe = gpt2[1]
    assert len(bpe("The quick brown fox")["input_ids"]) < len("The quick brown fox")  # multi-character tokens


def test_prompt_tokens_through_the_cli_for_a_gpt2_folder(db_path: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_gpt2(tmp_path / "gpt2")
    base = ["profile", "--model", str(folder), "--device", "cpu", "--source", "estimate", "--repeats", "1",
            "--warmup", "0", "--baseline-s", "0", "--ignore-eos", "--db", str(db_path), "--json"]
    assert main([*base, "--prompt-tokens", "37", "--batch", "2", "--max-new-tokens", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["prompt_tokens"], out["prompt_tokens_each"], out["new_tokens"]) == (37, [37, 37], [6])
    assert main([*base, "--prompt-tokens", "250", "--max-new-tokens", "10"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed"
    assert out["error"] == ("The prompt (250 tokens) plus max-new-tokens (10) is longer than the model's context of "
                            "256 tokens; ask for fewer prompt or new tokens.")


def test_prompt_file_formats(tmp_path: Path) -> None:
    assert parse_prompts("one\ntwo lines\n", "text") == ["one\ntwo lines\n"]
    assert parse_prompts("one\r\n\n  two  \n", "lines") == ["one", "  two  "]
    assert parse_prompts('{"prompt": "a"}\n\n{"prompt": "b\\nc", "id": 2}\n', "jsonl") == ["a", "b\nc"]
    with pytest.raises(ValueError, match='^line 2 of the prompt file is not a JSON object with a "prompt" string'):
        parse_prompts('{"prompt": "a"}\n["b"]\n', "jsonl")
    with pytest.raises(ValueError, match="holds no prompts"):
        parse_prompts("\n \n", "lines")
    assert file_format(tmp_path / "p.JSONL", "auto") == "jsonl" and file_format(tmp_path / "p.txt", "auto") == "text"
    assert file_format(tmp_path / "p.txt", "lines") == "lines"


def test_a_prompt_file_gives_each_sequence_its_prompt(db_path: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in TEXTS), encoding="utf-8")
    base = ["profile", "--model", "tiny", "--device", "cpu", "--source", "estimate", "--repeats", "1", "--warmup",
            "0", "--baseline-s", "0", "--max-new-tokens", "2", "--ignore-eos", "--layers", "none", "--db",
            str(db_path)]
    assert main([*base, "--prompt-file", str(jsonl), "--batch", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt_tokens_each"] == [len(t) for t in TEXTS[:3]] and out["new_tokens"] == [6]
    run = Store(db_path).get_run(out["run_id"])
    assert run["params"]["prompts"] == list(TEXTS) and run["params"]["batch"] == 3
    with pytest.raises(SystemExit):
        main([*base, "--prompt-file", str(jsonl), "--batch", "5"])
    assert "A batch of 5 needs 5 prompts, one per sequence, and the prompt list has 4" in capsys.readouterr().err


def test_too_few_prompts_for_the_batch_is_one_sentence() -> None:
    assert ProfileParams(prompts=["a", "b"], batch=3).errors() == [
        "A batch of 3 needs 3 prompts, one per sequence, and the prompt list has 2; give more prompts, one prompt "
        "(copied), or a smaller batch."]
    assert ProfileParams(prompts=["a"], batch=3).sequence_texts() == ["a", "a", "a"]
    assert ProfileParams(prompts=["a", "b", "c"], batch=2).sequence_texts() == ["a", "b"]


def test_the_python_api_takes_a_batch_of_prompts(db_path: Path, tiny) -> None:
    from energyprof import profile_generation

    model, tok = tiny
    summary = profile_generation(model, tok, ["Hi", "Hello there"], max_new_tokens=3, ignore_eos=True,
                                 source="estimate", repeats=2, layers="none", db=db_path)
    assert summary.status == "done" and summary.batch == 2 and summary.prompt_tokens_each == [2, 11]
    assert summary.new_tokens == [6, 6]
    copied = profile_generation(model, tok, "Hi", batch=3, prompt_tokens=5, max_new_tokens=2, ignore_eos=True,
                                source="estimate", layers="none", db=db_path)
    assert copied.prompt_tokens_each == [5, 5, 5] and copied.new_tokens == [6]


def test_the_tokens_csv_has_energy_per_token_of_each_step(store: Store) -> None:
    import io

    import pandas as pd

    from energyprof.export import export_csv

    summary = profile_foreground(store, fast_params(batch=3, prompt_tokens=4, max_new_tokens=3, repeats=1))
    frame = pd.read_csv(io.StringIO(export_csv(store, summary.run_id, "tokens")))
    assert frame["n_tokens"].tolist() == [12, 3, 3]
    assert frame["energy_j_per_token"].tolist() == pytest.approx((frame["energy_j"] / frame["n_tokens"]).tolist())
