"""Profiling overhead: generation wall time with layer hooks ÷ without, and the sampler's own CPU use.

Ratios: generation on `small` (quick: `tiny`) with the token loop alone, with hooks at `blocks` and at
`modules`, run interleaved (the order rotates each round) after a warm-up, on one torch thread (on a shared
2-core machine two threads make every op wait for the busier core); each round gives a ratio to that
round's unhooked run in wall time and in process CPU time (steadier when other processes compete), and
the row is the median ratio. The CPU cost of one hooked call is measured on identity modules.

Profiler CPU: a Sampler runs the estimate source at 100 ms with the job's buffering callback; the sampler
thread's CPU time (time.thread_time in that thread) and the window writer's (the job's Monitor thread,
flushing to SQLite every 0.5 s) are divided by the wall time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.rows import row

PROMPT = "Energy per token is small, but it adds up over a long generation. " * 2


def _generation(loaded: Any, prompt_ids: list[int], depth: str, new_tokens: int) -> tuple[float, float]:
    """(wall s, process CPU s) of one generation (first step start to last step end), hooked at this depth."""
    from energyprof.runtimes.transformers.hooks import LayerRecorder
    from energyprof.runtimes.transformers.loop import generate
    from energyprof.spec.records import LoopOptions

    options = LoopOptions(max_new_tokens=new_tokens, ignore_eos=True)
    recorder = LayerRecorder(loaded.model, depth, loaded.device) if depth != "none" else None
    cpu = time.process_time()
    if recorder is None:
        gen = generate(loaded.model, loaded.tokenizer, prompt_ids, options, loaded.device)
    else:
        with recorder:
            gen = generate(loaded.model, loaded.tokenizer, prompt_ids, options, loaded.device, recorder)
    cpu = time.process_time() - cpu
    t0, t1 = gen.span_ns
    return (t1 - t0) / 1e9, cpu


def hook_overhead(model: str, new_tokens: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median over interleaved rounds of hooked ÷ unhooked generation, in wall and CPU time, per depth."""
    from energyprof.runtimes.transformers.hooks import find_layers
    from energyprof.runtimes.transformers.models import encode_prompt, load_model

    loaded = load_model(model, "cpu")
    prompt_ids = encode_prompt(loaded.tokenizer, PROMPT, loaded.kind)
    depths = ("none", "blocks", "modules")
    for depth in depths:
        _generation(loaded, prompt_ids, depth, min(4, new_tokens))
    ratios: dict[str, dict[str, list[float]]] = {d: {"wall": [], "cpu": []} for d in depths[1:]}
    step_cpu: list[float] = []
    for i in range(rounds):
        order = depths[i % 3:] + depths[:i % 3]
        times = {depth: _generation(loaded, prompt_ids, depth, new_tokens) for depth in order}
        step_cpu.append(times["none"][1] / new_tokens)
        for depth, values in ratios.items():
            values["wall"].append(times[depth][0] / times["none"][0])
            values["cpu"].append(times[depth][1] / times["none"][1])
    out = {d: {k: statistics.median(v) for k, v in values.items()} for d, values in ratios.items()}
    for depth in depths[1:]:
        out[depth]["calls_per_step"] = sum(1 for layer in find_layers(loaded.model, depth) if layer.module is not None)
        out[depth]["step_cpu_s"] = statistics.median(step_cpu)
    return out


def hook_cost_us(calls: int = 20_000) -> float:
    """Extra CPU microseconds per hooked module call (pre + post hook and the record), on identity modules."""
    import torch
    from torch import nn

    from energyprof.runtimes.transformers.hooks import LayerRecorder

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Identity() for _ in range(10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)
            return x

    model, x = Chain(), torch.zeros(1)

    def per_call() -> float:
        started = time.process_time()
        for _ in range(calls // 10):
            model(x)
        return (time.process_time() - started) / calls * 1e6

    plain = min(per_call() for _ in range(3))
    with LayerRecorder(model, "blocks"):
        hooked = min(per_call() for _ in range(3))
    return hooked - plain


def sampler_cpu(seconds: float, interval_ms: int = 100) -> tuple[float, float]:
    """(sampler thread, window-writer thread) CPU seconds per wall second, estimate source at interval_ms."""
    import psutil

    from energyprof.power.estimate import EstimateSource
    from energyprof.power.sampler import Sampler
    from energyprof.runner.monitor import Monitor
    from energyprof.store import Store

    class TimedEstimate(EstimateSource):
        cpu_s = 0.0

        def read(self, timeout_s: float) -> list:
            windows = super().read(timeout_s)
            self.cpu_s = time.thread_time()
            return windows

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite3")
        run_id = store.create_run("sample")
        monitor = Monitor(store, run_id, lambda: (0.0, 0))
        source = TimedEstimate()
        sampler = Sampler(source, monitor.add, interval_ms)
        monitor.start()
        sampler.start()
        started = time.perf_counter()
        time.sleep(seconds)
        writer_s = _thread_cpu_s(psutil.Process(), monitor._thread)
        wall = time.perf_counter() - started
        sampler.stop()
        monitor.stop()
        store.close()
    return source.cpu_s / wall, writer_s / wall


def _thread_cpu_s(process: Any, thread: threading.Thread) -> float:
    """User + system CPU seconds of one thread of this process (psutil, by native thread id)."""
    for info in process.threads():
        if info.id == thread.native_id:
            return info.user_time + info.system_time
    return 0.0


def run(quick: bool) -> list[dict[str, Any]]:
    import torch

    model, tokens, rounds = ("tiny", 8, 3) if quick else ("small", 32, 9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ratios = hook_overhead(model, tokens, rounds)
        cost = hook_cost_us()
    finally:
        torch.set_num_threads(threads)
    setup = (f"{model}, cpu float32, 1 torch thread, {len(PROMPT)}-byte prompt, {tokens} new tokens, "
             f"median of {rounds} interleaved rounds")
    seconds = 2.0 if quick else 20.0
    sampler_share, writer_share = sampler_cpu(seconds)
    cpu_setup = f"estimate source at 100 ms for {seconds:g} s, windows buffered and flushed to SQLite every 0.5 s"
    return [
        row("overhead: generation wall time, layers=blocks / none", ratios["blocks"]["wall"], "ratio", setup,
            at_most=1.03),
        row("overhead: generation wall time, layers=modules / none", ratios["modules"]["wall"], "ratio", setup,
            at_most=1.10),
        row("overhead: generation CPU time, layers=blocks / none", ratios["blocks"]["cpu"], "ratio", setup),
        row("overhead: generation CPU time, layers=modules / none", ratios["modules"]["cpu"], "ratio", setup),
        row("overhead: CPU cost per hooked module call", cost, "us", "identity modules, pre + post hook + record"),
        *(_predicted(depth, ratios[depth], cost, model, target) for depth, target in (("blocks", 1.03),
                                                                                       ("modules", 1.10))),
        row("overhead: sampler thread CPU per wall second", sampler_share, "cores", cpu_setup, at_most=0.01),
        row("overhead: window-writer thread CPU per wall second", writer_share, "cores", cpu_setup),
    ]


def _predicted(depth: str, measured: dict[str, float], cost_us: float, model: str, target: float) -> dict[str, Any]:
    """1 + hook cost x hooked calls per step / unhooked step CPU time: the overhead without the machine's noise."""
    calls, step_s = measured["calls_per_step"], measured["step_cpu_s"]
    value = 1 + cost_us * 1e-6 * calls / step_s
    setup = f"{model}: {calls:g} hooked calls per step x {cost_us:.2f} us / {step_s * 1e3:.1f} ms per decode step (CPU)"
    return row(f"overhead: predicted from hook cost, layers={depth} / none", value, "ratio", setup, at_most=target)


if __name__ == "__main__":
    from bench.__main__ import format_table

    results = run(quick="--quick" in sys.argv[1:])
    print(format_table(results))
