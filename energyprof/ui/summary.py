"""The headline figures of a run summary as the pages show them (whole-system totals, per-component table).

No streamlit import: pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from energyprof.power.base import total_energy_mj


def whole(values: Mapping[str, float | None] | None) -> float | None:
    """Whole-system figure of a {component: value} dict: `package` when known, else the sum of the known parts
    (the store's rule, energyprof.power.base.total_energy_mj; NaN counts as unknown)."""
    known = {k: float(v) for k, v in (values or {}).items() if v is not None and not math.isnan(float(v))}
    return total_energy_mj(known)


def figures(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headline figures of a run summary, whole-system where a summary gives them per component.

    Keys: gross_j, net_j, j_per_token {phase: {mean, ci95}}, tokens_per_s, mean_w, peak_w, baseline_w,
    tokens (generated per repeat), tokens_total, repeats, warnings."""
    s = dict(summary or {})
    peak = s.get("peak_w")
    new = s.get("new_tokens")
    if isinstance(new, list):
        per_repeat = [int(n) for n in new if n is not None]
    else:
        per_repeat = [int(new)] if isinstance(new, int | float) else []
    return {
        "gross_j": s["total_energy_j"] if s.get("total_energy_j") is not None else whole(s.get("energy_j")),
        "net_j": s["net_total_energy_j"] if s.get("net_total_energy_j") is not None else whole(s.get("net_energy_j")),
        "j_per_token": s.get("j_per_token") or {},
        "tokens_per_s": s.get("tokens_per_s"),
        "mean_w": whole(s.get("mean_w")),
        "peak_w": whole(peak) if isinstance(peak, Mapping) else peak,
        "baseline_w": whole(s.get("baseline_w")),
        "tokens": max(per_repeat) if per_repeat else None,
        "tokens_total": (sum(per_repeat) * (1 if isinstance(new, list) else int(s.get("repeats") or 1))
                         if per_repeat else None),
        "repeats": int(s.get("repeats") or 1),
        "warnings": [str(w) for w in s.get("warnings") or []],
    }


def workload_components(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per component over the measured repeats: gross and net energy (J) and mean power (W) from the summary."""
    s = dict(summary or {})
    gross, net, mean = (s.get(k) or {} for k in ("energy_j", "net_energy_j", "mean_w"))
    rows = [{"component": c, "energy_j": gross.get(c), "net_energy_j": net.get(c), "mean_w": mean.get(c)}
            for c in gross]
    return pd.DataFrame(rows, columns=["component", "energy_j", "net_energy_j", "mean_w"])

