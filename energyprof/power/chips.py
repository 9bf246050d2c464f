"""What a component can physically draw: a small table of power ceilings per chip, and the name of this machine's chip.

A counter's figure above its chip's ceiling is not a measurement: it is a unit error (IOReport's "GPU Energy" channel
is kept in nJ while the others are in mJ, HardwareVisualizer #1977; a figure handed on unconverted is 10^6 times too
large), a counter reset read as a huge jump, or corrupt data. energyprof.analysis.counter_health calls such a
component *implausible* for the run.

**How the ceilings are chosen.** Apple publishes no per-block maximum for its SoCs, but it publishes each Mac's
maximum power *at the wall* (a compute-intensive test, all power-supply losses included). No block of the SoC can
draw more than the whole machine, so that figure bounds every component: the CPU, the GPU, the ANE and the DRAM
alike. For NVIDIA, the board's rated maximum power (its datasheet TDP / TGP) bounds the board (NVML's ``gpu``).
Each ceiling is used with CEILING_MARGIN on top: rated maxima are sustained figures, boosts and transients stay well
under 1.5 times them over the windows the check uses (at least two counter publications and 100 ms), and the
failures the check exists for are off by 10^3 or 10^6, so the margin costs nothing and never flags a real figure.
A chip that matches no row gets its family's largest ceiling; a source of another family gets MAX_PLAUSIBLE_W (10 kW,
energyprof's bound for any one component of any machine).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from energyprof.power.base import MAX_PLAUSIBLE_W

log = logging.getLogger(__name__)

CEILING_MARGIN = 1.5
"""A figure is implausible above rated maximum × this (see the module docstring)."""
CHIP_ENV = "ENERGYPROF_CHIP"
"""Set it to the chip's name (e.g. "Apple M4 Max") when this machine does not say it (or says it wrongly)."""
SYSCTL = "/usr/sbin/sysctl"


@dataclass(frozen=True)
class Ceiling:
    """The most one component of a chip can draw (rated maximum × CEILING_MARGIN), and where the figure comes from."""

    family: str
    pattern: str
    """A regular expression matched (case-insensitively) against the chip's name."""
    rated_w: float
    source: str

    @property
    def watts(self) -> float:
        return self.rated_w * CEILING_MARGIN

    def describe(self, chip: str | None) -> str:
        """`Apple M2 Ultra: Mac Studio M2 Ultra, 295 W at the wall, …`: the chip and where its ceiling comes from."""
        return f"{chip or 'an unknown ' + self.family + ' chip'}: {self.source}, × {CEILING_MARGIN:g}"


APPLE: tuple[Ceiling, ...] = (
    # Apple, "Mac Studio power consumption and thermal output (BTU) information", support.apple.com/102027:
    # M2 Ultra 295 W max (M1 Ultra 215 W). No figure for the M3 Ultra was at hand: the M2 Ultra's bounds the tier.
    Ceiling("Apple", r"\bM\d+ Ultra\b", 295.0, "Mac Studio M2 Ultra, 295 W at the wall, Apple support 102027"),
    # Same page: M2 Max 145 W max (M1 Max 115 W). M3/M4/M5 Max ship in MacBook Pros with a 140 W adapter.
    Ceiling("Apple", r"\bM\d+ Max\b", 145.0, "Mac Studio M2 Max, 145 W at the wall, Apple support 102027"),
    # A Pro chip has fewer CPU and GPU cores than the Max of its generation: the Max tier bounds it.
    Ceiling("Apple", r"\bM\d+ Pro\b", 145.0, "bounded by the Max tier (Mac Studio M2 Max, 145 W, Apple support "
                                             "102027)"),
    # Mac mini (2024) M4: 65 W max (Apple's figure, quoted by ServeTheHome's review); Mac mini (2020) M1: 39 W
    # (Apple's "Mac mini power consumption and thermal output" page, quoted by Daring Fireball, January 2021).
    Ceiling("Apple", r"\bM\d+\b", 65.0, "Mac mini M4, 65 W at the wall, Apple (M1: 39 W)"),
)
NVIDIA: tuple[Ceiling, ...] = (
    # NVIDIA datasheets: the board's maximum (configurable) power.
    Ceiling("NVIDIA", r"\bB200\b", 1000.0, "HGX B200, up to 1,000 W per GPU, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bH100\b.*\bPCIe\b", 350.0, "H100 PCIe, 350 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bH(100|200)\b", 700.0, "H100/H200 SXM, up to 700 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bA100\b", 400.0, "A100 SXM4, 400 W (PCIe 300 W), NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bL40S?\b", 350.0, "L40S, 350 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bL4\b", 72.0, "L4, 72 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bT4\b", 70.0, "T4, 70 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bV100\b", 300.0, "V100 SXM2, 300 W, NVIDIA datasheet"),
    Ceiling("NVIDIA", r"\bRTX 5090\b", 575.0, "GeForce RTX 5090, 575 W total graphics power, NVIDIA"),
    Ceiling("NVIDIA", r"\bRTX 4090\b", 450.0, "GeForce RTX 4090, 450 W total graphics power, NVIDIA"),
)
FAMILIES: dict[str, tuple[Ceiling, ...]] = {"ioreport": APPLE, "powermetrics": APPLE, "nvml": NVIDIA}
"""Which table bounds each source's components."""
ANY = Ceiling("any", r".", MAX_PLAUSIBLE_W / CEILING_MARGIN, "energyprof's bound on any one component (10 kW)")


def ceiling_for(source: str | None, chip: str | None) -> Ceiling:
    """The ceiling of every component of `source` on `chip` (the family's largest when the chip is unknown)."""
    table = FAMILIES.get(source or "")
    if not table:
        return ANY
    for row in table:
        if chip and re.search(row.pattern, chip, re.IGNORECASE):
            return row
    return max(table, key=lambda row: row.rated_w)


def apple_chip() -> str | None:
    """This Mac's chip, e.g. "Apple M4 Max" ($ENERGYPROF_CHIP, else sysctl machdep.cpu.brand_string); None elsewhere."""
    named = os.environ.get(CHIP_ENV, "").strip()
    if named:
        return named[:100]
    if sys.platform != "darwin":
        return None
    try:
        done = subprocess.run([SYSCTL, "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("sysctl could not name the chip: %s", exc)
        return None
    name = done.stdout.strip()
    return name[:100] if done.returncode == 0 and name else None
