"""README's recipe for a runtime, followed: a class implementing `Workload` (energyprof/runtimes/base.py) is all the
engine needs; the real ProfileEngine measures it with the estimate source into a real Store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from profile_helpers import fast_params

from energyprof.runner.engine import ProfileEngine
from energyprof.runtimes.base import Clock, Workload
from energyprof.spec.records import Generation
from energyprof.store import Store
from energyprof.summary import RunSummary

STEP_S = 0.005
PROMPT_TOKENS = 4


class SleepWorkload:
    """A runtime that 'generates' by sleeping 5 ms per step: one prefill step, then one decode step per token."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.layers: list[Any] = []

    def load(self) -> dict[str, Any]:
        return {"model": "sleep", "device": "cpu", "dtype": None}

    def tokens_per_repeat(self) -> int:
        return self.params.max_new_tokens

    def generation(self, repeat: int) -> Generation:
        return Generation(repeat, list(range(PROMPT_TOKENS)))

    def run(self, gen: Any, clock: Clock) -> None:
        t0 = clock()
        for idx in range(self.params.max_new_tokens):
            time.sleep(STEP_S)
            t1 = clock()
            phase, tokens = ("prefill", PROMPT_TOKENS) if idx == 0 else ("decode", 1)
            gen.steps.append((idx, phase, t0, t1, tokens, idx))
            gen.texts.append(f"t{idx}")
            t0 = t1

    def cut_short(self, gen: Any) -> None:
        """Every step is written as it is recorded: nothing to finish."""

    def processes(self) -> set[int]:
        return set()

    def describe(self, summary: RunSummary) -> None:
        summary.model, summary.device, summary.layers = "sleep", "cpu", "none"
        summary.prompt_tokens = PROMPT_TOKENS


def test_a_dummy_runtime_runs_through_the_real_engine(db_path: Path) -> None:
    store = Store(db_path)
    params = fast_params(model="sleep", source="estimate", max_new_tokens=12, repeats=2, warmup=1, baseline_s=0.1,
                         layers="none")
    workload: Workload = SleepWorkload(params)
    run_id = store.create_run("profile", source=params.source, model="sleep", params=params.to_dict())
    summary = ProfileEngine(store, run_id, params, workload=workload).run()
    assert summary.status == "done", summary.error
    run = store.get_run(run_id)
    assert run["status"] == "done" and run["model"] == "sleep"
    decode = RunSummary.from_dict(run["summary"]).j_per_token["decode"]
    assert decode.mean is not None and decode.mean > 0 and decode.n == 2
    assert summary.new_tokens == [12, 12] and summary.text.startswith("t0t1t2")
    assert len(store.steps(run_id)) == 24  # the warm-up is not stored
