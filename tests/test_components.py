"""The one whole-system rule, in each data shape it is applied to, and the display order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from energyprof.components import ordered, whole_system, whole_system_arrays, whole_system_long


def test_package_wins_when_known_else_the_parts() -> None:
    assert whole_system({"cpu": 1.0, "gpu": 2.0, "package": 5.0}) == 5.0
    assert whole_system({"cpu": 1.0, "gpu": 2.0, "package": None}) == 3.0
    assert whole_system({"cpu": 1.0, "gpu": None}) == 1.0
    assert whole_system({"cpu": None, "dram": float("nan")}) is None
    assert whole_system({}) is None and whole_system(None) is None


def test_array_and_long_shapes_follow_the_same_rule() -> None:
    values = {"cpu": [1.0, 1.0, np.nan], "gpu": [2.0, np.nan, np.nan], "package": [5.0, np.nan, np.nan]}
    got = whole_system_arrays(values)
    assert got[:2].tolist() == [5.0, 1.0] and math.isnan(got[2])
    long = pd.DataFrame([{"step": i, "component": c, "energy_j": v[i]} for c, v in values.items() for i in range(3)])
    frame = whole_system_long(long, ["step"], ["energy_j"])
    assert frame["energy_j"].tolist()[:2] == [5.0, 1.0] and math.isnan(frame["energy_j"].tolist()[2])
    scalars = [whole_system({c: v[i] for c, v in values.items()}) for i in range(3)]
    assert scalars == [5.0, 1.0, None]


def test_display_order() -> None:
    assert ordered({"zeta", "package", "gpu", "cpu", "ane", "dram"}) == ["cpu", "gpu", "ane", "dram", "package", "zeta"]
