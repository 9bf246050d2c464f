"""Intel/AMD RAPL energy counters on Linux, read from /sys/class/powercap/intel-rapl:*.

Zones map to components by their `name` file: ``package-N`` -> ``package`` (summed over sockets),
``core`` -> ``cpu`` (the cores), ``uncore`` -> ``gpu`` (on client parts the uncore plane is mostly the
integrated graphics; it is not a discrete GPU), ``dram`` -> ``dram``; other zones (``psys``) are ignored.
``package`` already contains core and uncore (not dram), which is why it is an aggregate component.
Each ``energy_uj`` counter wraps at ``max_energy_range_uj``; a poll that reads a smaller value than the
last one adds the range back. Since Linux 5.10 the counters are readable only by root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from energyprof.power.base import COMPONENTS, CPU, DRAM, GPU, PACKAGE, PolledSource, PowerSourceError, Scope

POWERCAP_ROOT = Path("/sys/class/powercap")
MISSING = ("no RAPL powercap interface (/sys/class/powercap/intel-rapl) on this machine: not an Intel/AMD "
           "Linux host or the intel_rapl driver is not loaded (try `sudo modprobe intel_rapl_common`).")
NO_PERMISSION = ("RAPL counters are readable only by root here: run energyprof as root or "
                 "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until the next reboot).")
_ZONE_COMPONENTS = {"core": CPU, "uncore": GPU, "dram": DRAM}
SCOPE = Scope("CPU package (cores, uncore / integrated graphics) + DRAM, the CPU's own model (not a GPU card, disks, "
              "fans, or wall power)", package_includes_dram=False)
"""RAPL's package domain leaves DRAM out (DRAM is a domain of its own in Intel's SDM, "Running Average Power Limit");
the whole-system total adds it (energyprof.components)."""


def zone_component(name: str) -> str | None:
    """The component a RAPL zone name stands for, or None for zones energyprof ignores."""
    if name.startswith("package-"):
        return PACKAGE
    return _ZONE_COMPONENTS.get(name)


@dataclass
class _Zone:
    path: Path
    component: str
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())

    def advance(self) -> None:
        """Fold the counter's latest value into the running total, across a wrap-around."""
        value = self.read_uj()
        delta = value - self.last_uj
        if delta < 0:
            delta += self.max_range_uj
        self.total_uj += delta
        self.last_uj = value


class RaplSource(PolledSource):
    """Measured package/core/uncore/DRAM energy from the kernel's RAPL powercap counters."""

    name = "rapl"
    measured = True
    default_interval_ms = 100

    def __init__(self, root: str | Path = POWERCAP_ROOT) -> None:
        super().__init__()
        self.root = Path(root)
        self._zones: list[_Zone] = []

    def _discover(self) -> list[_Zone]:
        """Every RAPL zone that maps to a component (no counter is read here)."""
        zones = []
        if not self.root.is_dir():
            return zones
        for path in sorted(self.root.glob("intel-rapl:*")):
            try:
                name = (path / "name").read_text().strip()
                max_range = int((path / "max_energy_range_uj").read_text().strip())
            except (OSError, ValueError):
                continue
            component = zone_component(name)
            if component is not None:
                zones.append(_Zone(path, component, max_range))
        return zones

    def scope(self) -> Scope:
        return SCOPE

    def components(self) -> tuple[str, ...]:
        found = {z.component for z in (self._zones or self._discover())}
        if not found:
            found = {PACKAGE, CPU, GPU, DRAM}
        return tuple(c for c in COMPONENTS if c in found)

    def available(self) -> tuple[bool, str]:
        zones = self._discover()
        if not zones:
            return False, MISSING
        try:
            for zone in zones:
                zone.read_uj()
        except PermissionError:
            return False, NO_PERMISSION
        except (OSError, ValueError) as exc:
            return False, f"a RAPL counter could not be read ({exc}); check {self.root}."
        names = ", ".join(c for c in COMPONENTS if any(z.component == c for z in zones))
        return True, f"RAPL counters readable ({names}; uncore = integrated graphics)."

    def _open(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise PowerSourceError(reason)
        self._zones = self._discover()
        for zone in self._zones:
            zone.last_uj = zone.read_uj()

    def _counters_mj(self) -> dict[str, float | None]:
        totals: dict[str, float | None] = {}
        try:
            for zone in self._zones:
                zone.advance()
                totals[zone.component] = (totals.get(zone.component) or 0.0) + zone.total_uj / 1e3
        except (OSError, ValueError) as exc:
            raise PowerSourceError(f"a RAPL counter stopped being readable ({exc}); start the run again.") from exc
        return totals

    def _close(self) -> None:
        self._zones = []
