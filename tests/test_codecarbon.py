"""`energyprof export RUN … --format codecarbon`: one row per run of CodeCarbon 3.x's emissions.csv, with its columns
in its order and its units (kWh, W, s, kg CO2e, GB), DRAM as ram_energy, the ANE only in energy_consumed, emissions
only from a grid intensity the user states, and empty what energyprof does not know."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from seed import seed_run
from sharing_runs import M4_MAX, made_elsewhere

from energyprof.cli import main
from energyprof.store import Store
from energyprof.summary import RunSummary

ISSUE_COLUMNS = (
    "timestamp, project_name, run_id, experiment_id, duration, emissions, emissions_rate, cpu_power, gpu_power, "
    "ram_power, cpu_energy, gpu_energy, ram_energy, energy_consumed, water_consumed, country_name, country_iso_code, "
    "region, cloud_provider, cloud_region, os, python_version, codecarbon_version, cpu_count, cpu_model, gpu_count, "
    "gpu_model, longitude, latitude, ram_total_size, tracking_mode, cpu_utilization_percent, gpu_utilization_percent, "
    "ram_utilization_percent, ram_used_gb, on_cloud, pue, wue").split(", ")
"""CodeCarbon 3.x's EmissionsData fields as the issue lists them (codecarbon 3.3.2 writes them in this order)."""
KWH = 3.6e6
UNKNOWN_HERE = ("water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region",
                "codecarbon_version", "longitude", "latitude", "cpu_utilization_percent", "gpu_utilization_percent",
                "ram_utilization_percent", "ram_used_gb", "on_cloud", "wue")


def export(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv, "--db", str(db)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def test_one_row_per_run_in_codecarbon_columns_and_units(store: Store, db_path: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    mac = seed_run(store, tokens=20, components=("cpu", "gpu", "ane", "dram"), source="ioreport")
    made_elsewhere(store, mac, M4_MAX)
    other = seed_run(store, tokens=0, kind="sample", components=("cpu",), source="estimate", measured=False,
                     minutes=0.05)
    out = tmp_path / "emissions.csv"
    code, _, err = export(capsys, db_path, str(mac), str(other), "--format", "codecarbon", "--grid-g-per-kwh", "400",
                          "-o", str(out))
    assert code == 0, err
    header, (row, sample) = rows(out.read_text())
    assert header == ISSUE_COLUMNS
    s = RunSummary.from_dict(store.get_run(mac)["summary"])
    assert float(row["cpu_energy"]) == pytest.approx(s.energy_j["cpu"] / KWH, rel=1e-12)
    assert float(row["gpu_energy"]) == pytest.approx(s.energy_j["gpu"] / KWH, rel=1e-12)
    assert float(row["ram_energy"]) == pytest.approx(s.energy_j["dram"] / KWH, rel=1e-12)  # DRAM -> ram_energy
    consumed = float(row["energy_consumed"])
    assert consumed == pytest.approx(s.gross_total_j / KWH, rel=1e-12)
    parts = sum(float(row[c]) for c in ("cpu_energy", "gpu_energy", "ram_energy"))
    assert consumed - parts == pytest.approx(s.energy_j["ane"] / KWH, rel=1e-9)  # the ANE: in the total alone
    assert float(row["cpu_power"]) == pytest.approx(s.mean_w["cpu"]) and float(row["ram_power"]) == pytest.approx(
        s.mean_w["dram"])
    assert float(row["duration"]) == pytest.approx(s.duration_s)
    assert float(row["emissions"]) == pytest.approx(consumed * 400 / 1000, rel=1e-12)  # kg CO2e
    assert float(row["emissions_rate"]) == pytest.approx(float(row["emissions"]) / s.duration_s, rel=1e-12)
    assert (row["cpu_model"], row["cpu_count"], row["ram_total_size"]) == ("Apple M4 Max", "16", "64.0")
    assert (row["gpu_count"], row["gpu_model"]) == ("1", "Apple M4 Max GPU (integrated)")
    assert row["os"] == "macOS 15.2 24C101 arm64" and row["python_version"] == "3.12.8"
    assert (row["tracking_mode"], row["pue"], row["project_name"]) == ("machine", "1.0", "energyprof")
    assert uuid.UUID(row["run_id"]).version == 5
    for column in UNKNOWN_HERE:
        assert row[column] == "", column
    assert sample["ram_energy"] == "" and sample["gpu_energy"] == ""  # no such component: empty, never 0
    assert float(sample["cpu_energy"]) > 0 and sample["cpu_model"] == ""  # a seeded run names no machine
    code, again, _ = export(capsys, db_path, str(mac), "--format", "codecarbon")
    _, (same,) = rows(again)
    assert same["run_id"] == row["run_id"] and same["emissions"] == ""  # stable id; no grid stated: no emissions


def test_hostile_text_and_bad_runs(store: Store, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = seed_run(store, tokens=10, model="=HYPERLINK(\"http://hostile.invalid\")")
    code, out, _ = export(capsys, db_path, str(run), "--format", "codecarbon", "--project-name", "=cmd|' /C calc'!A0")
    assert code == 0
    _, (row,) = rows(out)
    assert row["project_name"] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, never runs it
    code, _, err = export(capsys, db_path, str(run), "99", "--format", "codecarbon")
    assert code == 1 and err.strip() == f"energyprof: run 99 does not exist in {db_path}."
    with pytest.raises(SystemExit):  # a usage error: CSV and trace export one run each
        export(capsys, db_path, str(run), str(run), "--format", "csv")
    assert "exports one run" in capsys.readouterr().err
