"""How the Apple counters fail in the field, end to end: `energyprof profile --source ioreport` on `small` with the
zeus-apple-silicon stand-in in each failure mode, and what every surface then says (JSON, CSVs, `runs`, the run page
and Compare through AppTest), and that the components that did not fail keep their measured figures.

Modes (tests/stand_ins/zeus_apple_silicon): the CPU counter stops moving half a second in (macOS 27 betas), with the
GPU channel kept in nJ and converted to mJ by the package as its contract says; every channel published in one batch
every 2 s (M5 Max); the GPU channel handed on in nJ without the conversion (10^6 times too large); the DRAM counter
reset (it goes backwards).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from ioreport_stand_in import clean_env
from seed import open_page, texts
from test_boundary_reads import ReadLog

from energyprof.export import export_csv
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"cpu": "cpu_total_mj", "gpu": "gpu_mj", "ane": "ane_mj", "dram": "dram_mj"}
POWER_W = {"cpu": 4.0, "gpu": 8.0, "ane": 0.0, "dram": 1.5}
MODES: dict[str, dict[str, str]] = {
    "stall": {"FAKE_IOREPORT_STALL": "cpu_total_mj", "FAKE_IOREPORT_STALL_S": "0.5", "FAKE_IOREPORT_GPU_UNIT": "nJ"},
    "batched": {"FAKE_IOREPORT_UPDATE_MS": "2000", "FAKE_IOREPORT_GPU_UPDATE_MS": "2000"},
    "nj_raw": {"FAKE_IOREPORT_GPU_UNIT": "nJ-raw"},
    "backwards": {"FAKE_IOREPORT_BACKWARDS": "dram_mj", "FAKE_IOREPORT_BACKWARDS_S": "1.5"},
}
BROKEN = {"stall": ("cpu", "stalled"), "nj_raw": ("gpu", "implausible"), "backwards": ("dram", "implausible")}


def _energyprof(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], cwd=REPO, env=clean_env(**env),
                          capture_output=True, text=True, timeout=300, check=False)


TOKENS = 4


TOKENS = 4
LANES = (("stall", "nj_raw"), ("batched", "backwards"))
"""Two databases, each profiled by one mode after the other (one job per database at a time); the two side by side."""


def _profile(db: Path, mode: str, log: Path) -> tuple[dict, ReadLog, str]:
    done = _energyprof("profile", "--model", "small", "--source", "ioreport", "--device", "cpu", "--prompt", "Hello",
                       "--max-new-tokens", str(TOKENS), "--ignore-eos", "--repeats", "2", "--warmup", "0",
                       "--baseline-s", "0.5", "--layers", "blocks", "--json", "--db", str(db),
                       **{"FAKE_IOREPORT_UPDATE_MS": "20", **MODES[mode], "FAKE_IOREPORT_READ_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), ReadLog([tuple(json.loads(x)) for x in log.read_text().splitlines()]), done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `small` profile per mode: {mode: (summary JSON, read log, stderr)}, and each mode's database {"db": …}."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path_factory.mktemp("faults")
    dbs = {mode: folder / f"lane{i}.sqlite3" for i, lane in enumerate(LANES) for mode in lane}

    def lane(modes: tuple[str, ...]) -> dict[str, Any]:
        return {mode: _profile(dbs[mode], mode, folder / f"{mode}.jsonl") for mode in modes}

    with ThreadPoolExecutor(len(LANES)) as pool:
        out: dict[str, Any] = {k: v for done in pool.map(lane, LANES) for k, v in done.items()}
    out["db"] = dbs
    return out


def _csv(store: Store, run_id: int, what: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(export_csv(store, run_id, what))))


def _check_unknown_everywhere(out: dict, store: Store, broken: str, status: str, stderr: str) -> None:
    """The broken component is unknown in every figure and labelled so; nothing says measured about it."""
    assert out["counter_health"][broken] == status
    for figure in ("energy_j", "net_energy_j", "mean_w", "peak_w", "baseline_w", "tokens_measured_share_by_component"):
        assert out[figure][broken] is None, figure
    assert out["total_lacks"] == [broken] and out["total_energy_j"] is not None
    note = out["counter_health_detail"][broken]["note"]
    assert f"energyprof: warning: {note}" in stderr
    tokens = _csv(store, out["run_id"], "tokens")
    assert tokens and all(t[f"energy_j_{broken}"] == "" and t[f"how_{broken}"] == "unknown" for t in tokens)
    assert {t["whole_system_lacks"] for t in tokens} == {broken}
    for t in tokens:  # the whole is the sum of the others, never of the broken one
        others = sum(float(t[f"energy_j_{c}"]) for c in FIELDS if c != broken)
        assert float(t["energy_j"]) == pytest.approx(others)
    layers = [r for r in _csv(store, out["run_id"], "layers") if r["component"] == broken]
    assert layers and all(r["energy_j"] == "" for r in layers)
    samples = [r for r in _csv(store, out["run_id"], "samples") if r["component"] == broken]
    assert samples and all(r["energy_j"] == "" and r["counter_health"] == status for r in samples)
    summary = {(r["section"], r["key"]): r["value"] for r in _csv(store, out["run_id"], "summary")}
    assert summary[("summary", f"counter_health.{broken}")] == status
    assert summary[("summary", "total_lacks")] == json.dumps([broken])
    assert summary[("summary", "scope")].startswith("SoC rails: CPU + GPU + ANE + DRAM")


def _check_the_others_are_measured(out: dict, store: Store, reads: ReadLog, broken: str) -> None:
    """Nothing else changes: the healthy components' tokens are their counter differences, labelled as before."""
    assert out["status"] == "done" and out["warnings"] == [] and not out["power_incomplete"]
    healthy = [c for c in FIELDS if c != broken]
    assert all(out["counter_health"][c] == "ok" for c in healthy)
    assert out["closure_error"] < 1e-9
    for c in ("gpu", "dram"):
        if c != broken:
            assert out["mean_w"][c] == pytest.approx(POWER_W[c], rel=0.05)
    tokens = _csv(store, out["run_id"], "tokens")
    assert len(tokens) == 2 * TOKENS
    for token in tokens:
        before, after = reads.value_at(int(token["t0_ns"])), reads.value_at(int(token["t1_ns"]))
        for c in healthy:
            if token[f"how_{c}"] == "measured":
                assert float(token[f"energy_j_{c}"]) * 1e3 == pytest.approx(after[FIELDS[c]] - before[FIELDS[c]],
                                                                            abs=1e-6)
    decode = [t for t in tokens if t["phase"] == "decode"]
    assert all(t["how_gpu"] == "measured" and t["how_ane"] == "measured" for t in decode if broken != "gpu")
    assert out["tokens_measured_share_by_component"]["ane"] == 1.0


@pytest.mark.parametrize("mode", list(BROKEN))
def test_a_broken_counter_is_unknown_everywhere_and_the_rest_unchanged(runs: dict[str, Any], mode: str) -> None:
    out, reads, stderr = runs[mode]
    broken, status = BROKEN[mode]
    store = Store(runs["db"][mode])
    try:
        _check_unknown_everywhere(out, store, broken, status, stderr)
        _check_the_others_are_measured(out, store, reads, broken)
    finally:
        store.close()
    detail = out["counter_health_detail"][broken]
    if mode == "stall":  # the GPU channel came in nJ and the package made it mJ: the source trusts the contract
        assert "did not move at all during the" in detail["note"]
        assert out["counter_health"]["gpu"] == "ok" and out["mean_w"]["gpu"] == pytest.approx(8.0, rel=0.01)
    elif mode == "nj_raw":
        # 8 W read as 8 MW (a busy machine's late time stamps move it by some per cent either way)
        assert detail["peak_w"] > 1e6 and detail["ceiling_w"] == pytest.approx(442.5)
    else:
        assert "went backwards" in detail["note"]


def test_counters_published_in_batches_are_apportioned_and_smoothed(runs: dict[str, Any]) -> None:
    out, _, stderr = runs["batched"]
    assert out["status"] == "done" and out["warnings"] == [] and "warning: The" not in stderr
    assert out["counter_health"] == {"cpu": "batched", "gpu": "batched", "ane": "ok", "dram": "batched"}
    assert out["total_lacks"] == []
    for c in ("cpu", "gpu", "dram"):
        assert out["counter_health_detail"][c]["publication_s"] == pytest.approx(2.0, rel=0.05)
        # chained at its publications and waited for after the work: the power is right over seconds of work
        assert out["mean_w"][c] == pytest.approx(POWER_W[c], rel=0.1)
        assert out["tokens_measured_share_by_component"][c] == 0.0
    store = Store(runs["db"]["batched"])
    try:
        tokens = _csv(store, out["run_id"], "tokens")
        assert all(t[f"how_{c}"] == "apportioned" for t in tokens for c in ("cpu", "gpu", "dram"))
        assert all(float(t["energy_j_cpu"]) > 0 for t in tokens)  # no step gets 0 between two batches
        raw = [float(r["power_w"]) for r in _csv(store, out["run_id"], "samples") if r["component"] == "cpu"]
        assert min(raw) == 0 and max(raw) > 4 * 4.0  # the raw windows are the saw-tooth: each a whole batch or none
    finally:
        store.close()
    assert out["closure_error"] < 1e-9


def _timeline(at: Any) -> pd.DataFrame:
    """The power-over-time chart's lines (t_s, component, power_w) as the page ships them."""
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        title = spec.get("title")
        if "Power per component over time" not in str(title.get("text") if isinstance(title, dict) else title):
            continue
        frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets]
        return next(f for f in frames if {"power_w", "component"} <= set(f.columns))
    raise AssertionError("no power timeline on the page")


@pytest.mark.parametrize("mode", list(MODES))
def test_the_run_page_names_the_component_and_what_to_do(runs: dict[str, Any], mode: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYPROF_DB", str(runs["db"][mode]))
    out = runs[mode][0]
    at = open_page("pages/run.py", {"run": str(out["run_id"])})
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "Health" in df.value.columns)
    assert dict(zip(table["Component"], table["Health"], strict=True)) == out["counter_health"]
    captions = " ".join(texts(at, "caption"))
    assert "Whole system = SoC rails: CPU + GPU + ANE + DRAM" in captions
    timeline = _timeline(at)
    if mode in BROKEN:
        broken, status = BROKEN[mode]
        assert out["counter_health_detail"][broken]["note"] in texts(at, "warning")
        assert f"without {broken} (unknown for this run)" in captions
        assert f"Not drawn: {broken} (counter {status}: unknown)" in captions
        assert broken not in set(timeline["component"]) and set(timeline["component"]) >= {"ane"}
        assert any(m.label.endswith(f"(without {broken})") for m in at.metric)
    else:
        infos = texts(at, "info")
        assert any(i.startswith("The cpu energy counter publishes in batches about every 2 s") for i in infos)
        assert "Smoothed over the publication period: cpu 2 s" in captions
        cpu = timeline.loc[timeline["component"] == "cpu", "power_w"]
        assert cpu.between(4.0 * 0.75, 4.0 * 1.25).all(), cpu.tolist()  # no 0 W, no spike


@pytest.mark.parametrize("lane", LANES, ids=["-".join(lane) for lane in LANES])
def test_runs_and_compare_flag_the_runs_whose_counters_failed(runs: dict[str, Any], lane: tuple[str, ...],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from energyprof.commands.runs import _cells

    db = runs["db"][lane[0]]
    ids = {mode: runs[mode][0]["run_id"] for mode in lane}
    listed = _energyprof("runs", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    notes = {r["id"]: _cells(r)[-1] for r in json.loads(listed.stdout)}
    monkeypatch.setenv("ENERGYPROF_DB", str(db))
    at = open_page("pages/compare.py", {"runs": ",".join(str(i) for i in ids.values())})
    assert not at.exception, [e.value for e in at.exception]
    table = {int(tag.split()[0][1:]): row for tag, row in at.dataframe[0].value.set_index("run").iterrows()}
    for mode in lane:
        row, note = table[ids[mode]], notes[ids[mode]]
        if mode in BROKEN:
            broken, status = BROKEN[mode]
            assert f"{broken} counter {status}: unknown" in note and f"{broken} counter {status}" in row["notes"]
            assert row["counters"] == f"{broken} {status}" and row["whole system lacks"] == broken
        else:
            assert "counter" not in note and "counter" not in row["notes"]
            assert row["counters"] == "cpu batched, gpu batched, dram batched"
            assert pd.isna(row["whole system lacks"])
