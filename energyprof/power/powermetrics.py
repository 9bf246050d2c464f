"""Apple `powermetrics` as a power source (macOS, Apple Silicon): a child process streaming plist samples.

The command is ``sudo -n /usr/bin/powermetrics`` (no ``sudo`` when already root), or the constructor's
``command``, or ``$ENERGYPROF_POWERMETRICS`` (split like a shell would, used as-is). The arguments
``-f plist -i <ms> --samplers cpu_power,gpu_power,thermal -b 0`` are appended; ``-b 0`` sets powermetrics'
output buffer size to none, so each sample is written as soon as it is taken.

Documents are framed and parsed by :mod:`energyprof.power.powermetrics_parse`, placed on the job clock by
:class:`~energyprof.power.window_clock.WindowClock` (windows never overlap, and their energies are always
the documents' own), and every failure is one sentence from :mod:`energyprof.power.powermetrics_messages`.
The child is run and stopped by :mod:`energyprof.power.child_process`: it has its own session, so
``stop()`` signals its whole process group (sudo passes SIGTERM on to powermetrics), and every started
source is stopped by ``stop_all()``, at interpreter exit, and when it is garbage-collected; if the job
itself is killed with SIGKILL, powermetrics ends at its next write.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence

from energyprof.power import child_process
from energyprof.power.base import PowerSource, PowerSourceError, PowerWindow, Scope, now_ns
from energyprof.power.child_process import stop_all
from energyprof.power.chips import apple_chip
from energyprof.power.powermetrics_messages import (
    ENV_COMMAND,
    NEEDS_ROOT,
    NO_SAMPLE,
    NOT_MACOS,
    POWERMETRICS,
    cannot_start,
    failure_message,
    no_answer,
    not_found,
    stalled,
)
from energyprof.power.powermetrics_parse import (
    LIVE_COMPONENTS,
    ParsedSample,
    PlistStreamFramer,
    PowermetricsParseError,
    macos_version,
    parse_plist_document,
)
from energyprof.power.window_clock import WindowClock

__all__ = ["ENV_COMMAND", "NEEDS_ROOT", "NOT_MACOS", "SAMPLERS", "PowermetricsSource", "WindowClock",
           "default_command", "stop_all"]

SAMPLERS = "cpu_power,gpu_power,thermal"


def default_command() -> list[str]:
    """`$ENERGYPROF_POWERMETRICS` when set, else sudo -n /usr/bin/powermetrics (plain when already root)."""
    env = os.environ.get(ENV_COMMAND, "").strip()
    if env:
        return shlex.split(env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [POWERMETRICS]
    return ["sudo", "-n", POWERMETRICS]


SCOPE = Scope("SoC rails: CPU + GPU + ANE (+ DRAM on macOS 12 only), Apple's own estimates inside the chip (not fans, "
              "display, SSD, the rest of the machine, or wall power)", package_includes_dram=False)
"""macOS 12's package_energy holds CPU, GPU and ANE but not DRAM (Apple developer forums, thread 709276)."""


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

    def scope(self) -> Scope:
        return SCOPE

    def hardware(self) -> str | None:
        return apple_chip()

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
            return False, not_found(self.command[0])
        except subprocess.TimeoutExpired:
            return False, no_answer(self.probe_timeout_s)
        except OSError as exc:
            return False, cannot_start(exc, self.command[0])
        stderr = done.stderr.decode("utf-8", errors="replace")
        if done.returncode != 0:
            return False, failure_message(stderr, done.returncode, mid_run=False)
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
        return False, NO_SAMPLE

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, interval_ms: int) -> None:
        if self._proc is not None:
            raise PowerSourceError("The powermetrics source is already running; stop it before starting again.")
        if not self._override and sys.platform != "darwin":
            raise PowerSourceError(NOT_MACOS)
        self._reset(interval_ms)
        try:
            proc = child_process.spawn(self.command + self.arguments(interval_ms))
        except FileNotFoundError as exc:
            raise PowerSourceError(not_found(self.command[0])) from exc
        except OSError as exc:
            raise PowerSourceError(cannot_start(exc, self.command[0])) from exc
        self._proc = proc
        self._finalizer = weakref.finalize(self, child_process.terminate, proc, 0.2)
        child_process.track(self)
        code = self._await_first_output(proc)
        if code is not None and code != 0:
            self._read_stderr(proc)
            message = failure_message(self._stderr.decode("utf-8", errors="replace"), code, mid_run=False)
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
                raise PowerSourceError(stalled(stalled_s))
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
        return failure_message(self._stderr.decode("utf-8", errors="replace"), code, mid_run=True)

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            child_process.untrack(self)
            if proc is None:
                return
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            child_process.terminate(proc, self.stop_grace_s)
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
