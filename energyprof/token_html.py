"""The generated text as HTML, every token shaded by its energy (the run page and the HTML report).

Every token is HTML-escaped: a prompt or a generated token holding markup stays text."""

from __future__ import annotations

import html

import pandas as pd

from energyprof.formatting import fmt_energy


def token_text_html(tokens: pd.DataFrame, limit: int = 2000) -> str:
    """The generated text with every token shaded by its energy; every token is HTML-escaped."""
    shown = tokens.head(limit)
    energy = pd.to_numeric(shown["energy_j"], errors="coerce")
    decode = energy[shown["phase"] != "prefill"].dropna()
    lo, hi = (float(decode.min()), float(decode.max())) if not decode.empty else (0.0, 1.0)
    spans = []
    for idx, phase, text, e in zip(shown["idx"], shown["phase"], shown["token_text"], energy, strict=True):
        alpha = 0.0 if pd.isna(e) or hi <= lo else min(1.0, max(0.0, (float(e) - lo) / (hi - lo)))
        color = f"rgba(245,133,24,{0.08 + 0.8 * alpha:.2f})" if phase != "prefill" else "rgba(76,120,168,0.35)"
        tip = f"{phase} step {int(idx)}: {fmt_energy(e)}"
        spans.append(f'<span style="background:{color};border-radius:3px" title="{html.escape(tip, quote=True)}">'
                     f"{html.escape(str(text if text is not None else ''), quote=True)}</span>")
    more = f"<p><em>… first {limit:,} of {len(tokens):,} tokens shown.</em></p>" if len(tokens) > limit else ""
    return ('<div class="energyprof-tokens" style="white-space:pre-wrap;line-height:1.9;font-family:monospace">'
            + "".join(spans) + "</div>" + more)
