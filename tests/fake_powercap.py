"""A fake /sys/class/powercap tree: RAPL zones as folders with name, energy_uj and max_energy_range_uj files."""

from __future__ import annotations

from pathlib import Path


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    path = root / f"intel-rapl:{zone}"
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path
