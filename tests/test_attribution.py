"""Attribution against ground truth: a straightforward reference implementation on synthetic power traces."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from energyprof.analysis.attribution import (
    attribute_intervals,
    baseline_power_w,
    mean_ci95,
    net_energy_mj,
    t_quantile_975,
    whole_system_mj,
)
from energyprof.power.base import PowerWindow, total_energy_mj

SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)
ORIGIN = 987_654_321_000_000_000
"""Realistic perf_counter_ns magnitude, so precision loss from big timestamps would show."""
MS = 1_000_000


def reference(windows: list[PowerWindow], a: np.ndarray, b: np.ndarray, comp: str):
    """Energy and resolution of each interval by the definition: a double loop over intervals × windows."""
    energy, resolution = [], []
    for lo, hi in zip(a.tolist(), b.tolist(), strict=True):
        total, covered, unknown, touched = 0.0, 0, False, False
        for w in windows:
            overlap = min(hi, w.t1_ns) - max(lo, w.t0_ns)
            if overlap <= 0:
                continue
            touched = True
            covered += w.t1_ns - w.t0_ns
            value = w.energy_mj.get(comp)
            if value is None:
                unknown = True
            else:
                total += value * overlap / (w.t1_ns - w.t0_ns)
        energy.append(math.nan if unknown or not touched else total)
        resolution.append((hi - lo) / covered if touched else math.nan)
    return np.array(energy), np.array(resolution)


def random_windows(rng: np.random.Generator, n: int, *, gaps: bool = False, overlaps: bool = False,
                   missing: float = 0.0) -> list[PowerWindow]:
    """Windows of ~100 ms with a random constant power each; optional gaps, overlaps and unknown gpu values."""
    windows, t = [], ORIGIN
    for _ in range(n):
        length = int(rng.integers(80 * MS, 120 * MS))
        if gaps and rng.random() < 0.3:
            t += int(rng.integers(1 * MS, 50 * MS))
        start = t - int(rng.integers(0, 10 * MS)) if overlaps and rng.random() < 0.5 else t
        gpu = None if rng.random() < missing else float(rng.uniform(0, 5)) * length / 1e6
        windows.append(PowerWindow(start, start + length, {
            "cpu": float(rng.uniform(1, 30)) * length / 1e6,
            "gpu": gpu,
        }))
        t = start + length
    return windows


def random_intervals(rng: np.random.Generator, windows: list[PowerWindow], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Intervals from sub-millisecond to multi-window, some reaching outside the windows' span."""
    lo = windows[0].t0_ns - 200 * MS
    hi = max(w.t1_ns for w in windows) + 200 * MS
    a = rng.integers(lo, hi, n)
    scale = rng.choice([10_000, MS, 30 * MS, 500 * MS], n)
    b = a + (rng.random(n) * scale).astype(np.int64)
    return a, b


def assert_matches(got: np.ndarray, want: np.ndarray, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=atol)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["contiguous", "gaps", "overlaps", "missing"])
def test_energy_and_resolution_match_reference(seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    windows = random_windows(rng, 40, gaps=kind == "gaps", overlaps=kind == "overlaps",
                             missing=0.15 if kind == "missing" else 0.0)
    a, b = random_intervals(rng, windows, 150)
    got = attribute_intervals(windows, a, b)
    assert set(got.energy_mj) == {"cpu", "gpu"}
    for comp in ("cpu", "gpu"):
        want_e, want_r = reference(windows, a, b, comp)
        assert_matches(got.energy_mj[comp], want_e)
        assert_matches(got.resolution, want_r, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_closure_partitions_sum_to_span(seed: int) -> None:
    rng = np.random.default_rng(seed)
    windows = random_windows(rng, 300, gaps=seed % 2 == 1, overlaps=seed % 3 == 0)
    lo, hi = windows[0].t0_ns, windows[-1].t1_ns
    for n_parts in (2, 17, 5000):
        cuts = np.sort(rng.integers(lo, hi, n_parts - 1))
        edges = np.concatenate(([lo], cuts, [hi]))
        parts = attribute_intervals(windows, edges[:-1], edges[1:], ["cpu"]).energy_mj["cpu"]
        span = attribute_intervals(windows, np.array([lo]), np.array([hi]), ["cpu"]).energy_mj["cpu"][0]
        whole = sum(w.energy_mj["cpu"] for w in windows)
        assert span == pytest.approx(whole, rel=1e-12)
        assert np.nansum(parts) == pytest.approx(span, rel=1e-9)


def test_closure_of_a_sub_span() -> None:
    rng = np.random.default_rng(11)
    windows = random_windows(rng, 100, overlaps=True)
    lo, hi = windows[10].t0_ns + 3 * MS, windows[70].t1_ns - 7 * MS
    edges = np.concatenate(([lo], np.sort(rng.integers(lo, hi, 999)), [hi]))
    parts = attribute_intervals(windows, edges[:-1], edges[1:], ["cpu"]).energy_mj["cpu"]
    span = attribute_intervals(windows, np.array([lo]), np.array([hi]), ["cpu"]).energy_mj["cpu"][0]
    assert parts.sum() == pytest.approx(span, rel=1e-9)


def contiguous(n: int, length_ns: int = 100 * MS, **energy: float | None) -> list[PowerWindow]:
    return [PowerWindow(ORIGIN + i * length_ns, ORIGIN + (i + 1) * length_ns, dict(energy)) for i in range(n)]


def test_resolution_of_sub_window_and_multi_window_intervals() -> None:
    windows = contiguous(5, cpu=100.0)
    a = np.array([ORIGIN + 10 * MS, ORIGIN + 100 * MS, ORIGIN + 50 * MS, ORIGIN + 150 * MS])
    b = np.array([ORIGIN + 12 * MS, ORIGIN + 200 * MS, ORIGIN + 250 * MS, ORIGIN + 200 * MS])
    got = attribute_intervals(windows, a, b)
    # 2 ms in a 100 ms window; one whole window; 200 ms over three windows (300 ms); half a window.
    np.testing.assert_allclose(got.resolution, [0.02, 1.0, 200 / 300, 0.5])
    np.testing.assert_allclose(got.energy_mj["cpu"], [2.0, 100.0, 200.0, 50.0])


def test_missing_component_is_nan_only_where_touched() -> None:
    windows = contiguous(10, cpu=10.0, gpu=5.0)
    windows[5] = PowerWindow(windows[5].t0_ns, windows[5].t1_ns, {"cpu": 10.0, "gpu": None})
    windows[7] = PowerWindow(windows[7].t0_ns, windows[7].t1_ns, {"cpu": 10.0})  # gpu absent: unknown too
    w = [(x.t0_ns, x.t1_ns) for x in windows]
    intervals = [
        (w[4][0] + MS, w[4][1] - MS),       # inside window 4: known
        (w[4][1] - MS, w[5][0] + MS),       # straddles 4|5: unknown
        (w[5][0] + MS, w[5][0] + 2 * MS),   # inside 5: unknown
        (w[4][0], w[5][0]),                 # ends exactly where 5 starts: no positive overlap, known
        (w[6][0], w[6][1]),                 # window 6: known
        (w[7][0] + MS, w[7][0] + 3 * MS),   # inside 7 (key absent): unknown
        (w[0][0], w[9][1]),                 # everything: unknown
    ]
    a, b = (np.array(x) for x in zip(*intervals, strict=True))
    got = attribute_intervals(windows, a, b)
    gpu = got.energy_mj["gpu"]
    assert gpu[0] == pytest.approx(5.0 * 98 / 100)
    assert np.isnan(gpu[[1, 2, 5, 6]]).all()
    assert gpu[3] == pytest.approx(5.0) and gpu[4] == pytest.approx(5.0)
    assert not np.isnan(got.energy_mj["cpu"]).any()
    assert got.energy_mj["cpu"][6] == pytest.approx(100.0)


def test_component_no_window_reports_is_nan() -> None:
    got = attribute_intervals(contiguous(3, cpu=1.0), np.array([ORIGIN]), np.array([ORIGIN + MS]), ["cpu", "dram"])
    assert got.energy_mj["cpu"][0] == pytest.approx(0.01)
    assert np.isnan(got.energy_mj["dram"][0])


def test_gaps_contribute_nothing_and_intervals_without_windows_are_unknown() -> None:
    windows = [PowerWindow(ORIGIN, ORIGIN + 100 * MS, {"cpu": 50.0}),
               PowerWindow(ORIGIN + 200 * MS, ORIGIN + 300 * MS, {"cpu": 70.0})]
    a = np.array([ORIGIN + 50 * MS, ORIGIN + 120 * MS, ORIGIN - 10 * MS, ORIGIN + 400 * MS, ORIGIN - MS])
    b = np.array([ORIGIN + 250 * MS, ORIGIN + 180 * MS, ORIGIN - 5 * MS, ORIGIN + 500 * MS, ORIGIN + 400 * MS])
    got = attribute_intervals(windows, a, b)
    cpu = got.energy_mj["cpu"]
    assert cpu[0] == pytest.approx(25.0 + 35.0)
    assert np.isnan(cpu[1:4]).all() and np.isnan(got.resolution[1:4]).all()
    assert cpu[4] == pytest.approx(120.0)
    assert got.resolution[0] == pytest.approx(200 / 200)
    assert got.resolution[4] == pytest.approx(401 / 200)


def test_overlapping_windows_add_their_shares() -> None:
    windows = [PowerWindow(ORIGIN, ORIGIN + 100 * MS, {"cpu": 100.0}),
               PowerWindow(ORIGIN + 90 * MS, ORIGIN + 190 * MS, {"cpu": 200.0}),
               PowerWindow(ORIGIN + 20 * MS, ORIGIN + 40 * MS, {"cpu": 10.0})]
    a = np.array([ORIGIN + 95 * MS, ORIGIN + 30 * MS, ORIGIN])
    b = np.array([ORIGIN + 96 * MS, ORIGIN + 31 * MS, ORIGIN + 190 * MS])
    got = attribute_intervals(windows, a, b)
    np.testing.assert_allclose(got.energy_mj["cpu"], [1.0 + 2.0, 1.0 + 0.5, 310.0])
    np.testing.assert_allclose(got.resolution, [1 / 200, 1 / 120, 190 / 220])


def test_point_intervals_nan_bounds_and_bad_input() -> None:
    windows = contiguous(2, cpu=10.0)
    got = attribute_intervals(windows, np.array([ORIGIN + 5 * MS, np.nan, ORIGIN]),
                              np.array([ORIGIN + 5 * MS, 1.0, ORIGIN + 100 * MS]))
    assert got.energy_mj["cpu"][0] == 0.0 and got.resolution[0] == 0.0
    assert np.isnan(got.energy_mj["cpu"][1]) and np.isnan(got.resolution[1])
    with pytest.raises(ValueError):
        attribute_intervals(windows, np.array([ORIGIN + 2]), np.array([ORIGIN + 1]))
    empty = attribute_intervals([], np.array([1, 2]), np.array([3, 4]), ["cpu"])
    assert np.isnan(empty.energy_mj["cpu"]).all() and np.isnan(empty.resolution).all()
    none = attribute_intervals(windows, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert none.energy_mj["cpu"].shape == (0,) and none.resolution.shape == (0,)


def test_scale_200k_intervals_over_20k_windows() -> None:
    rng = np.random.default_rng(42)
    lengths = rng.integers(90 * MS, 110 * MS, 20_000)
    edges = ORIGIN + np.concatenate(([0], np.cumsum(lengths)))
    energy = rng.uniform(100, 1000, 20_000)
    windows = [PowerWindow(int(edges[i]), int(edges[i + 1]), {"cpu": float(energy[i]), "gpu": 1.0})
               for i in range(20_000)]
    cuts = np.sort(rng.integers(edges[0], edges[-1], 200_000 - 1))
    bounds = np.concatenate(([edges[0]], cuts, [edges[-1]]))
    start = time.perf_counter()
    got = attribute_intervals(windows, bounds[:-1], bounds[1:])
    elapsed = time.perf_counter() - start
    assert got.energy_mj["cpu"].sum() == pytest.approx(energy.sum(), rel=1e-9)
    assert elapsed < 5.0  # well under a second on an idle machine; loose for busy CI


def test_baseline_power() -> None:
    windows = [PowerWindow(ORIGIN, ORIGIN + 100 * MS, {"cpu": 200.0, "gpu": 10.0, "ane": None}),
               PowerWindow(ORIGIN + 100 * MS, ORIGIN + 200 * MS, {"cpu": 400.0, "gpu": 10.0, "ane": 0.0}),
               PowerWindow(ORIGIN + 300 * MS, ORIGIN + 400 * MS, {"cpu": 400.0, "gpu": 10.0, "ane": 0.0})]
    # Over 50..150 ms: half of window 0 (2 W) and half of window 1 (4 W) -> 3 W.
    base = baseline_power_w(windows, ORIGIN + 50 * MS, ORIGIN + 150 * MS)
    assert base["cpu"] == pytest.approx(3.0) and base["gpu"] == pytest.approx(0.1)
    assert base["ane"] is None
    # The gap 200..300 ms counts neither energy nor time.
    assert baseline_power_w(windows, ORIGIN + 150 * MS, ORIGIN + 400 * MS)["cpu"] == pytest.approx(4.0)
    assert baseline_power_w(windows, ORIGIN + 210 * MS, ORIGIN + 290 * MS) == {"cpu": None, "gpu": None,
                                                                                "ane": None}
    assert baseline_power_w(windows, ORIGIN, ORIGIN)["cpu"] is None
    assert baseline_power_w([], 0, 10, ["cpu"]) == {"cpu": None}


def test_net_energy() -> None:
    gross = np.array([10.0, np.nan, 5.0])
    duration = np.array([1_000_000_000, 1_000_000_000, 500_000_000])
    # 2 W baseline: 2000 mJ per second.
    np.testing.assert_allclose(net_energy_mj(gross * 1000, duration, 2.0), [8000.0, np.nan, 4000.0])
    assert np.isnan(net_energy_mj(gross, duration, None)).all()


def test_whole_system_without_double_counting() -> None:
    parts = {"cpu": np.array([1.0, 2.0, np.nan, np.nan]), "gpu": np.array([3.0, np.nan, np.nan, 4.0])}
    np.testing.assert_array_equal(whole_system_mj(parts), [4.0, 2.0, np.nan, 4.0])
    with_pkg = {**parts, "package": np.array([10.0, np.nan, np.nan, 7.0])}
    np.testing.assert_array_equal(whole_system_mj(with_pkg), [10.0, 2.0, np.nan, 7.0])
    for i in range(4):
        row = {k: (None if np.isnan(v[i]) else float(v[i])) for k, v in with_pkg.items()}
        want = total_energy_mj(row)
        got = whole_system_mj(with_pkg)[i]
        assert (want is None and np.isnan(got)) or got == want
    assert np.isnan(whole_system_mj({"package": np.array([np.nan])})).all()


def test_mean_ci95_known_values() -> None:
    # [1, 2, 3]: mean 2, sample sd 1, sem 1/sqrt(3) = 0.57735; t(0.975, df=2) = 4.303 -> 2.4843.
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))
    # [2, 4]: mean 3, sd sqrt(2), sem 1; t(0.975, df=1) = 12.706.
    assert mean_ci95([2.0, 4.0]) == (3.0, pytest.approx(12.706))
    assert mean_ci95([5.0]) == (5.0, None)
    mean, half = mean_ci95([])
    assert math.isnan(mean) and half is None
    assert mean_ci95([1.0, None, float("nan"), 3.0]) == (2.0, pytest.approx(12.706))  # type: ignore[list-item]


def test_t_quantiles() -> None:
    assert t_quantile_975(30) == 2.042
    assert t_quantile_975(31) == pytest.approx(2.0395, abs=5e-4)
    assert t_quantile_975(60) == pytest.approx(2.0003, abs=5e-4)
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=5e-4)
    assert t_quantile_975(10**6) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)
