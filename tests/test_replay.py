"""Replay (energyprof.runtimes.transformers.replay): each hooked layer called alone until the meter can see
it. The KV cache never leaks between calls, every model family and depth replays, a power that depends on the
module running is recovered where the time split cannot see it, and a cancelled replay keeps the trials that
finished."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from module_power import ATTENTION_W, IDLE_W, MLP_W, ModulePower, ModulePowerSource
from profile_helpers import fast_params, save_bert, save_gpt2, wait_for

from energyprof.power import registry
from energyprof.runner import jobs
from energyprof.runner.job import profile_foreground, run_profile
from energyprof.runtimes.transformers.hooks import find_layers, hook_count
from energyprof.runtimes.transformers.models import encode_prompt, load_model
from energyprof.runtimes.transformers.replay import Replayer, capture_inputs, timed_loop
from energyprof.spec.params import ProfileParams
from energyprof.spec.records import LoopOptions
from energyprof.spec.replay_plan import builtin_modules, default_replay_step, plan_replay
from energyprof.store import Store
from energyprof.store.replay import RESTORE_NAME

PROMPT = "Hello energy"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine a second OpenMP thread stalls for milliseconds at random."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny() -> object:
    return load_model("tiny", "cpu")


def _cache_lengths(module: torch.nn.Module, seen: list[tuple[int, int]]) -> list[object]:
    """Hooks recording this attention layer's own cache length before and after every call."""
    def pre(mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append((0, kwargs["cache"].layers[mod.layer_idx].get_seq_length()))

    def post(mod: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        seen.append((1, kwargs["cache"].layers[mod.layer_idx].get_seq_length()))
    return [module.register_forward_pre_hook(pre, with_kwargs=True),
            module.register_forward_hook(post, with_kwargs=True)]


# -- state never leaks ---------------------------------------------------------------------------------------------
def test_a_replayed_decode_attention_sees_the_same_cache_length_on_every_call(tiny) -> None:
    prompt = encode_prompt(tiny.tokenizer, PROMPT, "causal")
    layers = find_layers(tiny.model, "modules")
    with torch.inference_mode():
        captured = capture_inputs(tiny, layers, prompt, LoopOptions(6, ignore_eos=True), decode_step=3)
    attn = next(c for c in captured if c.phase == "decode" and c.layer.name == "model.layers.2.self_attn")
    assert attn.step == 3 and attn.has_cache
    length = len(prompt) + 3 - 1  # the prompt and the tokens of decode steps 1 and 2
    seen: list[tuple[int, int]] = []
    outputs: list[torch.Tensor] = []
    handles = _cache_lengths(attn.layer.module, seen)
    try:
        with torch.inference_mode():
            attn.restore_all()
            attn.call()
            attn.learn()
            attn.restore_all()
            seen.clear()
            done = timed_loop(lambda: outputs.append(attn.call()[0]), (), {}, attn.restore, 0.2, "cpu")
            assert done.calls >= 3 and len(seen) == 2 * done.calls
            assert {n for when, n in seen if when == 0} == {length}       # before every call
            assert {n for when, n in seen if when == 1} == {length + 1}   # the call appended one position
            assert all(torch.equal(outputs[0], out) for out in outputs)
            seen.clear()
            for _ in range(3):  # without the restore it leaks
                attn.call()
            before = [n for when, n in seen if when == 0]
            assert before[:3] == [length, length + 1, length + 2]
    finally:
        for handle in handles:
            handle.remove()
        attn.restore_all()


def test_every_replayed_attention_sees_one_cache_length_per_phase(tiny) -> None:
    prompt = encode_prompt(tiny.tokenizer, PROMPT, "causal")
    attention = [x for x in find_layers(tiny.model, "modules") if x.kind == "attention"]
    seen: dict[str, list[tuple[int, int]]] = {x.name: [] for x in attention}
    handles: list[object] = []

    def watch(phase: str) -> None:  # from the first trial on: every call the replay makes
        if phase.startswith("replay model.") and not handles:
            for layer in attention:
                handles.extend(_cache_lengths(layer.module, seen[layer.name]))

    try:
        outcome = Replayer(tiny, attention, seconds=0.01, trials=2, on_phase=watch).run(
            prompt, LoopOptions(6, ignore_eos=True), 3)
    finally:
        for handle in handles:
            handle.remove()
    assert outcome.steps == {"prefill": 0, "decode": 3} and outcome.skipped == []
    assert hook_count(tiny.model) == 0
    decode = len(prompt) + 2  # the prompt and the tokens of decode steps 1 and 2
    for name, lengths in seen.items():  # warm-up and timed calls alike: an empty cache, or the decode step's
        assert len(lengths) >= 2 * 2 * 3, name
        assert {n for when, n in lengths if when == 0} == {0, decode}, name
        assert {n for when, n in lengths if when == 1} == {len(prompt), decode + 1}, name
    names = {t.name for t in outcome.trials}
    assert names == {RESTORE_NAME, *(x.name for x in attention)} and len(outcome.trials) == 2 * 2 * (4 + 1)
    assert all(t.calls >= 1 and t.t1_ns > t.t0_ns for t in outcome.trials)


# -- every family and depth ------------------------------------------------------------------------------------
def _model(family: str, folder: Path) -> str:
    if family == "gpt2":
        return str(save_gpt2(folder / "gpt2"))
    if family == "bert":
        return str(save_bert(folder / "bert"))
    return "tiny"


@pytest.mark.parametrize("depth", ["blocks", "modules"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_every_hooked_module_of_each_family_and_depth_is_replayed(store: Store, tmp_path: Path, family: str,
                                                                  depth: str) -> None:
    params = fast_params(model=_model(family, tmp_path), layers=depth, layer_energy="replay", replay_s=0.01,
                         replay_trials=1, repeats=1, max_new_tokens=4)
    summary = profile_foreground(store, params)
    assert summary.status == "done", summary.error
    assert summary.layer_energy == "replay" and summary.replay_skipped == [] and summary.replay_trials == 1
    encoder = family == "bert"
    phases = ["forward"] if encoder else ["prefill", "decode"]
    assert summary.replay_steps == ({"forward": 0} if encoder else {"prefill": 0, "decode": 2})
    replay = store.layer_replay(summary.run_id)
    hooked = set(store.layers(summary.run_id).query("kind != 'other'")["name"])
    layers = replay[replay["kind"] != "restore"]
    for phase in phases:
        assert set(layers.loc[layers["phase"] == phase, "layer"]) == hooked, phase
    assert set(replay["phase"]) == set(phases)
    assert (replay["calls"] > 0).all() and (replay["time_s_per_call"] > 0).all()
    assert replay["energy_j_per_call"].notna().all() and (replay["energy_j_per_call"] > 0).all()
    with_cache = layers["kind"].isin(["block", "attention"]) & (not encoder)
    assert (layers["restore_subtracted"].astype(bool) == with_cache).all()
    assert (replay["kind"] == "restore").sum() == (0 if encoder else 2)
    assert set(summary.replay_closure) == set(phases) and all(v > 0 for v in summary.replay_closure.values())
    assert summary.replay_layers == len(layers)


# -- the proof: power that depends on the module --------------------------------------------------------------------
def _wide_llama(folder: Path) -> Path:
    """A 2-block Llama (hidden 2048) whose MLP and attention calls take milliseconds on a CPU: the µs a call spends in
    nn.Module.__call__ and the replay loop, outside the module (at idle power here), are then under 2 %."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tok = ByT5Tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=2048, num_hidden_layers=2,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=512,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_replay_recovers_the_power_of_each_module_where_the_time_split_cannot(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    loaded = load_model(str(_wide_llama(tmp_path / "wide")), "cpu")
    power = ModulePower().attach(loaded.model)
    monkeypatch.setattr(registry, "resolve_source", lambda *args, **kwargs: ModulePowerSource(power))
    params = fast_params(model=loaded.name, layers="modules", layer_energy="replay", replay_s=0.1, replay_trials=2,
                         repeats=2, interval_ms=100)  # every source's default window
    run_id = store.create_run("profile", params=params.to_dict())
    summary = run_profile(store, run_id, params, loaded=loaded)
    power.detach()
    assert summary.status == "done", summary.error
    assert hook_count(loaded.model) == 0

    replay = store.layer_replay(run_id)
    assert (replay["method"] == "counter").all()
    for kind, watts in (("mlp", MLP_W), ("attention", ATTENTION_W)):
        rows = replay[replay["kind"] == kind]
        assert len(rows) == 4  # two blocks, prefill and decode
        for row in rows.itertuples():
            assert row.power_w == pytest.approx(watts, rel=0.05), (row.layer, row.phase)
            assert row.net_power_w == pytest.approx(row.power_w - summary.baseline_w["cpu"])  # net of the baseline
            assert row.energy_j_per_call == pytest.approx(row.power_w * row.time_s_per_call, rel=1e-9)
    restore = replay[replay["kind"] == "restore"]
    assert restore["power_w"].tolist() == pytest.approx([IDLE_W] * 2, rel=0.01)  # the restore runs no module

    split = store.layer_summary(run_id)  # the same run's apportioned figures: each call's share of its windows
    apportioned = (split["energy_j"] / split["time_s"]).groupby(split["kind"]).mean()
    assert abs(math.log(apportioned["mlp"] / apportioned["attention"])) < math.log(1.2)  # indistinguishable
    assert apportioned["mlp"] < 0.75 * MLP_W and apportioned["attention"] > 1.1 * ATTENTION_W  # both off
    replayed = replay.groupby("kind")["power_w"].mean()
    assert replayed["mlp"] / replayed["attention"] == pytest.approx(MLP_W / ATTENTION_W, rel=0.06)  # 2.5
    for phase, ratio in summary.replay_closure.items():
        assert 0.3 < ratio < 3, phase


# -- cost, progress and cancel ------------------------------------------------------------------------------------
def test_cancel_mid_replay_keeps_the_finished_trials(store: Store) -> None:
    params = fast_params(layers="blocks", layer_energy="replay", replay_s=0.1, replay_trials=3, repeats=1,
                         interval_ms=20)
    run_id = jobs.launch_job(store, params.to_dict())
    phases: list[str] = []

    def replaying() -> bool:
        phases.append(store.get_run(run_id)["phase"] or "")
        return len(store.replay_trials(run_id)) >= 3

    wait_for(replaying, what="three finished replay trials")
    assert any(p.startswith("replay model.") and p.endswith(("1/3", "2/3", "3/3")) for p in phases), phases
    assert jobs.cancel(store, jobs.RUN, run_id, timeout_s=30)
    run = store.get_run(run_id)
    assert run["status"] == "cancelled", run["error"]
    trials = store.replay_trials(run_id)
    assert len(trials) >= 3 and trials["energy_j"].notna().sum() >= 2
    replay = store.layer_replay(run_id)
    assert not replay.empty and replay["energy_j_per_call"].notna().any()
    assert run["summary"]["replay_layers"] >= 1 and run["summary"]["status"] == "cancelled"
    assert not store.steps(run_id).empty


# -- parameters and the plan ----------------------------------------------------------------------------------------
def test_replay_parameters_are_checked_with_one_sentence_each() -> None:
    assert ProfileParams(layer_energy="replay").errors() == []
    assert ProfileParams(layer_energy="replay", layers="none").errors() == [
        "Replaying layers needs layer hooks; set the layer depth to blocks or modules."]
    assert ProfileParams(layer_energy="replay", max_new_tokens=8, replay_step=8).errors() == [
        "The replay step 8 is never reached: 8 new tokens give decode steps 1 to 7; choose one of those."]
    assert ProfileParams(layer_energy="measured").errors()[0].startswith("Unknown per-layer energy 'measured'")
    assert ProfileParams(replay_s=0.0).errors() and ProfileParams(replay_trials=0).errors()
    assert ProfileParams(layers="none", replay_step=99, max_new_tokens=2).errors() == []  # ignored without replay


def test_the_plan_says_how_long_replay_takes_before_it_starts() -> None:
    plan = plan_replay(ProfileParams(model="tiny", layers="modules", layer_energy="replay", replay_s=0.3))
    assert (plan.modules, plan.phases, plan.references, plan.trials, plan.seconds_per_trial) == (15, 2, 2, 3, 0.3)
    assert plan.trial_count == (15 * 2 + 2) * 3
    assert plan.total_s == pytest.approx(96 * 0.32)
    assert plan.describe() == ("Replay after the measured repeats: 15 modules × 2 phases + 2 cache-restore "
                               "references, × 3 trials × 0.3 s ≈ 31 s.")
    auto = plan_replay(ProfileParams(model="small", layers="blocks", layer_energy="replay"))
    assert auto.seconds_per_trial == 1.0 and auto.modules == 15
    assert auto.describe().endswith("≈ 1.6 min. Trials last longer when the power source's counter updates more "
                                    "slowly than that (10 updates per trial); set the seconds per trial to bound it.")
    assert plan_replay(ProfileParams(layer_energy="replay", interval_ms=500)).seconds_per_trial == 5.0
    custom = plan_replay(ProfileParams(model="./my-model", layer_energy="replay"))
    assert custom.modules is None and custom.total_s is None and "per module" in custom.describe()
    assert plan_replay(ProfileParams(layer_energy="replay", max_new_tokens=1)).phases == 1
    assert default_replay_step(6) == 3 and default_replay_step(1) is None


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_builtin_module_counts_match_the_hooks(name: str) -> None:
    from energyprof.runtimes.transformers.models import BUILTIN_MODELS, build_builtin

    model = build_builtin(name)
    assert BUILTIN_MODELS[name]["num_hidden_layers"] == plan_replay(ProfileParams(model=name)).modules - 3
    for depth in ("blocks", "modules"):
        hooked = [x for x in find_layers(model, depth) if x.module is not None]
        assert builtin_modules(name, depth) == len(hooked)


def test_a_module_that_cannot_run_alone_is_skipped_with_a_sentence(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof.runtimes.transformers import replay

    prompt = encode_prompt(tiny.tokenizer, PROMPT, "causal")
    layers = find_layers(tiny.model, "blocks")
    head = next(x for x in layers if x.kind == "lm_head").module
    real_capture = replay.capture_inputs

    def capture_then_break(*args: object, **kwargs: object) -> list:
        captured = real_capture(*args, **kwargs)
        head.forward = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("needs the whole model\nsecond line"))
        return captured

    monkeypatch.setattr(replay, "capture_inputs", capture_then_break)
    try:
        outcome = Replayer(tiny, layers, seconds=0.005, trials=2).run(prompt, LoopOptions(4, ignore_eos=True), 2)
    finally:
        del head.forward
    assert outcome.skipped == [f"lm_head ({phase}) could not be replayed alone: RuntimeError: needs the whole model."
                               for phase in ("prefill", "decode")]
    assert "lm_head" not in {t.name for t in outcome.trials}
    assert len({t.name for t in outcome.trials}) == len(layers) - 2 + 1  # the rest, and the cache restore

    monkeypatch.setattr(replay, "capture_inputs", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd model")))
    failed = Replayer(tiny, layers, seconds=0.005, trials=1).run(prompt, LoopOptions(4, ignore_eos=True), 2)
    assert failed.trials == [] and failed.skipped == [
        "No layer could be replayed: capturing their inputs failed with ValueError: odd model."]


def test_the_python_api_replays_a_model_it_is_given(store: Store) -> None:
    from transformers import ByT5Tokenizer, GPT2Config, GPT2LMHeadModel

    import energyprof

    tok = ByT5Tokenizer()
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=128))
    summary = energyprof.profile_generation(model, tok, "Hello", max_new_tokens=4, ignore_eos=True, source="estimate",
                                            interval_ms=20, layers="modules", layer_energy="replay", replay_s=0.01,
                                            replay_trials=2, replay_step=1, db=store.path)
    assert summary.status == "done", summary.error
    assert summary.replay_steps == {"prefill": 0, "decode": 1} and summary.replay_layers == 2 * 9
    assert hook_count(model) == 0 and model.training is True  # hooks gone, the caller's mode back
    replay = store.layer_replay(summary.run_id)
    assert (replay.loc[replay["kind"] != "restore", "trials"] == 2).all()


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_loops_on_an_asynchronous_device_synchronise_after_every_call(device: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof.runtimes.transformers import replay

    events: list[str] = []
    monkeypatch.setattr(replay, "synchronize", lambda dev: events.append(f"sync {dev}"))
    done = timed_loop(lambda: events.append("call"), (), {}, lambda: events.append("restore"), 0.002, device)
    assert done.calls >= 1
    assert events == ([f"sync {device}"] + ["call", "restore", f"sync {device}"] * done.calls + [f"sync {device}"])
    events.clear()
    timed_loop(lambda: events.append("call"), (), {}, lambda: None, 0.001, "cpu")
    assert "sync cpu" not in events[1:-1]  # on the cpu only the loop's ends call it (a no-op there)
