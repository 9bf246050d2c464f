"""The profiling job: the one code path behind `energyprof profile`, `energyprof job` and profile_generation().

Flow of one run: claim the run row; start the power sampler (its windows are flushed to the store every
~0.5 s, and a heartbeat is written every ~2 s, from a monitor thread); `loading` (the model); `baseline`
(idle, model loaded); `warm-up` (not stored); `repeat i of R` (steps stored after each repeat);
`attributing` (wait for the window covering the end, stop the sampler, attribute energy to steps, layer
calls and `other`, write everything in batches). A SIGTERM (or Ctrl-C) ends the run as `cancelled`, any
error as `failed` with one sentence for people; the power source is always stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from energyprof.power.base import PowerSource, PowerSourceError, PowerWindow, now_ns
from energyprof.power.sampler import Sampler
from energyprof.store import Store
from energyprof.store.writer import WindowWriter

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog."
MAX_PROMPT_CHARS = 100_000
MAX_NEW_TOKENS = 100_000
MAX_REPEATS = 1000
MAX_WARMUP = 100
MAX_BASELINE_S = 600.0
INTERVAL_MS_RANGE = (10, 9_999)
"""Sampling intervals accepted everywhere (the powermetrics sudo rule allows exactly 10-9999 ms)."""
MAX_TEMPERATURE = 100.0
MAX_SEED = 2**63 - 1
LAYER_DEPTHS = ("none", "blocks", "modules")
DTYPE_NAMES = ("float32", "float16", "bfloat16")
DEVICE_NAMES = ("auto", "cpu", "mps", "cuda")

FLUSH_EVERY_S = 0.5
HEARTBEAT_EVERY_S = 2.0
LAST_WINDOW_WAIT_S = 2.0
"""Longest wait (beyond 3 sampling intervals) for the window that covers the end of the workload."""
CALL_ROWS_PER_BATCH = 100_000


class JobCancelled(BaseException):
    """Raised in the job's main thread when it is asked to stop (SIGTERM); a BaseException so no
    `except Exception` in model code swallows it."""


class JobError(RuntimeError):
    """The job cannot start (no such run, not queued); the message is one sentence for people."""


@dataclass
class ProfileParams:
    """Everything a profiling run needs; stored as the run's params JSON."""

    model: str = "tiny"
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 32
    ignore_eos: bool = False
    device: str = "auto"
    dtype: str = "float32"
    source: str = "auto"
    interval_ms: int | None = None
    layers: str = "blocks"
    repeats: int = 3
    warmup: int = 1
    baseline_s: float = 2.0
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    trust_remote_code: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileParams:
        """Parameters from a run's params JSON; unknown keys are ignored, values are coerced to each field's type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in (data or {}).items():
            if key in fields:
                values[key] = _coerce(key, value, fields[key].type)
        return cls(**values)

    def errors(self, *, check_model: bool = True) -> list[str]:
        """Every problem with these parameters, each one sentence saying what to change."""
        problems = []
        if check_model and not str(self.model).strip():
            problems.append("The model name is empty; give a built-in name (tiny, small, medium), a folder or a "
                            "Hugging Face id.")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            problems.append("The prompt is empty; give some text to profile.")
        elif len(self.prompt) > MAX_PROMPT_CHARS:
            problems.append(f"The prompt has {len(self.prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
        problems += _range_errors(self)
        if self.layers not in LAYER_DEPTHS:
            problems.append(f"Unknown layer depth {self.layers!r}; use one of {', '.join(LAYER_DEPTHS)}.")
        if check_model and self.dtype not in DTYPE_NAMES:
            problems.append(f"Unknown dtype {self.dtype!r}; use one of {', '.join(DTYPE_NAMES)}.")
        if check_model and str(self.device).split(":", 1)[0] not in DEVICE_NAMES:
            problems.append(f"Unknown device {self.device!r}; use one of {', '.join(DEVICE_NAMES)}.")
        problems += _source_errors(self.source)
        return problems

    def validate(self, *, check_model: bool = True) -> None:
        """Raise ValueError with the first problem, if any."""
        problems = self.errors(check_model=check_model)
        if problems:
            raise ValueError(problems[0])

    def loop_options(self) -> Any:
        from energyprof.profile.loop import LoopOptions

        return LoopOptions(self.max_new_tokens, self.ignore_eos, self.temperature, self.top_p, self.seed)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """A JSON value as the field's type (an integral float becomes an int; strings stay strings)."""
    text = str(annotation)
    if value is None:
        return None
    if text.startswith("int") and isinstance(value, float) and value.is_integer():
        return int(value)
    if text.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if text == "bool" and not isinstance(value, bool):
        raise ValueError(f"The parameter {key} must be true or false, not {value!r}.")
    return value


def _range_errors(p: ProfileParams) -> list[str]:
    """Problems with the numeric parameters."""
    checks: list[tuple[str, Any, float, float, type]] = [
        ("max_new_tokens", p.max_new_tokens, 1, MAX_NEW_TOKENS, int),
        ("repeats", p.repeats, 1, MAX_REPEATS, int),
        ("warmup", p.warmup, 0, MAX_WARMUP, int),
        ("baseline_s", p.baseline_s, 0, MAX_BASELINE_S, float),
        ("temperature", p.temperature, 0, MAX_TEMPERATURE, float),
        ("top_p", p.top_p, 0, 1, float),
        ("seed", p.seed, 0, MAX_SEED, int),
    ]
    if p.interval_ms is not None:
        checks.append(("interval_ms", p.interval_ms, *INTERVAL_MS_RANGE, int))
    problems = []
    for name, value, lo, hi, kind in checks:
        if not _is_number(value, kind) or not lo <= value <= hi:
            what = "a whole number" if kind is int else "a number"
            problems.append(f"{name} must be {what} from {lo:g} to {hi:g}, not {value!r}.")
    if _is_number(p.top_p, float) and p.top_p == 0:
        problems.append("top_p must be above 0 (1 keeps every token).")
    return problems


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def _source_errors(source: str) -> list[str]:
    from energyprof.power.registry import AUTO, SOURCE_NAMES

    if source in (AUTO, *SOURCE_NAMES):
        return []
    return [f"Unknown power source {source!r}; use one of {', '.join((AUTO, *SOURCE_NAMES))}."]


class CancelSwitch:
    """Turns a signal into JobCancelled in the main thread, only while armed and outside store writes."""

    def __init__(self) -> None:
        self.armed = False
        self.requested = False

    def trigger(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Signal handler: remember the request; raise JobCancelled when armed."""
        self.requested = True
        if self.armed:
            self.armed = False
            raise JobCancelled()

    def arm(self) -> None:
        self.armed = True
        if self.requested:
            self.armed = False
            raise JobCancelled()

    def disarm(self) -> None:
        self.armed = False

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """No cancellation inside the block (a store write); a request made meanwhile is raised after it."""
        was = self.armed
        self.armed = False
        try:
            yield
        finally:
            if was:
                self.arm()


@contextmanager
def cancel_on_signals(switch: CancelSwitch, signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[CancelSwitch]:
    """Route these signals to the switch while the block runs (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield switch
        return
    previous = {sig: signal.signal(sig, switch.trigger) for sig in signals}
    try:
        yield switch
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Monitor:
    """A thread that flushes buffered power windows (~0.5 s) and writes heartbeats (~2 s) for one run."""

    def __init__(self, store: Store, run_id: int, engine: ProfileEngine) -> None:
        self.store, self.run_id, self.engine = store, run_id, engine
        self.writer = WindowWriter(store, run_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"energyprof-monitor-{run_id}", daemon=True)
        self.flush_errors = 0

    def add(self, windows: list[PowerWindow]) -> None:
        """Sampler callback: buffer windows (cheap; the writing happens on the monitor thread)."""
        self.writer.add(windows)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        next_beat = 0.0
        try:
            while not self._stop.wait(FLUSH_EVERY_S):
                self.flush()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT_EVERY_S
                    self._beat()
        finally:
            self.store.close()

    def _beat(self) -> None:
        try:
            self.store.heartbeat(self.run_id, progress=self.engine.progress(), tokens_done=self.engine.tokens_done())
        except Exception:  # a busy database must not kill the monitor; the next beat retries
            self.flush_errors += 1

    def flush(self) -> None:
        """Write buffered windows; on a database error keep them for the next try."""
        try:
            self.writer.flush()
        except Exception:  # the writer kept the batch for the next flush
            self.flush_errors += 1

    def stop(self) -> None:
        """Stop the thread and write what is still buffered (from the calling thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()
        self._beat()


@dataclass
class Outcome:
    """How a run ended: its final status, the sentence for people and the traceback for developers."""

    status: str = "done"
    error: str | None = None
    traceback: str | None = None


class ProfileEngine:
    """Runs one profiling run against one run row; `run()` returns the run's summary."""

    def __init__(self, store: Store, run_id: int, params: ProfileParams, *, loaded: Any = None,
                 cancel: CancelSwitch | None = None) -> None:
        self.store, self.run_id, self.params = store, run_id, params
        self.loaded = loaded
        self.cancel = cancel or CancelSwitch()
        self.source: PowerSource | None = None
        self.sampler: Sampler | None = None
        self.monitor = Monitor(store, run_id, self)
        self.windows: list[PowerWindow] = []
        self.max_t1 = 0
        self.generations: list[Any] = []
        self.written_repeats: set[int] = set()
        self.layers: list[Any] = []
        self.recorder: Any = None
        self.prompt_ids: list[int] = []
        self.baseline_span: tuple[int, int] | None = None
        self.workload_end = 0

    # -- progress (read by the monitor thread) ----------------------------------------------------
    def tokens_done(self) -> int:
        return sum(len(g.steps) for g in list(self.generations))

    def progress(self) -> float:
        per_repeat = 1 if self.loaded is not None and self.loaded.kind == "encoder" else self.params.max_new_tokens
        total = max(1, self.params.repeats * per_repeat)
        return min(1.0, self.tokens_done() / total)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Measure, then attribute and finish the run row; never raises for a failed or cancelled run."""
        outcome = Outcome()
        self.store.update_run(self.run_id, pid=os.getpid(), clock_t0_ns=now_ns(), phase="starting")
        self.monitor.start()
        try:
            self.cancel.arm()
            self._measure()
        except (JobCancelled, KeyboardInterrupt):
            outcome = Outcome("cancelled", "The run was cancelled; the steps and power samples recorded so far "
                                           "are kept.")
        except Exception as exc:
            outcome = Outcome("failed", user_message(exc), traceback.format_exc())
        finally:
            self.cancel.disarm()
            self._stop_power(wait=outcome.status == "done")
        return self._finish(outcome)

    def _measure(self) -> None:
        self._start_power()
        self._load()
        self._baseline()
        self._warmup()
        for repeat in range(self.params.repeats):
            self._repeat(repeat)

    def _phase(self, phase: str, **extra: Any) -> None:
        with self.cancel.shielded():
            self.store.heartbeat(self.run_id, phase=phase, **extra)

    def _start_power(self) -> None:
        from energyprof.power.registry import resolve_source

        self._phase("loading")
        self.source = resolve_source(self.params.source)
        with self.cancel.shielded():
            self.store.update_run(self.run_id, source=self.source.name, measured=int(self.source.measured))
        self.sampler = Sampler(self.source, self._on_windows, self.params.interval_ms)
        self.sampler.start()

    def _on_windows(self, windows: list[PowerWindow]) -> None:
        """Sampler thread: keep every window, remember the latest end, buffer for the store."""
        self.windows.extend(windows)
        self.max_t1 = max(self.max_t1, max(w.t1_ns for w in windows))
        self.monitor.add(windows)

    def _load(self) -> None:
        from energyprof.profile.hooks import LayerRecorder
        from energyprof.profile.models import encode_prompt, load_model

        self._phase("loading")
        if self.loaded is None:
            p = self.params
            self.loaded = load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        self.prompt_ids = encode_prompt(self.loaded.tokenizer, self.params.prompt, self.loaded.kind)
        if not self.prompt_ids:
            raise ValueError("The prompt encodes to no tokens; give some text to profile.")
        self.recorder = LayerRecorder(self.loaded.model, self.params.layers, self.loaded.device)
        self.layers = self.recorder.layers
        with self.cancel.shielded():
            self.store.update_run(self.run_id, model=self.loaded.name, device=self.loaded.device,
                                  dtype=self.loaded.dtype)
            if self.layers:
                self.store.add_layers(self.run_id, [layer.row() for layer in self.layers])

    def _baseline(self) -> None:
        if self.params.baseline_s <= 0:
            return
        self._phase("baseline")
        t0 = now_ns()
        time.sleep(self.params.baseline_s)
        self.baseline_span = (t0, now_ns())

    def _warmup(self) -> None:
        from energyprof.profile.loop import Generation

        if self.params.warmup:
            self._phase("warm-up")
        for i in range(self.params.warmup):
            self._run_once(Generation(-1 - i, list(self.prompt_ids)))

    def _repeat(self, repeat: int) -> None:
        from energyprof.profile.loop import Generation

        self._phase(f"repeat {repeat + 1} of {self.params.repeats}")
        gen = Generation(repeat, list(self.prompt_ids))
        self.generations.append(gen)
        self._run_once(gen)
        self.workload_end = gen.span_ns[1] if gen.span_ns else self.workload_end
        with self.cancel.shielded():
            self.store.add_steps(self.run_id, gen.step_rows())
            self.written_repeats.add(repeat)
            self.store.heartbeat(self.run_id, progress=self.progress(), tokens_done=self.tokens_done())

    def _run_once(self, gen: Any) -> Any:
        """One generation (or encoder forward pass) with the layer hooks attached."""
        from energyprof.profile.loop import forward_once, generate

        loaded = self.loaded
        with self.recorder:
            if loaded.kind == "encoder":
                return forward_once(loaded.model, self.prompt_ids, loaded.device, self.recorder, gen)
            return generate(loaded.model, loaded.tokenizer, self.prompt_ids, self.params.loop_options(),
                            loaded.device, self.recorder, gen)

    # -- the end ------------------------------------------------------------------------------
    def _stop_power(self, wait: bool) -> None:
        """Stop the sampler (after the window covering the workload's end, when waiting) and every process."""
        try:
            if self.sampler is not None:
                if wait:
                    self._phase("attributing")
                    self._await_last_window()
                self.sampler.stop()
        except Exception:  # stopping must go on to the process cleanup below
            pass
        finally:
            if self.source is not None:
                with suppress(Exception):
                    self.source.stop()
            _stop_powermetrics()

    def _await_last_window(self) -> None:
        """Wait (bounded) until a window ending after the workload has arrived."""
        if self.sampler is None or self.source is None or not self.source.components() or not self.workload_end:
            return
        interval_s = self.sampler.interval_ms / 1e3
        deadline = time.monotonic() + max(LAST_WINDOW_WAIT_S, 3 * interval_s)
        while self.max_t1 < self.workload_end and self.sampler.alive and time.monotonic() < deadline:
            time.sleep(0.005)

    def _finish(self, outcome: Outcome) -> dict[str, Any]:
        """Write what the run recorded, attribute it, and move the run to its final status."""
        warnings: list[str] = []
        summary = self._base_summary()
        try:
            self.monitor.stop()
            self._write_leftover_steps()
            if any(g.steps for g in self.generations):
                self._phase("attributing")
                summary.update(self._attribute())
            warnings += self._power_warnings(summary)
        except Exception as exc:
            if outcome.status == "done":
                detail = (str(exc).strip().splitlines() or ["no details"])[0][:300].rstrip(".")
                outcome = Outcome("failed", f"Attributing the energy failed with {type(exc).__name__}: {detail}; "
                                            "the steps and power samples are kept.", traceback.format_exc())
        summary["text"] = _text_of(self.generations)
        summary["status"] = outcome.status
        summary["power_incomplete"] = bool(warnings)
        summary["warnings"] = warnings
        error = outcome.error or (" ".join(warnings) if warnings else None)
        summary["error"] = error
        skipped = self.source.skipped if self.source is not None else 0
        self.store.update_run(self.run_id, power_incomplete=int(bool(warnings)), samples_skipped=skipped,
                              progress=self.progress() if outcome.status != "done" else 1.0,
                              tokens_done=self.tokens_done())
        self.store.finish_run(self.run_id, outcome.status, error=error, traceback=outcome.traceback, summary=summary)
        return summary

    def _write_leftover_steps(self) -> None:
        """Steps (and the calls still in the recorder) of a repeat that was cut short."""
        from energyprof.profile.loop import token_texts

        for gen in self.generations:
            if gen.repeat in self.written_repeats or not gen.steps:
                continue
            if self.recorder is not None:
                gen.calls.extend(self.recorder.take_calls())
                self.recorder.detach()
            gen.texts = token_texts(self.loaded.tokenizer, [s[5] for s in gen.steps])
            self.store.add_steps(self.run_id, gen.step_rows())
            self.written_repeats.add(gen.repeat)

    def _components(self) -> list[str]:
        from energyprof.power.base import COMPONENTS

        named = set(self.source.components() if self.source is not None else ())
        for w in self.windows:
            named.update(w.energy_mj)
        return [c for c in COMPONENTS if c in named] + sorted(named - set(COMPONENTS))

    def _attribute(self) -> dict[str, Any]:
        from energyprof.profile.results import attribute_run

        done = attribute_run(list(self.windows), self.generations, self.layers, self._components(),
                             self.baseline_span)
        self.store.add_step_energy(self.run_id, done.step_energy_rows)
        for i in range(0, len(done.layer_call_rows), CALL_ROWS_PER_BATCH):
            self.store.add_layer_calls(self.run_id, done.layer_call_rows[i:i + CALL_ROWS_PER_BATCH])
        if done.layer_energy_rows:
            self.store.add_layer_energy(self.run_id, done.layer_energy_rows)
        return done.summary

    def _power_warnings(self, summary: dict[str, Any]) -> list[str]:
        """Sentences about power data the run lacks (source died, end not covered, unknown steps)."""
        warnings = []
        if self.sampler is not None and self.sampler.error:
            warnings.append(f"Power data is incomplete: {self.sampler.error.rstrip('.')}; energy after that point "
                            "is unknown.")
        elif (self.source is not None and self.source.components() and self.workload_end
              and self.max_t1 < self.workload_end):
            warnings.append("Power data is incomplete: no sample window covers the end of the workload, so the last "
                            "steps' energy is unknown or low.")
        if summary.get("unknown_steps") and not warnings:
            warnings.append(f"Power data is incomplete: {summary['unknown_steps']} steps have unknown energy.")
        return warnings

    def _base_summary(self) -> dict[str, Any]:
        """The parts of the summary every run has, even one that failed early."""
        loaded, p = self.loaded, self.params
        return {
            "run_id": self.run_id,
            "source": self.source.name if self.source is not None else p.source,
            "measured": bool(self.source.measured) if self.source is not None else None,
            "model": loaded.name if loaded is not None else p.model,
            "model_kind": loaded.kind if loaded is not None else None,
            "n_params": loaded.n_params if loaded is not None else None,
            "device": loaded.device if loaded is not None else p.device,
            "dtype": loaded.dtype if loaded is not None else p.dtype,
            "layers": p.layers,
            "interval_ms": self.sampler.interval_ms if self.sampler is not None else p.interval_ms,
            "prompt_tokens": len(self.prompt_ids),
            "new_tokens": [g.new_tokens for g in self.generations if g.steps],
            "repeats": sum(1 for g in self.generations if g.steps),
            "repeats_requested": p.repeats,
            "baseline_s": p.baseline_s,
            "windows": len(self.windows),
            "text": _text_of(self.generations),
            "energy_j": None, "net_energy_j": None, "total_energy_j": None, "baseline_w": None,
            "j_per_token": None, "tokens_per_s": None, "closure_error": None,
        }


def _text_of(generations: list[Any], limit: int = 2000) -> str | None:
    """The generated text of the first measured repeat (at most `limit` characters)."""
    for gen in generations:
        if gen.texts and any(t is not None for t in gen.texts):
            return "".join(t or "" for t in gen.texts)[:limit]
    return None


def _stop_powermetrics() -> None:
    """Kill any powermetrics child this process still has (it must never outlive the job)."""
    try:
        from energyprof.power.powermetrics import stop_all
    except ImportError:
        return
    with suppress(Exception):
        stop_all()


def user_message(exc: BaseException) -> str:
    """One sentence for people about an exception (our own errors already are one)."""
    from energyprof.profile.models import ModelLoadError

    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else ""
    if isinstance(exc, ModelLoadError | PowerSourceError | JobError | ValueError) and text:
        sentence = text[0].upper() + text[1:]
        return sentence if sentence.endswith((".", "!", "?")) else sentence + "."
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "The model ran out of memory; try a smaller model, a shorter prompt or --dtype float16."
    first = text[:300] if text else "no details"
    return f"The profiling job failed with {type(exc).__name__}: {first.rstrip('.')}."


# -- entry points ----------------------------------------------------------------------------------
def run_profile(store: Store, run_id: int, params: ProfileParams, *, loaded: Any = None,
                cancel: CancelSwitch | None = None) -> dict[str, Any]:
    """Run the engine for an existing run row (status running); returns the summary."""
    return ProfileEngine(store, run_id, params, loaded=loaded, cancel=cancel).run()


def run_job(store: Store, run_id: int) -> dict[str, Any]:
    """What `energyprof job --run-id N` does: claim the queued run, run its params, stop on SIGTERM."""
    run = store.get_run(run_id)
    if run is None:
        raise JobError(f"Run {run_id} does not exist in {store.path}; check --run-id and --db.")
    if not store.claim_run(run_id, os.getpid()):
        raise JobError(f"Run {run_id} is {run['status']}, not queued; only a queued run can be started.")
    try:
        params = ProfileParams.from_dict(run["params"])
        params.validate()
    except (ValueError, TypeError) as exc:
        message = user_message(exc)
        store.finish_run(run_id, "failed", error=message, summary={"run_id": run_id, "status": "failed",
                                                                    "error": message})
        return {"run_id": run_id, "status": "failed", "error": message}
    switch = CancelSwitch()
    with cancel_on_signals(switch, (signal.SIGTERM, signal.SIGINT)):
        return run_profile(store, run_id, params, cancel=switch)


def profile_foreground(store: Store, params: ProfileParams) -> dict[str, Any]:
    """What `energyprof profile` does: create a running run row and run it here (Ctrl-C cancels).

    Raises JobAlreadyRunning when another profiling job is active."""
    run_id = store.create_run("profile", source=params.source, model=params.model, device=params.device,
                              dtype=params.dtype, params=params.to_dict())
    switch = CancelSwitch()
    with cancel_on_signals(switch, (signal.SIGTERM, signal.SIGINT)):
        return run_profile(store, run_id, params, cancel=switch)
