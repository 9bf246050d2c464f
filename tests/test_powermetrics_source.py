"""PowermetricsSource against tests/fake_powermetrics.py, a stand-in that replays the real recordings live."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from recordings import M4_PRO

from energyprof.power import powermetrics as pm
from energyprof.power.base import PowerSourceError, PowerWindow
from energyprof.power.powermetrics import NEEDS_ROOT, NOT_MACOS, PowermetricsSource, stop_all
from energyprof.power.sampler import Sampler
from energyprof.power.window_clock import WindowClock

REPO = Path(__file__).resolve().parents[1]
FAKE = [sys.executable, str(REPO / "tests" / "fake_powermetrics.py")]
SUDO_DENIED = [str(REPO / "tests" / "fake_sudo_denied")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("FAKE_POWERMETRICS_") or name == pm.ENV_COMMAND:
            monkeypatch.delenv(name)
    pidfile = tmp_path / "fake.pid"
    monkeypatch.setenv("FAKE_POWERMETRICS_PIDFILE", str(pidfile))
    return pidfile


def _gone(pidfile: Path) -> bool:
    """The stand-in whose pid is in pidfile no longer exists (not even as an unreaped zombie)."""
    pid = int(pidfile.read_text())
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def _collect(source: PowermetricsSource, seconds: float, until: int | None = None) -> list[PowerWindow]:
    windows: list[PowerWindow] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and (until is None or len(windows) < until):
        windows += source.read(0.05)
    return windows


def test_stand_in_stream_gives_plausible_windows(tmp_path: Path) -> None:
    source = PowermetricsSource(command=FAKE)
    source.start(50)
    windows = _collect(source, 1.2)
    assert abs(pm.now_ns() - windows[-1].t1_ns) < 0.5e9  # stamped on the job clock, at arrival
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    windows += source.drain()
    assert _gone(tmp_path / "fake.pid")
    assert len(windows) >= 12
    lengths_ms = sorted((w.t1_ns - w.t0_ns) / 1e6 for w in windows)
    assert 45 <= lengths_ms[len(lengths_ms) // 2] <= 80  # -i 50: each window is the real time between samples
    assert all(w.t1_ns > w.t0_ns for w in windows)
    assert all(a.t1_ns <= b.t0_ns for a, b in zip(windows, windows[1:], strict=False))  # never overlapping
    # energies are the recordings' scaled to the real window, so power stays what the Macs drew:
    # the M2 Ultra document's gpu is 72607 mJ / 1.0237 s = 70.9 W (integer mJ rounding costs < 1%, and a
    # window shortened while the clock catches up with a late first read by at most 10%, i.e. +11% power)
    gpu_w = [w.power_w("gpu") for w in windows if w.power_w("gpu") > 10]
    assert gpu_w and all(70.92 * 0.99 <= p <= 70.92 * 1.12 for p in gpu_w)
    assert all(w.energy_mj["dram"] is None for w in windows)
    assert source.hw_model in ("MacBookPro17,1", "Mac14,14") and source.skipped == 0


def test_window_clock_chains_windows_and_absorbs_late_reads() -> None:
    clock = WindowClock(gap_ns=1_000_000_000)
    ms = 1_000_000
    assert clock.place([100 * ms], 1000 * ms) == [(900 * ms, 1000 * ms)]
    # a read that comes 30 ms late does not move the window: it is chained to the previous one
    assert clock.place([100 * ms], 1130 * ms) == [(1000 * ms, 1100 * ms)]
    # documents read together are laid end to end
    assert clock.place([100 * ms, 100 * ms], 1300 * ms) == [(1100 * ms, 1200 * ms), (1200 * ms, 1300 * ms)]
    # an arrival earlier than the chain says tightens it (an earlier window was placed late) ...
    assert clock.place([100 * ms], 1390 * ms) == [(1300 * ms, 1390 * ms)]
    # ... by at most 10% of a window at a time, so no window's power is inflated by more than ~11%
    assert clock.place([100 * ms], 1450 * ms) == [(1390 * ms, 1480 * ms)]
    assert clock.place([100 * ms], 1560 * ms) == [(1480 * ms, 1570 * ms)]
    assert clock.place([100 * ms], 1670 * ms) == [(1570 * ms, 1670 * ms)]
    # after a dropped document the chain restarts at the arrival
    assert clock.place([100 * ms], 1900 * ms, [True]) == [(1800 * ms, 1900 * ms)]
    # a chain far behind the arrivals (more than gap_ns) restarts too
    assert clock.place([100 * ms], 3100 * ms) == [(3000 * ms, 3100 * ms)]


def test_gpu_only_recording_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_FIXTURE", str(M4_PRO))
    with PowermetricsSource(command=FAKE) as source:
        source.start(50)
        windows = _collect(source, 2.0, until=4)
    assert len(windows) >= 4
    assert all(w.energy_mj["cpu"] is None and w.energy_mj["gpu"] is not None for w in windows)
    assert source.hw_model == "Mac16,8"


def test_not_root_is_a_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_EUID", "501")
    source = PowermetricsSource(command=FAKE)
    assert source.available() == (False, NEEDS_ROOT)
    with pytest.raises(PowerSourceError) as err:
        source.start(100)
    assert str(err.value) == NEEDS_ROOT
    assert "scripts/setup_powermetrics.sh" in NEEDS_ROOT


def test_sudo_without_a_rule_is_the_same_sentence() -> None:
    source = PowermetricsSource(command=SUDO_DENIED)
    assert source.available() == (False, NEEDS_ROOT)
    with pytest.raises(PowerSourceError, match="needs root"):
        source.start(100)


def test_env_override_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pm.ENV_COMMAND, f"{sys.executable} '{REPO / 'tests' / 'fake_powermetrics.py'}'")
    source = PowermetricsSource()
    assert source.command == FAKE
    ok, reason = source.available()
    assert ok and "MacBookPro17,1" in reason


def test_default_command_uses_sudo_n_unless_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pm.os, "geteuid", lambda: 501)
    assert pm.default_command() == ["sudo", "-n", "/usr/bin/powermetrics"]
    monkeypatch.setattr(pm.os, "geteuid", lambda: 0)
    assert pm.default_command() == ["/usr/bin/powermetrics"]
    assert PowermetricsSource().arguments(100) == ["-f", "plist", "-i", "100", "--samplers",
                                                   "cpu_power,gpu_power,thermal", "-b", "0"]


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message on systems without powermetrics")
def test_not_macos_without_override() -> None:
    source = PowermetricsSource()
    assert source.available() == (False, NOT_MACOS)
    with pytest.raises(PowerSourceError, match="only on macOS"):
        source.start(100)


def test_source_dying_mid_run_is_reported_after_its_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_EXIT_AFTER", "3")
    source = PowermetricsSource(command=FAKE)
    source.start(50)
    windows: list[PowerWindow] = []
    with pytest.raises(PowerSourceError) as err:
        for _ in range(200):
            windows += source.read(0.05)
    assert len(windows) == 3
    message = str(err.value)
    assert message.startswith("powermetrics stopped unexpectedly (exit 1): ")
    assert "sampler failed after 3 samples" in message
    source.stop()
    assert _gone(tmp_path / "fake.pid")


def test_truncated_stream_counts_the_cut_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_TRUNCATE_AFTER", "2")
    source = PowermetricsSource(command=FAKE)
    source.start(50)
    windows: list[PowerWindow] = []
    with pytest.raises(PowerSourceError, match="stopped unexpectedly"):
        for _ in range(200):
            windows += source.read(0.05)
    source.stop()
    assert len(windows) == 2 and source.skipped == 1


def test_stalled_stream_raises_instead_of_hanging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_STALL_AFTER", "2")
    source = PowermetricsSource(command=FAKE, stall_s=0.8)
    source.start(50)
    windows: list[PowerWindow] = []
    started = time.monotonic()
    with pytest.raises(PowerSourceError, match="stalled"):
        for _ in range(200):
            windows += source.read(0.05)
    assert len(windows) == 2 and time.monotonic() - started < 3.0
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    assert _gone(tmp_path / "fake.pid")


def test_default_stall_limit_follows_the_interval() -> None:
    source = PowermetricsSource(command=FAKE)
    source._reset(100)
    assert source._stall_ns == 5_000_000_000  # max(5 s, 20 × 100 ms)
    source._reset(1000)
    assert source._stall_ns == 20_000_000_000  # max(5 s, 20 × 1 s)


def test_garbage_is_skipped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_GARBAGE", "1")
    with PowermetricsSource(command=FAKE) as source:
        source.start(50)
        windows = _collect(source, 2.0, until=5)
    assert len(windows) >= 5
    assert source.skipped >= 4
    assert all(w.energy_mj["cpu"] is not None for w in windows)


def test_stop_escalates_to_sigkill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_POWERMETRICS_IGNORE_SIGTERM", "1")
    source = PowermetricsSource(command=FAKE)
    source.stop_grace_s = 0.3
    source.start(50)
    _collect(source, 1.0, until=1)
    started = time.monotonic()
    source.stop()
    source.stop()  # idempotent
    assert 0.25 < time.monotonic() - started < 1.0  # waited out the 0.3 s grace, then SIGKILL
    assert _gone(tmp_path / "fake.pid")


def test_stop_all_stops_every_live_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = []
    sources = []
    for i in range(2):
        monkeypatch.setenv("FAKE_POWERMETRICS_PIDFILE", str(tmp_path / f"fake{i}.pid"))
        source = PowermetricsSource(command=FAKE)
        source.start(50)
        sources.append(source)
        pids.append(tmp_path / f"fake{i}.pid")
    _collect(sources[0], 1.0, until=1)
    stop_all()
    assert all(_gone(p) for p in pids)
    assert all(s.pid is None for s in sources)


def test_child_never_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from energyprof.power.powermetrics import PowermetricsSource
        source = PowermetricsSource(command={FAKE!r})
        source.start(50)
        time.sleep(0.3)
        sys.exit(0)  # no stop(): atexit must do it
    """)
    env = {**os.environ, "FAKE_POWERMETRICS_PIDFILE": str(tmp_path / "orphan.pid")}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=30)
    assert _gone(tmp_path / "orphan.pid")


def test_sampler_drains_the_source_after_stop(tmp_path: Path) -> None:
    got: list[PowerWindow] = []
    sampler = Sampler(PowermetricsSource(command=FAKE), got.extend, interval_ms=50)
    with sampler:
        time.sleep(0.6)
    assert sampler.error is None and len(got) >= 5 and sampler.windows == len(got)
    assert _gone(tmp_path / "fake.pid")
