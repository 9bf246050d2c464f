"""An endpoint run (an OpenAI-compatible server profiled: energyprof.runtimes.endpoint) on the dashboard: the
server and its model, time to first token, the server process's CPU and memory, and what the power covers."""

from __future__ import annotations

import streamlit as st

from energyprof.summary import RunSummary
from energyprof.ui.format import fmt_ci, md_escape

ENDPOINT_MODE_HELP = ("Profile a server you already run (Ollama, LM Studio, llama.cpp's server, mlx_lm.server, "
                      "vLLM) through its OpenAI-compatible streaming API. Model is the server's name for it; an API "
                      "key, if needed, comes from the environment variable you name (never typed here).")
NO_LAYERS = ("No per-layer energy for an endpoint run: the model runs inside the server, another process that "
             "energyprof cannot hook. Profile the same model with energyprof itself to see its layers.")
WHOLE_MACHINE = ("The power is the whole machine's (or the SoC's), not the server's alone: the server is another "
                 "process. That is why the idle baseline matters more here: the net energy is the gross energy "
                 "minus what the machine draws idle with the server's model loaded.")


def endpoint_facts(summary: RunSummary) -> list[str]:
    """Markdown fragments for the run page's facts line (empty for a run that is not an endpoint run)."""
    if summary.endpoint is None:
        return []
    facts = [f"endpoint **{md_escape(summary.endpoint)}**", f"api **{md_escape(summary.api or '—')}**"]
    if summary.server_model:
        facts.append(f"server model **{md_escape(summary.server_model)}**")
    return facts


def endpoint_section(summary: RunSummary) -> None:
    """Time to first token, the server process's CPU and memory, and the notes an endpoint run needs."""
    cols = st.columns(4)
    cols[0].metric("Time to first token", fmt_ci(summary.ttft_s, "s"),
                   help="Request sent to first text received (the prefill step): mean ± 95% CI over repeats")
    cores = summary.server_cores
    cols[1].metric("Server CPU", "—" if cores is None else f"{cores:.2f} cores",
                   help="The server process and its children: CPU seconds per second during the repeats")
    rss = max(summary.server_rss_mb) if summary.server_rss_mb else None
    cols[2].metric("Server memory", "—" if rss is None else f"{rss:,.0f} MB", help="Resident, at the end of a repeat")
    chunks = sum(summary.stream_chunks) if summary.stream_chunks else None
    cols[3].metric("Tokens / chunks", f"{summary.tokens_total or 0:,} / {'—' if chunks is None else f'{chunks:,}'}",
                   help="Generated tokens (the server's usage) and the streamed chunks that carried them")
    for note in (summary.server_activity(), summary.token_note()):
        if note:
            st.caption(md_escape(note))
    st.caption(WHOLE_MACHINE)
