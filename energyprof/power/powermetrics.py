"""Apple `powermetrics` as a power source (macOS, Apple Silicon): a child process streaming plist samples.

The command is ``sudo -n /usr/bin/powermetrics`` (no ``sudo`` when already root), or the constructor's
``command``, or ``$ENERGYPROF_POWERMETRICS`` (split like a shell would, used as-is). The arguments
``-f plist -i <ms> --samplers cpu_power,gpu_power,thermal -b 0`` are appended; ``-b 0`` sets powermetrics'
output buffer size to none, so each sample is written as soon as it is taken.

Timing. powermetrics' windows are contiguous (each ``elapsed_ns`` runs from the previous sample to
this one), and a document can only be read after its window ended, so its arrival time bounds the
window's true end from above. The first window is ``[arrival - elapsed_ns, arrival]`` (t1 = the time its
``</plist>`` was read). Each later window starts where the previous one ended and ends at
``min(arrival, previous t1 + elapsed_ns)``: in steady state that is exactly ``elapsed_ns`` long and free
of read jitter (a late read by the sampler thread does not move it), and when an earlier window was
placed too late (documents that queued in the pipe, a reader that was slow to start), the next ones are
shortened, by at most 10% each (so no window's power is inflated by more than ~11%), until the chain
catches up. Documents read together are bounded by laying them end to end back from their common arrival.
After a dropped (malformed or cut-off) document, or when the chain falls more than
``max(1 s, 10 intervals)`` behind the arrivals, the chain restarts from the arrival time. Windows never
overlap, and their energies are always the documents' own.

The child runs in its own session, so ``stop()`` can signal its whole process group (sudo passes SIGTERM
on to powermetrics). Every started source is stopped by ``stop_all()``, at interpreter exit, and when it
is garbage-collected; if the job itself is killed with SIGKILL, powermetrics ends at its next write.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence

from energyprof.power.base import PowerSource, PowerSourceError, PowerWindow, now_ns
from energyprof.power.powermetrics_parse import (
    LIVE_COMPONENTS,
    ParsedSample,
    PlistStreamFramer,
    PowermetricsParseError,
    macos_version,
    parse_plist_document,
)

POWERMETRICS = "/usr/bin/powermetrics"
ENV_COMMAND = "ENERGYPROF_POWERMETRICS"
SAMPLERS = "cpu_power,gpu_power,thermal"

NEEDS_ROOT = ("powermetrics needs root: run scripts/setup_powermetrics.sh once (it lets you run only "
              "/usr/bin/powermetrics without a password).")
NOT_MACOS = ("powermetrics exists only on macOS (Apple Silicon); on this machine use the nvml, rapl or "
             "estimate source.")
_ROOT_HINTS = ("must be invoked as the superuser", "a password is required", "not allowed to execute",
               "is not in the sudoers file", "may not run sudo", "a terminal is required",
               "not allowed to run sudo")

_LIVE: weakref.WeakSet[PowermetricsSource] = weakref.WeakSet()


def stop_all() -> None:
    """Stop every running powermetrics child of this process (for a job's SIGTERM handler and atexit)."""
    for source in list(_LIVE):
        with contextlib.suppress(Exception):
            source.stop()


atexit.register(stop_all)


def default_command() -> list[str]:
    """`$ENERGYPROF_POWERMETRICS` when set, else sudo -n /usr/bin/powermetrics (plain when already root)."""
    env = os.environ.get(ENV_COMMAND, "").strip()
    if env:
        return shlex.split(env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [POWERMETRICS]
    return ["sudo", "-n", POWERMETRICS]


def explain_failure(stderr: str, exit_code: int | None) -> str:
    """One sentence for a powermetrics (or sudo) failure, from its stderr and exit status."""
    low = stderr.lower()
    if any(hint in low for hint in _ROOT_HINTS):
        return NEEDS_ROOT
    last = _last_line(stderr)
    code = "" if exit_code is None else f" (exit {exit_code})"
    if last:
        return f"powermetrics failed{code}: {last}; run `sudo powermetrics -n 1` by hand to see why."
    return f"powermetrics failed{code} without a message; run `sudo powermetrics -n 1` by hand to see why."


def _not_found(program: str) -> str:
    return (f"{program} was not found; check the powermetrics command (on macOS: sudo -n {POWERMETRICS}, "
            f"or set ${ENV_COMMAND}).")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else ""


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's process group (its own session), or the child alone when that fails."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.send_signal(sig)


def _terminate(proc: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """SIGTERM the group, wait up to grace_s, then SIGKILL; always reaps the child."""
    if proc.poll() is not None:
        return
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        proc.wait()


class WindowClock:
    """Places powermetrics windows on the job clock (the rule is in the module docstring)."""

    max_squeeze = 0.1
    """A window is shortened by at most this share of its length while the chain catches up."""

    def __init__(self, gap_ns: int) -> None:
        self.gap_ns = gap_ns
        self.last_t1: int | None = None

    def place(self, elapsed_ns: Sequence[int], arrival_ns: int,
              holes: Sequence[bool] | None = None) -> list[tuple[int, int]]:
        """(t0, t1) for documents read together at arrival_ns; holes[i]: a dropped document came before i."""
        bounds, end = [], arrival_ns
        for elapsed in reversed(elapsed_ns):
            bounds.append(end)
            end -= elapsed
        bounds.reverse()
        spans = []
        for i, (elapsed, bound) in enumerate(zip(elapsed_ns, bounds, strict=True)):
            spans.append(self._one(elapsed, bound, bool(holes and holes[i])))
            self.last_t1 = spans[-1][1]
        return spans

    def _one(self, elapsed_ns: int, bound_ns: int, after_hole: bool) -> tuple[int, int]:
        last = self.last_t1
        if last is None:
            return bound_ns - elapsed_ns, bound_ns
        chain = last + elapsed_ns
        if after_hole or bound_ns - chain > self.gap_ns:
            t1 = max(bound_ns, last + 1)
            return max(last, t1 - elapsed_ns), t1
        shortest = last + max(1, math.ceil(elapsed_ns * (1 - self.max_squeeze)))
        return last, max(min(bound_ns, chain), shortest)


class PowermetricsSource(PowerSource):
    """Measured CPU/GPU/ANE energy from `powermetrics -f plist` (DRAM unknown on macOS 13+)."""

    name = "powermetrics"
    measured = True
    default_interval_ms = 100
    startup_check_s = 2.0
    """start() waits up to this long for the first sample (or an early exit), returning as soon as one arrives."""
    probe_timeout_s = 10.0
    stop_grace_s = 1.0

    def __init__(self, command: Sequence[str] | None = None, *, samplers: str = SAMPLERS,
                 stall_s: float | None = None) -> None:
        self._override = command is not None or bool(os.environ.get(ENV_COMMAND, "").strip())
        self.command = list(command) if command is not None else default_command()
        self.samplers = samplers
        self.stall_s_override = stall_s
        self.skipped = 0
        self._skipped_docs = 0
        self.hw_model: str | None = None
        self.os_build: str | None = None
        self.thermal_pressure: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._framer = PlistStreamFramer()
        self._lock = threading.RLock()
        self._stderr = bytearray()
        self._stdout_eof = False
        self._stderr_eof = False
        self._stopping = False
        self._dead: str | None = None
        self._drained: list[PowerWindow] = []
        self._early: list[PowerWindow] = []
        self._clock = WindowClock(0)
        self._reanchor = False
        self._last_doc_ns = 0
        self._stall_ns = 0
        self._probe: tuple[bool, str] | None = None

    # -- description ----------------------------------------------------------------------------
    def components(self) -> tuple[str, ...]:
        return LIVE_COMPONENTS

    def arguments(self, interval_ms: int, count: int | None = None) -> list[str]:
        """The powermetrics arguments appended to the command."""
        args = ["-f", "plist", "-i", str(int(interval_ms)), "--samplers", self.samplers, "-b", "0"]
        return args + (["-n", str(count)] if count else [])

    def available(self) -> tuple[bool, str]:
        if not self._override and sys.platform != "darwin":
            return False, NOT_MACOS
        if self._probe is None:
            self._probe = self._run_probe()
        return self._probe

    def _run_probe(self) -> tuple[bool, str]:
        """Take one 50 ms sample to prove powermetrics runs here with the rights it needs."""
        try:
            done = subprocess.run(self.command + self.arguments(50, count=1), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=self.probe_timeout_s, check=False)
        except FileNotFoundError:
            return False, _not_found(self.command[0])
        except subprocess.TimeoutExpired:
            return False, (f"powermetrics did not answer within {self.probe_timeout_s:g} s; "
                           "run `sudo powermetrics -n 1` by hand to see why.")
        except OSError as exc:
            return False, f"powermetrics could not be started ({exc}); check {self.command[0]}."
        stderr = done.stderr.decode("utf-8", errors="replace")
        if done.returncode != 0:
            return False, explain_failure(stderr, done.returncode)
        framer = PlistStreamFramer()
        for doc in framer.feed(done.stdout) + framer.close():
            try:
                sample = parse_plist_document(doc)
            except PowermetricsParseError:
                continue
            if sample is not None:
                os_name = macos_version(sample.os_build)
                where = f"{sample.hw_model or 'unknown Mac'}, macOS {os_name or sample.os_build or '?'}"
                return True, f"powermetrics runs ({where}); DRAM is reported only on macOS 12."
        return False, ("powermetrics ran but printed no power sample; run "
                       "`sudo powermetrics -n 1 -f plist --samplers cpu_power` by hand to see why.")

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, interval_ms: int) -> None:
        if self._proc is not None:
            raise PowerSourceError("The powermetrics source is already running; stop it before starting again.")
        if not self._override and sys.platform != "darwin":
            raise PowerSourceError(NOT_MACOS)
        self._reset(interval_ms)
        try:
            proc = subprocess.Popen(self.command + self.arguments(interval_ms), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                    start_new_session=True)
        except FileNotFoundError as exc:
            raise PowerSourceError(_not_found(self.command[0])) from exc
        except OSError as exc:
            raise PowerSourceError(f"powermetrics could not be started ({exc}); check {self.command[0]}.") from exc
        self._proc = proc
        self._finalizer = weakref.finalize(self, _terminate, proc, 0.2)
        _LIVE.add(self)
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        code = self._await_first_output(proc)
        if code is not None and code != 0:
            self._read_stderr(proc)
            message = explain_failure(self._stderr.decode("utf-8", errors="replace"), code)
            self.stop()
            self._drained.clear()
            raise PowerSourceError(message)

    def _streams(self, proc: subprocess.Popen[bytes]) -> list:
        """The child's pipes still worth waiting on (a closed stderr would make select spin)."""
        streams = [proc.stdout] if not self._stdout_eof else []
        if not self._stderr_eof:
            streams.append(proc.stderr)
        return [f for f in streams if f is not None and not f.closed]

    def _await_first_output(self, proc: subprocess.Popen[bytes]) -> int | None:
        """Wait (up to startup_check_s) for a first sample or an exit; the exit code, or None while it runs."""
        deadline = time.monotonic() + self.startup_check_s
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(self._streams(proc), [], [], remaining)
            if not ready:
                continue
            self._early.extend(self._pump())
            if self._stdout_eof:
                try:
                    return proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    return None
            if self._early:
                return None
        return proc.poll()

    def _reset(self, interval_ms: int) -> None:
        self._framer = PlistStreamFramer()
        self._stderr.clear()
        self._stdout_eof = False
        self._stderr_eof = False
        self._dead = None
        self._drained.clear()
        self._early.clear()
        self._clock = WindowClock(int(max(1.0, 10 * interval_ms / 1e3) * 1e9))
        self._reanchor = False
        self.skipped = 0
        self._skipped_docs = 0
        stall_s = self.stall_s_override or max(5.0, 20 * interval_ms / 1e3)
        self._stall_ns = int(stall_s * 1e9)
        self._last_doc_ns = now_ns()

    def read(self, timeout_s: float) -> list[PowerWindow]:
        with self._lock:
            if self._proc is None:
                if self._dead:
                    raise PowerSourceError(self._dead)
                raise PowerSourceError("The powermetrics source was read before it was started.")
            out, self._early = self._early, []
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not out and not self._stdout_eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wait_readable(remaining):
                break
            with self._lock:
                if self._proc is None:
                    break
                out.extend(self._pump())
        if out:
            return out
        with self._lock:
            if self._stdout_eof and self._dead is None:
                self._dead = self._exit_message()
            if self._dead:
                raise PowerSourceError(self._dead)
            stalled_s = (now_ns() - self._last_doc_ns) / 1e9
            if stalled_s * 1e9 > self._stall_ns:
                raise PowerSourceError(
                    f"powermetrics sent no sample for {stalled_s:.0f} s (the stream stalled); "
                    "stop the run and start it again, and check `sudo powermetrics -n 1` by hand if it recurs.")
        return []

    def _wait_readable(self, timeout_s: float) -> bool:
        proc = self._proc
        if proc is None:
            return False
        try:
            ready, _, _ = select.select(self._streams(proc), [], [], timeout_s)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _pump(self) -> list[PowerWindow]:
        """Read whatever the child has written (without blocking) and turn finished documents into windows."""
        proc = self._proc
        if proc is None:
            return []
        self._read_stderr(proc)
        chunks: list[bytes] = []
        while not self._stdout_eof:
            try:
                data = os.read(proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._stdout_eof = True
                break
            chunks.append(data)
        cut_before = self._framer.skipped
        docs = self._framer.feed(b"".join(chunks)) if chunks else []
        self._reanchor = self._reanchor or self._framer.skipped > cut_before
        if self._stdout_eof:
            self._framer.close(count_partial=not self._stopping)
            self._read_stderr(proc)
        windows = self._stamp(self._parse(docs), now_ns())
        self.skipped = self._skipped_docs + self._framer.skipped
        return windows

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                data = os.read(proc.stderr.fileno(), 1 << 14)
            except (BlockingIOError, OSError):
                return
            if not data:
                self._stderr_eof = True
                return
            self._stderr += data
            del self._stderr[:-8192]

    def _parse(self, docs: list[bytes]) -> list[tuple[ParsedSample, bool]]:
        """Parsed samples, each with whether a dropped document came before it (a hole in the chain)."""
        out = []
        for doc in docs:
            try:
                sample = parse_plist_document(doc)
            except PowermetricsParseError:
                self._skipped_docs += 1
                self._reanchor = True
                continue
            if sample is not None:
                out.append((sample, self._reanchor))
                self._reanchor = False
                self.hw_model = sample.hw_model or self.hw_model
                self.os_build = sample.os_build or self.os_build
                self.thermal_pressure = sample.thermal_pressure or self.thermal_pressure
        return out

    def _stamp(self, samples: list[tuple[ParsedSample, bool]], arrival_ns: int) -> list[PowerWindow]:
        if not samples:
            return []
        self._last_doc_ns = arrival_ns
        spans = self._clock.place([s.elapsed_ns for s, _ in samples], arrival_ns, [hole for _, hole in samples])
        return [PowerWindow(t0, t1, dict(s.energy_mj)) for (s, _), (t0, t1) in zip(samples, spans, strict=True)]

    def _exit_message(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if proc is not None and code is None:
            try:
                code = proc.wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
        stderr = self._stderr.decode("utf-8", errors="replace")
        if any(hint in stderr.lower() for hint in _ROOT_HINTS):
            return NEEDS_ROOT
        last = _last_line(stderr)
        status = f"exit {code}" if code is not None else "its output closed"
        if last:
            return f"powermetrics stopped unexpectedly ({status}): {last}; start the run again."
        return f"powermetrics stopped unexpectedly ({status}); start the run again."

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            _LIVE.discard(self)
            if proc is None:
                return
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            _terminate(proc, self.stop_grace_s)
            self._proc = proc
            try:
                self._drained.extend(self._early)
                self._early = []
                self._stopping = True
                self._drained.extend(self._pump())
                self._framer.close(count_partial=False)
                self.skipped = self._skipped_docs + self._framer.skipped
            finally:
                self._proc = None
                self._stopping = False
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()

    def drain(self) -> list[PowerWindow]:
        """Windows that were still in the pipe when the source stopped (each returned once)."""
        with self._lock:
            out, self._drained = self._drained, []
            return out

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (for tests and diagnostics)."""
        proc = self._proc
        return proc.pid if proc is not None else None
