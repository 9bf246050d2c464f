"""The cross-check source of a run: a second power source recorded during the same run, beside the run's own.

It has its own Sampler; its windows go to the store tagged with its name (power_samples.source), so every read of
the run's power keeps meaning the run's own source. It can never fail the run: a cross-check source that cannot
start, or stops mid-run, leaves a sentence in `error` (RunSummary.cross_check_error) and the run goes on.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field

from energyprof.analysis.cross_check import agreements
from energyprof.power import registry
from energyprof.power.base import PowerSourceError, PowerWindow
from energyprof.power.sampler import Sampler
from energyprof.store import Store
from energyprof.store.writer import WindowWriter
from energyprof.summary import Agreement


@dataclass
class CrossCheckFigures:
    """The cross-check source's figures; every field is a RunSummary field of the same name (RunSummary.take)."""

    cross_check: str | None = None
    cross_check_error: str | None = None
    cross_check_windows: int = 0
    cross_check_agreement: dict[str, Agreement] = field(default_factory=dict)


class CrossCheck:
    """One cross-check source for one run (see the module docstring)."""

    def __init__(self, name: str, store: Store, run_id: int, interval_ms: int | None) -> None:
        self.name, self.interval_ms = name, interval_ms
        self.writer = WindowWriter(store, run_id, cross_check=name)
        self.windows: list[PowerWindow] = []
        self.sampler: Sampler | None = None
        self.error: str | None = None

    def start(self, primary: str) -> None:
        """Start sampling beside the run's own source `primary`; a failure is kept in `error`, never raised."""
        if self.name == primary:
            self.error = (f"The cross-check source {self.name} is the run's own source; choose another one to get a "
                          "second opinion.")
            return
        try:
            source = registry.resolve_source(self.name)
            sampler = Sampler(source, self._on_windows, self.interval_ms)
            sampler.start()
        except (PowerSourceError, ValueError, OSError) as exc:
            self.error = f"The cross-check source {self.name} could not start: {str(exc).rstrip('.')}."
            return
        self.sampler = sampler

    def _on_windows(self, windows: list[PowerWindow]) -> None:
        """Sampler thread: keep the windows and buffer them for the store (the monitor thread flushes)."""
        self.windows.extend(windows)
        self.writer.add(windows)

    def stop(self) -> None:
        """Stop the sampler (and its source); a failure mid-run becomes `error`."""
        if self.sampler is None:
            return
        with suppress(Exception):
            self.sampler.stop()
        if self.sampler.error and self.error is None:
            self.error = (f"The cross-check source {self.name} stopped during the run "
                          f"({self.sampler.error.rstrip('.')}); its figures cover only the time before.")

    def figures(self, primary: list[PowerWindow], spans: list[tuple[int, int]]) -> CrossCheckFigures:
        """Which source, its windows, why it failed, and the agreement per component."""
        try:
            agreement = agreements(primary, self.windows, spans)
        except Exception as exc:  # a second opinion must never cost the run its result
            agreement = {}
            self.error = self.error or f"Comparing the cross-check source {self.name} failed ({exc})."
        return CrossCheckFigures(self.name, self.error, len(self.windows), agreement)
