"""Measure the energy of a block of a person's own code.

    import energyprof
    with energyprof.measure() as m:
        run_my_model()
    print(m.energy_j, m.total_j, m.mean_w, "estimated" if not m.measured else "measured")

A sampler thread reads the power source while the block runs. On exit the measurement waits (bounded)
for the window that covers the end of the block, stops the source, and attributes the windows to the
block's [enter, exit] interval exactly as a profiling job attributes them to tokens.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from energyprof.analysis.attribution import attribute_intervals, whole_system_mj
from energyprof.components import lacking
from energyprof.machine import this_machine
from energyprof.power import registry
from energyprof.power.base import PolledSource, PowerSource, PowerWindow, Scope, now_ns
from energyprof.power.sampler import Sampler
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.units import finite_or_none

if TYPE_CHECKING:
    from energyprof.store import Store

MIN_WAIT_S = 1.0
"""Shortest bound on waiting for the first window (at enter) and the tail window (at exit)."""


def _resolve(source: str | PowerSource) -> PowerSource:
    if isinstance(source, PowerSource):
        return source
    return registry.resolve_source(source)


def _open_store(db: str | os.PathLike[str] | Store) -> Store:
    return db if isinstance(db, Store) else Store(db)


class Measurement:
    """Context manager returned by `measure()`; its results are readable after the block ends."""

    def __init__(self, source: str | PowerSource = "auto", interval_ms: int | None = None,
                 db: str | os.PathLike[str] | Store | None = None, label: str | None = None) -> None:
        self._source_arg = source
        self._interval_ms = interval_ms
        self._db = db
        self.label = label
        self.windows: list[PowerWindow] = []
        self.run_id: int | None = None
        self.error: str | None = None
        self._cond = threading.Condition()
        self._sampler: Sampler | None = None
        self._store: Store | None = None
        self._t0_ns: int | None = None
        self._t1_ns: int | None = None
        self._energy_mj: dict[str, float | None] = {}
        self._total_mj: float | None = None
        self._resolution: float | None = None
        self.source = ""
        self.measured = False
        self.scope: Scope | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> Measurement:
        src = _resolve(self._source_arg)
        self.source, self.measured = src.name, bool(src.measured)
        self.scope = src.scope()
        self._sampler = Sampler(src, self._on_windows, self._interval_ms)
        self._sampler.start()
        wait_s = max(MIN_WAIT_S, 3 * self._sampler.interval_ms / 1e3)
        try:
            if not isinstance(src, PolledSource):
                self._wait_for(lambda: bool(self.windows), wait_s)
            if self._db is not None:
                self._store = _open_store(self._db)
                self.run_id = self._store.create_run(
                    "measure", source=self.source, measured=self.measured,
                    params={"label": self.label, "interval_ms": self._sampler.interval_ms}, owned=True)
        except BaseException:
            self._sampler.stop()
            raise
        self._t0_ns = now_ns()
        if self._store is not None and self.run_id is not None:
            self._store.update_run(self.run_id, clock_t0_ns=self._t0_ns)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._t1_ns = now_ns()
        sampler = self._sampler
        assert sampler is not None and self._t0_ns is not None
        try:
            t1 = self._t1_ns
            wait_s = max(MIN_WAIT_S, 3 * sampler.interval_ms / 1e3)
            self._wait_for(lambda: any(w.t1_ns >= t1 for w in self.windows[-8:]), wait_s)
        finally:
            sampler.stop()
        self.error = sampler.error
        self._attribute()
        if self._store is not None and self.run_id is not None:
            self._record(exc)

    def _on_windows(self, batch: list[PowerWindow]) -> None:
        with self._cond:
            self.windows.extend(batch)
            self._cond.notify_all()

    def _wait_for(self, ready: Any, timeout_s: float) -> None:
        """Wait until ready() holds, the sampler dies, or timeout_s passes."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not ready() and self._sampler is not None and self._sampler.alive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, 0.05))

    def _attribute(self) -> None:
        assert self._t0_ns is not None and self._t1_ns is not None
        comps = list(dict.fromkeys([*self._sampler_components(), *(c for w in self.windows for c in w.energy_mj)]))
        result = attribute_intervals(self.windows, np.array([self._t0_ns]), np.array([self._t1_ns]), comps)
        self._energy_mj = {c: finite_or_none(v[0]) for c, v in result.energy_mj.items()}
        self._total_mj = finite_or_none(whole_system_mj(result.energy_mj)[0]) if comps else None
        self._resolution = finite_or_none(result.resolution[0])

    def _sampler_components(self) -> tuple[str, ...]:
        return self._sampler.source.components() if self._sampler is not None else ()

    def _record(self, exc: BaseException | None) -> None:
        """Store the windows and a summary; a block that raised makes the run `failed`."""
        assert self._store is not None and self.run_id is not None
        self._store.add_power_windows(self.run_id, self.windows)
        if self.error:
            self._store.update_run(self.run_id, power_incomplete=1)
        summary = self.summary(run_id=self.run_id, status="done" if exc is None else "failed",
                               error=None if exc is None else f"The measured block raised {exc!r}.")
        self._store.finish_run(self.run_id, summary.status, error=summary.error, summary=summary.to_dict())

    # -- results -------------------------------------------------------------------------------
    def summary(self, **fields: Any) -> RunSummary:
        """The block as a `measure` run's summary (the record every run kind shares)."""
        self._require_done()
        seconds = self.duration_s
        return RunSummary(kind="measure", source=self.source, measured=self.measured,
                          interval_ms=self._sampler.interval_ms if self._sampler is not None else None,
                          windows=len(self.windows), duration_s=seconds, energy_j=self.energy_j,
                          total_energy_j=self.total_j,
                          mean_w={c: None if e is None or seconds <= 0 else e / seconds
                                  for c, e in self.energy_j.items()},
                          power_incomplete=bool(self.error), warnings=[self.error] if self.error else [],
                          label=self.label, resolution=self._resolution, block_t0_ns=self._t0_ns,
                          block_t1_ns=self._t1_ns, scope=self.scope.text if self.scope else None,
                          scope_package_includes_dram=self.scope.package_includes_dram if self.scope else None,
                          total_lacks=lacking(self.energy_j) if self.total_j is not None else [],
                          machine=this_machine(self._sampler.source if self._sampler is not None else self.source),
                          **fields)

    def _require_done(self) -> None:
        if self._t1_ns is None:
            raise RuntimeError("The measurement is still running; read its results after the with-block.")

    @property
    def energy_j(self) -> dict[str, float | None]:
        """Energy of the block per component in joules; None when unknown."""
        self._require_done()
        return {c: None if v is None else v / 1e3 for c, v in self._energy_mj.items()}

    @property
    def total_j(self) -> float | None:
        """Whole-system energy of the block (package when known, else the sum of parts); None when unknown."""
        self._require_done()
        return None if self._total_mj is None else self._total_mj / 1e3

    @property
    def t0_ns(self) -> int | None:
        """The block's start on the job clock (energyprof.power.base.now_ns); None before the block."""
        return self._t0_ns

    @property
    def t1_ns(self) -> int | None:
        """The block's end on the job clock; None while it runs."""
        return self._t1_ns

    @property
    def duration_s(self) -> float:
        self._require_done()
        assert self._t0_ns is not None and self._t1_ns is not None
        return (self._t1_ns - self._t0_ns) / 1e9

    @property
    def mean_w(self) -> float | None:
        """Mean whole-system power over the block; None when unknown."""
        total, duration = self.total_j, self.duration_s
        return None if total is None or duration <= 0 else total / duration

    @property
    def resolution(self) -> float | None:
        """Block length / length of the windows it overlaps (below 1: time-apportioned share of windows)."""
        self._require_done()
        return self._resolution

    @property
    def complete(self) -> bool:
        """True when windows covered both the start and the end of the block."""
        self._require_done()
        if not self.windows:
            return False
        return (min(w.t0_ns for w in self.windows) <= (self._t0_ns or 0)
                and max(w.t1_ns for w in self.windows) >= (self._t1_ns or 0))

    def __repr__(self) -> str:
        if self._t1_ns is None:
            return f"<energyprof.Measurement source={self.source!r} running>"
        kind = "measured" if self.measured else "estimated"
        total = "unknown" if self.total_j is None else f"{self.total_j:.3f} J"
        return f"<energyprof.Measurement {total} in {self.duration_s:.3f} s ({kind}, {self.source})>"


def measure(source: str | PowerSource = "auto", interval_ms: int | None = None,
            db: str | os.PathLike[str] | Store | None = None, label: str | None = None) -> Measurement:
    """Measure the energy of a with-block: `with energyprof.measure() as m: ...`, then read m.energy_j.

    source: a source name, "auto" (the best available, measured preferred) or a PowerSource instance.
    db: a database path or Store; when given, the block is stored as a run of kind `measure`."""
    return Measurement(source, interval_ms, db, label)
