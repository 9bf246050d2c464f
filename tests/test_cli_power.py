"""`energyprof doctor`, `sample` and `import-powermetrics` end to end (subprocesses where signals matter)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from recordings import FIXTURES, M1_TEXT_ELAPSED_MS, M1_TEXT_MW, M4_PRO_ELAPSED_NS, M4_PRO_GPU_MJ

from energyprof.cli import main
from energyprof.power.rapl import MISSING, NO_PERMISSION
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
FAKE_COMMAND = f"{sys.executable} {REPO / 'tests' / 'fake_powermetrics.py'}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FAKE_POWERMETRICS_", "ENERGYPROF_"))}
    return {**env, **extra}


def _energyprof(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energyprof", *args], cwd=REPO, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def _gone(pidfile: Path) -> bool:
    try:
        psutil.Process(int(pidfile.read_text()))
    except psutil.NoSuchProcess:
        return True
    return False


# -- doctor ----------------------------------------------------------------------------------------------


def test_doctor_lists_every_source_with_its_true_reason() -> None:
    done = _energyprof("doctor", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    sources = {s["name"]: s for s in report["sources"]}
    assert list(sources) == ["ioreport", "powermetrics", "nvml", "rapl", "estimate"]
    for s in sources.values():
        assert set(s) == {"name", "available", "reason", "components", "measured", "interval_ms", "counter", "health"}
        assert s["counter"] is None or s["available"]  # only available counter sources are probed
        assert (s["health"] is None) == (s["counter"] is None)  # each probed counter is judged
        assert s["reason"].endswith(".") and s["interval_ms"] == 100
    if sys.platform != "darwin":
        assert not sources["powermetrics"]["available"] and not sources["ioreport"]["available"]
        assert sources["ioreport"]["reason"].startswith("the zeus-apple-silicon package is not installed")
        assert sources["powermetrics"]["reason"].startswith("powermetrics exists only on macOS")
    if not sources["nvml"]["available"]:
        assert sources["nvml"]["reason"].startswith(("no NVIDIA driver/GPU found", "NVML found no", "the nvidia-ml-py"))
    if not sources["rapl"]["available"]:
        assert sources["rapl"]["reason"] in (MISSING, NO_PERMISSION)
    assert sources["estimate"]["available"] and sources["estimate"]["measured"] is False
    assert sources["estimate"]["counter"] is None and sources["powermetrics"]["counter"] is None
    assert sources["estimate"]["reason"].startswith("estimated, not measured")
    measured = [s["name"] for s in report["sources"] if s["available"] and s["measured"]]
    assert report["auto"] == (measured[0] if measured else "estimate")


def test_doctor_text_names_the_automatic_choice() -> None:
    done = _energyprof("doctor")
    assert done.returncode == 0 and "auto picks: " in done.stdout and "estimate" in done.stdout


# -- sample ----------------------------------------------------------------------------------------------


def _run_row(db: Path, run_id: int) -> dict[str, Any]:
    store = Store(db)
    try:
        return {**store.get_run(run_id), "windows": len(store.power_windows(run_id))}
    finally:
        store.close()


def test_sample_with_the_estimate(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    done = _energyprof("sample", "--seconds", "3", "--json", "--source", "estimate", "--db", str(db))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["source"] == "estimate" and out["measured"] is False and out["status"] == "done"
    assert out["windows"] >= 20 and out["samples_skipped"] == 0
    assert 2.5 <= out["duration_s"] <= 3.8
    assert 10.0 - 1e-9 <= out["mean_w"]["cpu"] <= 65.0 + 1e-9  # the model: 10 W idle to 65 W busy
    assert out["energy_j"]["cpu"] == pytest.approx(out["mean_w"]["cpu"] * out["duration_s"], rel=1e-6)
    run = _run_row(db, out["run_id"])
    assert (run["kind"], run["status"], run["measured"], run["windows"]) == ("sample", "done", False, out["windows"])
    assert run["summary"]["energy_j"] == out["energy_j"]


def test_sample_text_labels_the_estimate(tmp_path: Path) -> None:
    done = _energyprof("sample", "--seconds", "0.5", "--source", "estimate", "--db", str(tmp_path / "t.sqlite3"))
    assert done.returncode == 0 and "cpu (estimated)" in done.stdout


def test_sample_with_powermetrics_stand_in(tmp_path: Path) -> None:
    db, pidfile = tmp_path / "p.sqlite3", tmp_path / "fake.pid"
    env = _env(ENERGYPROF_POWERMETRICS=FAKE_COMMAND, FAKE_POWERMETRICS_PIDFILE=str(pidfile))
    done = _energyprof("sample", "--seconds", "1.5", "--interval-ms", "50", "--source", "powermetrics", "--json",
                       "--db", str(db), env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["source"] == "powermetrics" and out["measured"] is True and out["status"] == "done"
    assert out["windows"] >= 10 and 0.8 <= out["duration_s"] <= 2.0
    assert out["energy_j"]["dram"] is None and out["mean_w"]["dram"] is None  # macOS 13+ recordings: unknown
    assert out["energy_j"]["cpu"] > 0 and out["energy_j"]["gpu"] > 0
    assert _run_row(db, out["run_id"])["windows"] == out["windows"]
    assert _gone(pidfile)


def test_sample_keeps_windows_when_the_source_dies(tmp_path: Path) -> None:
    db = tmp_path / "f.sqlite3"
    env = _env(ENERGYPROF_POWERMETRICS=FAKE_COMMAND, FAKE_POWERMETRICS_EXIT_AFTER="5")
    done = _energyprof("sample", "--seconds", "10", "--interval-ms", "50", "--source", "powermetrics", "--json",
                       "--db", str(db), env=env)
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["status"] == "failed" and out["windows"] == 5
    assert out["error"].startswith("powermetrics stopped unexpectedly (exit 1)")
    assert done.stderr.strip() == f"energyprof: {out['error']}"
    run = _run_row(db, out["run_id"])
    assert (run["status"], run["error"], run["windows"], run["power_incomplete"]) == ("failed", out["error"], 5, 1)


def test_sample_sigterm_cancels_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    db, pidfile = tmp_path / "c.sqlite3", tmp_path / "fake.pid"
    env = _env(ENERGYPROF_POWERMETRICS=FAKE_COMMAND, FAKE_POWERMETRICS_PIDFILE=str(pidfile))
    proc = subprocess.Popen([sys.executable, "-m", "energyprof", "sample", "--seconds", "60", "--interval-ms", "50",
                             "--source", "powermetrics", "--json", "--db", str(db)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    out = json.loads(stdout)
    assert out["status"] == "cancelled" and out["windows"] >= 5
    run = _run_row(db, out["run_id"])
    assert run["status"] == "cancelled" and run["windows"] == out["windows"]
    assert _gone(pidfile)


def test_sample_with_an_unavailable_source_is_one_sentence(tmp_path: Path) -> None:
    db = tmp_path / "u.sqlite3"
    env = _env(ENERGYPROF_POWERMETRICS=FAKE_COMMAND, FAKE_POWERMETRICS_EUID="501")
    done = _energyprof("sample", "--seconds", "1", "--source", "powermetrics", "--db", str(db), env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "run scripts/setup_powermetrics.sh once" in done.stderr
    assert not db.exists()


# -- import-powermetrics ---------------------------------------------------------------------------------

M1_TEXT_S = sum(M1_TEXT_ELAPSED_MS) / 1e3  # 1074.06 ms
M4_PRO_S = sum(M4_PRO_ELAPSED_NS) / 1e9  # 25.052688415 s
M4_PRO_GPU_J = sum(M4_PRO_GPU_MJ) / 1e3  # 1.186 J

IMPORTS = {
    # file: (samples, duration_s, energy_j, hw_model)
    "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_2.02s.plist":
        (1, 2.01917875, {"cpu": 0.089, "gpu": 0.031, "ane": 0.0, "dram": None}, "MacBookPro17,1"),
    "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_0.53s.plist":
        (1, 0.525992374, {"cpu": 0.054, "gpu": 0.010, "ane": 0.0, "dram": None}, "MacBookPro17,1"),
    "m2ultra_Mac14-14_macOS14.4-23E224_plist_cpu-gpu-thermal_1sample_1.02s.plist":
        (1, 1.023721416, {"cpu": 0.855, "gpu": 72.607, "ane": 0.0, "dram": None}, "Mac14,14"),
    "m4pro_Mac16-8_macOS15.5-24F74_plist_gpu_power-only_5samples_NUL-separated.plist":
        (5, M4_PRO_S, {"cpu": None, "gpu": M4_PRO_GPU_J, "ane": None, "dram": None}, "Mac16,8"),
    "m1_MacBookAir10-1_macOS12.6-21G115_text_cpu_power_10samples_with-DRAM.txt":
        (10, M1_TEXT_S, {c: sum(mw * ms for mw, ms in zip(v, M1_TEXT_ELAPSED_MS, strict=True)) / 1e6
                         for c, v in M1_TEXT_MW.items()}, "MacBookAir10,1"),
    # CPU 954 mW × 5.02196 s = 4.79094984 J; GPU 28 mW × 5.02196 s = 0.14061488 J; no DRAM line
    "m4max_Mac16-6_macOS15.5-24F74_text_default-samplers_1sample.txt":
        (1, 5.02196, {"cpu": 4.79094984, "gpu": 0.14061488, "ane": 0.0, "dram": None}, "Mac16,6"),
}


@pytest.mark.parametrize("name", list(IMPORTS), ids=lambda n: n.split("_")[0] + "-" + n.rsplit(".", 1)[1])
def test_import_every_recording(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples, duration_s, energy_j, hw_model = IMPORTS[name]
    db = tmp_path / "i.sqlite3"
    assert main(["import-powermetrics", str(FIXTURES / name), "--db", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["source"], out["measured"], out["status"], out["samples_skipped"]) == ("powermetrics", True, "done", 0)
    assert out["windows"] == samples and out["hw_model"] == hw_model
    assert out["duration_s"] == pytest.approx(duration_s, rel=1e-9)
    assert set(out["energy_j"]) == set(out["mean_w"]) == set(energy_j)
    for comp, joules in energy_j.items():
        if joules is None:  # no figure for this component in this recording: null, never 0
            assert out["energy_j"][comp] is None and out["mean_w"][comp] is None
        else:
            assert out["energy_j"][comp] == pytest.approx(joules, rel=1e-9, abs=1e-12)
            assert out["mean_w"][comp] == pytest.approx(joules / duration_s, rel=1e-9, abs=1e-12)
    store = Store(db)
    run = store.get_run(out["run_id"])
    windows = store.power_windows(out["run_id"])
    store.close()
    assert (run["kind"], run["status"], run["source"], run["measured"]) == ("capture", "done", "powermetrics", True)
    assert run["params"]["hw_model"] == hw_model and run["params"]["os_build"]
    assert windows[0].t0_ns == 0 and all(a.t1_ns == b.t0_ns for a, b in zip(windows, windows[1:], strict=False))
    assert len(windows) == samples


def test_import_m1_text_keeps_package_separately(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "m1_MacBookAir10-1_macOS12.6-21G115_text_cpu_power_10samples_with-DRAM.txt"
    assert main(["import-powermetrics", str(FIXTURES / name), "--db", str(tmp_path / "d.sqlite3"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # first sample alone: Package 1473 mW × 0.10451 s = 153.94 mJ; over all ten: sum(mW × ms) / 1e6 J
    assert out["energy_j"]["package"] == pytest.approx(sum(
        mw * ms for mw, ms in zip(M1_TEXT_MW["package"], M1_TEXT_ELAPSED_MS, strict=True)) / 1e6)


@pytest.mark.parametrize("content, expect", [
    (b"", "is empty"),
    (b"this is not powermetrics output\n", "is not a powermetrics recording"),
    (b"\x00\xff\xfe garbage \x00", "is not a powermetrics recording"),
    (b"<?xml version='1.0'?>\n<plist version='1.0'><dict><key>is_delta</key>", "holds no complete powermetrics"),
    (None, "does not exist"),
    ("dir", "is a folder"),
])
def test_import_refuses_what_is_not_a_recording(content: bytes | str | None, expect: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "capture.plist"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    db = tmp_path / "g.sqlite3"
    assert main(["import-powermetrics", str(path), "--db", str(db), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and expect in captured.err and captured.err.count("\n") == 1
    assert not db.exists()  # nothing half-written: the file is checked before the database is touched


def test_import_of_hostile_captures_keeps_the_good_samples(tmp_path: Path) -> None:
    """Issue 8 (5.7): huge elapsed_ns, 50,000-level nesting and absurd energies are skipped and counted."""
    good = (FIXTURES / "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_0.53s.plist").read_bytes()
    bad = (FIXTURES / "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_2.02s.plist").read_bytes()
    deep = b"<key>deep</key>" + b"<dict><key>a</key>" * 50_000 + b"<integer>1</integer>" + b"</dict>" * 50_000
    hostile = [
        bad.replace(b"<integer>2019178750</integer>", b"<integer>9223372036854775808</integer>"),  # 2^63
        bad.replace(b"<dict>", b"<dict>" + deep, 1),
        bad.replace(b"<key>cpu_energy</key>\n      <integer>89</integer>", b"<key>cpu_energy</key><real>1e308</real>"),
    ]
    assert all(h != bad for h in hostile)
    path = tmp_path / "hostile.plist"
    path.write_bytes(b"\0".join([good.rstrip(b"\n") + b"\n", *(h.rstrip(b"\n") + b"\n" for h in hostile), good]))
    done = _energyprof("import-powermetrics", str(path), "--db", str(tmp_path / "h.sqlite3"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert (out["windows"], out["samples_skipped"]) == (2, 3)
    # two copies of the good 0.525992374 s sample: cpu 54 mJ each
    assert out["energy_j"]["cpu"] == pytest.approx(0.108) and out["duration_s"] == pytest.approx(2 * 0.525992374)

    text = tmp_path / "hostile.txt"
    header = "*** Sampled system activity (Fri Nov 10 12:37:08 2023 +0100) ({} elapsed) ***\n\n"
    text.write_text(header.format("100ms") + "CPU Power: 500 mW\n"
                    + header.format("100ms") + "CPU Power: " + "9" * 400 + " mW\n"
                    + header.format("9" * 400 + "ms") + "CPU Power: 500 mW\n")
    done = _energyprof("import-powermetrics", str(text), "--db", str(tmp_path / "h.sqlite3"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert (out["windows"], out["samples_skipped"]) == (1, 2) and out["energy_j"]["cpu"] == pytest.approx(0.05)
