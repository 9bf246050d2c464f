"""A fake /sys/class/powercap tree: RAPL zones as folders with name, energy_uj and max_energy_range_uj files, and a
"kernel" thread that advances a zone's counter."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    path = root / f"intel-rapl:{zone}"
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


class Kernel(threading.Thread):
    """Adds `step_uj` to a zone's energy_uj every `period_s`, atomically (like a sysfs read sees it), as the kernel
    publishes RAPL energy; `halt.set()` stops it."""

    def __init__(self, zone: Path, step_uj: int, period_s: float) -> None:
        super().__init__(daemon=True)
        self.zone, self.step_uj, self.period_s = zone, step_uj, period_s
        self.halt = threading.Event()

    def run(self) -> None:
        value = int((self.zone / "energy_uj").read_text())
        next_at = time.monotonic()
        while not self.halt.is_set():
            next_at += self.period_s
            time.sleep(max(0.0, next_at - time.monotonic()))
            value += self.step_uj
            tmp = self.zone / "energy_uj.tmp"
            tmp.write_text(f"{value}\n")
            os.replace(tmp, self.zone / "energy_uj")
