"""scripts/mac_check.sh: off a Mac it stops with one sentence; made to believe it runs on one (uname, sysctl and sw_vers
stand-ins on PATH, the zeus-apple-silicon and powermetrics stand-ins), it prints the block to paste into an issue."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mac_check.sh"
STAND_INS = REPO / "tests" / "stand_ins"
FAKE_POWERMETRICS = REPO / "tests" / "fake_powermetrics.py"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(path: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "ENERGYPROF_", "MAC_CHECK_"))}
    return subprocess.run(["bash", str(SCRIPT)], env={**base, "PATH": path, **env}, capture_output=True, text=True,
                          timeout=600, check=False)


def test_off_a_mac_it_says_so_in_one_sentence(tmp_path: Path) -> None:
    _tool(tmp_path, "uname", 'case "$1" in -s) echo Linux;; -m) echo x86_64;; esac')
    done = _run(f"{tmp_path}:/usr/bin:/bin")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == ("mac_check: this is not an Apple Silicon Mac (Linux x86_64): run "
                                   "scripts/mac_check.sh on an M-series Mac (for an NVIDIA GPU, scripts/gpu_check.sh).")


def test_on_a_stand_in_mac_it_prints_one_block_with_every_check(tmp_path: Path) -> None:
    _tool(tmp_path, "uname", 'case "$1" in -s) echo Darwin;; -m) echo arm64;; esac')
    _tool(tmp_path, "sysctl", 'case "$2" in machdep.cpu.brand_string) echo "Apple M4 Max";; hw.model) echo Mac16,9;; '
                              '*) exit 1;; esac')
    _tool(tmp_path, "sw_vers", 'case "$1" in -productVersion) echo 15.1;; -buildVersion) echo 24B83;; esac')
    done = _run(f"{tmp_path}:/usr/bin:/bin", PYTHONPATH=str(STAND_INS), FAKE_IOREPORT_UPDATE_MS="50",
                ENERGYPROF_POWERMETRICS=f"{sys.executable} {FAKE_POWERMETRICS}", MAC_CHECK_TOKENS="3",
                MAC_CHECK_REPEATS="1", MAC_CHECK_PROBE_S="0.5", MAC_CHECK_CROSS_S="1", MAC_CHECK_BASELINE_S="0.3")
    lines = done.stdout.splitlines()
    block = "\n".join(lines)
    assert lines[0] == "energyprof Mac check (scripts/mac_check.sh)", done.stderr
    assert lines[1].startswith("  machine:        Apple M4 Max, Mac16,9, macOS 15.1 (24B83); energyprof ")
    assert lines[2].startswith("  ioreport:       IOReport Energy Model counters, no sudo (cpu, gpu, ane, dram)")
    assert re.search(r"probe \(0\.5 s\): +cpu every (4[5-9]|5[0-5])(\.\d+)? ms in steps >= 200 mJ; gpu every", block)
    assert "  health (probe): cpu ok, gpu ok (not used), ane ok (not used), dram ok" in lines
    assert re.search(r"cross-check: +powermetrics / ioreport over 1\.\d s of one busy core: cpu .* = ratio ", block)
    cpu = lines.index(next(x for x in lines if x.startswith("  CPU load:       run ")))
    assert ", small on cpu (float32), done, " in lines[cpu]
    assert lines[cpu + 1] == "    health:       cpu ok, gpu ok (not used), ane ok (not used), dram ok"
    assert re.match(r"    J/token: +decode \d", lines[cpu + 3]) and "measured:" in lines[cpu + 4]
    power = dict(re.findall(r"(\w+) ([\d.]+) W", lines[cpu + 5]))  # the stand-in's 4 / 8 / 0 / 1.5 W
    assert list(power) == ["cpu", "gpu", "ane", "dram"] and float(power["ane"]) == 0
    # The stand-in publishes every 50 ms, the CPU in steps of 200 mJ: over this sub-second workload one missing or
    # extra publication at either end is up to ~20 % of the mean (a wrong unit or a stalled counter is off by far more).
    for comp, watts in (("cpu", 4.0), ("gpu", 8.0), ("dram", 1.5)):
        assert abs(float(power[comp]) - watts) <= 0.25 * watts, lines[cpu + 5]
    assert "  whole system:   SoC rails: CPU + GPU + ANE + DRAM" in block
    mlx = next(x for x in lines if x.startswith("  GPU load, MLX:"))
    assert "skipped: MLX is" in mlx or ", done, " in mlx
    if sys.platform != "darwin":  # this torch has no MPS: the step fails, says why, and the script exits 1
        assert ("  GPU load, mps:  failed: Device 'mps' is not available here: torch.backends.mps.is_available() is "
                "False; use --device cpu") in lines
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            "mac_check: 1 step(s) failed: energyprof profile --device mps: Device 'mps' is not available here: "
            "torch.backends.mps.is_available() is False; use --device cpu.")
