"""The one error root and the one sentence-maker.

Every error energyprof raises on purpose derives from `EnergyprofError`, whose `user_message` is one sentence for
people: what happened and what to do. `user_message(exc)` turns *any* exception into such a sentence; the CLI, the
job's error field and the dashboard all call it, so "exception → sentence" is written once. The sentences about the
database file itself are energyprof.store.errors's (`sentence_for`). Exceptions used only to unwind the stack (a
signal that stops a job, a hook that ends a generation early) derive from `ControlFlow` as well: they never reach
people.
"""

from __future__ import annotations

from pathlib import Path

MAX_DETAIL_CHARS = 300
"""Longest piece of a foreign exception's text quoted in a sentence."""


class EnergyprofError(Exception):
    """An error energyprof raises on purpose; its message is one sentence for people."""

    @property
    def user_message(self) -> str:
        """The sentence shown to people: what happened and what to do."""
        return sentence(str(self)) or f"{type(self).__name__}."


class ControlFlow:
    """Marks an exception that only unwinds the stack (cancel, stop early): never an error, never shown."""


def first_line(text: object, limit: int = MAX_DETAIL_CHARS) -> str:
    """The first non-empty line of `text`, stripped and cut to `limit` characters."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def detail(exc: object, limit: int = MAX_DETAIL_CHARS) -> str:
    """An exception's (or a text's) first line to quote inside a sentence: no final full stop, 'no details' if empty."""
    return first_line(exc, limit).rstrip(".") or "no details"


def sentence(text: object) -> str:
    """`text`'s first line as a sentence: capitalised, ending with a full stop (empty for empty text)."""
    line = first_line(text)
    if not line:
        return ""
    line = line[0].upper() + line[1:]
    return line if line.endswith((".", "!", "?")) else line + "."


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's 'database or disk is full' and the OS's 'No space left on device' (ENOSPC)."""
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or getattr(exc, "errno", None) == 28


def disk_full_sentence(db_path: Path | None = None) -> str:
    """The sentence for a full disk; it names the database when known."""
    if db_path is None:
        return "The disk is full; free some space and try again (what was recorded before is kept)."
    return (f"The disk holding the database {db_path} is full; free some space and run the profile again "
            "(what was recorded before is kept).")


def failed_with(exc: BaseException, what: str, kept: str = "") -> str:
    """'<what> failed with <Type>: <first line>[; <kept>].' for an exception nobody wrote a sentence for."""
    tail = f"; {kept}" if kept else ""
    return f"{what} failed with {type(exc).__name__}: {detail(exc)}{tail}."


def user_message(exc: BaseException, what: str = "The profiling job", *, db_path: Path | None = None,
                 kept: str = "") -> str:
    """One sentence for people about any exception.

    A full disk names the database (`db_path`) when known; our own errors already are one sentence; memory that ran
    out and a ValueError get theirs; anything else says what failed (`what`), the exception's type and first line,
    and what is kept (`kept`)."""
    if db_path is not None and is_disk_full(exc):
        return disk_full_sentence(db_path)
    if isinstance(exc, EnergyprofError):
        return exc.user_message
    if is_disk_full(exc):
        return disk_full_sentence()
    text = first_line(exc)
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "The model ran out of memory; try a smaller model, a shorter prompt or --dtype float16."
    if isinstance(exc, ValueError) and text:
        return sentence(text)
    return failed_with(exc, what, kept)
