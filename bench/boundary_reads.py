"""What reading a counter at every step boundary costs the generation: wall time with boundary reads ÷ without.

Generation on `small` (quick: `tiny`), cpu float32, one torch thread, with the counter source started and its sampler
polling at 100 ms in both variants; the only difference is the token loop's clock: `now_ns` (without) or the engine's
BoundaryClock (with: one read_counter() per step boundary, every reading kept). Variants run interleaved (the order
alternates each round) after a warm-up; each round gives a ratio of wall time and one of process CPU time, and each
row is the median. Sources:

* ioreport over the zeus_apple_silicon stand-in (tests/stand_ins): energyprof's own cost plus the stand-in's; a
  real IOReport sample costs more (~ms on an M1 Ultra, see bench/counter_reads.py) and only a Mac can measure it;
* rapl over a fake powercap tree (4 zone files in a temporary folder), the same file reads as the real sysfs.

The predicted row divides the median cost of one read (bench/counter_reads.py's measurement, repeated here) by the
median decode step: the overhead without the shared machine's noise.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.rows import row

TESTS = Path(__file__).resolve().parents[1] / "tests"
PROMPT = "Energy per token is small, but it adds up over a long generation. " * 2
TARGET = 1.01


@contextmanager
def _ioreport() -> Iterator[Any]:
    sys.path.insert(0, str(TESTS / "stand_ins"))
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FAKE_IOREPORT_")}
    try:
        from energyprof.power.ioreport import IOReportSource

        yield IOReportSource(module=__import__("zeus_apple_silicon"))
    finally:
        os.environ.update(saved)
        sys.modules.pop("zeus_apple_silicon", None)


@contextmanager
def _rapl() -> Iterator[Any]:
    sys.path.insert(0, str(TESTS))
    from fake_powercap import make_zone

    from energyprof.power.rapl import RaplSource

    with tempfile.TemporaryDirectory() as root:
        for zone, name in (("0", "package-0"), ("0:0", "core"), ("0:1", "uncore"), ("0:2", "dram")):
            make_zone(Path(root), zone, name, 1_000_000)
        yield RaplSource(root=root)


def _generate(loaded: Any, prompt_ids: list[int], tokens: int, clock: Callable[[], int]
              ) -> tuple[float, float, list[float]]:
    """(wall s of the generation, process CPU s, its decode step durations in s)."""
    from energyprof.runtimes.transformers.loop import generate
    from energyprof.spec.records import LoopOptions

    cpu = time.process_time()
    gen = generate(loaded.model, loaded.tokenizer, prompt_ids, LoopOptions(max_new_tokens=tokens, ignore_eos=True),
                   loaded.device, clock=clock)
    cpu = time.process_time() - cpu
    t0, t1 = gen.span_ns
    return (t1 - t0) / 1e9, cpu, [(s[3] - s[2]) / 1e9 for s in gen.steps[1:]]


def boundary_overhead(loaded: Any, prompt_ids: list[int], source: Any, tokens: int, rounds: int
                      ) -> dict[str, float]:
    """Median ratios (with ÷ without boundary reads, wall and process CPU), the median read cost (us) and median
    decode step (s)."""
    from bench.counter_reads import per_call_us
    from energyprof.power.base import now_ns
    from energyprof.power.sampler import Sampler
    from energyprof.runner.boundary_reads import BoundaryClock

    with Sampler(source, lambda windows: None, 100):
        for clock in (now_ns, BoundaryClock(source)):
            _generate(loaded, prompt_ids, min(4, tokens), clock)
        ratios, cpu_ratios, steps = [], [], []
        for i in range(rounds):
            wall, cpu = {}, {}
            for variant in (("without", "with") if i % 2 == 0 else ("with", "without")):
                clock = BoundaryClock(source) if variant == "with" else now_ns
                wall[variant], cpu[variant], decode = _generate(loaded, prompt_ids, tokens, clock)
                steps += decode
            ratios.append(wall["with"] / wall["without"])
            cpu_ratios.append(cpu["with"] / cpu["without"])
        read_us = per_call_us(source.read_counter, 2000)
    return {"ratio": statistics.median(ratios), "cpu_ratio": statistics.median(cpu_ratios), "read_us": read_us,
            "step_s": statistics.median(steps)}


def run(quick: bool) -> list[dict[str, Any]]:
    import torch

    from energyprof.runtimes.transformers.models import encode_prompt, load_model

    model, tokens, rounds = ("tiny", 8, 3) if quick else ("small", 32, 9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        loaded = load_model(model, "cpu")
        prompt_ids = encode_prompt(loaded.tokenizer, PROMPT, loaded.kind)
        setup = (f"{model}, cpu float32, 1 torch thread, {tokens} new tokens, sampler at 100 ms in both, median of "
                 f"{rounds} interleaved rounds")
        for name, make in (("ioreport (zeus stand-in)", _ioreport), ("rapl (fake powercap files)", _rapl)):
            with make() as source:
                got = boundary_overhead(loaded, prompt_ids, source, tokens, rounds)
            rows.append(row(f"boundary reads: generation wall time with / without, {name}", got["ratio"], "ratio",
                            setup, at_most=TARGET))
            rows.append(row(f"boundary reads: generation CPU time with / without, {name}", got["cpu_ratio"], "ratio",
                            setup + "; process CPU, steadier than wall time when other processes compete"))
            predicted = 1 + got["read_us"] * 1e-6 / got["step_s"]
            rows.append(row(f"boundary reads: predicted from read cost, {name}", predicted, "ratio",
                            f"{model}: one read of {got['read_us']:.3g} us per {got['step_s'] * 1e3:.1f} ms decode "
                            "step", at_most=TARGET))
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv[1:])))
