"""Counter health (energyprof.analysis.counter_health) on synthetic readings, the chip ceilings, the whole-system rule
with a package that leaves DRAM out, each source's scope, and the power chart of a batched or untrusted counter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from energyprof.analysis.counter_health import (
    BATCHED,
    IMPLAUSIBLE,
    OK,
    STALLED,
    ComponentHealth,
    assess,
    series_from_windows,
    used_components,
    with_cross_check,
)
from energyprof.charts import trusted_timeline
from energyprof.components import lacking, whole_system, whole_system_arrays
from energyprof.power import chips
from energyprof.power.base import PowerWindow
from energyprof.power.registry import make_source
from energyprof.provenance import whole_system_provenance
from energyprof.summary import Agreement, RunSummary

S = 1_000_000_000


def counter(watts: float, seconds: float, *, every_s: float = 0.01, publish_s: float = 0.0, stall_at_s: float | None
            = None, reset_at_s: float | None = None, read_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Readings of a cumulative mJ counter of `watts`, read every `read_s`, published every `publish_s` (0: at every
    read), frozen from `stall_at_s`, restarting from 0 at `reset_at_s`."""
    t = np.arange(0, seconds + 1e-9, read_s)
    published = np.floor(t / publish_s) * publish_s if publish_s else t
    if stall_at_s is not None:
        published = np.minimum(published, stall_at_s)
    values = 1_000_000 + np.floor(watts * 1e3 * published)
    if reset_at_s is not None:
        values = np.where(t >= reset_at_s, np.floor(watts * 1e3 * (published - reset_at_s)), values)
    return (t * S).astype(np.int64), values


WORK = (2 * S, 8 * S)
USED = used_components("cpu")


def verdict(series, *, periods=None, ceiling=100.0, used=USED, work=WORK) -> dict[str, ComponentHealth]:
    return assess(series, work, periods or {}, dict.fromkeys(series, ceiling), used, ceiling_source="a test chip")


def test_a_counter_that_stops_while_the_work_runs_is_stalled_and_an_idle_unused_one_is_not() -> None:
    health = verdict({"cpu": counter(4.0, 10, stall_at_s=3.0), "ane": counter(0.0, 10),
                      "dram": counter(1.5, 10), "gpu": counter(0.0, 10)})
    assert health["cpu"].status == STALLED and health["cpu"].still_s == pytest.approx(5.0, abs=0.02)
    assert "did not move during 5 s of work" in health["cpu"].note and "unknown for this run" in health["cpu"].note
    assert health["dram"].status == OK and health["dram"].used
    for idle in ("ane", "gpu"):  # neither is used by a cpu run: a still counter is 0 J, measured
        assert health[idle].status == OK and not health[idle].used and "0 J is measured" in health[idle].note
    gpu_run = verdict({"gpu": counter(0.0, 10)}, used=used_components("mps"))
    assert gpu_run["gpu"].status == STALLED and "did not move at all during the 6 s of work" in gpu_run["gpu"].note


def test_a_short_pause_is_no_stall_but_three_periods_and_a_second_are() -> None:
    # published every 100 ms, then nothing for a while, then caught up: 0.25 s (< 3 periods) and 0.9 s (< the 1 s
    # floor) are jitter, 1.5 s while the work runs is a stall
    t = np.arange(0, 10, 0.01)
    for pause_s, expected in ((0.25, OK), (0.9, OK), (1.5, STALLED)):
        published = np.floor(t / 0.1) * 0.1
        paused = (t >= 4.0) & (t < 4.0 + pause_s)
        published[paused] = 4.0
        values = 1_000_000 + np.floor(4e3 * published)
        health = verdict({"cpu": ((t * S).astype(np.int64), values)}, periods={"cpu": 0.1})
        assert health["cpu"].status == expected, pause_s


def test_a_counter_still_over_a_short_work_is_not_judged_stalled_unless_still_long_around_it() -> None:
    t, v = counter(4.0, 10, publish_s=1.0)
    short = (int(4.2 * S), int(4.6 * S))  # 0.4 s of work between two publications
    health = verdict({"cpu": (t, v)}, work=short, periods={"cpu": 1.0})
    assert health["cpu"].status == BATCHED and not health["cpu"].judged
    still = counter(4.0, 10, stall_at_s=0.0)
    assert verdict({"cpu": still}, work=short)["cpu"].status == STALLED  # never moved in 10 s of recording


def test_published_about_once_a_second_is_batched_and_its_spikes_are_not_implausible() -> None:
    # 30 W published every 2 s and read every 10 ms: a raw 10 ms difference reads 6,000 W, far above a 97.5 W ceiling
    t, v = counter(30.0, 10, publish_s=2.0)
    raw_w = np.diff(v).max() / 1e3 / 0.01
    assert raw_w > 5000
    health = verdict({"cpu": (t, v)}, ceiling=97.5)
    assert health["cpu"].status == BATCHED and health["cpu"].publication_s == pytest.approx(2.0)
    assert health["cpu"].peak_w < 97.5 and "smoothed over 2 s" in health["cpu"].note
    assert verdict({"cpu": counter(30.0, 10, publish_s=0.5)})["cpu"].status == OK


def test_a_unit_error_and_a_counter_reset_are_implausible() -> None:
    nanojoules = counter(8.0 * 1e6, 10)  # an nJ channel handed on as mJ: 10^6 times too large
    health = verdict({"gpu": nanojoules, "cpu": counter(4.0, 10, reset_at_s=5.0)}, ceiling=217.5)
    assert health["gpu"].status == IMPLAUSIBLE and health["gpu"].peak_w == pytest.approx(8e6, rel=0.01)
    assert "above the 218 W any gpu here can draw (a test chip)" in health["gpu"].note
    assert health["cpu"].status == IMPLAUSIBLE and "went backwards by 1,019,960 mJ 5.0 s into the run" in \
        health["cpu"].note
    assert not health["cpu"].trusted and not health["gpu"].trusted


def test_a_windowed_source_is_judged_from_its_windows() -> None:
    windows = [PowerWindow(i * S // 10, (i + 1) * S // 10, {"cpu": 0.0 if i >= 30 else 400.0, "gpu": 800.0})
               for i in range(100)]
    health = assess(series_from_windows(windows, ["cpu", "gpu"]), WORK, {}, {}, USED)
    assert health["cpu"].status == STALLED and health["gpu"].status == OK


def test_a_cross_check_adds_its_figure_to_the_verdict() -> None:
    health = verdict({"cpu": counter(4.0, 10, stall_at_s=0.0), "dram": counter(1.5, 10)})
    both = with_cross_check(health, {"cpu": Agreement(0.0, 24.1, None), "dram": Agreement(9.0, 9.1, 1.011)},
                            "powermetrics")
    assert both["cpu"].status == STALLED and both["cpu"].note.endswith("powermetrics measured 24.1 J of cpu over the "
                                                                       "same work.")
    assert both["dram"].note.endswith("powermetrics measured 9.1 J over the same work, 1.01 times this source's "
                                      "figure.")


def test_used_components() -> None:
    assert used_components("cpu") == {"cpu", "dram", "package"}
    assert used_components("mps") == used_components("cuda") == used_components("cpu", "mlx") == {
        "cpu", "gpu", "dram", "package"}
    assert "ane" not in used_components("mps")


def test_health_survives_the_summary_json() -> None:
    health = verdict({"cpu": counter(4.0, 10, stall_at_s=3.0)})
    summary = RunSummary(counter_health={"cpu": STALLED}, counter_health_detail=health, scope="SoC rails",
                         total_lacks=["cpu"])
    back = RunSummary.from_dict(summary.to_dict())
    assert back.counter_health_detail == health and back.untrusted_counters() == {"cpu": STALLED}
    assert back.health_warnings() == [health["cpu"].note]
    assert back.notes() == "cpu counter stalled: unknown"
    assert back.total_sentence() == "Whole system = SoC rails; without cpu (unknown for this run)."
    assert RunSummary.from_dict({"counter_health_detail": {"cpu": {"status": "nonsense"}}}).counter_health_detail == {}


# -- the chip ceilings -------------------------------------------------------------------------------------------


def test_ceilings_follow_the_chip_and_fall_back_to_the_family_maximum() -> None:
    assert chips.ceiling_for("ioreport", "Apple M4 Max").watts == pytest.approx(145 * 1.5)
    assert chips.ceiling_for("ioreport", "Apple M2 Ultra").watts == pytest.approx(295 * 1.5)
    assert chips.ceiling_for("powermetrics", "Apple M1").watts == pytest.approx(65 * 1.5)
    assert chips.ceiling_for("ioreport", "Apple M3 Pro").rated_w == 145
    assert chips.ceiling_for("ioreport", None).rated_w == 295  # unknown Apple chip: the largest in the table
    assert chips.ceiling_for("nvml", "NVIDIA H100 80GB HBM3").rated_w == 700
    assert chips.ceiling_for("nvml", "NVIDIA H100 PCIe").rated_w == 350
    assert chips.ceiling_for("nvml", "NVIDIA L4").rated_w == 72
    assert chips.ceiling_for("rapl", "Intel Xeon").watts == pytest.approx(10_000)
    assert "Apple support 102027" in chips.ceiling_for("ioreport", "Apple M2 Max").describe("Apple M2 Max")


def test_the_chip_name_comes_from_the_environment_or_the_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(chips.CHIP_ENV, "Apple M4 Max")
    assert chips.apple_chip() == "Apple M4 Max"
    monkeypatch.delenv(chips.CHIP_ENV)
    monkeypatch.setattr(chips.sys, "platform", "linux")
    assert chips.apple_chip() is None


# -- scope and the whole-system rule -------------------------------------------------------------------------------


def test_every_source_states_its_scope_once() -> None:
    scopes = {name: make_source(name).scope() for name in ("ioreport", "powermetrics", "nvml", "rapl", "estimate")}
    assert scopes["ioreport"].text.startswith("SoC rails: CPU + GPU + ANE + DRAM")
    assert "not fans, display, SSD" in scopes["ioreport"].text and "wall power" in scopes["ioreport"].text
    assert scopes["nvml"].text.startswith("the GPU board")
    assert scopes["rapl"].text.startswith("CPU package") and "+ DRAM" in scopes["rapl"].text
    assert scopes["rapl"].package_includes_dram is False and scopes["powermetrics"].package_includes_dram is False
    assert scopes["ioreport"].package_includes_dram is None
    assert scopes["estimate"].text.startswith("a model of CPU power")


def test_a_package_that_leaves_dram_out_gets_it_added() -> None:
    assert whole_system({"cpu": 1.0, "gpu": 2.0, "package": 5.0, "dram": 0.5}) == 5.5
    assert whole_system({"cpu": 1.0, "package": 5.0, "dram": None}) == 5.0
    assert whole_system({"cpu": 1.0, "gpu": 2.0, "dram": 0.5}) == 3.5
    got = whole_system_arrays({"package": [5.0, np.nan], "dram": [0.5, 0.5], "cpu": [1.0, 1.0]})
    assert got.tolist() == [5.5, 1.5]
    labels = whole_system_provenance({"package": np.array(["measured"], dtype=object),
                                      "dram": np.array(["apportioned"], dtype=object),
                                      "cpu": np.array(["measured"], dtype=object)})
    assert labels.tolist() == ["apportioned"]


def test_lacking_names_what_the_total_leaves_out() -> None:
    assert lacking({"cpu": None, "gpu": 2.0, "ane": 0.0, "dram": 1.0}) == ["cpu"]
    assert lacking({"package": 5.0, "cpu": None, "dram": None}) == ["dram"]  # the package holds the cpu
    assert lacking({"cpu": None, "gpu": None}) == []  # no total at all: nothing to qualify
    assert lacking({"cpu": 1.0, "gpu": float("nan")}) == ["gpu"]


# -- the power chart of a batched or untrusted counter --------------------------------------------------------------


def test_the_timeline_drops_unknown_counters_and_smooths_batches() -> None:
    t = np.round(np.arange(0, 10, 0.1), 3)
    spikes = np.where(np.round(t * 10) % 20 == 7, 80.0, 0.0)  # 4 W published every 2 s, seen in 100 ms bins
    df = pd.concat([pd.DataFrame({"t_s": t, "component": "cpu", "power_w": spikes, "peak_w": spikes, "t1_s": t + 0.1}),
                    pd.DataFrame({"t_s": t, "component": "gpu", "power_w": 8.0, "peak_w": 8.0, "t1_s": t + 0.1})])
    out = trusted_timeline(df, ["gpu"], {"cpu": 2.0})
    assert set(out["component"]) == {"cpu"}
    assert np.allclose(out["power_w"], 4.0) and (out["peak_w"] == out["power_w"]).all()
    # from just after the first batch in view (0.7 s) to the last (8.7 s): nothing drawn where no batch says
    assert out["t_s"].min() == pytest.approx(0.8) and out["t_s"].max() == pytest.approx(8.7)
    coarse = trusted_timeline(df.assign(t_s=df["t_s"] * 50, t1_s=df["t1_s"] * 50), [], {"cpu": 2.0})
    assert sorted(coarse.loc[coarse["component"] == "cpu", "power_w"].tolist()) == sorted(spikes.tolist())


# -- doctor --cross-check without a second source -------------------------------------------------------------------


def test_doctor_cross_check_without_a_second_source_says_why_in_one_sentence() -> None:
    import subprocess
    import sys
    from pathlib import Path

    from ioreport_stand_in import clean_env

    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}  # no stand-in: no ioreport, no powermetrics
    done = subprocess.run([sys.executable, "-m", "energyprof", "doctor", "--probe-seconds", "0", "--cross-check"],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    (sentence,) = done.stderr.strip().splitlines()
    assert sentence.startswith("energyprof: ") and sentence.endswith(".")
    assert ("there is no measured source to cross-check" in sentence
            or "the powermetrics power source is not available here" in sentence)
    assert f"cross-check: {sentence.removeprefix('energyprof: ')}" in done.stdout
