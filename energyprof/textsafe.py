"""Untrusted text made safe for a terminal: the one function every CLI output of outside text goes through.

Text that came from outside energyprof — a server's model id or error body, an imported capture's machine model,
a model name someone typed, a prompt, another process's name or command line — may hold control characters.
Printed raw, ESC starts a terminal escape sequence (`\\x1b[2J` clears the screen, `\\x1b]52;…` writes the
clipboard on some terminals), CR rewrites the line, BEL rings, and a newline breaks a one-line sentence into
several. `terminal_text` shows each such character escaped (`\\x1b`, `\\r`, `\\n`, `\\x07`), so what was sent is
visible but inert, removes any secret the process knows of (energyprof.redact), and bounds the length.
"""

from __future__ import annotations

import unicodedata

from energyprof.redact import redact

MAX_CHARS = 200
"""Longest piece of outside text shown in one place (a model id, an error body, a process name)."""
ELLIPSIS = "…"
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Characters that reorder the text shown around them (a "Trojan source" trick): escaped like control characters."""


def _escaped(ch: str) -> str:
    if ch in NAMED:
        return NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    """C0 and C1 control characters, DEL, bidirectional controls, and line or paragraph separators."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in BIDI_CONTROLS


def terminal_text(value: object, limit: int | None = MAX_CHARS) -> str:
    """`value` as text that is safe to print: known secrets redacted, every control character shown escaped
    (ESC as `\\x1b`, CR as `\\r`, newline as `\\n`, BEL as `\\x07`), at most `limit` characters (an ellipsis marks
    a cut; None: no bound). None becomes the empty string."""
    text = redact("" if value is None else str(value))
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _escaped(ch) if _unsafe(ch) else ch
        if limit is not None and size + len(piece) > limit:
            keep = limit - len(ELLIPSIS)
            while out and size > keep:
                size -= len(out.pop())
            out.append(ELLIPSIS)
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)

