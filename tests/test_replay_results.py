"""Replay figures from trials and power readings (pure): the three ways a trial's power is read, per-call energy and
power gross and net, the cache-restore reference subtracted, CI and CV over trials, flags, and the closure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from energyprof.analysis.replay_results import (
    APPORTIONED,
    COUNTER,
    WINDOWS,
    WindowArrays,
    replay_results,
    trial_power,
)
from energyprof.power.base import CounterReading, PowerWindow
from energyprof.spec.records import Generation, Layer, ReplayOutcome, ReplayTrial
from energyprof.store.replay import RESTORE_LAYER_ID
from energyprof.summary import MeanCI

MS = 1_000_000
T0 = 50_000 * MS


def windows_at(watts: list[float], start: int = T0, length: int = 100 * MS, comp: str = "cpu") -> list[PowerWindow]:
    """Back-to-back windows of `length` ns, each at its own constant power."""
    return [PowerWindow(start + i * length, start + (i + 1) * length, {comp: w * length / 1e6})
            for i, w in enumerate(watts)]


def trial(layer_id: int, t0: int, t1: int, calls: int, *, phase: str = "decode", n: int = 1, restored: bool = False,
          counter: tuple[float, float] | None = None) -> ReplayTrial:
    c0 = c1 = None
    if counter is not None:
        c0, c1 = CounterReading(t0, {"cpu": counter[0]}), CounterReading(t1, {"cpu": counter[1]})
    return ReplayTrial(layer_id, f"layer{layer_id}", phase, 3, n, t0, t1, calls, restored, c0, c1)


def test_a_trial_reads_whole_windows_inside_it_and_leaves_the_partial_edges_out() -> None:
    # 300 W before and after the trial (a neighbour layer), 50 W for the windows wholly inside it
    windows = WindowArrays.of(windows_at([300, 50, 50, 50, 50, 300]), ["cpu"])
    t = trial(1, T0 + 50 * MS, T0 + 550 * MS, 1000)
    power = trial_power(t, windows, ["cpu"])
    assert power.method == WINDOWS and power.windows == 4
    assert power.power_w["cpu"] == pytest.approx(50.0, rel=1e-12)
    shared = trial_power(trial(1, T0 + 120 * MS, T0 + 180 * MS, 10), windows, ["cpu"])
    assert shared.method == APPORTIONED and shared.power_w["cpu"] == pytest.approx(50.0)
    straddling = trial_power(trial(1, T0 + 150 * MS, T0 + 240 * MS, 10), windows, ["cpu"])
    assert straddling.power_w["cpu"] == pytest.approx(50.0)
    # a cancelled run: the last trial's end came after the last window, and no whole window lies inside it
    beyond = trial_power(trial(1, T0 + 560 * MS, T0 + 650 * MS, 10), windows, ["cpu"])
    assert beyond.method == APPORTIONED and math.isnan(beyond.power_w["cpu"])


def test_a_counter_source_trial_is_the_counter_difference() -> None:
    t = trial(1, T0, T0 + 400 * MS, 100, counter=(1_000.0, 33_000.0))  # 32 J in 0.4 s
    power = trial_power(t, WindowArrays.of(windows_at([999.0] * 6), ["cpu"]), ["cpu"])
    assert power.method == COUNTER and power.power_w["cpu"] == pytest.approx(80.0)
    missing = ReplayTrial(1, "x", "decode", 3, 1, T0, T0 + MS, 1, False, CounterReading(T0, {"cpu": None}),
                          CounterReading(T0 + MS, {"cpu": 5.0}))
    assert math.isnan(trial_power(missing, WindowArrays.of([], ["cpu"]), ["cpu"]).power_w["cpu"])  # unknown, not 0


def test_per_call_figures_subtract_the_restore_reference_and_the_baseline() -> None:
    windows = windows_at([80.0] * 10 + [20.0] * 10 + [120.0] * 10, length=100 * MS)
    one_s = 1_000 * MS
    trials = [
        # the reference: restores only, 20 W, 2 µs each
        trial(RESTORE_LAYER_ID, T0 + one_s, T0 + 2 * one_s, 500_000, restored=True),
        # an attention (with a cache): 120 W, 1000 calls of 1 ms each, 2 µs of which was the restore
        trial(5, T0 + 2 * one_s, T0 + 3 * one_s, 1000, restored=True),
        # an MLP (no cache): 80 W, 250 calls of 4 ms
        trial(6, T0, T0 + one_s, 250),
    ]
    out = replay_results(ReplayOutcome(trials, {"decode": 3}, seconds_per_trial=1.0), windows, ["cpu"],
                         {"cpu": 10.0}, [], [])
    rows = {r[0]: r for r in out.layer_rows}
    attn, mlp, ref = rows[5], rows[6], rows[RESTORE_LAYER_ID]
    assert ref[5] == pytest.approx(2_000) and ref[6] == pytest.approx(20 * 2e-6 * 1e3)
    assert attn[5] == pytest.approx(1e6 - 2_000)                           # time per call (ns), restore out
    assert attn[6] == pytest.approx(120 * 1e-3 * 1e3 - 20 * 2e-6 * 1e3)     # energy per call (mJ)
    assert attn[7] == pytest.approx((120 - 10) * 1e-3 * 1e3 - (20 - 10) * 2e-6 * 1e3)
    assert attn[8] == pytest.approx((120e-3 - 20 * 2e-6) / (1e-3 - 2e-6))  # power (W) of the call alone
    assert attn[16] == 1 and mlp[16] == 0
    assert mlp[6] == pytest.approx(80 * 4e-3 * 1e3) and mlp[8] == pytest.approx(80.0)
    assert mlp[9] == pytest.approx(70.0)                                   # net power
    assert mlp[3] == 1 and mlp[10] is None and mlp[12] is None and mlp[13] == 0  # one trial: no CI, no CV
    comps = {(r[0], r[2]): r for r in out.energy_rows}
    assert comps[(6, "cpu")][3] == pytest.approx(mlp[6])
    trial_rows = {(r[0], r[3]): r for r in out.trial_rows}
    assert trial_rows[(6, 1)][7] == pytest.approx(80 * 1.0 * 1e3)          # the whole loop's energy (mJ)


def test_ci_cv_and_the_flag_for_a_ci_wider_than_its_mean() -> None:
    windows = windows_at([50.0, 50.0, 50.0] * 3 + [10.0, 90.0, 50.0], length=100 * MS)
    trials = [trial(1, T0 + i * 300 * MS, T0 + (i + 1) * 300 * MS, 100, n=i + 1) for i in range(3)]
    noisy = [trial(2, T0 + 900 * MS + i * 100 * MS, T0 + 1000 * MS + i * 100 * MS, 100, n=i + 1) for i in range(3)]
    out = replay_results(ReplayOutcome(trials + noisy, {"decode": 3}), windows, ["cpu"], None, [], [])
    rows = {r[0]: r for r in out.layer_rows}
    steady, wild = rows[1], rows[2]
    assert steady[3] == 3 and steady[10] == pytest.approx(0.0, abs=1e-12) and steady[12] == pytest.approx(0.0)
    per_call = np.array([10.0, 90.0, 50.0])  # W × 1 ms per call = mJ
    mean = per_call.mean()
    assert wild[6] == pytest.approx(mean)
    assert wild[12] == pytest.approx(per_call.std(ddof=1) / mean)
    assert wild[10] == pytest.approx(4.303 * per_call.std(ddof=1) / math.sqrt(3))
    assert wild[13] == int(MeanCI(wild[6], wild[10]).wider_than_mean) == 1
    assert wild[7] is None and wild[9] is None  # no baseline: no net figures
    assert out.figures.replay_flagged == 1


def test_closure_is_the_top_level_layers_over_the_measured_step() -> None:
    windows = windows_at([40.0] * 40, length=100 * MS)
    gen = Generation(0, [1, 2, 3])
    gen.steps = [(0, "prefill", T0, T0 + 200 * MS, 3, 5), (1, "decode", T0 + 200 * MS, T0 + 300 * MS, 1, 6),
                 (2, "decode", T0 + 300 * MS, T0 + 400 * MS, 1, 7), (3, "decode", T0 + 400 * MS, T0 + 500 * MS, 1, 8)]
    layers = [Layer(0, "embed", "embedding", None, 0, object()), Layer(1, "block", "block", None, 1, object()),
              Layer(2, "block.mlp", "mlp", 1, 2, object()), Layer(3, "other", "other", None, 3)]
    # each top-level layer: 40 W for 1 ms per call = 40 mJ; the child must not be counted
    trials = [trial(i, T0 + 1000 * MS + i * 500 * MS, T0 + 1500 * MS + i * 500 * MS, 500) for i in (0, 1, 2)]
    out = replay_results(ReplayOutcome(trials, {"decode": 3}), windows, ["cpu"], {"cpu": 10.0}, layers, [gen])
    step_j = 40.0 * 0.1                                     # decode step 3: 100 ms at 40 W
    assert out.figures.replay_step_j["decode"] == pytest.approx(step_j)
    assert out.figures.replay_sum_j["decode"] == pytest.approx(2 * 0.04)
    assert out.figures.replay_closure["decode"] == pytest.approx(0.08 / step_j)
    assert out.figures.replay_closure_net["decode"] == pytest.approx(2 * 0.03 / (30.0 * 0.1))
    assert out.figures.replay_layers == 3
