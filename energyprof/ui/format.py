"""User text made safe for Markdown, and (from energyprof.formatting) numbers as text for people (energy, power, CI,
rates, durations, dates).
No streamlit import: pure functions."""

from __future__ import annotations

import re
import string
from typing import Any

from energyprof.formatting import (  # noqa: F401 - the dashboard's names for them
    PREFIXES,
    fmt_ci,
    fmt_date,
    fmt_energy,
    fmt_power,
    fmt_prefixed,
    fmt_rate,
    fmt_seconds,
)

_MD_SPECIAL = frozenset(string.punctuation)
"""Every ASCII punctuation character: CommonMark lets a backslash escape each of them, and together they cover
every Markdown, GFM, HTML, math ($), emoji/icon (:name:) and Streamlit directive (:red[…]) construct."""
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(://|(?<![^\W_])www(?=\.)|@)", re.IGNORECASE)
"""Where GFM would turn plain text into a link (http://…, www.…, name@host) even with every character escaped:
it finds them in the parsed text, after the escapes are gone."""


def md_escape(text: Any) -> str:
    """User-controlled text made literal inside Markdown (titles, captions, alerts, metric and link labels).

    Every ASCII punctuation character gets a backslash, so `![t](http://host/x.png)`, `<img src=…>`,
    `[link](…)`, `:red[…]` or `$…$` show as typed and nothing is fetched; an invisible word joiner after
    `://`'s colon, `www` and `@` stops GFM's bare-URL links; line breaks become spaces, so text cannot start a
    heading, list or code block."""
    flat = " ".join(str(text if text is not None else "").splitlines())
    unlinked = _AUTOLINK.sub(lambda m: m.group(1)[:1] + WORD_JOINER + m.group(1)[1:], flat)
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in unlinked)
