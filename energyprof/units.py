"""Unit conversions, in one place. Stored values: energy in mJ, time in ns (the job clock); shown: J, s, W."""

from __future__ import annotations

import math
from typing import Any

NS_PER_S = 1_000_000_000
MJ_PER_J = 1_000.0
J_PER_WH = 3_600.0
J_PER_KWH = 3_600_000.0
BYTES_PER_MB = 1_000_000


def mj_to_j(mj: float | None) -> float | None:
    return None if mj is None else mj / MJ_PER_J


def j_to_mj(j: float | None) -> float | None:
    return None if j is None else j * MJ_PER_J


def j_to_kwh(j: float | None) -> float | None:
    return None if j is None else j / J_PER_KWH


def ns_to_s(ns: float | None) -> float | None:
    return None if ns is None else ns / NS_PER_S


def bytes_to_mb(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / BYTES_PER_MB


def s_to_ns(s: float) -> int:
    return int(round(s * NS_PER_S))


def watts(energy_mj: float | None, duration_ns: float | None) -> float | None:
    """Mean power (W) of an energy (mJ) over a duration (ns); None when either is unknown or the duration is 0."""
    if energy_mj is None or not duration_ns:
        return None
    return energy_mj / MJ_PER_J / (duration_ns / NS_PER_S)


def energy_mj(power_w: float, duration_ns: float) -> float:
    """Energy (mJ) of a constant power (W) over a duration (ns)."""
    return power_w * duration_ns / NS_PER_S * MJ_PER_J


def wh_per_1000_tokens(j_per_token: float | None) -> float | None:
    """Watt-hours per 1,000 tokens from joules per token."""
    return None if j_per_token is None else j_per_token * 1000 / J_PER_WH


def tokens_per_joule(j_per_token: float | None) -> float | None:
    return None if not j_per_token or j_per_token <= 0 else 1.0 / j_per_token


def g_co2e_per_1000_tokens(j_per_token: float | None, grid_g_per_kwh: float | None) -> float | None:
    """Grams of CO2-equivalent per 1,000 tokens at a grid intensity (g CO2e per kWh) the user states."""
    wh = wh_per_1000_tokens(j_per_token)
    return None if wh is None or grid_g_per_kwh is None else wh / 1000 * grid_g_per_kwh


def finite_or_none(value: Any) -> float | None:
    """A number as a finite float; None for None, NaN, ±inf, booleans, text and anything else that is no number."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plain_or_none(value: Any) -> Any:
    """A scalar for SQL and JSON: numpy scalars as Python numbers, a NaN or ±inf float (unknown) as None."""
    if value is None:
        return None
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value
