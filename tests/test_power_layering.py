"""The power layer stands alone: importing any of its modules loads nothing from the store, the engine or the UI."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import energyprof.power

REPO = Path(__file__).resolve().parents[1]
LAYERS_ABOVE = ("energyprof.store", "energyprof.spec", "energyprof.analysis", "energyprof.runtimes",
                "energyprof.runner", "energyprof.commands", "energyprof.ui", "streamlit", "torch")


def test_power_imports_nothing_from_the_layers_above_it() -> None:
    modules = sorted(f"energyprof.power.{m.name}" for m in pkgutil.iter_modules(energyprof.power.__path__))
    assert "energyprof.power.powermetrics" in modules and "energyprof.power.registry" in modules
    script = ("import importlib, json, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=True)
    loaded = json.loads(done.stdout)
    above = [m for m in loaded if m.startswith(LAYERS_ABOVE)]
    assert above == [], f"energyprof.power pulled in {above}"
