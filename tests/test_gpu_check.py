"""scripts/gpu_check.sh on this machine (no GPU): it stops with one clear sentence, never with a made-up result."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _run(path: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "ENERGYPROF_"))}
    return subprocess.run(["bash", str(SCRIPT)], env={**base, "PATH": path, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


def test_without_a_gpu_it_says_so_and_fails() -> None:
    done = _run("/usr/bin:/bin")  # no nvidia-smi on this machine
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().endswith("there is no nvidia-smi here, so no NVIDIA driver: run this script on a "
                                        "machine with an NVIDIA GPU.")


def test_with_a_stand_in_driver_it_stops_where_torch_has_no_cuda(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA Stand-in GPU, 550.54, 81559 MiB'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    done = _run(f"{tmp_path}:/usr/bin:/bin", PYTHONPATH=str(REPO / "tests" / "stand_ins_gpu"))
    assert done.returncode == 1 and done.stdout == ""  # nothing printed as a result
    lines = done.stderr.strip().splitlines()
    assert "gpu_check: energyprof doctor ..." in lines and "gpu_check: energyprof sample --source nvml ..." in lines
    assert lines[-1].startswith("gpu_check: energyprof profile --device cuda --source nvml failed: ")
    assert "torch.cuda.is_available() is False" in lines[-1]
