"""A database that cannot be used, and output into a closed pipe: one sentence from every command, never a traceback.

Read-only files are made read-only for real: when the tests run as root (whom file modes do not stop), the
commands run without the capabilities that let root ignore them (util-linux `setpriv`).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from recordings import M1_TEXT

from energyprof.power.base import PowerWindow
from energyprof.store import Store

REPO = Path(__file__).resolve().parents[1]
SETPRIV = shutil.which("setpriv")
AS_A_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
"""Root without the capabilities that bypass file modes: 0444 and 0555 then stop it as they stop a user."""

COMMANDS: dict[str, list[str]] = {
    "runs": ["runs"],
    "profile": ["profile", "--model", "tiny", "--prompt", "hi", "--max-new-tokens", "1", "--source", "estimate",
                "--baseline-s", "0", "--repeats", "1", "--warmup", "0"],
    "export": ["export", "1"],
    "sample": ["sample", "--seconds", "0.2", "--source", "estimate"],
    "import-powermetrics": ["import-powermetrics", str(M1_TEXT)],
    "job": ["job", "--run-id", "1"],
}
READERS = ("runs", "export")
"""Commands that only read: a read-only database serves them."""


def energyprof(args: list[str], db: Path, *, user: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = AS_A_USER if user and os.geteuid() == 0 else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENERGYPROF_")}
    return subprocess.run([*prefix, sys.executable, "-m", "energyprof", *args, "--db", str(db)], cwd=REPO,
                          env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)


def real_database(path: Path) -> Path:
    """A database with one finished sample run (run 1) and enough rows to span several pages."""
    store = Store(path)
    run = store.create_run("sample", source="estimate", measured=False)
    store.add_power_windows(run, [PowerWindow(i, i + 1, {"cpu": 1.0}) for i in range(0, 20_000, 2)])
    store.finish_run(run, "done", summary={})
    store.close()
    return path


def sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("energyprof: "), result.stderr
    assert result.returncode == 1
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_random_bytes_are_not_an_energyprof_database(tmp_path: Path, command: str) -> None:
    db = tmp_path / "junk.sqlite3"
    db.write_bytes(os.urandom(8192))
    said = sentence(energyprof(COMMANDS[command], db))
    assert f"{db} is not an energyprof database (file is not a database)" in said
    assert "point --db (or $ENERGYPROF_DB) at another file" in said


@pytest.mark.parametrize("command", COMMANDS)
def test_a_truncated_database_is_damaged(tmp_path: Path, command: str) -> None:
    whole = real_database(tmp_path / "whole.sqlite3").read_bytes()
    db = tmp_path / "cut.sqlite3"
    db.write_bytes(whole[: len(whole) // 3])
    said = sentence(energyprof(COMMANDS[command], db))
    assert str(db) in said and ("damaged" in said or "not an energyprof database" in said)
    assert said.endswith(".")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_path_under_a_file_is_refused(tmp_path: Path, command: str) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    db = tmp_path / "notes.txt" / "x.sqlite3"
    said = sentence(energyprof(COMMANDS[command], db))
    assert str(db) in said
    assert command == "export" or f"{tmp_path / 'notes.txt'} is a file, not a folder" in said


@pytest.mark.skipif(os.geteuid() == 0 and SETPRIV is None, reason="root ignores file modes and setpriv is missing")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_database_serves_reads_and_refuses_writes_in_one_sentence(tmp_path: Path, command: str) -> None:
    db = real_database(tmp_path / "ro.sqlite3")
    db.chmod(0o444)
    result = energyprof(COMMANDS[command], db, user=True)
    if command in READERS:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return
    said = sentence(result)
    assert f"{db} is read-only" in said and "chmod u+w" in said


@pytest.mark.skipif(os.geteuid() == 0 and SETPRIV is None, reason="root ignores file modes and setpriv is missing")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_in_a_read_only_folder_gets_one_sentence(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    db = real_database(folder / "db.sqlite3") if command in READERS else folder / "new.sqlite3"
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        said = sentence(energyprof(COMMANDS[command], db, user=True))
    finally:
        folder.chmod(0o755)
    assert str(db) in said and f"folder {folder} is read-only" in said


def test_output_into_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    db = real_database(tmp_path / "db.sqlite3")
    for args in (["runs"], ["runs", "--json"], ["export", "1", "--what", "samples"]):
        proc = subprocess.Popen([sys.executable, "-m", "energyprof", *args, "--db", str(db)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # the reader went away, as `energyprof runs | true` does
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
        assert stderr == "", stderr
        assert proc.returncode == 141
