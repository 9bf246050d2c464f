"""Numbers as text for people: energy, power, a mean with its CI, rates, durations and dates.

Pure functions (no streamlit): the dashboard (through energyprof.ui.format), the CLI and the HTML report share them."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from energyprof.summary import MeanCI


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_energy(joules: Any) -> str:
    """Joules with a readable prefix (µJ, mJ, J, kJ, MJ); "—" when unknown, "≈ 0 J" below a microjoule."""
    j = _finite(joules)
    if j is None:
        return "—"
    if abs(j) < 1e-6:
        return "≈ 0 J"
    for scale, unit in ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ")):
        if abs(j) >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j * 1e6:.3g} µJ" if j else "0 J"


def fmt_power(watts: Any) -> str:
    """Watts with a readable prefix (mW, W, kW); "—" when unknown."""
    w = _finite(watts)
    if w is None:
        return "—"
    if abs(w) >= 1e3:
        return f"{w / 1e3:.3g} kW"
    if abs(w) >= 1 or w == 0:
        return f"{w:.3g} W"
    return f"{w * 1e3:.3g} mW"


def fmt_ci(stat: MeanCI | None) -> str:
    """`mean ± ci95` in joules, both in the mean's unit (e.g. "16.6 ± 0.63 J"); "—" when unknown."""
    mean = _finite(stat.mean if stat is not None else None)
    if mean is None:
        return "—"
    ci = _finite(stat.ci95)
    if ci is None:
        return fmt_energy(mean)
    number, unit = fmt_energy(mean).rsplit(" ", 1)
    scale = {"MJ": 1e6, "kJ": 1e3, "J": 1.0, "mJ": 1e-3, "µJ": 1e-6}[unit]
    if number == "≈ 0" or not 0.01 <= ci / scale < 1000:
        return f"{fmt_energy(mean)} ± {fmt_energy(ci)}"
    half = ci / scale
    return f"{number} ± {half:.0f} {unit}" if half >= 100 else f"{number} ± {half:.2g} {unit}"


def fmt_rate(tokens_per_s: Any) -> str:
    r = _finite(tokens_per_s)
    return "—" if r is None else f"{r:.3g} tokens/s"


def fmt_seconds(seconds: Any) -> str:
    s = _finite(seconds)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{s:.3g} s"


def fmt_seconds_ci(stat: MeanCI | None) -> str:
    """`mean ± ci95` of a duration, in ms below a second (e.g. "183 ms ± 21 ms"); "—" when unknown."""
    mean = _finite(stat.mean if stat is not None else None)
    if mean is None:
        return "—"
    ci = _finite(stat.ci95)
    unit, scale = ("s", 1.0) if abs(mean) >= 1 else ("ms", 1e3)
    plain = fmt_seconds(mean) if unit == "s" else f"{_digits(mean * scale, 3)} ms"
    return plain + (f" ± {_digits(ci * scale, 2)} {unit}" if ci is not None else "")


def _digits(value: float, significant: int) -> str:
    """A number with a few significant digits, never in exponent notation."""
    return f"{value:.0f}" if abs(value) >= 10 ** (significant - 1) else f"{value:.{significant}g}"


def fmt_date(epoch: Any) -> str:
    e = _finite(epoch)
    return "—" if e is None else datetime.fromtimestamp(e).strftime("%Y-%m-%d %H:%M")
