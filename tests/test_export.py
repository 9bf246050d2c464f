"""CSV and Perfetto trace exports of a synthetic run built with the Store's write methods, and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from energyprof.analysis.attribution import attribute_intervals, baseline_power_w, net_energy_mj
from energyprof.export import UnknownRun, export_csv, export_trace, trace_json
from energyprof.power.base import PowerWindow, total_energy_mj
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
T0 = 5_000_000_000_000
MS = 1_000_000
LAYERS = [(0, "embed", "embedding", None, 0), (1, "block.0", "block", None, 1),
          (2, "block.0.attn", "attention", 1, 2), (3, "block.0.mlp", "mlp", 1, 3),
          (4, "lm_head", "lm_head", None, 4), (5, "other", "other", None, 5)]


def make_windows(n: int = 30) -> list[PowerWindow]:
    """100 ms windows from T0 - 50 ms; window 12 has an unknown gpu value, and a gap after window 20."""
    windows, t = [], T0 - 50 * MS
    for i in range(n):
        if i == 21:
            t += 40 * MS
        gpu = None if i == 12 else 100.0 + i
        windows.append(PowerWindow(t, t + 100 * MS, {"cpu": 500.0 + 10 * i, "gpu": gpu}))
        t += 100 * MS
    return windows


def step_rows(repeat: int, start: int) -> list[tuple]:
    """A 200 ms prefill and five 60 ms decode steps, back to back from start."""
    rows = [(repeat, 0, "prefill", start, start + 200 * MS, 7, None, None)]
    t = start + 200 * MS
    for idx, text in enumerate("hello", start=1):
        rows.append((repeat, idx, "decode", t, t + 60 * MS, 1, ord(text), text))
        t += 60 * MS
    return rows


def call_rows(step: tuple) -> list[tuple]:
    """embed, block (attn, mlp inside), lm_head, other; mlp ends 1.5 µs after its block (hook jitter)."""
    repeat, idx, _, s, e = step[:5]
    d = (e - s) // 10
    spans = [(0, s, s + d), (1, s + d, s + 8 * d), (2, s + d, s + 4 * d), (3, s + 4 * d, s + 8 * d + 1500),
             (4, s + 8 * d, s + 9 * d)]
    rows = [(repeat, idx, layer, a, b, b - a, 1.0, (b - a) / (100 * MS)) for layer, a, b in spans]
    rows.append((repeat, idx, 5, None, None, d, 0.5, None))
    return rows


def build_run(store: Store, *, measured: bool = True, source: str = "powermetrics") -> int:
    windows = make_windows()
    run_id = store.create_run("profile", source=source, measured=measured, model="tiny-llama", device="cpu",
                              dtype="float32", params={"max_new_tokens": 5, "layers": "modules",
                                                       "prompt": {"text": "hi", "tokens": 7}})
    store.update_run(run_id, clock_t0_ns=T0)
    store.add_power_windows(run_id, windows)
    steps = step_rows(0, T0 + 100 * MS) + step_rows(1, T0 + 1700 * MS)
    store.add_steps(run_id, steps)
    a = np.array([s[3] for s in steps])
    b = np.array([s[4] for s in steps])
    att = attribute_intervals(windows, a, b)
    base = baseline_power_w(windows, T0 - 50 * MS, T0 + 50 * MS)
    energy_rows = []
    for comp, values in att.energy_mj.items():
        net = net_energy_mj(values, b - a, base[comp])
        for i, s in enumerate(steps):
            energy_rows.append((s[0], s[1], comp, _opt(values[i]), _opt(net[i]), float(att.resolution[i])))
    store.add_step_energy(run_id, energy_rows)
    store.add_layers(run_id, LAYERS)
    store.add_layer_calls(run_id, [c for s in steps for c in call_rows(s)])
    store.add_layer_energy(run_id, [(layer, "cpu", 12, 1000, 10.0, 5.0, 0.1) for layer, *_ in LAYERS])
    store.finish_run(run_id, "done", summary={"tokens": 10, "energy_j": {"cpu": 1.5, "gpu": None},
                                              "j_per_token": 0.15})
    return run_id


def _opt(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def run_id(store: Store) -> int:
    return build_run(store)


def test_samples_csv(store: Store, run_id: int) -> None:
    rows = read_csv(export_csv(store, run_id, "samples"))
    assert list(rows[0]) == ["t0_s", "t1_s", "component", "energy_j", "power_w", "measured", "counter_health"]
    windows = make_windows()
    assert len(rows) == 2 * len(windows)
    cpu = [r for r in rows if r["component"] == "cpu"]
    assert sum(float(r["energy_j"]) for r in cpu) == pytest.approx(sum(w.energy_mj["cpu"] for w in windows) / 1e3)
    assert float(cpu[0]["t0_s"]) == pytest.approx(-0.05)
    assert float(cpu[0]["power_w"]) == pytest.approx(5.0)
    gpu_unknown = [r for r in rows if r["component"] == "gpu" and r["energy_j"] == ""]
    assert len(gpu_unknown) == 1 and gpu_unknown[0]["power_w"] == ""
    assert {r["measured"] for r in rows} == {"True"}


def test_tokens_csv_has_per_component_columns_that_add_up(store: Store, run_id: int) -> None:
    rows = read_csv(export_csv(store, run_id, "tokens"))
    assert len(rows) == 12
    for col in ("repeat", "idx", "phase", "t0_s", "t1_s", "token_text", "energy_j", "net_energy_j", "resolution",
                "energy_j_cpu", "energy_j_gpu", "net_energy_j_cpu", "net_energy_j_gpu"):
        assert col in rows[0]
    windows = make_windows()
    steps = step_rows(0, T0 + 100 * MS)
    span = attribute_intervals(windows, np.array([steps[0][3]]), np.array([steps[-1][4]]), ["cpu"])
    repeat0 = [r for r in rows if r["repeat"] == "0"]
    assert sum(float(r["energy_j_cpu"]) for r in repeat0) == pytest.approx(span.energy_mj["cpu"][0] / 1e3)
    for r in rows:  # whole system = cpu + gpu where gpu is known
        want = total_energy_mj({"cpu": float(r["energy_j_cpu"]),
                                "gpu": float(r["energy_j_gpu"]) if r["energy_j_gpu"] else None})
        assert float(r["energy_j"]) == pytest.approx(want)
    assert rows[1]["token_text"] == "h" and rows[0]["phase"] == "prefill"


def test_tokens_and_calls_csv_carry_job_clock_stamps_and_how(store: Store, run_id: int) -> None:
    tokens = read_csv(export_csv(store, run_id, "tokens"))
    steps = step_rows(0, T0 + 100 * MS) + step_rows(1, T0 + 1700 * MS)
    assert [(int(r["t0_ns"]), int(r["t1_ns"])) for r in tokens] == [(s[3], s[4]) for s in steps]
    assert float(tokens[0]["t0_s"]) == pytest.approx(0.1)  # seconds from the run's clock start, beside the stamps
    # rows written without `how` are labelled from the source and the resolution: the 200 ms prefill spans parts of
    # three 100 ms windows (apportioned); a 60 ms decode step inside one window too
    assert {r["how"] for r in tokens} == {"apportioned"} and tokens[0]["how_cpu"] == "apportioned"
    calls = read_csv(export_csv(store, run_id, "calls"))
    embed = next(c for c in calls if c["layer"] == "embed")
    assert int(embed["t0_ns"]) == steps[0][3] and int(embed["t1_ns"]) == steps[0][3] + 20 * MS
    assert embed["how"] == "apportioned"
    assert {c["how"] for c in calls if c["layer"] == "other"} == {"unknown"}  # no resolution recorded for it


def test_stored_how_is_exported_as_stored(store: Store) -> None:
    run_id = store.create_run("profile", source="ioreport", measured=True, model="tiny", params={})
    store.update_run(run_id, clock_t0_ns=T0)
    store.add_steps(run_id, [(0, 0, "prefill", T0, T0 + 50 * MS, 3, None, None),
                             (0, 1, "decode", T0 + 50 * MS, T0 + 52 * MS, 1, 12, "x")])
    store.add_step_energy(run_id, [(0, 0, "cpu", 20.0, None, 1.0, "measured"),
                                   (0, 0, "gpu", 5.0, None, 1.0, "measured"),
                                   (0, 1, "cpu", 1.0, None, 1.0, "apportioned"),
                                   (0, 1, "gpu", 0.5, None, 1.0, "measured")])
    rows = read_csv(export_csv(store, run_id, "tokens"))
    assert [(r["how"], r["how_cpu"], r["how_gpu"]) for r in rows] == [
        ("measured", "measured", "measured"), ("apportioned", "apportioned", "measured")]
    trace = export_trace(store, run_id)
    decode = next(e for e in x_events(trace) if e["name"].startswith("decode"))
    assert decode["args"]["how"] == "apportioned" and decode["args"]["how.gpu"] == "measured"
    assert (decode["args"]["t0_ns"], decode["args"]["t1_ns"]) == (T0 + 50 * MS, T0 + 52 * MS)


def test_layers_calls_and_summary_csv(store: Store, run_id: int) -> None:
    layers = read_csv(export_csv(store, run_id, "layers"))
    assert [r["name"] for r in layers] == [name for _, name, *_ in LAYERS]
    assert {"calls", "time_s", "energy_j", "net_energy_j", "resolution", "component"} <= set(layers[0])
    calls = read_csv(export_csv(store, run_id, "calls"))
    assert len(calls) == 12 * 6
    assert list(calls[0]) == ["repeat", "step_idx", "layer", "kind", "t0_s", "t1_s", "t0_ns", "t1_ns", "time_s",
                              "energy_j", "resolution", "how"]
    other = [c for c in calls if c["layer"] == "other"]
    assert len(other) == 12 and all(c["t0_s"] == "" for c in other)
    assert sum(float(c["energy_j"]) for c in calls) == pytest.approx(12 * (5 * 1.0 + 0.5) / 1e3)
    summary = {(r["section"], r["key"]): r["value"] for r in read_csv(export_csv(store, run_id, "summary"))}
    assert summary[("run", "model")] == "tiny-llama"
    assert summary[("params", "max_new_tokens")] == "5"
    assert summary[("params", "prompt.tokens")] == "7"
    assert summary[("summary", "energy_j.cpu")] == "1.5"
    assert summary[("summary", "energy_j.gpu")] == ""


def test_text_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(store: Store) -> None:
    hostile = "=HYPERLINK(\"http://host/x\",\"open\")"
    run_id = store.create_run("profile", source="estimate", measured=False, model=hostile, device="cpu",
                              params={"prompt": "@SUM(A1:A9)", "note": "+1", "tab": "\tx", "cr": "\rx"})
    store.update_run(run_id, clock_t0_ns=T0)
    store.add_power_windows(run_id, make_windows(10))
    store.add_steps(run_id, [(0, 0, "prefill", T0, T0 + 50 * MS, 3, None, None),
                             (0, 1, "decode", T0 + 50 * MS, T0 + 90 * MS, 1, 12, "-2+3")])
    store.add_step_energy(run_id, [(0, 0, "cpu", 20.0, -0.5, 1.0), (0, 1, "cpu", 10.0, -500.0, 1.0)])
    store.finish_run(run_id, "failed", error="-1 steps; see logs", summary={"net_energy_j": {"cpu": -0.5}})
    summary = {(r["section"], r["key"]): r["value"] for r in read_csv(export_csv(store, run_id, "summary"))}
    assert summary[("run", "model")] == "'" + hostile
    assert summary[("run", "error")] == "'-1 steps; see logs"
    assert summary[("params", "prompt")] == "'@SUM(A1:A9)" and summary[("params", "note")] == "'+1"
    assert summary[("params", "tab")] == "'\tx" and summary[("params", "cr")] == "'\rx"
    assert summary[("summary", "net_energy_j.cpu")] == "-0.5"  # a number stays a number
    tokens = read_csv(export_csv(store, run_id, "tokens"))
    assert tokens[1]["token_text"] == "'-2+3"
    assert [float(r["net_energy_j"]) for r in tokens] == [-0.0005, -0.5]
    assert tokens[0]["net_energy_j"] == "-0.0005"


def test_bad_requests(store: Store, run_id: int) -> None:
    with pytest.raises(ValueError, match="unknown export"):
        export_csv(store, run_id, "everything")
    with pytest.raises(UnknownRun):
        export_csv(store, 999, "tokens")
    with pytest.raises(UnknownRun):
        export_trace(store, 999)


def x_events(trace: dict) -> list[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def assert_nested_per_tid(events: list[dict]) -> None:
    """On each (pid, tid), any two slices are either disjoint or one contains the other."""
    tracks: dict[tuple[int, int], list[dict]] = {}
    for e in events:
        tracks.setdefault((e["pid"], e["tid"]), []).append(e)
    for track in tracks.values():
        stack: list[int] = []
        for e in sorted(track, key=lambda e: (e["ts"], -e["dur"])):
            end = e["ts"] + e["dur"]
            while stack and stack[-1] <= e["ts"]:
                stack.pop()
            assert not stack or end <= stack[-1], f"{e['name']} overlaps its parent"
            stack.append(end)


def test_trace_is_valid_and_nested(store: Store, run_id: int) -> None:
    trace = json.loads(trace_json(store, run_id))
    assert trace["displayTimeUnit"] == "ms" and trace["metadata"]["energyprof_run"] == run_id
    events = x_events(trace)
    assert all(isinstance(e["ts"], int) and e["ts"] >= 0 and e["dur"] >= 0 for e in events)
    assert_nested_per_tid(events)
    names = [e["name"] for e in events]
    assert names.count("prefill") == 2 and "decode #1 'h'" in names and "decode #5 'o'" in names
    assert "other" not in names and names.count("block.0.mlp") == 12
    assert {e["tid"] for e in events} == {1, 2}
    prefill = next(e for e in events if e["name"] == "prefill")
    assert prefill["ts"] == 150_000 and prefill["dur"] == 200_000
    assert prefill["args"]["energy_j"] > 0 and "energy_j.cpu" in prefill["args"]
    assert prefill["args"]["resolution"] == pytest.approx(200 / 300)
    timed = [e for e in trace["traceEvents"] if e["ph"] != "M"]
    assert [e["ts"] for e in timed] == sorted(e["ts"] for e in timed)
    meta = {(e["name"], e.get("tid")): e["args"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert meta[("thread_name", 1)]["name"] == "repeat 0"
    assert "tiny-llama" in meta[("process_name", 0)]["name"]


def test_trace_counters_per_component(store: Store, run_id: int) -> None:
    trace = export_trace(store, run_id)
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert {e["name"] for e in counters} == {"power cpu (W)", "power gpu (W)"}
    cpu = [e for e in counters if e["name"] == "power cpu (W)"]
    assert cpu[0]["ts"] == 0 and cpu[0]["args"]["W"] == pytest.approx(5.0)
    assert cpu[-1]["args"]["W"] == 0.0
    assert len(cpu) == 30 + 2  # one per window, a 0 at the gap, a final 0
    assert all(e["ts"] >= 0 for e in counters)


def test_estimated_run_is_labelled(store: Store) -> None:
    run_id = build_run(store, measured=False, source="estimate")
    trace = export_trace(store, run_id)
    names = {e["name"] for e in trace["traceEvents"] if e["ph"] == "C"}
    assert names == {"power cpu (W, estimated)", "power gpu (W, estimated)"}
    assert trace["metadata"]["power"] == "estimated"


def test_trace_of_a_run_without_profile_data(store: Store) -> None:
    run_id = store.create_run("sample", source="estimate", measured=False)
    trace = export_trace(store, run_id)
    assert x_events(trace) == [] and json.loads(trace_json(store, run_id))["traceEvents"]
    assert read_csv(export_csv(store, run_id, "tokens")) == []


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", "export", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def test_cli_export(store: Store, run_id: int, db_path: Path, tmp_path: Path) -> None:
    out = cli(str(run_id), "--what", "samples", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "t0_s,t1_s,component,energy_j,power_w,measured,counter_health"
    target = tmp_path / "run.json"
    out = cli(str(run_id), "--format", "trace", "--out", str(target), "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert len(x_events(json.loads(target.read_text()))) == 12 * 6
    missing = cli("999", "--db", str(db_path))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == f"energyprof: run 999 does not exist in {db_path}."
    nodb = cli("1", "--db", str(tmp_path / "nope.sqlite3"))
    assert nodb.returncode == 1 and "no energyprof database" in nodb.stderr
