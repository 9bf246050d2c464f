"""Replay (measured per-layer energy): what one layer's trial costs in wall time, and how steady its figure is.

A real profiling run (the engine, a temporary database) of `small` (quick: `tiny`) at `blocks` depth on one torch
thread (as the overhead bench: on a shared 2-core machine a second thread waits for the busier core), with the
estimate source at its 100 ms windows, `layer_energy=replay` with the automatic trial length (10 windows: 1 s)
and 3 trials. Rows: the replay's wall time per loop (each layer and phase once, plus the cache-restore
references) and that over the asked trial length (capture, warm-up calls and progress writes are the rest); the
median and worst coefficient of variation (CV) over the trials of the energy per call, and of the power while
replayed (energy per call = power × time per call: on a machine other jobs share, the time per call is what
varies); how many figures have a 95 % CI wider than their mean (flagged); the replay closure per phase. The
estimate models CPU utilisation, so its CV says how steady replay is on this machine, not how steady a meter is.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.rows import row


def replay_run(model: str, replay_s: float | None, trials: int) -> tuple[Any, Any, list[float]]:
    """(summary, layer_replay frame, CV of the power over trials per layer and phase) of one replay run."""
    import torch

    from energyprof.runner.job import profile_foreground
    from energyprof.spec.params import ProfileParams
    from energyprof.store import Store

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite3")
        params = ProfileParams(model=model, prompt="Energy per token is small, but it adds up.", max_new_tokens=16,
                               ignore_eos=True, device="cpu", source="estimate", layers="blocks", repeats=2,
                               warmup=1, baseline_s=2.0, layer_energy="replay", replay_s=replay_s,
                               replay_trials=trials)
        try:
            summary = profile_foreground(store, params)
        finally:
            torch.set_num_threads(threads)
        frame = store.layer_replay(summary.run_id)
        trials = store.replay_trials(summary.run_id)
        store.close()
    trials = trials[trials["kind"] != "restore"]
    power = trials["energy_j"] / ((trials["t1_ns"] - trials["t0_ns"]) / 1e9)
    groups = power.groupby([trials["layer"], trials["phase"]])
    power_cv = [float(g.std(ddof=1) / g.mean()) for _, g in groups if len(g.dropna()) > 1 and g.mean()]
    return summary, frame, power_cv


def run(quick: bool = False) -> list[dict[str, Any]]:
    model, replay_s, trials = ("tiny", 0.2, 2) if quick else ("small", None, 3)
    summary, frame, power_cv = replay_run(model, replay_s, trials)
    if summary.status != "done":
        print(f"[bench] replay run {summary.status}: {summary.error}", file=sys.stderr)
        return []
    loops = int((frame["trials"]).sum())
    per_loop = summary.replay_wall_s / max(1, loops)
    layers = frame[frame["kind"] != "restore"]
    cvs = [c for c in layers["cv"] if c == c]
    setup = (f"{model}, blocks depth, cpu, estimate source at 100 ms, {trials} trials x {summary.replay_s:g} s "
             f"({'automatic: 10 windows' if replay_s is None else 'set'}), {len(layers)} layer x phase figures, "
             f"{loops} loops in {summary.replay_wall_s:.1f} s; load average {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} CPUs")
    rows = [
        row("replay: wall time per layer per trial", per_loop, "s", setup),
        row("replay: wall time per trial / trial length", per_loop / summary.replay_s, "ratio", setup, at_most=1.1),
    ]
    if cvs:
        rows.append(row("replay: median CV of energy per call over trials", statistics.median(cvs), "ratio", setup))
        rows.append(row("replay: worst CV of energy per call over trials", max(cvs), "ratio", setup))
    if power_cv:
        rows.append(row("replay: median CV of power while replayed over trials", statistics.median(power_cv), "ratio",
                        setup))
    rows.append(row("replay: figures with a 95% CI wider than their mean", float(summary.replay_flagged), "figures",
                    setup))
    for phase, ratio in summary.replay_closure.items():
        if ratio is not None:
            rows.append(row(f"replay closure, {phase} (replayed top-level layers / measured step)", ratio, "ratio",
                            setup))
    return rows
