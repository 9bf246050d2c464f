"""The profiling engine: one run, from loading the model to the attributed, stored result.

Flow: start the power sampler (its windows are flushed to the store every ~0.5 s and a heartbeat is written
every ~2 s by the Monitor thread); `loading` (the model); `baseline` (idle, model loaded); `warm-up` (not
stored); `repeat i of R` (steps stored after each repeat; with a target CI, more repeats follow until the
decode J/token CI is within it or the time cap comes, see energyprof.analysis.precision); `attributing` (wait
for the window covering the end, stop the sampler, attribute energy to steps, layer calls and `other`, write
everything in batches). With a counter source (``is_counter``) the token loop reads the counter at every step
boundary and the counter is probed while the model loads (energyprof.runner.boundary_reads); a cross-check source
records beside the run's own (energyprof.runner.cross_check_run). With `layer_energy=replay`,
`replay <layer> (<phase>) i/N` phases follow the repeats (the runtime's replay). A SIGTERM (or Ctrl-C) ends
the run as `cancelled`, any error as `failed` with one sentence for people; the power source is always stopped,
and what was recorded stays in the database.

What is measured is the engine's *workload* (energyprof.runtimes.base): a model loaded here (a batch of
sequences), or an OpenAI-compatible server streaming completions (energyprof.runtimes.endpoint); everything else is
the same.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from energyprof.analysis import results
from energyprof.analysis.counter_health import BATCHED_S, used_components, with_cross_check
from energyprof.analysis.precision import checked_phase, covered_stat, goal_of, relative_ci_pct
from energyprof.analysis.quoted import fill_quoted
from energyprof.analysis.replay_results import replay_results
from energyprof.components import ordered
from energyprof.errors import EnergyprofError, is_disk_full, user_message
from energyprof.machine import this_machine
from energyprof.power import registry
from energyprof.power.base import PolledSource, PowerSource, PowerWindow, now_ns
from energyprof.power.child_process import stop_all
from energyprof.power.sampler import Sampler
from energyprof.provenance import source_provenance
from energyprof.redact import redact
from energyprof.runner import boundary_reads, health, jobs
from energyprof.runner.background import BackgroundMonitor
from energyprof.runner.boundary_reads import BoundaryClock, CounterProbe
from energyprof.runner.cancel import CancelSwitch, JobCancelled
from energyprof.runner.cross_check_run import CrossCheck
from energyprof.runner.health import figure_windows, run_health
from energyprof.runner.monitor import Monitor
from energyprof.runner.replay_timing import replay_seconds, replay_step_of
from energyprof.runner.reserve import DiskReserve
from energyprof.runtimes import workload_for
from energyprof.runtimes.base import Workload
from energyprof.spec.params import NO_CROSS_CHECK, ProfileParams
from energyprof.store import Store
from energyprof.summary import DISTURBED_CORES, RunSummary

LAST_WINDOW_WAIT_S = 2.0
"""Longest wait (beyond 3 sampling intervals) for the window that covers the end of the workload."""
PUBLICATION_WAIT_S = 2.5
"""Longest wait, after the workload, for every counter that moved during it to publish once more: a counter
published in batches (about once a second; every ~2 s on M5 Max) holds the end of the work in its next batch, and
without it the last steps would get none of their energy (energyprof.analysis.counter_chain.change_edges)."""
CALL_ROWS_PER_BATCH = 100_000

log = logging.getLogger(__name__)


class JobError(EnergyprofError, RuntimeError):
    """The job cannot start (no such run, not queued); the message is one sentence for people."""


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a progress display: its phase, measured tokens done of the total, seconds so far."""

    phase: str
    tokens_done: int
    tokens_total: int
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


@dataclass
class Outcome:
    """How a run ended: its final status, the sentence for people and the traceback for developers."""

    status: str = "done"
    error: str | None = None
    traceback: str | None = None


class ProfileEngine:
    """Runs one profiling run against one run row; `run()` returns the run's summary."""

    def __init__(self, store: Store, run_id: int, params: ProfileParams, *, loaded: Any = None,
                 cancel: CancelSwitch | None = None, on_progress: ProgressCallback | None = None,
                 workload: Workload | None = None) -> None:
        self.store, self.run_id, self.params = store, run_id, params
        self.workload = workload or workload_for(params, loaded)
        self.cancel = cancel or CancelSwitch()
        self.on_progress = on_progress
        self.source: PowerSource | None = None
        self.sampler: Sampler | None = None
        self.monitor = Monitor(store, run_id, self._progress_pair, self._report_progress)
        self.windows: list[PowerWindow] = []
        self.max_t1 = 0
        self.generations: list[Any] = []
        self.written_repeats: set[int] = set()
        self.precision = goal_of(params)
        self.repeats_stop: str | None = None
        self.repeats_started_at: float | None = None
        self.baseline_span: tuple[int, int] | None = None
        self.workload_end = 0
        self.phase = "starting"
        self.started = time.monotonic()
        self.background = BackgroundMonitor(self.workload.processes)
        self.clock: Callable[[], int] = now_ns
        """Read at every step boundary by the token loop (see energyprof.runtimes.transformers.loop.generate)."""
        self.boundary: BoundaryClock | None = None
        """The clock when the source is a counter: it reads the counter at every step boundary."""
        self.probe: CounterProbe | None = None
        self.cross: CrossCheck | None = None
        self.replay: Any = None
        """The ReplayOutcome of a run with layer_energy=replay (its finished trials, also when cancelled)."""
        self.reserve = DiskReserve(jobs.reserve_path(store, run_id))
        """Disk space held back for the run's final write (released when the disk fills: energyprof.runner.reserve)."""
        self.clock_t0_ns: int | None = None
        """The run's clock start (stored with the run), for times in sentences."""
        self.hardware: str | None = None
        """The chip or board the source reads (PowerSource.hardware(), asked once it has started)."""
        self.health: dict[str, Any] = {}
        """The run's counter health per component (energyprof.analysis.counter_health), set while attributing."""

    # -- the workload's parts (a model loaded here; None / empty for an endpoint) -----------------
    @property
    def loaded(self) -> Any:
        return getattr(self.workload, "loaded", None)

    @property
    def recorder(self) -> Any:
        return getattr(self.workload, "recorder", None)

    @property
    def prompt_ids(self) -> list[int]:
        return getattr(self.workload, "prompt_ids", [])

    @property
    def layers(self) -> list[Any]:
        return self.workload.layers

    # -- progress (read by the monitor thread) ----------------------------------------------------
    def tokens_done(self) -> int:
        """Tokens generated so far, every sequence counted (an encoder: forward passes)."""
        if self.loaded is not None and self.loaded.kind == "encoder":
            return sum(len(g.steps) for g in list(self.generations))
        return sum(g.new_tokens for g in list(self.generations))

    def tokens_total(self) -> int:
        return max(1, max(self.params.repeats, len(self.generations)) * self.workload.tokens_per_repeat())

    def progress(self) -> float:
        return min(1.0, self.tokens_done() / self.tokens_total())

    def _progress_pair(self) -> tuple[float, int]:
        return self.progress(), self.tokens_done()

    def _report_progress(self) -> None:
        if self.on_progress is not None:
            with suppress(Exception):  # a broken display must never stop a measurement
                self.on_progress(Progress(self.phase, self.tokens_done(), self.tokens_total(),
                                          time.monotonic() - self.started))

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Measure, then attribute and finish the run row; never raises for a failed or cancelled run."""
        outcome = Outcome()
        try:
            log.info("run %d: starting (%s)", self.run_id, type(self.workload).__name__)
            self.reserve.take()
            self.clock_t0_ns = now_ns()
            self.store.update_run(self.run_id, pid=os.getpid(), clock_t0_ns=self.clock_t0_ns, phase="starting")
            self.monitor.start()
            self.cancel.arm()
            self._measure()
        except (JobCancelled, KeyboardInterrupt):
            log.info("run %d: cancelled", self.run_id)
            outcome = Outcome("cancelled", "The run was cancelled; the steps and power samples recorded so far "
                                           "are kept.")
        except Exception as exc:
            outcome = Outcome("failed", user_message(exc, db_path=self.store.path), traceback.format_exc())
            log.info("run %d: failed with %s (its sentence and traceback are in the run row)", self.run_id,
                     type(exc).__name__)
        finally:
            self.cancel.disarm()
            self._stop_power(wait=outcome.status == "done")
        try:
            return self._finish(outcome)
        finally:
            self.reserve.release()

    def _measure(self) -> None:
        self._start_power()
        self._load()
        self._counter_probed()
        self._baseline()
        self._warmup()
        repeat = 0
        while self._another_repeat(repeat):
            self._repeat(repeat)
            repeat += 1
        if self.params.layer_energy == "replay" and self.layers:
            self._replay()

    def _another_repeat(self, done: int) -> bool:
        """Whether to run repeat `done` (0-based): the fixed count, or with a target CI the goal's decision, whose
        time cap also ends the least number of repeats (a cap of 5 s never runs 1,000 repeats)."""
        if self.precision is None:
            return done < self.params.repeats
        return self._more_repeats()

    def _more_repeats(self) -> bool:
        """With a target CI (energyprof.analysis.precision): whether to add another repeat."""
        if self.precision is None:
            return False
        if len(self.generations) < self.precision.min_repeats:  # the least: only the time cap can end them
            elapsed = time.monotonic() - (self.repeats_started_at or time.monotonic())
            self.repeats_stop = self.precision.decide(None, len(self.generations), elapsed)
            return self.repeats_stop is None
        stat = covered_stat(list(self.windows), self.generations, self._components(), self.max_t1)
        if self.precision.met(stat) and self.max_t1 < self.workload_end:
            self._await_window(self.workload_end)  # met without the latest repeats: check with them all
            stat = covered_stat(list(self.windows), self.generations, self._components(), self.max_t1)
        elapsed = time.monotonic() - (self.repeats_started_at or time.monotonic())
        self.repeats_stop = self.precision.decide(stat, len(self.generations), elapsed)
        log.info("run %d: after %d repeats, CI %s %%: %s", self.run_id, len(self.generations),
                 relative_ci_pct(stat), self.repeats_stop or "one more repeat")
        return self.repeats_stop is None


    def _phase(self, phase: str) -> None:
        log.info("run %d: phase %s", self.run_id, phase)
        self.phase = phase
        self._report_progress()
        with self.cancel.shielded():
            self.store.heartbeat(self.run_id, phase=phase)

    def _start_power(self) -> None:
        self._phase("loading")
        self.source = registry.resolve_source(self.params.source)
        machine = this_machine(self.source)
        with self.cancel.shielded():
            self.store.update_run(self.run_id, source=self.source.name, measured=int(self.source.measured),
                                  machine_id=machine.machine_id, machine_label=machine.label)
        if isinstance(self.source, PolledSource):
            self.source.poll_readings = []
        self.sampler = Sampler(self.source, self._on_windows, self.params.interval_ms)
        self.sampler.start()
        with suppress(Exception):  # naming the chip is a courtesy: it must never stop a measurement
            self.hardware = self.source.hardware()
        if self.source.is_counter:
            self.boundary = BoundaryClock(self.source)
            self.clock = self.boundary
            self.probe = CounterProbe(self.source)
            self.probe.start()
        if self.params.cross_check != NO_CROSS_CHECK:
            self.cross = CrossCheck(self.params.cross_check, self.store, self.run_id, self.params.interval_ms)
            self.monitor.more_writers.append(self.cross.writer)
            self.cross.start(self.source.name)

    def _counter_probed(self) -> None:
        """Wait for the counter probe started with the source (it ran while the model loaded)."""
        if self.probe is not None:
            if self.probe.running:
                self._phase("probing the counter")
            self.probe.result()

    def _on_windows(self, windows: list[PowerWindow]) -> None:
        """Sampler thread: keep every window, remember the latest end, buffer for the store."""
        self.windows.extend(windows)
        self.max_t1 = max(self.max_t1, max(w.t1_ns for w in windows))
        self.monitor.add(windows)

    def _load(self) -> None:
        self._phase("loading")
        described = self.workload.load()
        with self.cancel.shielded():
            self.store.update_run(self.run_id, **described)
            if self.layers:
                self.store.add_layers(self.run_id, [layer.row() for layer in self.layers])

    def _baseline(self) -> None:
        if self.params.baseline_s <= 0:
            return
        self._phase("baseline")
        with self.background.span("baseline"):
            t0 = now_ns()
            time.sleep(self.params.baseline_s)
            self.baseline_span = (t0, now_ns())

    def _warmup(self) -> None:
        if self.params.warmup:
            self._phase("warm-up")
        for i in range(self.params.warmup):
            self._run_once(self.workload.generation(-1 - i))

    def _repeat(self, repeat: int) -> None:
        if repeat < self.params.repeats or self.precision is None:
            self._phase(f"repeat {repeat + 1} of {self.params.repeats}")
        else:
            self._phase(self.precision.phase_label(repeat))
        if self.repeats_started_at is None:
            self.repeats_started_at = time.monotonic()
        gen = self.workload.generation(repeat)
        self.generations.append(gen)
        with self.background.span(f"repeat {repeat}"):
            self._run_once(gen)
        self.workload_end = gen.span_ns[1] if gen.span_ns else self.workload_end
        with self.cancel.shielded():
            self.store.add_steps(self.run_id, gen.step_rows())
            self.written_repeats.add(repeat)
            self.store.heartbeat(self.run_id, progress=self.progress(), tokens_done=self.tokens_done())

    def _replay(self) -> None:
        """Replay every hooked layer alone until the meter can see it; each finished trial is stored at once."""
        seconds = replay_seconds(self.params.replay_s, self.source, self.sampler.interval_ms, self._phase)
        replayer = self.workload.replayer(seconds=seconds, trials=self.params.replay_trials, source=self.source,
                                          on_phase=self._phase, on_trial=self._store_trial)
        self.replay = replayer.outcome
        with self.background.span("replay"):  # a busy machine disturbs the replay as it disturbs the repeats
            replayer.run(self.prompt_ids, self.params.loop_options(), replay_step_of(self.params))
        self.workload_end = max(self.workload_end, self.replay.ended_ns)

    def _store_trial(self, trial: Any) -> None:
        with self.cancel.shielded():
            self.store.add_replay_trials(self.run_id, [trial.row()])

    def _run_once(self, gen: Any) -> None:
        """One repeat (or warm-up run) of the workload, its step boundaries read from self.clock."""
        self.workload.run(gen, self.clock)

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
            if self.cross is not None:
                self.cross.stop()
            if self.source is not None:
                with suppress(Exception):
                    self.source.stop()
            _stop_powermetrics()

    def _await_last_window(self) -> None:
        """Wait (bounded) until a window ending after the workload has arrived, and for a counter source until every
        component that moved during the workload has published again after it (PUBLICATION_WAIT_S)."""
        self._await_window(self.workload_end)
        polls = getattr(self.source, "poll_readings", None)
        if self.boundary is None or not self.boundary.readings or polls is None or self.sampler is None:
            return
        first, last = self.boundary.readings[0].energy_mj, self.boundary.readings[-1].energy_mj
        slow = self._slow_components()
        moved = [c for c, v in last.items()
                 if v is not None and first.get(c) is not None and (v != first[c] or c in slow)]
        deadline = time.monotonic() + PUBLICATION_WAIT_S
        while moved and self.sampler.alive and time.monotonic() < deadline:
            latest = polls[-1].energy_mj if polls else {}
            moved = [c for c in moved if latest.get(c) == last[c]]
            time.sleep(0.01)

    def _slow_components(self) -> set[str]:
        """Components the probe found publishing in batches, or saw no publication of at all (idle, or slower than
        the probe): work shorter than one batch can fall between two publications, so their next publication is
        waited for (at most PUBLICATION_WAIT_S) even when they did not move during the work — else the work would get
        none of their energy, 0 W where the component drew power. An idle component costs that wait once per run."""
        characteristics = self.probe.characteristics if self.probe is not None else None
        if characteristics is None:
            return set()
        return set(characteristics.untimed) | {
            c for c, counter in characteristics.components.items()
            if counter.update_period_s is None or counter.update_period_s >= BATCHED_S}

    def _await_window(self, t_ns: int) -> None:
        """Wait (bounded) until a window ending at or after t_ns has arrived."""
        if self.sampler is None or self.source is None or not self.source.components() or not t_ns:
            return
        interval_s = self.sampler.interval_ms / 1e3
        deadline = time.monotonic() + max(LAST_WINDOW_WAIT_S, 3 * interval_s)
        while self.max_t1 < t_ns and self.sampler.alive and time.monotonic() < deadline:
            time.sleep(0.005)

    def _finish(self, outcome: Outcome) -> RunSummary:
        """Write what the run recorded, attribute it, and move the run to its final status."""
        summary = self._base_summary()
        try:
            self.monitor.stop()
            if self.monitor.last_error is not None and is_disk_full(self.monitor.last_error):
                raise self.monitor.last_error
            self._write_leftover_steps()
            if any(g.steps for g in self.generations):
                self._phase("attributing")
                self._attribute(summary)
                self._attribute_replay(summary)
        except Exception as exc:
            if outcome.status == "done" or is_disk_full(exc):
                outcome = Outcome("failed", _finish_failure(exc, self.store), traceback.format_exc())
        self._background_figures(summary)
        self._counter_figures(summary)
        self._precision_figures(summary)
        fill_quoted(summary, self.params.grid_g_per_kwh)
        summary.warnings = self._power_warnings(summary)
        summary.text = _text_of(self.generations)
        summary.status = outcome.status
        summary.power_incomplete = bool(summary.warnings)
        summary.error = outcome.error or (" ".join(summary.warnings) if summary.warnings else None)
        summary.samples_skipped = self.source.skipped if self.source is not None else 0
        self._write_final(summary, outcome)
        log.info("run %d: ended %s", self.run_id, summary.status)
        self._report_progress()
        return summary

    def _write_final(self, summary: RunSummary, outcome: Outcome) -> None:
        """The run's final row in one write. When the run was marked failed meanwhile (reaped while stopped), nothing
        is changed and the summary says so; when the database cannot take the summary (disk full), at least the
        status and the sentence; when it cannot take even that, the sentence on stderr (the next look reaps it)."""
        if outcome.traceback:  # for developers: in the job log, never on the page
            jobs.append_to_log(self.store, self.run_id, f"Traceback of run {self.run_id}, for developers:\n"
                               f"{outcome.traceback}")
        try:
            written = self._final_row(summary, outcome)
            if not written:
                lost = self.store.not_active(self.run_id)
                summary.status, summary.error = lost.status or "failed", str(lost)
            return
        except Exception as exc:
            if outcome.status == "done":
                outcome.status = "failed"
            summary.status, summary.error = outcome.status, _finish_failure(exc, self.store)
        with suppress(Exception):
            self.reserve.release()
            if self.store.finish_run(self.run_id, summary.status, error=summary.error):
                return
        print(f"energyprof: run {self.run_id}: {redact(summary.error or '')}", file=sys.stderr)
        jobs.append_to_log(self.store, self.run_id, f"{jobs.UNRECORDED_END} {summary.error}\n")

    def _final_row(self, summary: RunSummary, outcome: Outcome) -> bool:
        """finish_run with everything; on a full disk, once more after releasing the space held back for it."""
        def write() -> bool:
            return self.store.finish_run(
                self.run_id, outcome.status, error=summary.error, traceback=outcome.traceback,
                summary=summary.to_dict(), power_incomplete=int(summary.power_incomplete),
                samples_skipped=summary.samples_skipped,
                progress=self.progress() if outcome.status != "done" else 1.0, tokens_done=self.tokens_done())
        try:
            return write()
        except Exception as exc:
            if not is_disk_full(exc) or not self.reserve.release():
                raise
            return write()

    def _write_leftover_steps(self) -> None:
        """Steps (and the calls still in the recorder) of a repeat that was cut short."""
        for gen in self.generations:
            if gen.repeat in self.written_repeats or not gen.steps:
                continue
            self.workload.cut_short(gen)
            self.store.add_steps(self.run_id, gen.step_rows())
            self.written_repeats.add(gen.repeat)

    def _components(self) -> list[str]:
        named = set(self.source.components() if self.source is not None else ())
        for w in self.windows:
            named.update(w.energy_mj)
        return ordered(named)

    def _attribute(self, summary: RunSummary) -> None:
        components = self._components()
        kind = source_provenance(self.source.name, self.source.measured) if self.source is not None else None
        self.health = self._counter_health(components, summary)
        used = used_components(summary.device, getattr(self.params, "runtime", None))
        chains, periods = None, None
        if self.boundary is not None and self.boundary.readings:
            chains, periods = boundary_reads.chains(
                self.boundary, getattr(self.source, "poll_readings", None), list(self.windows),
                self.probe.characteristics if self.probe else None, components,
                [g.span_ns for g in self.generations if g.steps], self.health, used)
        windows = figure_windows(list(self.windows), self.health, chains)
        done = results.attribute_run(windows, self.generations, self.layers, components, self.baseline_span,
                                     chains=chains, how=results.HowContext(kind, periods) if kind is not None else None)
        self.store.add_step_energy(self.run_id, done.step_energy_rows)
        for i in range(0, len(done.layer_call_rows), CALL_ROWS_PER_BATCH):
            self.store.add_layer_calls(self.run_id, done.layer_call_rows[i:i + CALL_ROWS_PER_BATCH])
        if done.layer_energy_rows:
            self.store.add_layer_energy(self.run_id, done.layer_energy_rows)
        summary.take(done.figures)
        summary.take(health.figures(self.health, summary.energy_j))

    def _counter_health(self, components: list[str], summary: RunSummary) -> dict[str, Any]:
        """Each component's counter verdict (energyprof.analysis.counter_health); none for an estimate."""
        if self.source is None or not self.source.measured or not self.windows:
            return {}
        readings = [*(self.boundary.readings if self.boundary else []),
                    *(getattr(self.source, "poll_readings", None) or [])]
        used = used_components(summary.device, getattr(self.params, "runtime", None))
        return run_health(self.source.name, self.hardware, readings, list(self.windows),
                          self.probe.characteristics if self.probe else None, components,
                          [g.span_ns for g in self.generations if g.steps], used, self.clock_t0_ns)

    def _attribute_replay(self, summary: RunSummary) -> None:
        """Figures of the replayed layers (the trials that finished, when the run was cancelled)."""
        if self.replay is None:
            return
        components = self._components()
        done = replay_results(self.replay, list(self.windows), components,
                              results.baseline_of(self.windows, self.baseline_span, components), self.layers,
                              self.generations)
        self.store.add_replay_trials(self.run_id, done.trial_rows)
        self.store.add_layer_replay(self.run_id, done.layer_rows)
        self.store.add_layer_replay_energy(self.run_id, done.energy_rows)
        summary.take(done.figures)

    def _background_figures(self, summary: RunSummary) -> None:
        """Other processes' CPU during the baseline and the workload, and whether that disturbed the run."""
        baseline, workload = self.background.mean("baseline"), self.background.mean("repeat")
        summary.background_cpu = {"baseline": baseline.cores if baseline else None,
                                  "workload": workload.cores if workload else None}
        if any(span is not None and span.ray_cores is not None for span in (baseline, workload)):
            summary.background_cpu.update({"ray_baseline": baseline.ray_cores if baseline else None,
                                           "ray_workload": workload.ray_cores if workload else None})
        summary.background_top = workload.top if workload else []
        if baseline is not None and workload is not None:
            summary.disturbed = abs(workload.cores - baseline.cores) > DISTURBED_CORES
            log.info("run %d: other processes used %.3f cores during the baseline, %.3f during the workload: %s "
                     "(threshold %.2f cores)", self.run_id, baseline.cores, workload.cores,
                     "disturbed" if summary.disturbed else "not disturbed", DISTURBED_CORES)
        replay = self.background.mean("replay")
        if replay is not None:
            summary.background_cpu["replay"] = replay.cores
            summary.replay_background_top = replay.top
            if baseline is not None:
                summary.replay_disturbed = abs(replay.cores - baseline.cores) > DISTURBED_CORES

    def _counter_figures(self, summary: RunSummary) -> None:
        """The counter's characteristics and boundary reads, and the cross-check source's figures."""
        if self.boundary is not None:
            characteristics = self.probe.result(0) if self.probe is not None else None
            summary.take(boundary_reads.figures(self.boundary, characteristics, self._components()))
        if self.cross is not None:
            spans = [g.span_ns for g in self.generations if g.steps]
            summary.take(self.cross.figures(list(self.windows), spans))
            summary.counter_health_detail = with_cross_check(summary.counter_health_detail,
                                                             summary.cross_check_agreement, summary.cross_check)

    def _precision_figures(self, summary: RunSummary) -> None:
        """The CI reached and, under a target CI, whether it was met and why the repeats stopped."""
        stat = summary.j_per_token.get(checked_phase(summary.j_per_token))
        summary.ci_pct = relative_ci_pct(stat)
        if self.precision is not None:
            summary.target_ci_met = self.precision.met(stat)
            summary.repeats_stop = self.repeats_stop

    def _power_warnings(self, summary: RunSummary) -> list[str]:
        """Sentences about power data the run lacks (source died, end not covered, unknown steps)."""
        warnings = []
        if self.sampler is not None and self.sampler.error:
            warnings.append(f"Power data is incomplete: {self.sampler.error.rstrip('.')}; energy after that point "
                            "is unknown.")
        elif (self.source is not None and self.source.components() and self.workload_end
              and self.max_t1 < self.workload_end):
            warnings.append("Power data is incomplete: no sample window covers the end of the workload, so the last "
                            "steps' energy is unknown or low.")
        if self.boundary is not None and self.boundary.error and not warnings:
            warnings.append(f"Power data is incomplete: the counter could not be read at a step boundary "
                            f"({self.boundary.error.rstrip('.')}); later steps are apportioned from the sampler's "
                            "windows.")
        if summary.unknown_steps and not warnings:
            warnings.append(f"Power data is incomplete: {summary.unknown_steps} steps have unknown energy.")
        return warnings

    def _base_summary(self) -> RunSummary:
        """The parts of the summary every run has, even one that failed early."""
        p = self.params
        summary = RunSummary(
            run_id=self.run_id, kind="profile", status="running",
            source=self.source.name if self.source is not None else p.source,
            measured=bool(self.source.measured) if self.source is not None else None,
            interval_ms=self.sampler.interval_ms if self.sampler is not None else p.interval_ms,
            windows=len(self.windows),
            layer_energy=p.layer_energy, replay_trials=p.replay_trials if p.layer_energy == "replay" else None,
            target_ci_pct=p.target_ci, max_seconds=p.max_seconds if p.target_ci is not None else None,
            new_tokens=[g.new_tokens for g in self.generations if g.steps],
            repeats=sum(1 for g in self.generations if g.steps), repeats_requested=p.repeats,
            baseline_s=p.baseline_s, text=_text_of(self.generations),
            machine=this_machine(self.source or p.source, self.probe.characteristics if self.probe else None))
        if self.source is not None:
            scope = self.source.scope()
            summary.scope, summary.scope_package_includes_dram = scope.text, scope.package_includes_dram
        summary.chip = self.hardware
        self.workload.describe(summary)
        return summary


def _text_of(generations: list[Any], limit: int = 2000) -> str | None:
    """The generated text of the first measured repeat (at most `limit` characters)."""
    for gen in generations:
        if gen.texts and any(t is not None for t in gen.texts):
            return "".join(t or "" for t in gen.texts)[:limit]
    return None


def _stop_powermetrics() -> None:
    """Kill any powermetrics child this process still has (it must never outlive the job)."""
    with suppress(Exception):
        stop_all()


def _finish_failure(exc: BaseException, store: Store) -> str:
    """The sentence for a failure while writing the run's results."""
    return user_message(exc, "Attributing the energy", db_path=store.path, kept="the steps and power samples are kept")
