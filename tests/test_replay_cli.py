"""The replay from the command line, end to end with a counter source (the ioreport stand-in): the plan printed before
it starts, the run done, `export --what layer-replay`, the run page's section."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from seed import charts_by_title, open_page

from energyprof.cli import main
from energyprof.store import Store

COLUMNS = ("layer", "kind", "phase", "calls", "time_s_per_call", "energy_j_per_call", "net_energy_j_per_call",
           "power_w", "net_power_w", "ci95_j", "cv")

STAND_IN_W = {"CPU": 4.0, "GPU": 8.0, "ANE": 0.0, "DRAM": 1.5}
"""The stand-in's constant power per channel in this test (GPU SRAM is not one of energyprof's components)."""


def test_profile_replay_with_a_counter_source_exports_and_shows_the_table(
        db_path: Path, stand_in: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "10")
    for channel, watts in STAND_IN_W.items():
        monkeypatch.setenv(f"FAKE_IOREPORT_{channel}_W", str(watts))
    code = main(["profile", "--model", "tiny", "--layers", "modules", "--layer-energy", "replay", "--replay-s", "0.3",
                 "--source", "ioreport", "--json", "--replay-trials", "1", "--prompt", "Hello energy",
                 "--max-new-tokens", "4", "--ignore-eos", "--repeats", "1", "--warmup", "0", "--baseline-s", "0.3",
                 "--db", str(db_path)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert ("Replay after the measured repeats: 15 modules × 2 phases + 2 cache-restore references, × 1 trials × "
            "0.3 s") in printed.err
    out = json.loads(printed.out)
    assert (out["status"], out["source"], out["layer_energy"]) == ("done", "ioreport", "replay")
    assert out["replay_steps"] == {"prefill": 0, "decode": 2} and out["replay_s"] == 0.3
    assert out["replay_layers"] == 30 and out["replay_skipped"] == []
    assert set(out["replay_closure"]) == {"prefill", "decode"}

    assert main(["export", str(out["run_id"]), "--what", "layer-replay", "--format", "csv", "--db", str(db_path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert set(COLUMNS) <= set(rows[0]) and {"energy_j_per_call_cpu", "energy_j_per_call_gpu"} <= set(rows[0])
    layers = [r for r in rows if r["kind"] != "restore"]
    assert len(layers) == 30 and {r["method"] for r in rows} == {"counter"}
    assert {r["provenance"] for r in rows} == {"measured"}
    # the stand-in draws a constant power, so every layer replays at it (its counters step every 10 ms); the
    # workload's own mean power is no reference here: a few tens of ms in 10 ms counter steps
    constant_w = sum(STAND_IN_W.values())
    for r in layers:
        assert float(r["power_w"]) == pytest.approx(constant_w, rel=0.1), r["layer"]
        assert float(r["energy_j_per_call"]) == pytest.approx(float(r["power_w"]) * float(r["time_s_per_call"]))

    at = open_page("pages/run.py", {"run": str(out["run_id"])})
    assert not at.exception
    assert "Measured per layer (replay)" in [s.value for s in at.subheader]
    assert {"Energy per call, replayed (decode), mean ± 95% CI (J)", "Power per layer while replayed (decode) (W)",
            "Power per layer kind while replayed (decode) (W)"} <= set(charts_by_title(at))
    store = Store(db_path)
    assert len(store.replay_trials(out["run_id"])) == 32
    store.close()
