"""The MLX runtime on this machine's mlx CPU build: which runtime `auto` picks and why, the token loop against
mlx-lm's own greedy output, layer timing by class swap, replay, peak memory, boundary reads with the ioreport
stand-in, and each bad input as one sentence on a failed run."""

from __future__ import annotations

import bisect
import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest
from mlx_models import edit_config
from profile_helpers import fast_params

from energyprof.export import export_csv
from energyprof.runner import boundary_reads
from energyprof.runner.job import profile_foreground
from energyprof.runtimes import choice as runtime_choice
from energyprof.runtimes.choice import RuntimeChoiceError, check_runtime, choose_runtime, model_format
from energyprof.spec.params import ProfileParams
from energyprof.store import Store

PROMPT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def folders(mlx_folders: dict[str, Path]) -> dict[str, Path]:
    return mlx_folders


@pytest.fixture(scope="module")
def q4(folders: dict[str, Path]):
    from energyprof.runtimes.mlx.models import load_model

    return load_model(str(folders["q4"]), model_format(str(folders["q4"])), "cpu")


def _ids(loaded, text: str = PROMPT) -> list[int]:
    from energyprof.runtimes.text import encode_prompt

    return encode_prompt(loaded.tokenizer, text, "causal")


# -- which runtime, and why ----------------------------------------------------------------------------------
def test_auto_picks_mlx_for_mlx_models_and_transformers_otherwise(folders: dict[str, Path], tmp_path: Path) -> None:
    def pick(model: str, runtime: str = "auto") -> tuple[str, str]:
        chosen = choose_runtime(ProfileParams(model=model, runtime=runtime))
        return chosen.name, chosen.reason

    name, reason = pick(str(folders["q4"]))
    assert name == "mlx" and "quantization entry" in reason and reason.startswith("auto:")
    no_entry = shutil.copytree(folders["q4"], tmp_path / "no-entry")
    edit_config(no_entry, quantization=None, quantization_config=None)  # the weights alone still say it
    assert pick(str(no_entry)) == ("mlx", "auto: its safetensors hold MLX-quantised layers (.scales and .biases), so "
                                          "an MLX model")
    assert pick(str(folders["hf"]))[0] == "transformers" and "not an MLX model" in pick(str(folders["hf"]))[1]
    assert pick("tiny")[0] == "transformers" and pick("tiny", "mlx") == ("mlx", "asked for with --runtime mlx")
    assert pick("mlx-community/Llama-3.2-1B-Instruct-4bit")[0] == "mlx"
    assert pick(str(folders["q4"]), "transformers") == ("transformers", "asked for with --runtime transformers")
    assert model_format(str(folders["q4"])).mlx_quantized and not model_format(str(folders["hf"])).mlx_quantized


def test_bad_combinations_are_one_sentence_before_anything_loads(folders: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(RuntimeChoiceError, match="is neither an MLX nor a transformers model: it has no config.json"):
        check_runtime(choose_runtime(ProfileParams(model=str(tmp_path / "notes"))), str(tmp_path / "notes"))
    with pytest.raises(RuntimeChoiceError, match="transformers cannot read its weights; use --runtime mlx"):
        check_runtime(choose_runtime(ProfileParams(model=str(folders["q4"]), runtime="transformers")),
                      str(folders["q4"]))
    monkeypatch.setattr(runtime_choice, "mlx_installed", lambda: False)
    with pytest.raises(RuntimeChoiceError, match=r'install it with pip install -e "\.\[mlx\]"'):
        check_runtime(choose_runtime(ProfileParams(model="tiny", runtime="mlx")), "tiny")
    assert ProfileParams(model="tiny", runtime="mlx", batch=4).errors() == [
        "The MLX runtime generates one sequence at a time, so a batch of 4 cannot run; use --batch 1, or --runtime "
        "transformers for a batch."]


def test_builtin_has_the_transformers_builtins_shapes() -> None:
    from energyprof.runtimes.mlx.models import build_builtin
    from energyprof.runtimes.transformers.models import builtin_config

    torch_config = builtin_config("tiny")
    model = build_builtin("tiny")
    args = model.args
    for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps",
                 "tie_word_embeddings"):
        assert getattr(args, name) == getattr(torch_config, name), name
    assert args.rope_theta == torch_config.rope_parameters["rope_theta"]
    assert model.lm_head.weight.shape == (torch_config.vocab_size, torch_config.hidden_size)


# -- the token loop ------------------------------------------------------------------------------------------
def test_greedy_tokens_equal_mlx_lm_generate(q4) -> None:
    from mlx_lm import generate as mlx_generate
    from mlx_lm.generate import stream_generate
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from energyprof.runtimes.mlx.hooks import LayerTimer
    from energyprof.runtimes.mlx.loop import generate
    from energyprof.spec.records import LoopOptions

    ids, wrapper = _ids(q4), TokenizerWrapper(q4.tokenizer)
    reference = [r.token for r in stream_generate(q4.model, wrapper, ids, max_tokens=24)]
    ours = generate(q4, ids, LoopOptions(max_new_tokens=24))
    assert ours.sequences == [reference] and len(reference) == 24
    assert "".join(t or "" for t in ours.texts) == mlx_generate(q4.model, wrapper, ids, max_tokens=24)
    phases = [(s[1], s[4], s[5] is None) for s in ours.steps]
    assert phases[:2] == [("prefill", len(ids) - 1, True), ("prefill", 1, False)]  # mlx-lm's chunk, then last token
    assert {p for p, _, _ in phases[2:]} == {"decode"} and all(s[2] < s[3] == n[2] for s, n in
                                                                zip(ours.steps, ours.steps[1:], strict=False))
    with LayerTimer(q4.model, "modules") as timer:  # every layer evaluated: the same tokens
        assert generate(q4, ids, LoopOptions(max_new_tokens=24), timer).sequences == [reference]
    chunked = [r.token for r in stream_generate(q4.model, wrapper, ids, max_tokens=6, prefill_step_size=8)]
    small_chunks = generate(q4, ids, LoopOptions(max_new_tokens=6), prefill_step=8)
    assert small_chunks.sequences == [chunked]
    prefill = [s[4] for s in small_chunks.steps if s[1] == "prefill"]
    rest = len(ids) - 1
    assert prefill == [8] * (rest // 8) + ([rest % 8] if rest % 8 else []) + [1] and sum(prefill) == len(ids)


def test_every_block_is_timed_at_every_step_and_classes_come_back(q4) -> None:
    from energyprof.runtimes.mlx.hooks import LayerTimer, swapped_count
    from energyprof.runtimes.mlx.loop import generate
    from energyprof.spec.records import LoopOptions

    timer = LayerTimer(q4.model, "modules")
    kinds = Counter(layer.kind for layer in timer.layers)
    assert kinds == {"embedding": 1, "block": 4, "attention": 4, "mlp": 4, "norm": 1, "lm_head": 1, "other": 1}
    with timer:
        assert swapped_count(q4.model) == 15 and type(q4.model.layers[0]).__name__ == "TransformerBlock"
        gen = generate(q4, _ids(q4), LoopOptions(max_new_tokens=5, ignore_eos=True), timer)
    assert swapped_count(q4.model) == 0
    steps = {s[0]: (s[2], s[3]) for s in gen.steps}
    per_layer = Counter(call[0] for call in gen.calls)
    assert set(per_layer) == {layer.layer_id for layer in timer.layers if layer.module is not None}
    assert set(per_layer.values()) == {len(steps)}  # every hooked layer once per step, chunk included
    for layer_id, step, t0, t1 in gen.calls:
        assert steps[step][0] <= t0 < t1 <= steps[step][1], (layer_id, step)

    def broken_clock() -> int:
        raise RuntimeError("clock broke")

    with pytest.raises(RuntimeError, match="clock broke"), timer:
        generate(q4, _ids(q4), LoopOptions(max_new_tokens=2), timer, clock=broken_clock)
    assert swapped_count(q4.model) == 0


def test_tied_head_is_timed_through_the_embedding() -> None:
    import mlx.core as mx
    from mlx_lm.models import llama

    from energyprof.runtimes.mlx.hooks import LayerTimer

    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                                        num_attention_heads=2, rms_norm_eps=1e-6, vocab_size=300,
                                        tie_word_embeddings=True))
    expected = model(mx.array([[5, 6]]))
    with LayerTimer(model, "blocks") as timer:
        timer.step = 3
        out = model(mx.array([[5, 6]]))
    names = {layer.layer_id: layer.name for layer in timer.layers}
    assert [names[c[0]] for c in timer.calls] == ["model.embed_tokens", "model.layers.0", "model.layers.1",
                                                  "model.norm", "model.embed_tokens.as_linear"]
    assert {c[1] for c in timer.calls} == {3}
    assert mx.allclose(out, expected).item()


# -- through the engine --------------------------------------------------------------------------------------
def test_quantised_folder_profile_records_steps_layers_memory_and_replay(folders: dict[str, Path],
                                                                           store: Store) -> None:
    params = fast_params(model=str(folders["q4"]), layers="modules", layer_energy="replay", replay_s=0.05,
                         replay_trials=2, max_new_tokens=6, device="auto")
    summary = profile_foreground(store, params)
    assert summary.status == "done", summary.error
    assert (summary.runtime, summary.quantization, summary.device) == ("mlx", "4-bit affine, group 32", "cpu")
    assert "quantization entry" in summary.runtime_reason
    assert summary.peak_memory_source == "mlx" and 1 < summary.peak_memory_mb < 200
    assert summary.new_tokens == [6, 6] and summary.j_per_token["decode"].mean > 0
    assert summary.closure_error < 1e-9
    steps = store.steps(summary.run_id)
    prefill = steps[steps["phase"] == "prefill"].groupby("repeat")
    assert list(prefill.size()) == [2, 2]  # mlx-lm's chunk, then the last prompt token, which yields the first token
    per_repeat = prefill["n_tokens"].sum() / prefill["duration_s"].sum()  # prompt tokens over the whole prefill
    assert summary.prefill_tokens_per_s == pytest.approx(per_repeat.mean(), rel=1e-6)
    layer_rows = store.layer_summary(summary.run_id)
    calls = layer_rows.set_index("name")["calls"]
    assert calls["model.layers.3.mlp"] == calls["lm_head"] == 2 * 7  # 2 repeats × (chunk + 6 token steps)
    trials = store.replay_trials(summary.run_id)
    replay = store.layer_replay(summary.run_id)
    assert summary.replay_skipped == [] and summary.replay_steps == {"prefill": 0, "decode": 4}
    assert set(replay["phase"]) == {"prefill", "decode"}
    assert (replay.groupby("phase").size() == 16).all()  # 15 modules + (cache restore), per phase
    assert summary.replay_closure["decode"] is not None and summary.replay_closure["decode"] > 0
    assert len(trials) == 2 * 2 * 16


def test_replay_puts_the_kv_cache_back_after_every_call(q4) -> None:
    from energyprof.runtimes.mlx.hooks import find_layers, swapped_count
    from energyprof.runtimes.mlx.replay import capture_inputs
    from energyprof.spec.records import LoopOptions

    layers = find_layers(q4.model, "blocks")
    captured = capture_inputs(q4, layers, _ids(q4), LoopOptions(max_new_tokens=8, ignore_eos=True), 5)
    assert swapped_count(q4.model) == 0
    decode = [c for c in captured if c.phase == "decode" and c.has_cache]
    assert len(decode) == 4 and {c.step for c in captured if c.phase == "decode"} == {1 + 5}
    block = decode[0]
    offset = block.caches[0].state["offset"]
    assert offset == len(_ids(q4)) + 4  # the prompt and the 5 tokens before this step, less the new one
    assert block.caches[0].cache.offset > offset  # the capture generation went on: the cache grew
    block.restore()
    first = block.call()
    block.restore()
    for _ in range(3):
        again = block.call()
        assert block.caches[0].cache.offset == offset + 1
        block.restore()
        assert block.caches[0].cache.offset == offset
    import mlx.core as mx

    assert mx.allclose(first, again).item()


def test_boundary_reads_measure_each_mlx_token(folders: dict[str, Path], store: Store, stand_in,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundary_reads, "PROBE_S", 0.4)
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "1")
    monkeypatch.setenv("FAKE_IOREPORT_GPU_UPDATE_MS", "0")
    summary = profile_foreground(store, fast_params(model=str(folders["q4"]), source="ioreport", layers="blocks",
                                                    max_new_tokens=8, repeats=2))
    assert summary.status == "done", summary.error
    assert summary.runtime == "mlx" and summary.boundary_reads == 2 * (1 + 1 + 8)  # start, chunk, 8 token steps
    tokens = list(csv.DictReader(io.StringIO(export_csv(store, summary.run_id, "tokens"))))
    decode = [t for t in tokens if t["phase"] == "decode"]
    assert len(decode) == 2 * 7 and all(t["how"] == "measured" for t in decode)
    reads = sorted(stand_in.READS, key=lambda r: r[0])
    times = [t for t, _ in reads]

    def value_at(t_ns: int) -> dict:
        return reads[bisect.bisect_right(times, t_ns) - 1][1]

    for t in decode:  # the token's energy is the counter's difference across it
        before, after = value_at(int(t["t0_ns"])), value_at(int(t["t1_ns"]))
        assert float(t["energy_j_cpu"]) * 1e3 == pytest.approx(after["cpu_total_mj"] - before["cpu_total_mj"],
                                                               abs=1e-6)


@pytest.mark.parametrize("case", ["unknown architecture", "quantisation", "no weights", "batch"])
def test_bad_mlx_input_fails_the_run_with_one_sentence(case: str, folders: dict[str, Path], tmp_path: Path,
                                                       store: Store) -> None:
    folder = shutil.copytree(folders["q4"], tmp_path / "model")
    expected = {"unknown architecture": "The architecture 'nosucharch' of model",
                "quantisation": "cannot run with mlx ([quantize] The requested group size 16 is not supported",
                "no weights": "has no model*.safetensors files, which mlx-lm reads weights from",
                "batch": "The MLX runtime generates one sequence at a time, so a batch of 2 cannot run"}[case]
    batch = 1
    if case == "unknown architecture":
        edit_config(folder, model_type="nosucharch")
    elif case == "quantisation":
        quantization = {"group_size": 32, "bits": 4, "mode": "affine", "model.layers.0.mlp.gate_proj":
                        {"group_size": 16, "bits": 4}}
        edit_config(folder, quantization=quantization, quantization_config=quantization)
    elif case == "no weights":
        for weights in folder.glob("model*.safetensors"):
            weights.rename(weights.with_suffix(".bin"))
    else:
        batch = 2
    summary = profile_foreground(store, fast_params(model=str(folder), runtime="mlx" if case != "batch" else "auto",
                                                    batch=batch, repeats=1))
    run = store.get_run(summary.run_id)
    assert run["status"] == "failed" and expected in run["error"], run["error"]
    assert run["error"].count("\n") == 0 and run["error"].endswith(".")
    assert summary.runtime == "mlx"
