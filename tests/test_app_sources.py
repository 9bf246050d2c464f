"""The power sources page: statuses with reasons and the auto pick, setup text, a real test sample, capture upload."""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

import pytest
from seed import open_page, texts

from energyprof.power import registry
from energyprof.store import Store

PAGE = "pages/sources.py"


def test_statuses_and_setup(store: Store) -> None:
    at = open_page(PAGE)
    assert not at.exception
    df = at.dataframe[0].value
    statuses = registry.all_statuses()
    assert list(df["source"]) == [s.name for s in statuses]
    auto = registry.auto_name(statuses)
    assert list(df.loc[df["auto picks"] == "✔", "source"]) == [auto]
    bullets = " ".join(texts(at, "markdown"))
    for s in statuses:
        assert f"**{s.name}**: {s.reason}" in bullets
    code = [c.value for c in at.code]
    shown = next(c for c in code if "NOPASSWD" in c)
    user = getpass.getuser()
    printed = subprocess.run(["sh", "scripts/setup_powermetrics.sh", "--print", "--user",
                              "YOUR_LOGIN" if user == "root" else user], capture_output=True, text=True, check=True)
    assert shown == printed.stdout.strip()  # exactly what the script installs, not an approximation
    assert "NOPASSWD: ENERGYPROF_POWERMETRICS" in shown and "NOPASSWD: /usr/bin/powermetrics" not in shown
    assert any("scripts/setup_powermetrics.sh --uninstall" in c for c in code)


def test_test_sample_records_a_sample_run(store: Store) -> None:
    at = open_page(PAGE, timeout=60)
    at.selectbox(key="sample_source").set_value("estimate")
    at.number_input(key="sample_seconds").set_value(1)
    at.button(key="sample").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not texts(at, "error"), texts(at, "error")
    runs = store.list_runs()
    assert list(runs["kind"]) == ["sample"] and runs.iloc[0]["source"] == "estimate"
    assert any(t.startswith(f"Run #{runs.iloc[0]['id']} (done)") for t in texts(at, "success"))
    assert any(m.label.endswith("(estimated)") for m in at.metric)


def test_capture_upload(store: Store, fixtures_dir: Path) -> None:
    capture = fixtures_dir / "m4pro_Mac16-8_macOS15.5-24F74_plist_gpu_power-only_5samples_NUL-separated.plist"
    at = open_page(PAGE, timeout=60)
    at.file_uploader(key="capture").set_value((capture.name, capture.read_bytes(), "application/xml")).run()
    at.button(key="import").click().run()
    assert not at.exception
    assert not texts(at, "error"), texts(at, "error")
    runs = store.list_runs()
    assert list(runs["kind"]) == ["capture"] and runs.iloc[0]["status"] == "done"
    assert any("from powermetrics (measured)" in t for t in texts(at, "success"))


def test_bad_capture_is_one_sentence(store: Store) -> None:
    at = open_page(PAGE, timeout=60)
    at.file_uploader(key="capture").set_value(("notes.txt", b"hello, not powermetrics", "text/plain")).run()
    at.button(key="import").click().run()
    errors = texts(at, "error")
    assert len(errors) == 1 and errors[0].startswith("Could not import notes.txt: ")
    assert "\n" not in errors[0] and "/tmp" not in errors[0]
    assert store.list_runs().empty


def test_counter_probe_shows_update_period_and_quantum(store: Store, stand_in: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With the IOReport stand-in importable by the page's `energyprof doctor` too, the probe times its counters."""
    from ioreport_stand_in import STAND_INS

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STAND_INS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "100")
    at = open_page(PAGE, timeout=60)
    at.button(key="probe").click().run(timeout=120)
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    probed = next(df.value for df in at.dataframe if "Update period (ms)" in df.value.columns)
    ioreport = probed[probed["Source"] == "ioreport"].set_index("Component")
    assert list(ioreport.index) == ["cpu", "gpu", "ane", "dram"]
    assert ioreport.loc["cpu", "Update period (ms)"] == pytest.approx(100, rel=0.3)  # published every 100 ms
    assert ioreport.loc["cpu", "Quantum (mJ)"] >= 1  # IOReport counts whole millijoules
    assert list(ioreport["Health"]) == ["ok", "ok", "ok", "ok"]  # judged over the probe (the ANE rests: not stalled)


def test_counter_probe_shows_exactly_this_machines_counters(store: Store) -> None:
    """Without stand-ins: the counter sources that really run here (none on this project's CI), or one sentence."""
    counters = [s.name for s in registry.all_statuses() if s.available and s.name in ("ioreport", "nvml", "rapl")]
    at = open_page(PAGE, timeout=60)
    at.button(key="probe").click().run(timeout=120)
    assert not at.exception and not texts(at, "error")
    tables = [df.value for df in at.dataframe if "Update period (ms)" in df.value.columns]
    if counters:
        assert sorted(set(tables[0]["Source"])) == sorted(counters)
    else:
        assert not tables and any("No counter source is available here" in t for t in texts(at, "info"))
