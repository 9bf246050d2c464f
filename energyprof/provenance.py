"""How a number was obtained: the one place that labels figures measured, time-apportioned or estimated.

* **measured**: read from the hardware's own energy counters (powermetrics, IOReport, NVML, RAPL), over an
  interval at least as long as the counter's update period or sample window.
* **apportioned** (time-apportioned): a measured window's energy shared out by time to an interval shorter
  than the window (a 2 ms layer call gets 2 % of a 100 ms window): a timing share, not a measurement. An
  interval shorter than its counter's update period is apportioned too, even where it covers whole windows:
  the counter may not have moved inside it.
* **estimated**: a model of power (the `estimate` source: CPU utilisation × a linear power model); never a
  reading of the hardware.
* **unknown**: no source recorded the run (or it did not say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np

from energyprof.components import AGGREGATE_COMPONENTS, OUTSIDE_PACKAGE

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


def interval_provenance(source_kind: Provenance, resolution: float | None, duration_ns: float | None = None,
                        update_period_ns: float | None = None) -> Provenance:
    """A single interval's figure: estimated stays estimated; measured becomes apportioned below full resolution,
    or when the interval is shorter than its counter's update period (when one is given)."""
    return str(interval_provenance_array(source_kind, np.array([np.nan if resolution is None else resolution]),
                                         None if duration_ns is None else np.array([duration_ns]),
                                         update_period_ns)[0])  # type: ignore[return-value]


def interval_provenance_array(source_kind: Provenance, resolution: np.ndarray, duration_ns: np.ndarray | None = None,
                              update_period_ns: float | None = None) -> np.ndarray:
    """interval_provenance for many intervals at once (an object array of labels); NaN resolution is unknown."""
    res = np.asarray(resolution, dtype=np.float64)
    if source_kind != MEASURED:
        return np.full(res.shape, source_kind, dtype=object)
    full = res >= FULL_RESOLUTION
    if duration_ns is not None and update_period_ns is not None:
        full &= np.asarray(duration_ns, dtype=np.float64) >= update_period_ns
    out = np.where(full, MEASURED, APPORTIONED).astype(object)
    out[np.isnan(res)] = UNKNOWN
    return out


_ORDER = np.array([UNKNOWN, MEASURED, APPORTIONED, ESTIMATED], dtype=object)
"""Worse figures rank higher (the index): a whole made of parts is as good as its worst known part."""


def _ranks(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels, dtype=object)
    return np.select([arr == name for name in _ORDER[1:]], [1, 2, 3], 0)


def whole_system_provenance(by_component: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per interval, the provenance of its whole-system figure from its components' (arrays of labels).

    It follows the whole-system rule of energyprof.components: where an aggregate component (package) is known,
    the whole is the aggregate's figure plus the parts it does not hold (DRAM) and is as good as the worst of those;
    else it is the sum of the known parts and is as
    good as the worst of them (one apportioned part makes the whole apportioned). Nothing known: unknown."""
    if not by_component:
        return np.array([], dtype=object)
    ranks = {c: _ranks(labels) for c, labels in by_component.items()}
    n = len(next(iter(ranks.values())))
    parts = [r for c, r in ranks.items() if c not in AGGREGATE_COMPONENTS]
    whole = np.max(np.vstack(parts), axis=0) if parts else np.zeros(n, dtype=np.int64)
    outside = [r for c, r in ranks.items() if c in OUTSIDE_PACKAGE]
    extra = np.max(np.vstack(outside), axis=0) if outside else np.zeros(n, dtype=np.int64)
    for aggregate in AGGREGATE_COMPONENTS & ranks.keys():
        whole = np.where(ranks[aggregate] > 0, np.maximum(ranks[aggregate], extra), whole)
    return _ORDER[whole]


def worst_provenance(labels: Iterable[str | None]) -> Provenance:
    """The label of a sum of parts: as good as its worst known part (unknown when no part is known)."""
    ranks = _ranks(np.array([label or UNKNOWN for label in labels], dtype=object))
    return _ORDER[int(ranks.max())] if ranks.size else UNKNOWN  # type: ignore[return-value]


def measured_share(labels: np.ndarray) -> float | None:
    """The share (0-1) of intervals whose figure is measured, among those with a known figure; None when none is."""
    arr = np.asarray(labels, dtype=object)
    known = arr[arr != UNKNOWN]
    return None if known.size == 0 else float(np.count_nonzero(known == MEASURED)) / known.size


def replay_provenance(source_kind: Provenance, method: str | None) -> Provenance:
    """A replayed layer's figure: estimated stays estimated; measured, unless its loop was shorter than any whole
    sample window and got a time share of the windows (method `apportioned`, energyprof.analysis.replay_results)."""
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
