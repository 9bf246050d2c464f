"""Issue 17, defect 2: text from outside (a server's model id and error body, a model name, an imported capture's
machine model, another process's command line) reaches the terminal escaped, never as a live escape sequence.

Every check runs the real `energyprof` command in a subprocess against a real HTTP server on 127.0.0.1 and reads
the raw bytes it wrote: no ESC, BEL or CR may be among them, and what was sent shows as `\\x1b`, `\\x07`, `\\n`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from endpoint_servers import FakeEndpoint, Handler, chunk, event
from profile_helpers import REPO, wait_for

from energyprof.store import Store
from energyprof.summary import ProcessCpu, RunSummary
from energyprof.textsafe import terminal_text

HOSTILE_MODEL = "\x1b[31mRED\x1b[0m\x07"
SERVER_MODEL = "srv\x1b[2Jmodel"
ERROR_BODY = "boom\x1b]52;c;aGk=\x07\r\nTraceback (most recent call last): line 2"
HOG_CODE = "import time\nend = time.time() + 60\nwhile time.time() < end: pass  # \x1b[2J\x07 hog"
"""A busy process whose command line holds newlines, source code and escape sequences."""
FIXTURE = REPO / "tests" / "fixtures" / "powermetrics" / \
    "m1_MacBookAir10-1_macOS12.6-21G115_text_cpu_power_10samples_with-DRAM.txt"


def energyprof(*args: str, db: Path, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "energyprof", *args, "--db", str(db)], capture_output=True,
                          timeout=timeout, cwd=REPO)


def assert_inert(*outputs: bytes) -> None:
    """No byte that a terminal acts on: ESC, BEL, CR (newlines only between lines)."""
    for out in outputs:
        for byte in (b"\x1b", b"\x07", b"\r", b"\x9b"):
            assert byte not in out, (byte, out[-2000:])


def hostile_stream(n: int, delay_s: float = 0.0):
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        count = min(n, int(body.get("max_tokens") or 1))
        pieces = [event(chunk(f"t{i} ", model=SERVER_MODEL)) for i in range(count)]
        pieces.append(event(chunk(usage={"prompt_tokens": 5, "completion_tokens": count}, model=SERVER_MODEL)))
        handler.send_pieces([*pieces, b"data: [DONE]\n\n"], delay_s=delay_s)
    return respond


def test_terminal_text_shows_control_characters_escaped_and_bounds_the_length() -> None:
    assert terminal_text(HOSTILE_MODEL) == "\\x1b[31mRED\\x1b[0m\\x07"
    assert terminal_text("a\r\nb\tc\x9b\u202ed") == "a\\r\\nb\\tc\\x9b\\u202ed"
    assert terminal_text("x" * 500, 20) == "x" * 19 + "…" and len(terminal_text("\x1b" * 100, 10)) <= 10
    assert terminal_text(None) == "" and terminal_text("naïve – ok") == "naïve – ok"
    name = ProcessCpu(7, "python -c import x\nwhile 1: pass\x1b[2J", 1.0).describe()
    assert "\n" not in name and "\x1b" not in name and "\\n" in name


def test_other_processes_command_lines_are_labelled_escaped_on_one_line() -> None:
    import psutil

    from energyprof.runner.background import process_label

    hog = subprocess.Popen([sys.executable, "-c", HOG_CODE])
    try:
        proc = psutil.Process(hog.pid)
        wait_for(lambda: "hog" in " ".join(proc.cmdline()), 30, "the hog's command line")
        label = process_label(proc.name(), proc.cmdline())  # as the background monitor labels every process
    finally:
        hog.kill()
        hog.wait()
    assert label.startswith("python") and len(label) <= 60
    assert "\n" not in label and "\x1b" not in label and "\\nend = time.time()" in label
    busy = RunSummary(disturbed=True, background_cpu={"baseline": 0.1, "workload": 1.2},
                      background_top=[ProcessCpu(hog.pid, label, 1.1)])
    assert "\n" not in busy.disturbance() and label in busy.disturbance()


def test_outside_text_is_escaped_by_profile_runs_sweep_and_import(db_path: Path, tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    hog = None
    try:
        with FakeEndpoint(hostile_stream(40, delay_s=0.02)) as server:
            # profile: the model name typed, the server's model id, other processes' command lines (disturbed)
            profile = subprocess.Popen(
                [sys.executable, "-m", "energyprof", "profile", "--endpoint", server.url, "--model", HOSTILE_MODEL,
                 "--source", "estimate", "--interval-ms", "50", "--repeats", "2", "--warmup", "0", "--baseline-s",
                 "0.6", "--max-new-tokens", "40", "--server-pid", str(sleeper.pid), "--db", str(db_path)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
            store = Store(db_path)
            wait_for(lambda: str((store.job_progress() or {}).get("phase") or "").startswith("repeat"), 120,
                     "the first repeat")
            hog = subprocess.Popen([sys.executable, "-c", HOG_CODE])
            out, err = profile.communicate(timeout=120)
            # sweep: the table and the point lines
            sweep = energyprof("sweep", "--endpoint", server.url, "--model", HOSTILE_MODEL, "--source", "estimate",
                               "--repeats", "1", "--no-target-ci", "--warmup", "0", "--baseline-s", "0",
                               "--max-new-tokens", "4", db=db_path)
        # an HTTP error body with escape sequences and line breaks
        with FakeEndpoint(lambda handler, _: handler.send_json(500, {"error": {"message": ERROR_BODY}})) as server:
            failed = energyprof("profile", "--endpoint", server.url, "--model", "m", "--source", "estimate",
                                db=db_path)
    finally:
        for proc in (sleeper, hog):
            if proc is not None:
                proc.kill()
                proc.wait()
    assert profile.returncode == 0, err.decode(errors="replace")
    assert_inert(out, err)
    text = out.decode()
    assert "\\x1b[31mRED\\x1b[0m\\x07" in text and "Server model: srv\\x1b[2Jmodel" in text
    summary = RunSummary.from_dict(store.get_run(1)["summary"])
    warnings = [line for line in err.decode().splitlines() if "Disturbed" in line]
    assert len(warnings) == (1 if summary.disturbed else 0)  # the warning is one line, whatever the names hold
    hog_label = next((p.name for p in summary.background_top if "hog" in p.name), None)
    if hog_label is not None:  # among the busiest on this (shared) machine: stored and shown escaped
        assert hog_label.startswith("python") and "\\nend = time.time()" in hog_label and "\n" not in hog_label
    assert sweep.returncode == 0, sweep.stderr.decode(errors="replace")
    assert_inert(sweep.stdout, sweep.stderr)
    assert "\\x1b[31mRED" in sweep.stdout.decode()
    assert failed.returncode == 1
    assert_inert(failed.stdout, failed.stderr)
    said = failed.stderr.decode()
    assert "HTTP 500: boom\\x1b]52;c;aGk=\\x07\\r\\nTraceback" in said and said.count("\n") == 1  # one sentence

    # runs: model names in the table
    runs = energyprof("runs", db=db_path)
    assert runs.returncode == 0 and b"RED" in runs.stdout
    assert_inert(runs.stdout, runs.stderr)
    assert "\\x1b[31mRED" in runs.stdout.decode()
    listed = json.loads(energyprof("runs", "--json", db=db_path).stdout)
    assert listed[-1]["model"] == HOSTILE_MODEL  # JSON keeps the value exactly (escaped by JSON itself)

    # import-powermetrics: the capture's machine model
    capture = tmp_path / "capture.txt"
    capture.write_bytes(FIXTURE.read_bytes().replace(b"MacBookAir10,1", b"Mac\x1b[2J\x1b]0;owned\x07Book"))
    imported = energyprof("import-powermetrics", str(capture), db=db_path)
    assert imported.returncode == 0, imported.stderr.decode(errors="replace")
    assert_inert(imported.stdout, imported.stderr)
    assert "Mac\\x1b[2J\\x1b]0;owned\\x07Book" in imported.stdout.decode()
    store.close()
