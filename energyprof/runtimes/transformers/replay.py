"""Measured per-layer energy by replay: each hooked module called alone, in a loop, until the meter can see it.

A 0.3 ms layer call inside a 100 ms sample window can only get a time share of that window. Replay makes the
layer long enough to measure instead (DESIGN.md, "Measured per-layer energy: replay"):

1. **Capture.** After the measured repeats, one more (unmeasured) generation runs with a forward pre-hook
   (`with_kwargs=True`) on every hooked module. At the prefill step and at one decode step (an encoder's one
   forward pass) each module's real args and kwargs are kept, and the state of every KV cache among them is
   snapshotted as it was at that call (`CacheState`: the cache object, its layers, their attributes).
2. **Replay.** Per trial, per phase, per module: restore the cache, warm up (WARMUP_CALLS calls), then call the
   module alone in a synchronised loop (`synchronize` after every call on mps/cuda) for `seconds`. After every
   call the cache is put back as it was (the attention appended one position; it is dropped again), so every
   call sees the same cache length. That restore is measured alone: a loop of restores only, the
   `(cache restore)` reference row of each phase, whose time and energy per restore are subtracted from every
   module whose inputs hold a cache. Trials are interleaved (trial 1 of every module, then trial 2, …) so slow
   drifts (temperature, clocks) spread over the modules instead of biasing one.
3. **Energy.** Each trial is a `ReplayTrial`: [t0, t1] on the job clock, the number of calls and, for a counter
   source, the counter read at both ends. energyprof.analysis.replay_results turns trials into figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from energyprof.errors import ControlFlow, detail
from energyprof.power.base import CounterReading, PowerSource, PowerSourceError, now_ns
from energyprof.power.counter import probe_counter
from energyprof.runtimes.transformers.loop import forward_once, generate
from energyprof.runtimes.transformers.models import synchronize
from energyprof.spec.records import Layer, ReplayOutcome, ReplayTrial
from energyprof.spec.replay_plan import WARMUP_CALLS, default_replay_step, trial_seconds
from energyprof.store.replay import RESTORE_LAYER_ID, RESTORE_NAME

log = logging.getLogger(__name__)


class _CaptureDone(ControlFlow, Exception):
    """Control flow, not an error: raised from a capture hook once every wanted step has been captured, so the
    capture generation stops early."""


# -- cache state ---------------------------------------------------------------------------------------------
def _cache_types() -> tuple[type, ...]:
    """The transformers classes whose objects hold KV-cache state (a Cache and its per-layer objects)."""
    from transformers import cache_utils

    return tuple(t for t in (getattr(cache_utils, "Cache", None), getattr(cache_utils, "CacheLayerMixin", None))
                 if isinstance(t, type))


def _is_cache(value: Any, types: tuple[type, ...]) -> bool:
    return bool(types) and isinstance(value, types)


class CacheState:
    """The attributes of one KV cache and everything stateful inside it (its layers, nested caches), at one moment.

    A dynamic cache layer grows by `torch.cat`, a new tensor each time, so keeping the attribute values (and the
    items of list attributes) is enough to put the cache back exactly; a static layer writes in place at the same
    position on every replayed call, which is idempotent."""

    def __init__(self, cache: Any) -> None:
        types = _cache_types()
        self.cache = cache
        self.objects: list[Any] = []
        self._collect(cache, types, set())
        self.states = [_attributes(o) for o in self.objects]
        self._dirty: list[int] | None = None

    def _collect(self, obj: Any, types: tuple[type, ...], seen: set[int]) -> None:
        if id(obj) in seen or not hasattr(obj, "__dict__"):
            return
        seen.add(id(obj))
        self.objects.append(obj)
        for value in list(vars(obj).values()):
            for item in value if isinstance(value, list | tuple) else (value,):
                if _is_cache(item, types):
                    self._collect(item, types, seen)

    def restore(self) -> None:
        """Put every object back as it was (all of them; see `restore_changed` for the fast path)."""
        for obj, state in zip(self.objects, self.states, strict=True):
            _set_attributes(obj, state)

    def changed(self) -> list[int]:
        """Indices of the objects whose attributes differ from the snapshot."""
        return [i for i, (obj, state) in enumerate(zip(self.objects, self.states, strict=True))
                if not _same(_attributes(obj), state)]

    def learn(self) -> None:
        """Remember which objects the module changes (call right after one call of it): restore only those."""
        self._dirty = self.changed()

    def restore_changed(self) -> None:
        """Put back the objects the module changes (all of them before `learn`)."""
        if self._dirty is None:
            self.restore()
            return
        for i in self._dirty:
            _set_attributes(self.objects[i], self.states[i])

    def seq_length(self) -> int | None:
        """The cache's length now (for checks), when it says."""
        get = getattr(self.cache, "get_seq_length", None)
        try:
            return int(get()) if get is not None else None
        except Exception:  # a cache that cannot say is not an error here
            return None


def _attributes(obj: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """An object's attributes, and a copy of the items of its list attributes (restored in place)."""
    attrs = dict(vars(obj))
    return attrs, {k: list(v) for k, v in attrs.items() if isinstance(v, list)}


def _set_attributes(obj: Any, state: tuple[dict[str, Any], dict[str, list[Any]]]) -> None:
    attrs, lists = state
    current = obj.__dict__
    current.clear()
    current.update(attrs)
    for key, items in lists.items():
        attrs[key][:] = items


def _same(a: tuple[dict[str, Any], dict[str, list[Any]]], b: tuple[dict[str, Any], dict[str, list[Any]]]) -> bool:
    """Same attributes with the same (identical) values, and list attributes with the same items."""
    (attrs_a, lists_a), (attrs_b, lists_b) = a, b
    if attrs_a.keys() != attrs_b.keys() or any(attrs_a[k] is not attrs_b[k] for k in attrs_a):
        return False
    return all(len(lists_a[k]) == len(lists_b[k]) and all(x is y for x, y in zip(lists_a[k], lists_b[k], strict=True))
               for k in lists_a)


def caches_in(args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
    """The KV-cache objects among a call's arguments (each once)."""
    types = _cache_types()
    found: dict[int, Any] = {}
    for value in (*args, *kwargs.values()):
        if _is_cache(value, types):
            found.setdefault(id(value), value)
    return list(found.values())


# -- capture ---------------------------------------------------------------------------------------------------
@dataclass
class Captured:
    """One module's real inputs at one step, and the state of the caches among them at that call."""

    layer: Layer
    phase: str
    step: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    caches: list[CacheState] = field(default_factory=list)

    @property
    def has_cache(self) -> bool:
        return bool(self.caches)

    def restore(self) -> None:
        for cache in self.caches:
            cache.restore_changed()

    def restore_all(self) -> None:
        for cache in self.caches:
            cache.restore()

    def learn(self) -> None:
        for cache in self.caches:
            cache.learn()

    def call(self) -> Any:
        return self.layer.module(*self.args, **self.kwargs)


class Capturer:
    """Stands in for the LayerRecorder in the token loop (it sets `step`, calls `take_calls`) and keeps each hooked
    module's inputs at the wanted steps: step 0 (prefill or forward) and decode steps up to `decode_step` (the last
    one reached wins, so a generation that ends early still gives its last decode step)."""

    def __init__(self, layers: Sequence[Layer], decode_step: int | None, first_phase: str = "prefill") -> None:
        self.layers = [layer for layer in layers if layer.module is not None]
        self.decode_step = decode_step
        self.first_phase = first_phase
        self.step = 0
        self.captured: dict[tuple[int, str], Captured] = {}
        self._handles: list[Any] = []

    def take_calls(self) -> list[Any]:
        return []

    def _phase_of(self, step: int) -> str | None:
        if step == 0:
            return self.first_phase
        if self.decode_step is not None and step <= self.decode_step:
            return "decode"
        return None

    def _hook(self, layer: Layer) -> Callable[..., None]:
        def pre(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            phase = self._phase_of(self.step)
            if phase is None:
                raise _CaptureDone()
            caches = [CacheState(c) for c in caches_in(args, kwargs)]
            self.captured[(layer.layer_id, phase)] = Captured(layer, phase, self.step, tuple(args), dict(kwargs),
                                                              caches)
        return pre

    def __enter__(self) -> Capturer:
        for layer in self.layers:
            self._handles.append(layer.module.register_forward_pre_hook(self._hook(layer), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def capture_inputs(loaded: Any, layers: Sequence[Layer], prompt_ids: list[int], options: Any,
                   decode_step: int | None) -> list[Captured]:
    """Run one unmeasured generation (or forward pass) and return the captured inputs, in layer order per phase."""
    encoder = loaded.kind == "encoder"
    capturer = Capturer(layers, None if encoder else decode_step, "forward" if encoder else "prefill")
    try:
        with capturer:
            if encoder:
                forward_once(loaded.model, prompt_ids, loaded.device, capturer)
            else:
                generate(loaded.model, loaded.tokenizer, prompt_ids, options, loaded.device, capturer)
    except _CaptureDone:
        pass
    order = {layer.layer_id: i for i, layer in enumerate(layers)}
    phases = ("forward", "prefill", "decode")
    return sorted(capturer.captured.values(), key=lambda c: (phases.index(c.phase), order[c.layer.layer_id]))


# -- the loop ----------------------------------------------------------------------------------------------------
def _nothing(*args: Any, **kwargs: Any) -> None:
    """The module call of the cache-restore reference loop."""
    return None


@dataclass
class LoopResult:
    t0_ns: int
    t1_ns: int
    calls: int
    counter0: CounterReading | None
    counter1: CounterReading | None


def timed_loop(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], restore: Callable[[], None],
               seconds: float, device: str, source: PowerSource | None = None) -> LoopResult:
    """Call `call(*args, **kwargs)` then `restore()` until `seconds` have passed (at least once), synchronising the
    device after every call; the loop's ends are read from the counter of a counter source (its reading's time is
    the boundary), else from the job clock."""
    sync = not device.startswith("cpu")
    counter = source if source is not None and source.is_counter else None
    clock = now_ns
    synchronize(device)
    first = _read(counter)
    t0 = first.t_ns if first is not None else clock()
    deadline = t0 + int(seconds * 1e9)
    calls = 0
    while True:
        call(*args, **kwargs)
        restore()
        if sync:
            synchronize(device)
        calls += 1
        if clock() >= deadline:
            break
    synchronize(device)
    last = _read(counter)
    t1 = last.t_ns if last is not None else clock()
    return LoopResult(t0, t1, calls, first, last)


def _read(source: PowerSource | None) -> CounterReading | None:
    if source is None:
        return None
    try:
        return source.read_counter()
    except PowerSourceError:
        return None


def _no_restore() -> None:
    return None


# -- a whole replay ----------------------------------------------------------------------------------------------
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
            with torch.inference_mode():
                try:
                    captured = capture_inputs(self.loaded, self.layers, prompt_ids, options, decode_step)
                except Exception as exc:  # the measured repeats stand; the replay says why it has nothing
                    log.info("replay: capturing the layer inputs failed", exc_info=True)
                    self.outcome.skipped.append(f"No layer could be replayed: capturing their inputs failed with "
                                                f"{type(exc).__name__}: {detail(exc, 200)}.")
                    return self.outcome
                self.outcome.steps = {c.phase: c.step for c in captured}
                log.info("replay: %d module inputs captured at steps %s; %d trials each", len(captured),
                         self.outcome.steps, self.trials)
                for c in captured:
                    self._learn(c)
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

    def _learn(self, c: Captured) -> None:
        """Call the module once from its captured state to learn which cache objects it changes (restored after
        every call from then on); a module that cannot be called alone is skipped."""
        if not c.has_cache:
            return
        try:
            c.restore_all()
            c.call()
            c.learn()
        except Exception as exc:  # skipped, never the whole run
            self._skip(c.layer.layer_id, c.layer.name, c.phase, exc)
        finally:
            c.restore_all()

    def _skip(self, layer_id: int, name: str, phase: str, exc: BaseException) -> None:
        """Leave a module (or the reference) out of the rest of the replay, with one sentence saying why."""
        self._broken.add((layer_id, phase))
        log.info("replay: %s (%s) skipped: %s", name, phase, exc)
        self.outcome.skipped.append(f"{name} ({phase}) could not be replayed alone: {type(exc).__name__}: "
                                    f"{detail(exc, 200)}.")

    def _trial(self, c: Captured, trial: int, *, reference: bool = False) -> None:
        name = RESTORE_NAME if reference else c.layer.name
        layer_id = RESTORE_LAYER_ID if reference else c.layer.layer_id
        self.on_phase(f"replay {name} ({c.phase}) {trial}/{self.trials}")
        call = _nothing if reference else c.layer.module
        restore = c.restore if c.has_cache else _no_restore
        args, kwargs = (c.args, c.kwargs) if not reference else ((), {})
        try:
            self._warm_up(c, call, args, kwargs, restore)
            result = timed_loop(call, args, kwargs, restore, self.seconds, self.loaded.device, self.source)
        except Exception as exc:  # a module that cannot be called alone is skipped, never the whole run
            self._skip(layer_id, name, c.phase, exc)
            return
        finally:
            c.restore_all()
        done = ReplayTrial(layer_id, name, c.phase, c.step, trial, result.t0_ns, result.t1_ns, result.calls,
                           c.has_cache, result.counter0, result.counter1)
        self.outcome.trials.append(done)
        self.on_trial(done)

    def _warm_up(self, c: Captured, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 restore: Callable[[], None]) -> None:
        """Put the cache back and call a few times (warm caches, lazy initialisation), outside the measured loop."""
        c.restore_all()
        for _ in range(WARMUP_CALLS):
            call(*args, **kwargs)
            restore()
        synchronize(self.loaded.device)


def replay_step_of(params: Any) -> int | None:
    """The decode step to replay: the parameter, else the middle decode step."""
    return params.replay_step if params.replay_step is not None else default_replay_step(params.max_new_tokens)


COUNTER_PROBE_S = 2.5
"""How long a counter source is probed for its update period before a replay whose trial length is automatic
(long enough to time a counter that publishes about once a second, as IOReport's CPU channels do)."""


def replay_seconds(replay_s: float | None, source: PowerSource | None, interval_ms: float | None,
                   on_phase: Callable[[str], None] | None = None) -> float:
    """Seconds per trial: replay_s when set; else 10 sample windows or, for a counter source, 10 updates of its
    counter (probed now), at least 1 s (energyprof.spec.replay_plan.trial_seconds)."""
    if replay_s:
        log.info("replay: %g s per trial (--replay-s)", replay_s)
        return float(replay_s)
    period = None
    if source is not None and source.is_counter:
        if on_phase is not None:
            on_phase("replay: timing the energy counter")
        try:
            period = probe_counter(source, COUNTER_PROBE_S).update_period_s
        except PowerSourceError as exc:
            log.info("replay: the counter could not be timed (%s)", exc)
            period = None
    seconds = trial_seconds(None, interval_ms, period)
    log.info("replay: %g s per trial (sample interval %s ms, counter update period %s s)", seconds, interval_ms,
             period)
    return seconds
