"""A recording's summary (the `sample` and `import-powermetrics` runs): energy, mean and peak power per component."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from energyprof.components import lacking, ordered
from energyprof.power.base import PowerWindow, Scope
from energyprof.provenance import labelled, source_provenance
from energyprof.summary import RunSummary
from energyprof.units import NS_PER_S, mj_to_j, watts


def summarise_windows(windows: Iterable[PowerWindow], components: Sequence[str] = (), scope: Scope | None = None,
                      **fields: Any) -> RunSummary:
    """Energy (J), mean power over the windows where each component is known (W), and peak window power (W).

    Components are those the windows carry plus `components` (e.g. the source's own list), so a component the
    source reports as unknown still appears, with None. `scope`: what the source's whole-system figure covers.
    `fields` fill the rest of the RunSummary (run_id, kind, status, source, measured, ...)."""
    windows = list(windows)
    names = ordered({c for w in windows for c in w.energy_mj} | set(components))
    energy_mj = dict.fromkeys(names, 0.0)
    known_ns = dict.fromkeys(names, 0)
    peak: dict[str, float | None] = dict.fromkeys(names)
    duration_ns = 0
    for w in windows:
        length = w.t1_ns - w.t0_ns
        duration_ns += length
        for comp, value in w.energy_mj.items():
            if value is not None:
                energy_mj[comp] += value
                known_ns[comp] += length
                power = w.power_w(comp)
                if power is not None and (peak[comp] is None or power > peak[comp]):
                    peak[comp] = power
    known = {c: known_ns[c] > 0 for c in names}
    energy_j = {c: mj_to_j(energy_mj[c]) if known[c] else None for c in names}
    if scope is not None:
        fields = {"scope": scope.text, "scope_package_includes_dram": scope.package_includes_dram, **fields}
    return RunSummary(
        windows=len(windows), duration_s=duration_ns / NS_PER_S, energy_j=energy_j,
        mean_w={c: watts(energy_mj[c], known_ns[c]) if known[c] else None for c in names},
        peak_w=peak, total_lacks=lacking(energy_j), **fields)


def format_summary(summary: RunSummary) -> list[str]:
    """Human lines: one per component with mean W, peak W and energy J ('unknown' where there is no figure)."""
    est = source_provenance(summary.source, summary.measured)
    lines = [f"{'component':<22} {'mean W':>10} {'peak W':>10} {'energy J':>12}"]
    for comp in summary.energy_j:
        energy, power, peak = summary.energy_j[comp], summary.mean_w.get(comp), summary.peak_w.get(comp)
        name = labelled(comp, est)
        if energy is None or power is None:
            lines.append(f"{name:<22} {'unknown':>10} {'unknown':>10} {'unknown':>12}")
        else:
            lines.append(f"{name:<22} {power:>10.3f} {peak or 0:>10.3f} {energy:>12.3f}")
    return lines
