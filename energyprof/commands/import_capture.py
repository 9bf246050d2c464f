"""`energyprof import-powermetrics FILE`: a powermetrics recording (plist stream or text) as a `capture` run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from energyprof.analysis.recording import format_summary, summarise_windows
from energyprof.commands.args import add_db_option, add_json_option, fail, print_json
from energyprof.commands.sample import open_store
from energyprof.machine import capture_machine
from energyprof.power.powermetrics import SCOPE as POWERMETRICS_SCOPE
from energyprof.power.powermetrics_parse import Capture, PowermetricsParseError, macos_version, read_capture
from energyprof.textsafe import terminal_text

RECORD_HINT = ("record one with `sudo powermetrics -f plist --samplers cpu_power,gpu_power,thermal "
               "-i 100 -o FILE`")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import-powermetrics", help="import a powermetrics recording as a run",
                                   description="Read a file written by Apple's powermetrics (-f plist stream "
                                               "or text output) into a run of kind `capture`.")
    parser.add_argument("file", metavar="FILE", help="the recording")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def load(path: Path) -> Capture:
    """The recording's samples; ValueError with one sentence when there is nothing usable in it."""
    try:
        capture = read_capture(path)
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a powermetrics recording; give the file powermetrics "
                         "wrote.") from None
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; check the path.") from None
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    except PowermetricsParseError as exc:
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty; {RECORD_HINT}.") from None
        raise ValueError(f"{path} is not a powermetrics recording ({exc}); {RECORD_HINT}.") from None
    if not any(v is not None for s in capture.samples for v in s.energy_mj.values()):
        raise ValueError(f"{path} holds no complete powermetrics sample with power figures "
                         f"({capture.skipped} malformed or cut off); {RECORD_HINT}.")
    return capture


def params(path: Path, capture: Capture) -> dict[str, Any]:
    pressures = sorted({s.thermal_pressure for s in capture.samples if s.thermal_pressure})
    return {"file": str(path.resolve()), "format": capture.fmt, "hw_model": capture.hw_model,
            "os_build": capture.os_build, "macos": macos_version(capture.os_build),
            "not_delta_dropped": capture.not_delta, "thermal_pressure": pressures}


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        capture = load(path)
    except ValueError as exc:
        return fail(str(exc))
    windows = capture.windows()
    try:
        store = open_store(args.db)
    except ValueError as exc:
        return fail(str(exc))
    run_id = store.create_run("capture", source="powermetrics", measured=True, params=params(path, capture),
                              owned=True)
    summary = summarise_windows(windows, scope=POWERMETRICS_SCOPE, run_id=run_id, kind="capture", status="done",
                                source="powermetrics", measured=True, samples_skipped=capture.skipped,
                                machine=capture_machine(capture.hw_model, capture.os_build,
                                                        macos_version(capture.os_build), POWERMETRICS_SCOPE.text))
    try:
        store.update_run(run_id, clock_t0_ns=0, samples_skipped=capture.skipped)
        store.add_power_windows(run_id, windows)
    except BaseException as exc:
        store.finish_run(run_id, "failed", error=f"the import stopped before it finished ({exc}); run it again.")
        raise
    store.finish_run(run_id, "done", summary=summary.to_dict())
    if args.json:
        print_json({**summary.to_dict(), "format": capture.fmt, "hw_model": capture.hw_model,
                    "os_build": capture.os_build})
        return 0
    where = f"{capture.hw_model or 'unknown Mac'}, macOS {macos_version(capture.os_build) or '?'}"
    print(terminal_text(f"run {run_id}: imported {summary.windows} samples ({summary.duration_s:.2f} s, "
                        f"{capture.fmt}, {terminal_text(where, 120)}) from {path}; {capture.skipped} skipped", None))
    print("\n".join(terminal_text(line, None) for line in format_summary(summary)))
    return 0
