"""`energyprof sample`: record power for a number of seconds into a run of kind `sample`."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from energyprof.analysis.recording import format_summary, summarise_windows
from energyprof.commands.args import add_db_option, add_json_option, fail, float_range, int_range, print_json
from energyprof.errors import ControlFlow
from energyprof.machine import this_machine
from energyprof.power.base import NullSource, PowerSource, PowerSourceError, now_ns
from energyprof.power.registry import AUTO, SOURCE_NAMES, resolve_source, source_status
from energyprof.power.sampler import Sampler
from energyprof.store import Store
from energyprof.store.writer import WindowWriter

FLUSH_EVERY_S = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sample", help="record power for some seconds",
                                   description="Record power for some seconds as a run of kind `sample`, "
                                               "then print mean power and energy per component.")
    parser.add_argument("--seconds", type=float_range(0, 7 * 86400, strict_min=True), required=True,
                        help="how long to record")
    parser.add_argument("--source", choices=(*SOURCE_NAMES, AUTO), default=AUTO,
                        help="power source (default: auto = the first measured source that works here)")
    parser.add_argument("--interval-ms", type=int_range(10, 9_999), default=None,
                        help="sampling interval (default: the source's own)")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


class Terminated(ControlFlow, Exception):
    """Control flow, not an error: SIGTERM arrived: stop recording and keep what was recorded."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread (so `finally` blocks run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def record(source: PowerSource, recorder: WindowWriter, seconds: float,
           interval_ms: int) -> tuple[str, str | None, int]:
    """Run the source for `seconds`; (final status, error sentence or None, exit code)."""
    sampler = Sampler(source, recorder.add, interval_ms=interval_ms)
    status, error, code = "done", None, 0
    try:
        with sigterm_raises():
            sampler.start()
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0 and sampler.alive:
                time.sleep(min(FLUSH_EVERY_S, remaining))
                recorder.flush()
    except PowerSourceError as exc:
        status, error, code = "failed", str(exc), 1
    except KeyboardInterrupt:
        status, code = "cancelled", 128 + signal.SIGINT
    except Terminated:
        status, code = "cancelled", 128 + signal.SIGTERM
    finally:
        sampler.stop()
        recorder.flush()
    if sampler.error and status == "done":
        status, error, code = "failed", sampler.error, 1
    return status, error, code


def open_store(path: str | None) -> Store:
    """The database, or ValueError with one sentence when it cannot be opened."""
    try:
        return Store(path)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        where = path or "the default database"
        raise ValueError(f"cannot open {where} ({exc}); check --db or $ENERGYPROF_DB.") from exc


def run(args: argparse.Namespace) -> int:
    try:
        source = resolve_source(args.source)
    except (PowerSourceError, ValueError) as exc:
        return fail(str(exc))
    if source.name == NullSource.name:
        return fail(f"no power source works here: {source_status('estimate').reason}")
    interval_ms = args.interval_ms or source.default_interval_ms
    try:
        store = open_store(args.db)
    except ValueError as exc:
        return fail(str(exc))
    run_id = store.create_run("sample", source=source.name, measured=source.measured,
                              params={"seconds": args.seconds, "interval_ms": interval_ms,
                                      "requested_source": args.source})
    store.update_run(run_id, clock_t0_ns=now_ns(), pid=os.getpid())
    recorder = WindowWriter(store, run_id, keep=True)
    status, error, code = record(source, recorder, args.seconds, interval_ms)
    skipped = source.skipped
    summary = summarise_windows(recorder.windows, source.components(), source.scope(), run_id=run_id, kind="sample",
                                status=status, error=error, source=source.name, measured=source.measured,
                                interval_ms=interval_ms, samples_skipped=skipped, power_incomplete=error is not None,
                                machine=this_machine(source))
    store.update_run(run_id, samples_skipped=skipped, power_incomplete=int(error is not None))
    store.finish_run(run_id, status, error=error, summary=summary.to_dict())
    if args.json:
        print_json(summary.to_dict())
    else:
        print(f"run {run_id} ({status}): {summary.windows} windows over {summary.duration_s:.2f} s "
              f"from {source.name} ({summary.provenance}), {skipped} skipped")
        print("\n".join(format_summary(summary)))
    if error:
        fail(error)
    return code
