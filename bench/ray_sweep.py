"""Ray's cost for a sweep: wall time of a 4-point `tiny` sweep with `--ray local` ÷ the same sweep run here, and the
CPU that Ray's own processes used on the node while the points were measured.

Both sweeps run as `python -m energyprof sweep` processes, as a user starts them, each into a fresh database, in
alternating order over the rounds; the ratio is the median over rounds. The Ray sweep's time includes starting
the local Ray instance (~4 s), one job process per point (each imports torch and loads the model, where the local
sweep loads it once) and bringing each run home as a bundle: the engine's whole overhead, not the measurement's.
Ray's background CPU is read from the runs themselves: every run made on a Ray node records the mean CPU cores of
Ray's processes (raylet, GCS, workers, Ray's services) during its idle baseline and its repeats
(summary.background_cpu ray_baseline / ray_workload, energyprof.runner.background).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.rows import row

SWEEP = ["--model", "tiny", "--batch", "1,2,4,8", "--max-new-tokens", "16", "--ignore-eos", "--source", "estimate",
         "--no-target-ci", "--repeats", "2", "--warmup", "0", "--baseline-s", "0.5", "--layers", "none",
         "--device", "cpu", "--json"]


def _sweep(folder: Path, name: str, ray: bool) -> tuple[float, dict[str, Any]]:
    """(wall s, the --json output) of one sweep process."""
    db = folder / f"{name}.sqlite3"
    command = [sys.executable, "-m", "energyprof", "sweep", *SWEEP, "--db", str(db), "--sweep-id", name]
    if ray:
        command += ["--ray", "local"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    out = json.loads(done.stdout)
    if out.get("status") != "done":
        raise RuntimeError(f"the {'Ray' if ray else 'local'} sweep ended {out.get('status')}: {out.get('error')}")
    return wall, out


def _ray_cpu(db: Path) -> tuple[list[float], list[float]]:
    """Per run of a Ray sweep: Ray's processes' mean CPU cores during the baseline and during the repeats."""
    from energyprof.store import Store

    store = Store(db)
    base, work = [], []
    for run in store.list_runs().to_dict(orient="records"):
        cpu = (run.get("summary") or {}).get("background_cpu") or {}
        if cpu.get("ray_workload") is not None:
            work.append(float(cpu["ray_workload"]))
        if cpu.get("ray_baseline") is not None:
            base.append(float(cpu["ray_baseline"]))
    store.close()
    return base, work


def run(quick: bool = False) -> list[dict[str, Any]]:
    rounds = 1 if quick else 3
    ratios, local_s, ray_s, base, work = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="energyprof-bench-ray-") as tmp:
        folder = Path(tmp)
        for i in range(rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            walls = {}
            for ray in order:
                name = f"{'ray' if ray else 'here'}-{i}"
                walls[ray], _ = _sweep(folder, name, ray)
                if ray:
                    b, w = _ray_cpu(folder / f"{name}.sqlite3")
                    base += b
                    work += w
            local_s.append(walls[False])
            ray_s.append(walls[True])
            ratios.append(walls[True] / walls[False])
    setup = (f"4-point sweep of tiny (batch 1,2,4,8; 16 new tokens; 2 repeats; estimate source; layers none), "
             f"`python -m energyprof sweep` processes, median of {rounds} alternating rounds")
    return [
        row("ray sweep: wall time, --ray local / here", statistics.median(ratios), "ratio",
            f"{setup}; Ray's time includes starting Ray and one job process per point"),
        row("ray sweep: wall time here", statistics.median(local_s), "s", setup),
        row("ray sweep: wall time, --ray local", statistics.median(ray_s), "s", setup),
        row("ray sweep: Ray's processes' CPU during the repeats", statistics.mean(work) if work else float("nan"),
            "cores", f"mean over {len(work)} runs of summary.background_cpu ray_workload (raylet, GCS, workers, "
                     "services), what the disturbed check counts as background on a Ray node"),
        row("ray sweep: Ray's processes' CPU during the idle baseline", statistics.mean(base) if base else float("nan"),
            "cores", f"mean over {len(base)} runs of summary.background_cpu ray_baseline"),
    ]
