"""Summing windows into energy and mean power per component (shared by `sample` and `import-powermetrics`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from energyprof.power.base import COMPONENTS, PowerWindow


@dataclass(frozen=True)
class PowerSummary:
    """Totals over a set of windows; a component no window knows has None (no figure), never 0."""

    samples: int
    duration_s: float
    energy_j: dict[str, float | None] = field(default_factory=dict)
    mean_w: dict[str, float | None] = field(default_factory=dict)
    known_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields every command's --json output shares."""
        return {"samples": self.samples, "duration_s": self.duration_s, "energy_j": dict(self.energy_j),
                "mean_w": dict(self.mean_w)}


def result_json(run_id: int, status: str, source: str, measured: bool, summary: PowerSummary, skipped: int,
                **extra: Any) -> dict[str, Any]:
    """The --json object of the commands that record a run (`sample`, `import-powermetrics`)."""
    return {"run_id": run_id, "status": status, "source": source, "measured": measured, "skipped": skipped,
            **summary.to_json(), **extra}


def ordered_components(names: Iterable[str]) -> list[str]:
    """Component names in display order (known ones first, in COMPONENTS order, then any others sorted)."""
    names = set(names)
    return [c for c in COMPONENTS if c in names] + sorted(names - set(COMPONENTS))


def summarise_windows(windows: Iterable[PowerWindow], components: Sequence[str] = ()) -> PowerSummary:
    """Energy (J) and mean power (W) per component; mean power is over the windows where it is known.

    Components are those the windows carry plus `components` (e.g. the source's own list), so a component
    the source reports as unknown still appears, with None.
    """
    windows = list(windows)
    names = ordered_components({c for w in windows for c in w.energy_mj} | set(components))
    energy_mj = dict.fromkeys(names, 0.0)
    known_ns = dict.fromkeys(names, 0)
    duration_ns = 0
    for w in windows:
        length = w.t1_ns - w.t0_ns
        duration_ns += length
        for comp, value in w.energy_mj.items():
            if value is not None:
                energy_mj[comp] += value
                known_ns[comp] += length
    energy_j: dict[str, float | None] = {}
    mean_w: dict[str, float | None] = {}
    for comp in names:
        if known_ns[comp] <= 0:
            energy_j[comp] = mean_w[comp] = None
        else:
            energy_j[comp] = energy_mj[comp] / 1e3
            mean_w[comp] = energy_mj[comp] / 1e3 / (known_ns[comp] / 1e9)
    return PowerSummary(samples=len(windows), duration_s=duration_ns / 1e9, energy_j=energy_j, mean_w=mean_w,
                        known_s={c: known_ns[c] / 1e9 for c in names})


def format_summary(summary: PowerSummary, *, measured: bool) -> list[str]:
    """Human lines: one per component with mean W and energy J ('unknown' where there is no figure)."""
    label = "" if measured else " (estimated)"
    lines = [f"{'component':<22} {'mean W':>10} {'energy J':>12}"]
    for comp in summary.energy_j:
        energy, power = summary.energy_j[comp], summary.mean_w[comp]
        if energy is None or power is None:
            lines.append(f"{comp + label:<22} {'unknown':>10} {'unknown':>12}")
        else:
            lines.append(f"{comp + label:<22} {power:>10.3f} {energy:>12.3f}")
    return lines
