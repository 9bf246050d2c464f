"""The chain of counter readings, coarsened per component (energyprof.analysis.counter_chain), and the labels and
closure it gives through the real attribution (energyprof.analysis.results), on synthetic readings."""

from __future__ import annotations

import numpy as np
import pytest

from energyprof.analysis.counter_chain import component_chains, kept_edges, with_still_components
from energyprof.analysis.results import HowContext, attribute_run
from energyprof.power.base import CounterReading, PowerWindow
from energyprof.provenance import ESTIMATED
from energyprof.spec.records import Generation

MS = 1_000_000


def test_long_steps_keep_every_boundary() -> None:
    boundaries = [0, 30 * MS, 60 * MS, 90 * MS]
    assert kept_edges(boundaries, [], {0, 90 * MS}, 20 * MS) == boundaries


def test_short_steps_are_grouped_and_repeat_ends_stay() -> None:
    # a repeat from 0 to 100 ms in 10 ms steps; the counter updates every 25 ms
    boundaries = list(range(0, 101 * MS, 10 * MS))
    edges = kept_edges(boundaries, [], {0, 100 * MS}, 25 * MS)
    assert edges[0] == 0 and edges[-1] == 100 * MS
    assert all(b - a >= 25 * MS for a, b in zip(edges, edges[1:], strict=False))
    # greedy: 30 and 60 are the first boundaries 25 ms after the last kept edge; 90 is dropped again because it is
    # less than 25 ms before the forced end
    assert edges == [0, 30 * MS, 60 * MS, 100 * MS]


def test_polls_only_fill_the_gaps() -> None:
    boundaries = [1000 * MS, 1050 * MS, 1100 * MS]
    polls = [0, 100 * MS, 200 * MS, 990 * MS, 1040 * MS, 1200 * MS, 1230 * MS]
    edges = kept_edges(boundaries, polls, {0, 1000 * MS, 1100 * MS, 1230 * MS}, 50 * MS)
    # 990 is 10 ms before a kept boundary and 1040 inside a step: both would make a window under 50 ms
    assert edges == [0, 100 * MS, 200 * MS, 1000 * MS, 1050 * MS, 1100 * MS, 1230 * MS]


def _reading(t_ms: float, cpu: float | None, gpu: float = 0.0) -> CounterReading:
    return CounterReading(int(t_ms * MS), {"cpu": cpu, "gpu": gpu})


def test_chain_windows_are_counter_differences_and_untimed_components_use_the_sampler() -> None:
    boundary = [_reading(10, 100.0, 5.0), _reading(20, 130.0, 5.0), _reading(50, 190.0, 5.0)]
    polls = [_reading(0, 100.0, 5.0), _reading(60, 200.0, 5.0)]
    periodic = [PowerWindow(0, 60 * MS, {"cpu": 100.0, "gpu": 0.0})]
    chains = component_chains(boundary, polls, {"cpu": 5 * MS, "gpu": None}, [(10 * MS, 50 * MS)], periodic)
    assert chains["cpu"] == [PowerWindow(0, 10 * MS, {"cpu": 0.0}), PowerWindow(10 * MS, 20 * MS, {"cpu": 30.0}),
                             PowerWindow(20 * MS, 50 * MS, {"cpu": 60.0}), PowerWindow(50 * MS, 60 * MS, {"cpu": 10.0})]
    assert chains["gpu"] == [PowerWindow(0, 60 * MS, {"gpu": 0.0})]
    assert with_still_components({"cpu": 5 * MS, "gpu": None}, [*boundary, *polls]) == {"cpu": 5 * MS, "gpu": 1}
    moving = [*boundary, _reading(70, 210.0, 6.0)]
    assert with_still_components({"cpu": None, "gpu": None}, moving) == {"cpu": None, "gpu": None}
    unknown = [_reading(0, None), _reading(10, None)]
    assert with_still_components({"cpu": None}, unknown) == {"cpu": None}  # unknown is never "did not move"


def _generation(repeat: int, bounds_ms: list[float]) -> Generation:
    gen = Generation(repeat, [1, 2, 3])
    for idx, (a, b) in enumerate(zip(bounds_ms, bounds_ms[1:], strict=False)):
        gen.steps.append((idx, "prefill" if idx == 0 else "decode", int(a * MS), int(b * MS),
                          3 if idx == 0 else 1, 7))
    return gen


def test_long_steps_are_measured_short_ones_apportioned_and_repeats_close() -> None:
    # a counter at 2 W (2 mJ per ms) publishing every 10 ms: steps of 40, 30, 5, 5, 25 ms
    bounds = [100, 140, 170, 175, 180, 205]
    value = {t: 2.0 * (t - t % 10) for t in range(0, 301)}
    boundary = [_reading(t, value[t]) for t in bounds]
    polls = [_reading(t, value[t]) for t in range(0, 301, 50)]
    periodic = [p.window_since(q) for q, p in zip(polls, polls[1:], strict=False)]
    gen = _generation(0, bounds)
    periods = {"cpu": 10 * MS, "gpu": 10 * MS}
    chains = component_chains(boundary, polls, periods, [gen.span_ns], periodic)
    done = attribute_run(periodic, [gen], [], ["cpu", "gpu"], None, chains=chains, how=HowContext(periods_ns=periods))
    rows = {(r[1], r[2]): r for r in done.step_energy_rows}
    how = [rows[(i, "cpu")][6] for i in range(5)]
    assert how == ["measured", "measured", "apportioned", "apportioned", "measured"]
    # the measured steps are the counter differences across them
    for i in (0, 1, 4):
        assert rows[(i, "cpu")][3] == pytest.approx(value[bounds[i + 1]] - value[bounds[i]])
    # the two 5 ms steps share the 10 ms window [170, 180] by time
    assert rows[(2, "cpu")][3] == pytest.approx(rows[(3, "cpu")][3])
    assert rows[(2, "cpu")][5] == pytest.approx(0.5)
    total = sum(rows[(i, "cpu")][3] for i in range(5))
    assert total == pytest.approx(value[205] - value[100], rel=1e-12)  # closure against the counter
    assert done.figures.tokens_measured_share == pytest.approx(0.6)
    assert done.figures.tokens_measured_share_by_component == {"cpu": pytest.approx(0.6),
                                                                  "gpu": pytest.approx(0.6)}
    assert done.figures.closure["steps_vs_window"] == pytest.approx(0.0, abs=1e-12)


def test_a_short_repeat_is_one_window_and_its_single_step_is_not_measured() -> None:
    # an encoder forward pass of 4 ms on a counter publishing every 10 ms: whole window, but shorter than an update
    boundary = [_reading(100, 200.0), _reading(104, 210.0)]
    polls = [_reading(0, 0.0), _reading(200, 400.0)]
    gen = Generation(0, [1])
    gen.steps.append((0, "forward", 100 * MS, 104 * MS, 1, None))
    periods = {"cpu": 10 * MS}
    chains = component_chains(boundary, polls, periods, [gen.span_ns], [])
    done = attribute_run([], [gen], [], ["cpu"], None, chains=chains, how=HowContext(periods_ns=periods))
    (row,) = done.step_energy_rows
    assert row[3] == pytest.approx(10.0) and row[5] == pytest.approx(1.0)  # the counter difference, whole window
    assert row[6] == "apportioned"  # but shorter than one update: not a measurement of the step


def test_estimates_stay_estimated() -> None:
    windows = [PowerWindow(0, 100 * MS, {"cpu": 100.0})]
    gen = _generation(0, [0, 100])
    done = attribute_run(windows, [gen], [], ["cpu"], None, how=HowContext(ESTIMATED))
    assert done.step_energy_rows[0][6] == "estimated" and done.figures.tokens_measured_share == 0.0


def test_whole_windows_without_a_counter_are_measured() -> None:
    windows = [PowerWindow(0, 50 * MS, {"cpu": 100.0}), PowerWindow(50 * MS, 100 * MS, {"cpu": 50.0})]
    gen = _generation(0, [0, 50, 70, 100])
    done = attribute_run(windows, [gen], [], ["cpu"], None)
    assert [r[6] for r in done.step_energy_rows] == ["measured", "apportioned", "apportioned"]
    assert np.isclose(done.figures.tokens_measured_share, 1 / 3)
