"""Every sentence energyprof says when powermetrics cannot run or stops: one owner for each."""

from __future__ import annotations

POWERMETRICS = "/usr/bin/powermetrics"
ENV_COMMAND = "ENERGYPROF_POWERMETRICS"

NEEDS_ROOT = ("powermetrics needs root: run scripts/setup_powermetrics.sh once (it lets you run only "
              "/usr/bin/powermetrics without a password).")
NOT_MACOS = ("powermetrics exists only on macOS (Apple Silicon); on this machine use the nvml, rapl or "
             "estimate source.")
NO_SAMPLE = ("powermetrics ran but printed no power sample; run "
             "`sudo powermetrics -n 1 -f plist --samplers cpu_power` by hand to see why.")
_ROOT_HINTS = ("must be invoked as the superuser", "a password is required", "not allowed to execute",
               "is not in the sudoers file", "may not run sudo", "a terminal is required",
               "not allowed to run sudo")
_BY_HAND = "run `sudo powermetrics -n 1` by hand to see why"


def failure_message(stderr: str, exit_code: int | None, *, mid_run: bool) -> str:
    """One sentence for powermetrics (or sudo) ending, from its stderr and exit status.

    mid_run=False: it failed to start or to take its probe sample; True: it stopped while a run was reading it.
    """
    if any(hint in stderr.lower() for hint in _ROOT_HINTS):
        return NEEDS_ROOT
    last = last_line(stderr)
    if mid_run:
        status = "its output closed" if exit_code is None else f"exit {exit_code}"
        head = f"powermetrics stopped unexpectedly ({status})"
        advice, silent = "start the run again", ""
    else:
        head = "powermetrics failed" + ("" if exit_code is None else f" (exit {exit_code})")
        advice, silent = _BY_HAND, " without a message"
    return f"{head}: {last}; {advice}." if last else f"{head}{silent}; {advice}."


def not_found(program: str) -> str:
    return (f"{program} was not found; check the powermetrics command (on macOS: sudo -n {POWERMETRICS}, "
            f"or set ${ENV_COMMAND}).")


def cannot_start(exc: OSError, program: str) -> str:
    return f"powermetrics could not be started ({exc}); check {program}."


def no_answer(timeout_s: float) -> str:
    return f"powermetrics did not answer within {timeout_s:g} s; {_BY_HAND}."


def stalled(seconds: float) -> str:
    return (f"powermetrics sent no sample for {seconds:.0f} s (the stream stalled); stop the run and start it "
            "again, and check `sudo powermetrics -n 1` by hand if it recurs.")


def last_line(text: str) -> str:
    """The last non-empty line, without a trailing full stop (it is put inside a sentence)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else ""
