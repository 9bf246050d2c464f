"""Measured per-layer energy by replay for MLX models: each hooked module called alone, its output evaluated every
call, in a loop until the meter can see it (the same plan and records as energyprof.runtimes.transformers.replay).

1. **Capture.** After the measured repeats, one more (unmeasured) generation runs with every hooked module's class
   swapped (energyprof.runtimes.mlx.hooks.ClassSwap) for one that keeps the module's real inputs at the first prefill
   step and at one decode step: the hidden state and the mask (evaluated), and the state of the mlx-lm KV cache it
   was given (its attributes: keys, values, offset).
2. **Replay.** Per trial, per phase, per module: put the cache back, warm up, then call the module alone and
   evaluate its output (`mx.eval`) in a loop for `seconds`. The attention appends its new keys to the cache at every
   call; the cache's captured attributes are put back after every call (for mlx-lm's KVCache: `offset`, as `trim`
   does, so the appended position is dropped again), so every call sees the same cache length. That
   restore is measured alone (the `(cache restore)` reference row of each phase) and subtracted. Trials are
   interleaved across modules, as for transformers.
3. **Energy.** Each trial is a `ReplayTrial`; energyprof.analysis.replay_results turns them into figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx

from energyprof.errors import ControlFlow, detail
from energyprof.power.base import CounterReading, PowerSource, PowerSourceError, now_ns
from energyprof.runtimes.mlx.hooks import ClassSwap
from energyprof.runtimes.mlx.loop import PREFILL_STEP, generate
from energyprof.spec.records import Layer, ReplayOutcome, ReplayTrial
from energyprof.spec.replay_plan import WARMUP_CALLS
from energyprof.store.replay import RESTORE_LAYER_ID, RESTORE_NAME


class _CaptureDone(ControlFlow, Exception):
    """Control flow, not an error: raised inside the capture generation once every wanted step is captured."""


class CacheState:
    """One mlx-lm cache as it was when a module was called: its attributes (the arrays evaluated).

    Putting the attributes back is exact: for mlx-lm's KVCache it sets `offset` back (what `trim` does, so the
    position the call appended is dropped) and, when the call had to grow the buffer, rebinds the captured one; the
    call's in-place write lands beyond the offset, where nothing reads it."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.state = dict(vars(cache))
        mx.eval(list(self.state.values()))

    def restore(self) -> None:
        """Put every attribute back as it was captured."""
        current = self.cache.__dict__
        current.clear()
        current.update(self.state)


def caches_in(args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
    """The mlx-lm cache objects among a call's arguments (each once)."""
    from mlx_lm.models.cache import _BaseCache

    found: dict[int, Any] = {}
    for value in (*args, *kwargs.values()):
        if isinstance(value, _BaseCache):
            found.setdefault(id(value), value)
    return list(found.values())


@dataclass
class Captured:
    """One module's real inputs at one step, the method it was called through, and the caches among the inputs."""

    layer: Layer
    phase: str
    step: int
    method: Callable[..., Any]
    target: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    caches: list[CacheState] = field(default_factory=list)

    @property
    def has_cache(self) -> bool:
        return bool(self.caches)

    def call(self) -> Any:
        return self.method(self.target, *self.args, **self.kwargs)

    def restore(self) -> None:
        for cache in self.caches:
            cache.restore()


class Capturer:
    """Stands in for the LayerTimer in the token loop and keeps each hooked module's inputs at step 0 (the first
    prefill step) and at decode steps up to `decode_idx` (the last one reached wins)."""

    hooked = True

    def __init__(self, layers: Sequence[Layer], first_decode_idx: int, decode_idx: int | None) -> None:
        self.layers = {layer.layer_id: layer for layer in layers if layer.module is not None}
        self.first_decode_idx = first_decode_idx
        self.decode_idx = decode_idx
        self.step = 0
        self.captured: dict[tuple[int, str], Captured] = {}

    def _phase_of(self, step: int) -> str | None:
        if step == 0:
            return "prefill"
        if step < self.first_decode_idx:
            return ""
        if self.decode_idx is not None and step <= self.decode_idx:
            return "decode"
        return None

    def around(self, layer_id: int, method: Callable[..., Any], target: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        phase = self._phase_of(self.step)
        if phase is None:
            raise _CaptureDone()
        if phase:
            mx.eval(args, kwargs)
            caches = [CacheState(c) for c in caches_in(args, kwargs)]
            self.captured[(layer_id, phase)] = Captured(self.layers[layer_id], phase, self.step, method, target,
                                                        tuple(args), dict(kwargs), caches)
        return method(target, *args, **kwargs)


def first_decode_idx(prompt_tokens: int) -> int:
    """The step index of the first decode step: after the prefill chunks and the last prompt token's step."""
    chunks = -(-max(0, prompt_tokens - 1) // PREFILL_STEP)
    return chunks + 1


def capture_inputs(loaded: Any, layers: Sequence[Layer], prompt_ids: list[int], options: Any,
                   decode_step: int | None) -> list[Captured]:
    """Run one unmeasured generation and return the captured inputs, in layer order per phase (`decode_step`: the
    decode token, counted from 1, as --replay-step)."""
    first = first_decode_idx(len(prompt_ids))
    capturer = Capturer(layers, first, None if decode_step is None else first + decode_step - 1)
    swap = ClassSwap(list(layers), capturer.around)
    try:
        with swap:
            generate(loaded, prompt_ids, options, capturer)
    except _CaptureDone:
        pass
    order = {layer.layer_id: i for i, layer in enumerate(layers)}
    phases = ("prefill", "decode")
    return sorted(capturer.captured.values(), key=lambda c: (phases.index(c.phase), order[c.layer.layer_id]))


@dataclass
class LoopResult:
    t0_ns: int
    t1_ns: int
    calls: int
    counter0: CounterReading | None
    counter1: CounterReading | None


def timed_loop(call: Callable[[], Any], restore: Callable[[], None], seconds: float,
               source: PowerSource | None = None) -> LoopResult:
    """`call()`, evaluate its output, `restore()`, until `seconds` have passed (at least once); the loop's ends are
    read from the counter of a counter source (its reading's time is the boundary), else from the job clock."""
    counter = source if source is not None and source.is_counter else None
    first = _read(counter)
    t0 = first.t_ns if first is not None else now_ns()
    deadline = t0 + int(seconds * 1e9)
    calls = 0
    while True:
        mx.eval(call())
        restore()
        calls += 1
        if time.perf_counter_ns() >= deadline:
            break
    last = _read(counter)
    t1 = last.t_ns if last is not None else now_ns()
    return LoopResult(t0, t1, calls, first, last)


def _read(source: PowerSource | None) -> CounterReading | None:
    if source is None:
        return None
    try:
        return source.read_counter()
    except PowerSourceError:
        return None


def _nothing() -> None:
    """The module call of the cache-restore reference loop."""
    return None


class Replayer:
    """Captures inputs, then runs the interleaved trials; `on_phase(text)` is told which loop runs, `on_trial(trial)`
    gets every finished trial (a cancelled replay keeps those)."""

    def __init__(self, loaded: Any, layers: Sequence[Layer], *, seconds: float, trials: int,
                 source: PowerSource | None = None, on_phase: Callable[[str], None] | None = None,
                 on_trial: Callable[[ReplayTrial], None] | None = None) -> None:
        self.loaded, self.layers = loaded, list(layers)
        self.seconds, self.trials = seconds, trials
        self.source = source
        self.on_phase = on_phase or (lambda text: None)
        self.on_trial = on_trial or (lambda trial: None)
        self.outcome = ReplayOutcome(seconds_per_trial=seconds)
        self._broken: set[tuple[int, str]] = set()

    def run(self, prompt_ids: list[int], options: Any, decode_step: int | None) -> ReplayOutcome:
        """Capture, then replay every captured module `trials` times; returns (and keeps) the outcome."""
        self.outcome.started_ns = now_ns()
        try:
            self.on_phase("replay: capturing layer inputs")
            try:
                captured = capture_inputs(self.loaded, self.layers, prompt_ids, options, decode_step)
            except Exception as exc:  # the measured repeats stand; the replay says why it has nothing
                self.outcome.skipped.append(f"No layer could be replayed: capturing their inputs failed with "
                                            f"{type(exc).__name__}: {detail(exc, 200)}.")
                return self.outcome
            self.outcome.steps = {c.phase: c.step for c in captured}
            for trial in range(1, self.trials + 1):
                for phase in dict.fromkeys(c.phase for c in captured):
                    self._phase_trial([c for c in captured if c.phase == phase], trial)
        finally:
            self.outcome.ended_ns = now_ns()
        return self.outcome

    def _phase_trial(self, captured: list[Captured], trial: int) -> None:
        """One trial of the cache-restore reference (when the phase has a cache) and of every module."""
        with_cache = next((c for c in captured if c.has_cache), None)
        if with_cache is not None and (RESTORE_LAYER_ID, with_cache.phase) not in self._broken:
            self._trial(with_cache, trial, reference=True)
        for c in captured:
            if (c.layer.layer_id, c.phase) not in self._broken:
                self._trial(c, trial)

    def _trial(self, c: Captured, trial: int, *, reference: bool = False) -> None:
        name = RESTORE_NAME if reference else c.layer.name
        layer_id = RESTORE_LAYER_ID if reference else c.layer.layer_id
        self.on_phase(f"replay {name} ({c.phase}) {trial}/{self.trials}")
        call = _nothing if reference else c.call
        try:
            c.restore()
            for _ in range(WARMUP_CALLS):
                mx.eval(call())
                c.restore()
            result = timed_loop(call, c.restore, self.seconds, self.source)
        except Exception as exc:  # a module that cannot be called alone is skipped, never the whole run
            self._broken.add((layer_id, c.phase))
            self.outcome.skipped.append(f"{name} ({c.phase}) could not be replayed alone: {type(exc).__name__}: "
                                        f"{detail(exc, 200)}.")
            return
        finally:
            c.restore()
        done = ReplayTrial(layer_id, name, c.phase, c.step, trial, result.t0_ns, result.t1_ns, result.calls,
                           c.has_cache, result.counter0, result.counter1)
        self.outcome.trials.append(done)
        self.on_trial(done)
