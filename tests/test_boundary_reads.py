"""Counter sources read at every step boundary: measured per-token energy, end to end (CLI, ioreport stand-in), and
through the engine with the fake NVML driver and a fake RAPL powercap tree."""

from __future__ import annotations

import bisect
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_nvml import fake_nvml
from fake_powercap import Kernel, make_zone
from ioreport_stand_in import clean_env
from profile_helpers import fast_params

from energyprof.power import registry
from energyprof.power.nvml import NvmlSource
from energyprof.power.rapl import RaplSource
from energyprof.runner import boundary_reads
from energyprof.runner.job import profile_foreground
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"cpu": "cpu_total_mj", "gpu": "gpu_mj", "ane": "ane_mj", "dram": "dram_mj"}


def _energyprof(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], cwd=REPO, env=clean_env(**env),
                          capture_output=True, text=True, timeout=300, check=False)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class ReadLog:
    """The counter values a source returned, by time: value_at(t) is what the last read at or before t returned."""

    def __init__(self, reads: list[tuple[int, dict]]) -> None:
        reads = sorted(reads, key=lambda r: r[0])
        self.times = [t for t, _ in reads]
        self.values = [v for _, v in reads]

    def value_at(self, t_ns: int) -> dict:
        i = bisect.bisect_right(self.times, t_ns) - 1
        assert i >= 0, "no read before this boundary"
        return self.values[i]


# -- the acceptance: doctor, auto, measured tokens equal to the stand-in's counter differences ----------


def test_ioreport_profile_measures_each_decode_token_as_the_counter_difference(tmp_path: Path) -> None:
    log, db = tmp_path / "reads.jsonl", tmp_path / "io.sqlite3"
    env = {"FAKE_IOREPORT_UPDATE_MS": "2", "FAKE_IOREPORT_GPU_UPDATE_MS": "0"}  # decode steps on `small` take ~20+ ms
    doctor = _energyprof("doctor", "--json", "--probe-seconds", "0.3", **env)
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["auto"] == "ioreport" and report["sources"][0]["name"] == "ioreport"
    assert report["sources"][0]["available"] is True

    done = _energyprof("profile", "--model", "small", "--source", "auto", "--device", "cpu", "--prompt", "Hello",
                       "--max-new-tokens", "6", "--ignore-eos", "--repeats", "2", "--warmup", "0",
                       "--baseline-s", "0.2", "--layers", "blocks", "--json", "--db", str(db),
                       FAKE_IOREPORT_READ_LOG=str(log), **env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["source"], out["measured"]) == ("done", "ioreport", True)
    assert out["boundary_reads"] == 2 * 7  # one before the prefill, one after each of the 6 steps
    assert out["counter_update_period_s"]["cpu"] == pytest.approx(0.002, rel=0.5)
    assert out["counter_update_period_s"]["ane"] is None  # 0 W: untimed, but it never moved, so its 0 is measured
    assert out["tokens_measured_share"] == 1.0 and set(out["tokens_measured_share_by_component"].values()) == {1.0}

    tokens = _csv(_energyprof("export", str(out["run_id"]), "--what", "tokens", "--db", str(db)).stdout)
    reads = ReadLog([tuple(json.loads(line)) for line in log.read_text().splitlines()])
    decode = [t for t in tokens if t["phase"] == "decode"]
    assert len(decode) == 10
    for token in decode:
        t0, t1 = int(token["t0_ns"]), int(token["t1_ns"])
        before, after = reads.value_at(t0), reads.value_at(t1)
        for comp, field in FIELDS.items():
            assert float(token[f"energy_j_{comp}"]) * 1e3 == pytest.approx(after[field] - before[field], abs=1e-6)
            assert token[f"how_{comp}"] == "measured"
        assert token["how"] == "measured"
    for repeat in ("0", "1"):  # closure: the steps of a repeat add up to the counter difference across it
        rows = [t for t in tokens if t["repeat"] == repeat]
        start, end = reads.value_at(int(rows[0]["t0_ns"])), reads.value_at(int(rows[-1]["t1_ns"]))
        for comp, field in FIELDS.items():
            total = sum(float(t[f"energy_j_{comp}"]) for t in rows) * 1e3
            assert total == pytest.approx(end[field] - start[field], abs=1e-6)
    calls = _csv(_energyprof("export", str(out["run_id"]), "--what", "calls", "--db", str(db)).stdout)
    assert {c["how"] for c in calls} <= {"measured", "apportioned"} and "apportioned" in {c["how"] for c in calls}


# -- in-process engine runs with the stand-ins ------------------------------------------------------------


@pytest.fixture
def short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundary_reads, "PROBE_S", 0.6)


def _token_rows(store: Store, run_id: int) -> list[dict]:
    from energyprof.export import export_csv

    return _csv(export_csv(store, run_id, "tokens"))


def test_steps_shorter_than_the_update_period_are_apportioned_and_repeats_close(
        store: Store, stand_in, short_probe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "100")  # tiny's warm steps take a few ms: far below 100 ms
    summary = profile_foreground(store, fast_params(source="ioreport", repeats=2, layers="none", warmup=1))
    assert summary.status == "done", summary.error
    period_s = summary.counter_update_period_s["cpu"]
    assert period_s == pytest.approx(0.1, rel=0.3) and summary.counter_update_period_s["gpu"] < 0.005
    rows = _token_rows(store, summary.run_id)
    short = [r for r in rows if (int(r["t1_ns"]) - int(r["t0_ns"])) / 1e9 < period_s]
    assert len(short) >= len(rows) - 2
    for r in short:
        assert (r["how_cpu"], r["how_dram"], r["how"]) == ("apportioned",) * 3  # one apportioned part: the whole too
        assert r["how_gpu"] == "measured" and r["how_ane"] == "measured"  # gpu moves at every read; ane never moves
    by = summary.tokens_measured_share_by_component
    assert by["cpu"] < 0.5 and by["gpu"] == 1.0 and by["ane"] == 1.0
    assert summary.tokens_measured_share == pytest.approx(
        sum(r["how"] == "measured" for r in rows) / len(rows))
    reads = ReadLog(list(stand_in.READS))
    for repeat in ("0", "1"):  # closure holds against the counter difference across the repeat all the same
        steps = [r for r in rows if r["repeat"] == repeat]
        start, end = reads.value_at(int(steps[0]["t0_ns"])), reads.value_at(int(steps[-1]["t1_ns"]))
        for comp in ("cpu", "gpu", "dram"):
            total = sum(float(r[f"energy_j_{comp}"]) for r in steps) * 1e3
            assert total == pytest.approx(end[FIELDS[comp]] - start[FIELDS[comp]], abs=1e-6)
    assert summary.closure_error < 1e-9


def _patch_source(monkeypatch: pytest.MonkeyPatch, name: str, factory) -> None:
    original = registry.make_source
    monkeypatch.setattr(registry, "make_source",
                        lambda n, **options: factory() if n == name else original(n, **options))


def test_nvml_counter_gives_measured_tokens(store: Store, short_probe, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml([{"name": "H100", "counter": 5_000_000, "watts": 300.0, "update_ms": 1.0}])
    _patch_source(monkeypatch, "nvml", lambda: NvmlSource(nvml=nvml))
    summary = profile_foreground(store, fast_params(source="nvml", repeats=2, layers="blocks", max_new_tokens=8))
    assert summary.status == "done", summary.error
    assert summary.boundary_reads == 2 * 9 and summary.counter_update_period_s["gpu"] == pytest.approx(0.001, rel=0.5)
    period_ns = summary.counter_update_period_s["gpu"] * 1e9
    reads = ReadLog(nvml.state["reads"])
    rows = _token_rows(store, summary.run_id)
    measured = [r for r in rows if r["how"] == "measured"]
    assert measured, "no step of tiny lasted one 1 ms update"
    for r in rows:
        t0, t1 = int(r["t0_ns"]), int(r["t1_ns"])
        if r["how"] == "measured":  # the counter difference across the step: whole publications of 300 mJ
            assert float(r["energy_j_gpu"]) * 1e3 == pytest.approx(reads.value_at(t1) - reads.value_at(t0), abs=1e-6)
            assert t1 - t0 >= period_ns * 0.999
        elif t1 - t0 < period_ns:
            assert r["how"] == "apportioned"
    assert summary.tokens_measured_share == pytest.approx(len(measured) / len(rows))
    for repeat in ("0", "1"):
        steps = [r for r in rows if r["repeat"] == repeat]
        difference = reads.value_at(int(steps[-1]["t1_ns"])) - reads.value_at(int(steps[0]["t0_ns"]))
        assert sum(float(r["energy_j_gpu"]) for r in steps) * 1e3 == pytest.approx(difference, abs=1e-6)
    assert summary.closure["layers_vs_steps"] < 1e-9


def test_rapl_counter_gives_whole_quanta_per_measured_token(store: Store, tmp_path: Path, short_probe,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    package = make_zone(tmp_path, "0", "package-0", 1_000_000)
    kernel = Kernel(package, step_uj=6_104, period_s=0.002)  # 6.104 mJ every 2 ms: about 3 W
    kernel.start()
    _patch_source(monkeypatch, "rapl", lambda: RaplSource(root=tmp_path))
    try:
        summary = profile_foreground(store, fast_params(source="rapl", repeats=2, layers="none",
                                                        max_new_tokens=10, interval_ms=50))
    finally:
        kernel.halt.set()
    assert summary.status == "done", summary.error
    assert summary.counter_quantum_mj["package"] == pytest.approx(6.104)
    rows = _token_rows(store, summary.run_id)
    assert any(r["how"] == "measured" for r in rows), "no step of tiny lasted one 2 ms update"
    for r in rows:  # a measured token is a counter difference: a whole number of the kernel's steps
        if r["how"] == "measured":
            quanta = float(r["energy_j_package"]) * 1e3 / 6.104
            assert quanta == pytest.approx(round(quanta), abs=1e-6)
        duration_s = (int(r["t1_ns"]) - int(r["t0_ns"])) / 1e9
        if duration_s < summary.counter_update_period_s["package"]:
            assert r["how"] == "apportioned"
    for repeat in ("0", "1"):  # closure: each repeat's steps add up to a whole number of steps too
        quanta = sum(float(r["energy_j_package"]) for r in rows if r["repeat"] == repeat) * 1e3 / 6.104
        assert quanta == pytest.approx(round(quanta), abs=1e-6) and round(quanta) > 0
    assert summary.closure_error < 1e-9


def test_estimate_and_powermetrics_runs_are_not_read_at_boundaries(store: Store) -> None:
    summary = profile_foreground(store, fast_params(source="estimate", repeats=1))
    assert summary.boundary_reads == 0 and summary.counter_update_period_s is None
    assert summary.tokens_measured_share == 0.0
    assert {r["how"] for r in _token_rows(store, summary.run_id)} == {"estimated"}
