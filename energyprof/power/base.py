"""The one vocabulary every power source speaks: components, sample windows, the source interface."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from energyprof.components import (  # noqa: F401 - the vocabulary sources speak, re-exported
    AGGREGATE_COMPONENTS,
    ANE,
    COMPONENTS,
    CPU,
    DRAM,
    GPU,
    PACKAGE,
)
from energyprof.components import whole_system as total_energy_mj  # noqa: F401 - the one whole-system rule
from energyprof.errors import EnergyprofError

MAX_PLAUSIBLE_W = 10_000.0
"""The plausibility bound: no component of one window averages more than 10 kW. The largest single devices
energyprof reads draw about 1.5 kW (a GPU board) and an Apple SoC well under 0.5 kW, so a figure above this
is a corrupt sample: it is skipped and counted, never stored (and never becomes Infinity in a sum)."""


def implausible(energy_mj: dict[str, float | None], duration_ns: int) -> str | None:
    """Why a window's figures cannot be real (not finite, negative, above MAX_PLAUSIBLE_W), or None when they can."""
    for component, energy in energy_mj.items():
        if energy is None:
            continue
        if not math.isfinite(energy) or energy < 0:
            return f"{component} energy {energy!r} mJ is not a finite number >= 0"
        if energy / 1e3 > MAX_PLAUSIBLE_W * duration_ns / 1e9:
            return (f"{component} averages {energy / 1e3 / (duration_ns / 1e9):.3g} W, above the {MAX_PLAUSIBLE_W:g} W "
                    "any one component can draw")
    return None


def now_ns() -> int:
    """The one clock of a job: monotonic nanoseconds (mach_absolute_time on macOS)."""
    return time.perf_counter_ns()


@dataclass(frozen=True)
class PowerWindow:
    """Energy spent per component in the window [t0_ns, t1_ns]; None means unknown, never 0."""

    t0_ns: int
    t1_ns: int
    energy_mj: dict[str, float | None] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.t1_ns - self.t0_ns) / 1e9

    def power_w(self, component: str) -> float | None:
        """Mean power of one component over the window, in watts (None when unknown)."""
        energy = self.energy_mj.get(component)
        if energy is None or self.t1_ns <= self.t0_ns:
            return None
        return energy / 1e3 / self.duration_s


@dataclass(frozen=True, slots=True)
class CounterReading:
    """A counter source's cumulative energy per component, read at one instant.

    ``energy_mj``: mJ from an arbitrary origin that stays fixed while the source runs (only differences
    between readings mean anything; None = unknown). ``t_ns``: ONE ``now_ns()`` read taken right after the
    counters were read, with no other work in between: when the reading follows a step's device sync,
    ``t_ns`` is that step's boundary on the job clock.
    """

    t_ns: int
    energy_mj: dict[str, float | None]

    def window_since(self, earlier: CounterReading) -> PowerWindow:
        """The energy spent between an earlier reading and this one, as the window [earlier.t_ns, t_ns]."""
        energy: dict[str, float | None] = {}
        for component, value in self.energy_mj.items():
            before = earlier.energy_mj.get(component)
            energy[component] = None if value is None or before is None else value - before
        return PowerWindow(earlier.t_ns, self.t_ns, energy)


class PowerSourceError(EnergyprofError, RuntimeError):
    """A source failed while running; the message is one sentence a user can act on."""


@dataclass(frozen=True)
class Scope:
    """What a source's whole-system figure covers, in words every total repeats, and whether its `package` figure
    already holds DRAM (None: the source has no package figure). The rule that sums the parts is
    energyprof.components.whole_system; this says what the sum is of."""

    text: str
    package_includes_dram: bool | None = None


UNKNOWN_SCOPE = Scope("not stated")


@dataclass(frozen=True)
class SourceStatus:
    """What `doctor` shows for one source."""

    name: str
    available: bool
    reason: str
    components: tuple[str, ...]
    measured: bool
    interval_ms: int


class PowerSource(ABC):
    """One hardware family's power readings, as sample windows on the job clock.

    Life cycle: ``start(interval_ms)``, then ``read(timeout_s)`` repeatedly from one thread
    (each call returns the windows completed since the last call, possibly none), then ``stop()``,
    then ``drain()`` for the windows still in flight at the stop. ``stop()`` is idempotent and safe to
    call from any state.
    """

    name: str = "abstract"
    measured: bool = True
    default_interval_ms: int = 100
    skipped: int = 0
    """Samples dropped as malformed or cut off since start() (stays 0 for sources that cannot drop any)."""
    is_counter: bool = False
    """True when read_counter() works: the hardware keeps cumulative energy counters that can be read at any
    instant, from any thread, while the sampler thread polls them (nvml decides per GPU when it starts)."""

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, how) when this source can run here, else (False, one sentence on what to do)."""

    @abstractmethod
    def components(self) -> tuple[str, ...]:
        """Components this source reports, a subset of COMPONENTS."""

    @abstractmethod
    def start(self, interval_ms: int) -> None:
        """Begin sampling; raise PowerSourceError with a clear sentence when that is impossible."""

    @abstractmethod
    def read(self, timeout_s: float) -> list[PowerWindow]:
        """Block up to timeout_s; return completed windows. Raise PowerSourceError if the source died."""

    @abstractmethod
    def stop(self) -> None:
        """Stop sampling and release every resource (processes, handles)."""

    def read_counter(self) -> CounterReading:
        """The counters now (see CounterReading); thread-safe. PowerSourceError when the source has none."""
        raise PowerSourceError(f"the {self.name} source has no energy counter to read at a step boundary.")

    def scope(self) -> Scope:
        """What this source's whole-system figure covers (the one owner of that sentence for this source)."""
        return UNKNOWN_SCOPE

    def hardware(self) -> str | None:
        """The chip or board this source reads (e.g. "Apple M4 Max", "NVIDIA H100 80GB HBM3"); None when unknown.
        It picks the power ceiling of energyprof.power.chips."""
        return None

    def drain(self) -> list[PowerWindow]:
        """Windows that were still in flight when the source stopped, each returned once (default: none)."""
        return []

    def status(self) -> SourceStatus:
        ok, reason = self.available()
        return SourceStatus(self.name, ok, reason, self.components(), self.measured, self.default_interval_ms)

    def __enter__(self) -> PowerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PolledSource(PowerSource):
    """A source read by polling cumulative counters: each poll closes the window opened by the last.

    Every counter read (the sampler's polls and read_counter() from the token loop) holds one lock, and its
    timestamp is one clock read taken right after the counters, so windows and boundary readings agree.
    """

    is_counter = True

    def __init__(self) -> None:
        self._interval_ns = 0
        self._last: tuple[int, dict[str, float | None]] | None = None
        self._next_due = 0
        self._lock = threading.Lock()
        self.poll_readings: list[CounterReading] | None = None
        """Set it to a list before start() to keep the reading behind every poll (the start and each window's end),
        so the job can merge them with its step-boundary readings into one chain (energyprof.analysis.counter_chain).
        """

    @abstractmethod
    def _open(self) -> None:
        """Acquire handles; raise PowerSourceError when impossible."""

    @abstractmethod
    def _counters_mj(self) -> dict[str, float | None]:
        """Cumulative energy per component in mJ (monotonic; wrap-around already handled)."""

    def _close(self) -> None:
        """Release handles (default: nothing)."""

    def _window_energy(self, before: dict[str, float | None], after: dict[str, float | None],
                       dt_ns: int) -> dict[str, float | None]:
        """Energy of one window from two counter readings (override for non-counter sources)."""
        out: dict[str, float | None] = {}
        for comp in self.components():
            a, b = before.get(comp), after.get(comp)
            out[comp] = None if a is None or b is None else b - a
        return out

    def start(self, interval_ms: int) -> None:
        with self._lock:
            self._open()
            self._interval_ns = int(interval_ms * 1e6)
            counters = self._counters_mj()
            t = now_ns()
            self._last = (t, counters)
            self._next_due = t + self._interval_ns
            self._keep(t, counters)

    def _keep(self, t: int, counters: dict[str, float | None]) -> None:
        """Keep a poll's reading when asked to (poll_readings is a list) and the source is a counter."""
        if self.poll_readings is not None and self.is_counter:
            self.poll_readings.append(CounterReading(t, dict(counters)))

    def read_counter(self) -> CounterReading:
        if not self.is_counter:
            return super().read_counter()
        with self._lock:
            if self._last is None:
                raise PowerSourceError(f"The {self.name} source is not running: it was read before it was started "
                                       "or after it stopped.")
            counters = self._counters_mj()
            t = now_ns()
        return CounterReading(t, counters)

    def read(self, timeout_s: float) -> list[PowerWindow]:
        if self._last is None:
            raise PowerSourceError(f"The {self.name} source was read before it was started.")
        deadline = now_ns() + int(timeout_s * 1e9)
        wait_until = min(self._next_due, deadline)
        delay = (wait_until - now_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        if now_ns() < self._next_due:
            return []
        with self._lock:
            if self._last is None:
                raise PowerSourceError(f"The {self.name} source was stopped while it was read.")
            counters = self._counters_mj()
            t = now_ns()
            t_prev, prev = self._last
            self._last = (t, counters)
            self._keep(t, counters)
        self._next_due = max(self._next_due + self._interval_ns, t + self._interval_ns // 2)
        return [PowerWindow(t_prev, t, self._window_energy(prev, counters, t - t_prev))]

    def stop(self) -> None:
        with self._lock:
            if self._last is not None:
                self._last = None
                self._close()


class NullSource(PowerSource):
    """Stands in when no source is available: reports nothing, so every component stays unknown."""

    name = "none"
    measured = False

    def available(self) -> tuple[bool, str]:
        return True, "No power data: every figure will be unknown."

    def scope(self) -> Scope:
        return Scope("nothing: no power source recorded this run")

    def components(self) -> tuple[str, ...]:
        return ()

    def start(self, interval_ms: int) -> None:
        self._interval_s = interval_ms / 1e3

    def read(self, timeout_s: float) -> list[PowerWindow]:
        time.sleep(min(timeout_s, getattr(self, "_interval_s", 0.1)))
        return []

    def stop(self) -> None:
        return None
