"""Runs for the sharing tests (flow, report, CodeCarbon, read-only): a real profile of the tiny built-in model whose
name and prompt are hostile text, written by `profile_generation` in this process (estimate source, layers down to
attention and MLP, an idle baseline, two repeats), and helpers to make a run look as if another machine made it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from energyprof.machine import Machine
from energyprof.store import Store
from energyprof.summary import RunSummary

HOSTILE_PROMPT = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> **bold** '
                  '[link](http://hostile.invalid/p) =HYPERLINK("http://hostile.invalid/f","click")')
HOSTILE_NAME = '<img src="http://hostile.invalid/n.png" onerror="window.__pwned = 3">=cmd|calc'
HOSTILE_TOKENS = ["<b>bold</b>", " <script>window.__pwned = 4</script>", " **md**", " =SUM(A1)", " &amp;", "\n"]
M4_MAX = Machine(machine_id="0123456789abcdef", label="Apple M4 Max · 16 cores · 64 GB", chip="Apple M4 Max",
                 hw_model="Mac16,5", cpu_model="Apple M4 Max", arch="arm64", cores_physical=16, cores_logical=16,
                 memory_gb=64.0, os_name="macOS", os_version="15.2", os_build="24C101", python_version="3.12.8",
                 packages={"torch": "2.13.0", "transformers": "5.24.0", "mlx": "0.32.4", "mlx-lm": "0.32.2",
                           "zeus-apple-silicon": "1.1.0", "energyprof": "0.1.0"},
                 power_source="ioreport", power_measured=True,
                 power_scope="Apple SoC energy model: CPU, GPU, ANE and DRAM rails (not display, SSD or fans)",
                 counter_update_period_s=0.0012, counter_quantum_mj=1.0)
"""A Mac that did not make any run here: a run given it reads as made elsewhere (as an imported bundle's would)."""


def hostile_profile(db: Path, **options: Any) -> int:
    """A real profile run (tiny model, estimate source) with a hostile model name and prompt; its run id."""
    import energyprof
    from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer

    settings = {"max_new_tokens": 6, "source": "estimate", "interval_ms": 20, "layers": "modules", "baseline_s": 0.2,
                "repeats": 2, "ignore_eos": True, **options}
    summary = energyprof.profile_generation(build_builtin("tiny"), builtin_tokenizer(), HOSTILE_PROMPT,
                                            name=HOSTILE_NAME, db=str(db), **settings)
    assert summary.status == "done", summary.error
    return int(summary.run_id)


def made_elsewhere(store: Store, run_id: int, machine: Machine = M4_MAX) -> None:
    """Give a finished run another machine (as a bundle from that machine would bring it)."""
    run = store.get_run(run_id)
    summary = dataclasses.replace(RunSummary.from_dict(run["summary"]), machine=machine)
    store.update_run(run_id, summary=summary.to_dict(), machine_id=machine.machine_id, machine_label=machine.label)
