"""Numbers as text for people: energy, power, a mean with its CI (joules or seconds), rates, durations and dates.

Pure functions (no streamlit): the dashboard (through energyprof.ui.format), the CLI and the HTML report share them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from energyprof.summary import MeanCI
from energyprof.units import finite_or_none

PREFIXES: dict[str, tuple[tuple[float, str], ...]] = {
    "J": ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ")),
    "s": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")),
}
"""The prefixed units a quantity is shown in, largest first, per base unit."""


def fmt_prefixed(value: Any, unit: str) -> str:
    """A quantity in the largest prefixed unit it reaches (3 significant digits); "—" when unknown, "≈ 0" below
    the smallest prefix."""
    x = finite_or_none(value)
    if x is None:
        return "—"
    scales = PREFIXES[unit]
    if abs(x) < scales[-1][0]:
        return f"≈ 0 {unit}"
    scale, name = next((scale, name) for scale, name in scales if abs(x) >= scale)
    return f"{x / scale:.3g} {name}"


def fmt_energy(joules: Any) -> str:
    """Joules with a readable prefix (µJ, mJ, J, kJ, MJ); "—" when unknown, "≈ 0 J" below a microjoule."""
    return fmt_prefixed(joules, "J")


def fmt_power(watts: Any) -> str:
    """Watts with a readable prefix (mW, W, kW); "—" when unknown."""
    w = finite_or_none(watts)
    if w is None:
        return "—"
    if abs(w) >= 1e3:
        return f"{w / 1e3:.3g} kW"
    if abs(w) >= 1 or w == 0:
        return f"{w:.3g} W"
    return f"{w * 1e3:.3g} mW"


def fmt_ci(stat: MeanCI | None, unit: str = "J") -> str:
    """`mean ± ci95` of a quantity in joules or seconds, both in the mean's prefixed unit (e.g. "16.6 ± 0.63 J",
    "183 ± 21 ms"); "—" when unknown."""
    mean = finite_or_none(stat.mean if stat is not None else None)
    if mean is None:
        return "—"
    shown = fmt_prefixed(mean, unit)
    ci = finite_or_none(stat.ci95)
    if ci is None:
        return shown
    number, name = shown.rsplit(" ", 1)
    scale = next((scale for scale, prefixed in PREFIXES[unit] if prefixed == name), 1.0)
    if number == "≈ 0" or not 0.01 <= ci / scale < 1000:
        return f"{shown} ± {fmt_prefixed(ci, unit)}"
    half = ci / scale
    return f"{number} ± {half:.0f} {name}" if half >= 100 else f"{number} ± {half:.2g} {name}"


def fmt_rate(tokens_per_s: Any) -> str:
    r = finite_or_none(tokens_per_s)
    return "—" if r is None else f"{r:.3g} tokens/s"


def fmt_seconds(seconds: Any) -> str:
    s = finite_or_none(seconds)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{s:.3g} s"


def fmt_date(epoch: Any) -> str:
    e = finite_or_none(epoch)
    return "—" if e is None else datetime.fromtimestamp(e).strftime("%Y-%m-%d %H:%M")
