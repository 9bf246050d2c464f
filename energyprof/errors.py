"""The one error root and the one sentence-maker.

Every error energyprof raises on purpose derives from `EnergyprofError`, whose `user_message` is one sentence for
people: what happened and what to do. `user_message(exc)` turns *any* exception into such a sentence; the CLI, the
job's error field and the dashboard all call it, so "exception → sentence" is written once.
"""

from __future__ import annotations

MAX_DETAIL_CHARS = 300
"""Longest piece of a foreign exception's text quoted in a sentence."""


class EnergyprofError(Exception):
    """An error energyprof raises on purpose; its message is one sentence for people."""

    @property
    def user_message(self) -> str:
        """The sentence shown to people: what happened and what to do."""
        return sentence(str(self)) or f"{type(self).__name__}."


def first_line(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """The first non-empty line of `text`, stripped and cut to `limit` characters."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def sentence(text: str) -> str:
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


def user_message(exc: BaseException, what: str = "The profiling job") -> str:
    """One sentence for people about any exception: our own errors already are one; a disk that is full, memory
    that ran out and anything else get a sentence that names what failed (`what`) and the exception's first line."""
    if isinstance(exc, EnergyprofError):
        return exc.user_message
    text = first_line(str(exc))
    if is_disk_full(exc):
        return "The disk is full; free some space and try again (what was recorded before is kept)."
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "The model ran out of memory; try a smaller model, a shorter prompt or --dtype float16."
    if isinstance(exc, ValueError) and text:
        return sentence(text)
    return f"{what} failed with {type(exc).__name__}: {(text or 'no details').rstrip('.')}."
