"""Every power source by name, what each says about this machine, and the automatic choice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from energyprof.power.base import NullSource, PowerSource, PowerSourceError, SourceStatus
from energyprof.power.counter import CounterCharacteristics, probe_source

SOURCE_NAMES: tuple[str, ...] = ("ioreport", "powermetrics", "nvml", "rapl", "estimate")
"""Every source, in order of preference for `auto` (measured ones first, the estimate last)."""

AUTO = "auto"

log = logging.getLogger(__name__)


def _factories() -> dict[str, Callable[..., PowerSource]]:
    from energyprof.power.estimate import EstimateSource
    from energyprof.power.ioreport import IOReportSource
    from energyprof.power.nvml import NvmlSource
    from energyprof.power.powermetrics import PowermetricsSource
    from energyprof.power.rapl import RaplSource

    return {"ioreport": IOReportSource, "powermetrics": PowermetricsSource, "nvml": NvmlSource, "rapl": RaplSource,
            "estimate": EstimateSource}


def make_source(name: str, **options: Any) -> PowerSource:
    """A new, unstarted source by name; options go to its constructor (e.g. command=, root=, idle_w=)."""
    factories = _factories()
    if name not in factories:
        raise ValueError(f"unknown power source {name!r}; choose one of {', '.join(SOURCE_NAMES)} or {AUTO}.")
    return factories[name](**options)


def source_status(name: str, **options: Any) -> SourceStatus:
    """What one source says about this machine; a source that cannot even be built is unavailable."""
    try:
        return make_source(name, **options).status()
    except (ValueError, PowerSourceError) as exc:
        if name not in SOURCE_NAMES:
            raise
        cls = _factories()[name]
        return SourceStatus(name, False, str(exc), (), bool(cls.measured), int(cls.default_interval_ms))


def all_statuses() -> list[SourceStatus]:
    """Every source's status, in preference order (powermetrics probes its command once)."""
    return [source_status(name) for name in SOURCE_NAMES]


def auto_name(statuses: Iterable[SourceStatus]) -> str:
    """The source `auto` picks from these statuses: the first available measured one, else the estimate."""
    statuses = list(statuses)
    for status in statuses:
        log.debug("source %s: %s", status.name, "available" if status.available else f"not available: "
                  f"{status.reason}")
        if status.available and status.measured:
            log.debug("auto picks %s: the first available measured source", status.name)
            return status.name
    log.debug("auto picks the estimate: no measured source is available")
    return "estimate" if any(s.name == "estimate" and s.available for s in statuses) else NullSource.name


def auto_select() -> PowerSource:
    """The first available measured source, else the estimate (else a NullSource that reports nothing)."""
    for name in SOURCE_NAMES:
        try:
            source = make_source(name)
        except (ValueError, PowerSourceError) as exc:
            log.debug("source %s cannot be built here: %s", name, exc)
            continue
        if not source.measured:
            continue
        ok, reason = source.available()
        if ok:
            log.info("power source: auto chose %s (the first available measured source)", name)
            return source
        log.debug("source %s is not available: %s", name, reason)
    try:
        source = make_source("estimate")
    except ValueError:
        log.warning("no power source works here; nothing will be measured")
        return NullSource()
    log.info("power source: auto chose the estimate (no measured source is available)")
    return source


def resolve_source(name_or_auto: str | None = AUTO, **options: Any) -> PowerSource:
    """`auto`/None -> auto_select(); a name -> that source, or PowerSourceError saying why it cannot run here."""
    if name_or_auto in (None, AUTO):
        return auto_select()
    try:
        source = make_source(name_or_auto, **options)
    except ValueError as exc:
        if name_or_auto not in SOURCE_NAMES:
            raise
        raise PowerSourceError(str(exc)) from exc
    ok, reason = source.available()
    if not ok:
        log.info("power source %s refused: %s", name_or_auto, reason)
        raise PowerSourceError(f"the {name_or_auto} power source is not available here: {reason}")
    log.info("power source: %s (asked for by name)", name_or_auto)
    return source


def probe_counters(statuses: Iterable[SourceStatus], seconds: float) -> dict[str, CounterCharacteristics]:
    """Update period and quantum of every available counter source (each started, polled `seconds`, stopped)."""
    found: dict[str, CounterCharacteristics] = {}
    if seconds <= 0:
        return found
    for status in statuses:
        if not status.available or _factories()[status.name].is_counter is False:
            continue  # only sources that may keep counters are started (never powermetrics)
        try:
            characteristics = probe_source(make_source(status.name), seconds)
        except (PowerSourceError, ValueError):
            continue
        if characteristics is not None:
            found[status.name] = characteristics
    return found
