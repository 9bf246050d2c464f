"""A stand-in `pynvml` (nvidia-ml-py) for scripts/gpu_check.sh's test: one GPU whose total-energy counter behaves
like a driver's (120 W, published every 20 ms; tests/fake_nvml.py), so the script runs through doctor and sample on a
machine without a GPU and must then stop, clearly, where torch has no CUDA."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_nvml import fake_nvml

globals().update(vars(fake_nvml([{"name": "NVIDIA Stand-in GPU", "counter": 1_000_000, "watts": 120.0,
                                  "update_ms": 20.0}])))
