"""How a number was obtained: the one place that labels figures measured, time-apportioned or estimated.

* **measured**: read from the hardware's own energy counters (powermetrics, IOReport, NVML, RAPL), over an
  interval at least as long as the counter's update period or sample window.
* **apportioned** (time-apportioned): a measured window's energy shared out by time to an interval shorter
  than the window (a 2 ms layer call gets 2 % of a 100 ms window): a timing share, not a measurement.
* **estimated**: a model of power (the `estimate` source: CPU utilisation × a linear power model); never a
  reading of the hardware.
* **unknown**: no source recorded the run (or it did not say).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

MEASURED, APPORTIONED, ESTIMATED, UNKNOWN = "measured", "apportioned", "estimated", "unknown"
Provenance = Literal["measured", "apportioned", "estimated", "unknown"]

ESTIMATE_SOURCES: frozenset[str] = frozenset({"estimate", "none"})
"""Sources whose figures are never measurements (the estimate model, and no source at all)."""

FULL_RESOLUTION = 0.999
"""An interval whose resolution (its length / the length of the windows covering it) is below this is apportioned."""


def source_provenance(source: str | None, measured: bool | None) -> Provenance:
    """`measured` or `estimated` for a run's power source (`unknown` when neither is recorded)."""
    if measured is False or source in ESTIMATE_SOURCES:
        return ESTIMATED
    if measured is True or source:
        return MEASURED
    return UNKNOWN


def run_provenance(run: Mapping[str, Any]) -> Provenance:
    """The provenance of a run row's (or summary's) power figures."""
    return source_provenance(run.get("source"), run.get("measured"))


def is_estimated(run: Mapping[str, Any]) -> bool:
    """True when a run's figures come from an estimate (or no) power source."""
    return run_provenance(run) == ESTIMATED


def interval_provenance(source_kind: Provenance, resolution: float | None) -> Provenance:
    """A single interval's figure: estimated stays estimated; measured becomes apportioned below full resolution."""
    if source_kind != MEASURED:
        return source_kind
    if resolution is None or resolution != resolution:
        return UNKNOWN
    return MEASURED if resolution >= FULL_RESOLUTION else APPORTIONED


def replay_provenance(source_kind: Provenance, method: str | None) -> Provenance:
    """A replayed layer's figure: estimated stays estimated; measured, unless its loop was shorter than any whole
    sample window and got a time share of the windows (method `apportioned`, energyprof.profile.replay_results)."""
    if source_kind != MEASURED:
        return source_kind
    return APPORTIONED if method == APPORTIONED else MEASURED


def labelled(text: str, provenance: Provenance | bool) -> str:
    """`text (estimated)` for estimated figures (True means estimated), `text` otherwise."""
    estimated = provenance is True or provenance == ESTIMATED
    return f"{text} (estimated)" if estimated else text


def source_label(source: str | None, measured: bool | None) -> str:
    """`source · measured` / `source · estimated` for tables; an em dash when no source is recorded."""
    if not source:
        return "—"
    return f"{source} · {source_provenance(source, measured)}"
