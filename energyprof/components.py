"""Hardware components, their display order, and the one whole-system rule.

Every figure per component (energy, power) is keyed by one of these names. The **whole-system** figure of a
set of per-component values is the `package` value when it is known (a package already contains the on-chip
parts: cpu, gpu, ane) plus the known parts a package does not hold (`dram`: RAPL's package domain and powermetrics'
`package_energy` both leave DRAM out, each source's PowerSource.scope() says so), else the sum of the known parts;
nothing known gives unknown (None / NaN), never 0. A part that is unknown is left out of the sum, and `lacking` names
it, so that every total can say which components it lacks. This module is the only place that rule is written:
scalars (`whole_system`), arrays (`whole_system_arrays`) and long tables (`whole_system_long`) all go through
`whole_system_arrays`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

CPU, GPU, ANE, DRAM, PACKAGE = "cpu", "gpu", "ane", "dram", "package"
COMPONENTS: tuple[str, ...] = (CPU, GPU, ANE, DRAM, PACKAGE)
"""Every component name a source may report, in display order."""

AGGREGATE_COMPONENTS: frozenset[str] = frozenset({PACKAGE})
"""Components that already contain others: never added to the parts when totalling."""
OUTSIDE_PACKAGE: frozenset[str] = frozenset({DRAM})
"""Parts an aggregate does not contain: added to it (RAPL's package and powermetrics' package_energy exclude DRAM)."""


def ordered(names: Iterable[str]) -> list[str]:
    """Component names in display order: known ones in COMPONENTS order, then any others sorted."""
    names = set(names)
    return [c for c in COMPONENTS if c in names] + sorted(names - set(COMPONENTS))


def whole_system_arrays(values: Mapping[str, np.ndarray | Sequence[float]]) -> np.ndarray:
    """Per position: package when known, else the sum of the known non-aggregate parts; NaN when none is known."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    if not arrays:
        return np.array([], dtype=np.float64)
    n = len(next(iter(arrays.values())))
    parts = [v for k, v in arrays.items() if k not in AGGREGATE_COMPONENTS]
    if parts:
        stack = np.vstack(parts)
        known = ~np.all(np.isnan(stack), axis=0)
        total = np.where(known, np.nansum(stack, axis=0), np.nan)
    else:
        total = np.full(n, np.nan)
    outside = [v for k, v in arrays.items() if k in OUTSIDE_PACKAGE]
    extra = np.nansum(np.vstack(outside), axis=0) if outside else np.zeros(n)
    for aggregate in AGGREGATE_COMPONENTS & arrays.keys():
        total = np.where(np.isnan(arrays[aggregate]), total, arrays[aggregate] + extra)
    return total


def lacking(values: Mapping[str, float | None] | None) -> list[str]:
    """The components whose unknown value the whole-system figure of `values` leaves out (display order); [] when the
    whole is unknown or nothing is missing from it."""
    values = {k: None if v is None or (isinstance(v, float) and math.isnan(v)) else v
              for k, v in (values or {}).items()}
    if whole_system(values) is None:
        return []
    if any(values.get(a) is not None for a in AGGREGATE_COMPONENTS):
        return ordered(c for c in OUTSIDE_PACKAGE if c in values and values[c] is None)
    return ordered(c for c, v in values.items() if v is None and c not in AGGREGATE_COMPONENTS)


def whole_system(values: Mapping[str, float | None] | None) -> float | None:
    """The whole-system figure of one {component: value} dict (None and NaN are unknown); None when unknown."""
    clean = {k: np.array([np.nan if v is None else float(v)]) for k, v in (values or {}).items()}
    if not clean:
        return None
    total = float(whole_system_arrays(clean)[0])
    return None if math.isnan(total) else total


def whole_system_long(df: pd.DataFrame, keys: Sequence[str], value_cols: Sequence[str]) -> pd.DataFrame:
    """Per key, whole-system values from long rows (one row per key and `component`): columns keys + value_cols."""
    if df.empty:
        return pd.DataFrame(columns=[*keys, *value_cols])
    sums = df.groupby([*keys, "component"], sort=False, dropna=False)[list(value_cols)].sum(min_count=1)
    out = {}
    for col in value_cols:
        wide = sums[col].unstack("component")
        out[col] = whole_system_arrays({c: wide[c].to_numpy() for c in wide.columns})
    return pd.DataFrame(out, index=wide.index).reset_index()
