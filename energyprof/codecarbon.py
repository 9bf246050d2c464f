"""A run as one row of CodeCarbon's `emissions.csv` (CodeCarbon 3.x, `EmissionsData`): the file people attach to a
Hugging Face model card, so energyprof's figures can sit beside CodeCarbon's.

Columns and units are CodeCarbon's: energies in kWh, powers in W, duration in s, emissions in kg CO2e (emissions_rate
in kg/s), memory in GB. The mapping of energyprof's components:

- cpu_energy / cpu_power: the `cpu` component (Apple: the CPU clusters; RAPL: the cores; the estimate: its model);
- gpu_energy / gpu_power: the `gpu` component (Apple's GPU, NVML's board, RAPL's uncore);
- ram_energy / ram_power: the `dram` component (empty where the source reports no DRAM, e.g. powermetrics on macOS
  13 and later);
- energy_consumed: energyprof's whole-system figure (energyprof.components: the package where a source has one, else
  the sum of the parts). It includes the Apple Neural Engine, which has no CodeCarbon column: the ANE's energy is
  in energy_consumed and in no other column, so energy_consumed can exceed cpu + gpu + ram by exactly that.

Gross energy over the measured repeats (a recording: its whole length), idle draw included, as CodeCarbon's machine
mode counts it (`tracking_mode` = machine). `emissions` only when a grid carbon intensity was stated
(`--grid-g-per-kwh`, else the one the run was profiled with); nothing is looked up. What energyprof does not know
stays empty: location, cloud, utilisation, water; `pue` is 1 (no data-centre overhead is applied) and
`codecarbon_version` is empty (the row was not written by CodeCarbon)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from energyprof.export import neutralise_formulas
from energyprof.summary import RunSummary
from energyprof.units import j_to_kwh

COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate", "cpu_power",
    "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "water_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue")
"""CodeCarbon 3.x's emissions.csv columns, in its order (codecarbon.output_methods.emissions_data.EmissionsData)."""
COMPONENT_COLUMNS: dict[str, str] = {"cpu": "cpu", "gpu": "gpu", "ram": "dram"}
"""CodeCarbon's column prefix -> energyprof's component."""
INTEGER_COLUMNS: tuple[str, ...] = ("cpu_count", "gpu_count")
TRACKING_MODE = "machine"
PROJECT_NAME = "energyprof"
RUN_NAMESPACE = uuid.UUID("8f1c3a52-6d3e-4d7e-9a65-6f0e1e2b5c41")
"""Namespace of the rows' run_id (a UUID as CodeCarbon writes): the same run always gets the same run_id."""
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def emissions_row(run: dict[str, Any], grid_g_per_kwh: float | None = None,
                  project_name: str = PROJECT_NAME) -> dict[str, Any]:
    """One run as CodeCarbon's row (COLUMNS; None = empty cell)."""
    s = RunSummary.from_dict(run.get("summary"))
    machine = s.machine
    grid = grid_g_per_kwh if grid_g_per_kwh is not None else s.grid_g_co2e_per_kwh
    consumed = j_to_kwh(s.gross_total_j)
    emissions = None if consumed is None or grid is None else consumed * grid / 1000.0
    duration = s.duration_s
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update({
        "timestamp": _timestamp(run.get("ended_at") or run.get("created_at")), "project_name": project_name,
        "run_id": str(row_uuid(run, s)), "experiment_id": run.get("sweep_id"), "duration": duration,
        "emissions": emissions, "emissions_rate": emissions / duration if emissions is not None and duration else None,
        "energy_consumed": consumed, "tracking_mode": TRACKING_MODE, "pue": 1.0})
    for column, component in COMPONENT_COLUMNS.items():
        row[f"{column}_energy"] = j_to_kwh(s.energy_j.get(component))
        row[f"{column}_power"] = s.mean_w.get(component)
    if machine is not None:
        gpu_count, gpu_model = _gpu(machine.gpu, machine.gpu_count, machine.chip)
        row.update({"os": " ".join(p for p in (machine.os_name, machine.os_version, machine.os_build, machine.arch)
                                   if p) or None,
                    "python_version": machine.python_version, "cpu_count": machine.cores_logical,
                    "cpu_model": machine.cpu_model, "gpu_count": gpu_count, "gpu_model": gpu_model,
                    "ram_total_size": machine.memory_gb})
    return row


def row_uuid(run: dict[str, Any], summary: RunSummary) -> uuid.UUID:
    """A stable UUID for a run: its machine, its own run number and when it was made (kept when a run travels)."""
    machine_id = summary.machine.machine_id if summary.machine else None
    own = summary.run_id if summary.run_id is not None else run.get("id")
    return uuid.uuid5(RUN_NAMESPACE, f"{machine_id or 'unknown machine'}/{own}/{run.get('created_at')}")


def emissions_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The rows as CodeCarbon's columns; counts stay whole numbers next to an empty cell."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for column in INTEGER_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def emissions_csv(runs: Sequence[dict[str, Any]], grid_g_per_kwh: float | None = None,
                  project_name: str = PROJECT_NAME) -> str:
    """emissions.csv text: CodeCarbon's header and one row per run (cells a spreadsheet would run as formulas are
    neutralised, as in every energyprof CSV)."""
    frame = emissions_frame(emissions_row(r, grid_g_per_kwh, project_name) for r in runs)
    return neutralise_formulas(frame).to_csv(index=False, lineterminator="\n")


def _timestamp(epoch: float | None) -> str | None:
    """Local time, as CodeCarbon writes its timestamp."""
    return None if epoch is None else datetime.fromtimestamp(epoch).strftime(TIMESTAMP_FORMAT)


def _gpu(gpu: str | None, count: int, chip: str | None) -> tuple[int, str | None]:
    """NVIDIA GPUs as NVML names them; an Apple chip's GPU is part of the chip."""
    if gpu:
        return count, gpu
    if chip and chip.startswith("Apple"):
        return 1, f"{chip} GPU (integrated)"
    return 0, None
