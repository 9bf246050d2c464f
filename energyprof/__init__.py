"""energyprof: where the energy of transformer inference goes, per token, per layer, per component."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from energyprof.measuring import Measurement, measure
    from energyprof.runner.api import profile_generation

__all__ = ["Measurement", "__version__", "measure", "profile_generation"]

_LAZY = {"measure": "energyprof.measuring", "Measurement": "energyprof.measuring",
         "profile_generation": "energyprof.runner.api"}
"""Attributes imported on first use, so `import energyprof` stays light (no numpy/torch for the pages).

The implementation lives in `energyprof.measuring`, not `energyprof.measure`: importing a submodule binds
its name on the package, which would shadow the `measure` function."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'energyprof' has no attribute {name!r}")
