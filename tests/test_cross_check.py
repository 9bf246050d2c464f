"""A second opinion on the same run: the agreement of two sources (energyprof.analysis.cross_check) and a cross-check
source recorded beside the run's own by the engine, the CLI and the API, which can never fail the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from profile_helpers import FAST, fast_params, use_fake_powermetrics

from energyprof.analysis.cross_check import agreement, agreements, grid, pearson
from energyprof.cli import main
from energyprof.power.base import PowerWindow
from energyprof.runner.job import profile_foreground
from energyprof.spec.params import ProfileParams
from energyprof.store import Store

MS = 1_000_000


def _source(watts: list[float], window_ms: int, t0: int = 0, component: str = "cpu") -> list[PowerWindow]:
    """Windows of window_ms, each at the given constant power."""
    return [PowerWindow(t0 + i * window_ms * MS, t0 + (i + 1) * window_ms * MS, {component: w * window_ms})
            for i, w in enumerate(watts)]


def test_two_sources_with_known_ratio_and_correlation() -> None:
    pattern = [1.0, 3.0, 1.0, 3.0, 5.0, 2.0, 4.0, 1.0]
    primary = _source(pattern, 100)
    # the second source: twice the power, in windows half as long (each 100 ms bin holds two of them)
    double = _source([2 * w for w in pattern for _ in range(2)], 50)
    a = agreement(primary, double, [(0, 800 * MS)], "cpu")
    assert a.bins == 8 and a.bin_s == pytest.approx(0.1)
    assert a.ratio == pytest.approx(2.0) and a.correlation == pytest.approx(1.0)
    assert a.primary_j == pytest.approx(sum(pattern) * 0.1) and a.cross_check_j == pytest.approx(2 * a.primary_j)
    # uncorrelated by construction: [1, 3, 1, 3] against [2, 2, 4, 4] (r = 0), half the energy
    flat = agreement(_source([1, 3, 1, 3], 100), _source([1, 1, 2, 2], 100), [(0, 400 * MS)], "cpu")
    assert flat.correlation == pytest.approx(0.0, abs=1e-12) and flat.ratio == pytest.approx(0.75)
    # opposite: one rises when the other falls
    opposite = agreement(_source([1, 3, 1, 3], 100), _source([3, 1, 3, 1], 100), [(0, 400 * MS)], "cpu")
    assert opposite.correlation == pytest.approx(-1.0) and opposite.ratio == pytest.approx(1.0)


def test_grid_edges_and_undefined_correlation() -> None:
    t0, t1 = grid([(0, 250 * MS), (1000 * MS, 1030 * MS)], 100 * MS)
    assert list(zip(t0.tolist(), t1.tolist(), strict=True)) == [
        (0, 100 * MS), (100 * MS, 200 * MS), (1000 * MS, 1030 * MS)]  # whole bins; a short span is one bin
    import numpy as np

    assert pearson(np.array([1.0, 2.0]), np.array([2.0, 4.0])) is None  # too few bins
    assert pearson(np.array([1.0, 1.0, 1.0]), np.array([2.0, 4.0, 3.0])) is None  # flat


def test_only_components_both_report_are_compared() -> None:
    primary = [PowerWindow(i * 100 * MS, (i + 1) * 100 * MS, {"cpu": 100.0, "gpu": 50.0, "dram": None})
               for i in range(5)]
    second = [PowerWindow(i * 100 * MS, (i + 1) * 100 * MS, {"cpu": 110.0, "package": 300.0, "dram": None})
              for i in range(5)]
    got = agreements(primary, second, [(0, 500 * MS)])
    assert list(got) == ["cpu"] and got["cpu"].ratio == pytest.approx(1.1)
    assert got["cpu"].correlation is None  # both flat: no correlation to speak of
    assert agreements(primary, [], [(0, 500 * MS)]) == {}


# -- recorded by the engine beside the run's own source -------------------------------------------------


def test_cross_check_is_stored_apart_and_compared(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch)
    summary = profile_foreground(store, fast_params(source="powermetrics", cross_check="estimate", interval_ms=50,
                                                    max_new_tokens=20, repeats=1))
    assert summary.status == "done", summary.error
    assert summary.cross_check == "estimate" and summary.cross_check_error is None
    own = store.power_windows(summary.run_id)
    second = store.power_windows(summary.run_id, cross_check="estimate")
    assert len(own) == summary.windows and len(second) == summary.cross_check_windows > 0
    assert {c for w in second for c in w.energy_mj} == {"cpu"}  # the estimate's windows, not powermetrics'
    assert {c for w in own for c in w.energy_mj} >= {"cpu", "gpu", "ane"}
    totals = store.power_totals(summary.run_id)  # the pages' reads mean the run's own source
    assert int(totals["windows"].max()) == summary.windows
    assert len(store.power_samples(summary.run_id)) == sum(len(w.energy_mj) for w in own)
    cpu = summary.cross_check_agreement["cpu"]
    assert cpu.primary_j > 0 and cpu.cross_check_j > 0 and cpu.ratio == pytest.approx(cpu.cross_check_j / cpu.primary_j)
    assert cpu.bins >= 1
    assert set(summary.cross_check_agreement) == {"cpu"}  # the estimate reports the CPU only
    assert summary.warnings == [] and summary.power_incomplete is False


def test_a_cross_check_that_dies_mid_run_is_flagged_and_the_run_goes_on(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, FAKE_POWERMETRICS_EXIT_AFTER="3")
    summary = profile_foreground(store, fast_params(cross_check="powermetrics", interval_ms=50, baseline_s=0.5))
    run = store.get_run(summary.run_id)
    assert summary.status == "done" and run["status"] == "done" and run["power_incomplete"] == 0
    assert summary.cross_check_error.startswith("The cross-check source powermetrics stopped during the run")
    assert summary.cross_check_windows >= 1 and summary.warnings == []


def test_a_cross_check_that_cannot_start_is_flagged(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, FAKE_POWERMETRICS_EUID="501")
    summary = profile_foreground(store, fast_params(cross_check="powermetrics", repeats=1))
    assert summary.status == "done"
    assert summary.cross_check_error.startswith("The cross-check source powermetrics could not start")
    assert summary.cross_check_windows == 0 and summary.cross_check_agreement == {}


def test_the_same_source_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="The cross-check source estimate is the run's own source"):
        ProfileParams(**{**FAST, "cross_check": "estimate"}).validate()
    with pytest.raises(ValueError, match="Unknown cross-check source 'magic'"):
        ProfileParams(**{**FAST, "cross_check": "magic"}).validate()


def test_cli_option_and_text(db_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch)
    args = ["profile", "--model", "tiny", "--prompt", "Hello", "--max-new-tokens", "12", "--ignore-eos", "--device",
            "cpu", "--source", "powermetrics", "--cross-check", "estimate", "--interval-ms", "50", "--repeats", "1",
            "--warmup", "0", "--baseline-s", "0.1", "--db", str(db_path)]
    main([*args, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["cross_check"] == "estimate" and "cpu" in out["cross_check_agreement"]
    assert set(out["cross_check_agreement"]["cpu"]) == {"primary_j", "cross_check_j", "ratio", "correlation", "bins",
                                                        "bin_s"}
    main(args)
    text = capsys.readouterr().out
    assert "Cross-check estimate:" in text and "cpu: powermetrics" in text and "ratio" in text


def test_python_api_takes_a_cross_check(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof import profile_generation
    from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer

    use_fake_powermetrics(monkeypatch)
    summary = profile_generation(build_builtin("tiny"), builtin_tokenizer(), "Hi", max_new_tokens=4,
                                 source="powermetrics", cross_check="estimate", interval_ms=50, db=db_path)
    assert summary.status == "done" and summary.cross_check == "estimate" and summary.cross_check_windows > 0
