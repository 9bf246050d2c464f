"""The machine a run was made on (energyprof.machine): what it records on this Linux box, on a Mac (sysctl and ioreg
stand-ins on PATH) and with NVIDIA GPUs (the NVML stand-in); an id that is stable and names neither the serial
number nor the user; the summary round trip; and a database written before machines were recorded (migration 8)."""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import sqlite3
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil
import pytest
from fake_nvml import fake_nvml
from seed import open_page, seed_run

from energyprof import machine as machine_mod
from energyprof.machine import UNKNOWN_MACHINE, Machine, hashed_id, read_machine, source_facts, this_machine
from energyprof.power import registry
from energyprof.power.base import Scope
from energyprof.power.counter import CounterCharacteristics
from energyprof.store import Store
from energyprof.store.schema import MIGRATIONS
from energyprof.summary import RunSummary

SERIAL = "C02XK1ZZJGH5"
PLATFORM_UUID = "8C3F1A52-6D3E-4D7E-9A65-6F0E1E2B5C41"


def _script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_this_linux_machine_is_described_without_naming_anyone() -> None:
    here = this_machine()
    raw = Path("/etc/machine-id").read_text().strip()
    assert here.machine_id == hashed_id(raw) and len(here.machine_id) == 16 and raw not in here.machine_id
    assert this_machine().machine_id == here.machine_id  # stable
    assert here.cores_logical == psutil.cpu_count() and here.cores_physical == psutil.cpu_count(logical=False)
    assert here.memory_gb == round(psutil.virtual_memory().total / 2**30, 1)
    assert (here.os_name, here.os_build, here.arch) == ("Linux", platform.release(), platform.machine())
    assert here.python_version == platform.python_version()
    assert here.packages["torch"] == metadata.version("torch")
    assert here.packages["transformers"] == metadata.version("transformers")
    assert here.packages["zeus-apple-silicon"] is None  # not installed here: None, not an error
    assert set(here.packages) == {"torch", "transformers", "mlx", "mlx-lm", "zeus-apple-silicon", "energyprof"}
    assert here.label and here.chip and here.label.startswith(here.chip)
    text = json.dumps(here.to_dict())
    for private in (getpass.getuser(), socket.gethostname(), str(Path.home()), raw):
        assert private not in text, private


def test_recording_the_machine_imports_neither_torch_nor_streamlit() -> None:
    code = ("import sys, energyprof.machine as m; m.this_machine('estimate'); "
            "print(sorted(n for n in ('torch', 'transformers', 'mlx', 'streamlit') if n in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.stdout.strip() == "[]"


def test_a_mac_is_named_by_its_chip_and_its_id_hides_the_serial(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"machdep.cpu.brand_string": "Apple M4 Max", "hw.model": "Mac16,5", "kern.osversion": "24C101"}
    _script(tmp_path, "sysctl", f"answers = {answers!r}\nprint(answers[sys.argv[-1]])")
    _script(tmp_path, "ioreg", "print('+-o J316cAP  <class IOPlatformExpertDevice>\\n'\n"
            f"      '    \"IOPlatformSerialNumber\" = \"{SERIAL}\"\\n'\n"
            f"      '    \"IOPlatformUUID\" = \"{PLATFORM_UUID}\"')")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(machine_mod.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(machine_mod.platform, "mac_ver", lambda: ("15.2", ("", "", ""), "arm64"))
    mac = read_machine(nvml=fake_nvml([], init_error=9))
    assert (mac.chip, mac.hw_model, mac.os_name, mac.os_version, mac.os_build) == (
        "Apple M4 Max", "Mac16,5", "macOS", "15.2", "24C101")
    assert mac.cpu_model == "Apple M4 Max" and mac.gpu is None and mac.gpu_count == 0
    assert mac.label.startswith("Apple M4 Max · ")
    assert mac.machine_id == hashed_id(PLATFORM_UUID)
    text = json.dumps(mac.to_dict())
    assert SERIAL not in text and PLATFORM_UUID not in text and PLATFORM_UUID.lower() not in text


def test_nvidia_gpus_are_named_from_nvml() -> None:
    gpus = fake_nvml([{"name": "NVIDIA H100 80GB HBM3", "step_mj": 1}, {"name": "NVIDIA H100 80GB HBM3", "step_mj": 1}])
    box = read_machine(nvml=gpus)
    assert (box.gpu, box.gpu_count) == ("NVIDIA H100 80GB HBM3", 2)
    assert box.label.endswith("2× NVIDIA H100 80GB HBM3")
    assert read_machine(nvml=fake_nvml([], init_error=9)).gpu is None  # no driver: no GPU, no error


def test_the_power_source_and_its_probed_counter_are_recorded() -> None:
    counter = CounterCharacteristics(update_period_s=0.1, quantum_mj=1.0, reads=900, changes=10, read_us=40.0,
                                     seconds=1.0)
    facts = source_facts(type("S", (), {"name": "nvml", "measured": True})(), counter)
    assert facts == {"power_source": "nvml", "power_measured": True, "power_scope": None,
                     "counter_update_period_s": 0.1, "counter_quantum_mj": 1.0}  # a source that states no scope
    scoped = type("S", (), {"name": "rapl", "measured": True, "scope": lambda self: Scope("the package alone")})()
    assert source_facts(scoped)["power_scope"] == "the package alone"  # what the source says it covers
    estimate = registry.resolve_source("estimate")
    assert this_machine(estimate).power_scope == estimate.scope().text and estimate.scope().text


def test_the_machine_round_trips_through_the_summary_and_junk_is_dropped() -> None:
    here = this_machine("estimate")
    summary = RunSummary(kind="sample", machine=here)
    back = RunSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert back.machine == here and back.machine_name == here.label
    junk = RunSummary.from_dict({"machine": {"label": "<b>x</b>", "cores_logical": "many", "packages": [1],
                                             "memory_gb": True, "gpu_count": None, "unknown_key": 1}})
    assert junk.machine == Machine(label="<b>x</b>")
    assert RunSummary.from_dict({"machine": "a string"}).machine is None
    old = RunSummary.from_dict({"kind": "profile"})  # written before machines were recorded
    assert old.machine is None and old.machine_name == UNKNOWN_MACHINE


def test_a_database_from_before_machines_keeps_its_runs_as_unknown_machine(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    before = next(i for i, script in enumerate(MIGRATIONS) if "machine_label" in script)  # the schema before it
    for version, script in enumerate(MIGRATIONS[:before], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    summary = RunSummary(run_id=1, kind="sample", status="done", source="estimate", measured=False,
                         energy_j={"cpu": 2.0}, mean_w={"cpu": 4.0}).to_dict()
    del summary["machine"]
    conn.execute("INSERT INTO runs (id, kind, status, source, measured, created_at, summary) "
                 "VALUES (1, 'sample', 'done', 'estimate', 0, 0, ?)", (json.dumps(summary),))
    conn.commit()
    conn.close()
    store = Store(db_path)
    assert store.schema_version == len(MIGRATIONS) == before + 1
    run = store.get_run(1)
    assert run["summary"] == summary and run["machine_id"] is None and run["machine_label"] is None
    assert RunSummary.from_dict(run["summary"]).machine_name == UNKNOWN_MACHINE
    new = seed_run(store, tokens=0, kind="sample", minutes=0.05)
    store.update_run(new, machine_id="abc", machine_label="Apple M4 Max · 16 cores · 64 GB")
    at = open_page(None)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["run?run=1", "machine"] == UNKNOWN_MACHINE
    assert table.loc[f"run?run={new}", "machine"] == "Apple M4 Max · 16 cores · 64 GB"
    at.multiselect(key="f_machine").select(UNKNOWN_MACHINE).run()
    assert list(at.dataframe[0].value["run"]) == ["run?run=1"]  # Runs filters by machine


def test_a_bundle_carries_the_machine_to_another_database_and_compare_sets_them_side_by_side(
        tmp_path: Path, db_path: Path) -> None:
    from sharing_runs import M4_MAX, made_elsewhere

    from energyprof.compare_table import compare

    mac_db = Store(tmp_path / "mac.sqlite3")  # the Mac's own database
    made_there = seed_run(mac_db, tokens=12, source="ioreport")
    made_elsewhere(mac_db, made_there, M4_MAX)
    bundle = mac_db.export_bundle([made_there]).data
    here = Store(db_path)
    local = seed_run(here, tokens=12, source="estimate", measured=False)
    made_elsewhere(here, local, this_machine(registry.resolve_source("estimate")))
    (imported,) = [new for _, new in here.import_bundle(bundle, name="mac.bundle").imported]
    run = here.get_run(imported)
    assert RunSummary.from_dict(run["summary"]).machine == M4_MAX  # every fact, as the Mac recorded it
    assert (run["machine_id"], run["machine_label"]) == (M4_MAX.machine_id, M4_MAX.label)
    rows = compare(here, [here.get_run(local), run]).rows.set_index("machine")
    assert list(rows.index) == [this_machine().label, M4_MAX.label]
    assert rows.loc[M4_MAX.label, "memory GB"] == 64.0 and rows.loc[M4_MAX.label, "source scope"].startswith("Apple")
    assert rows.loc[this_machine().label, "source scope"] == registry.resolve_source("estimate").scope().text
    mac_db.close()
    here.close()
