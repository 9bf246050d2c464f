"""A run's summary as the pages read it: the typed RunSummary, and its per-component table.

No streamlit import: pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from energyprof.run_views import workload_components  # noqa: F401 - the pages' name for it
from energyprof.summary import PEAK_MEMORY_SOURCES, RunSummary

PEAK_MEMORY_HELP = ("Peak memory of the run (model loaded, warm-up and repeats). By what ran it: "
                    + "; ".join(f"{kind}: {what}" for kind, what in PEAK_MEMORY_SOURCES.items()) + ".")


def summary_of(run: Mapping[str, Any] | None) -> RunSummary:
    """The run's summary (an empty one for a run that has none yet)."""
    return RunSummary.from_dict((run or {}).get("summary"))


def runtime_caption(summary: RunSummary) -> str | None:
    """The run page's line on how the model ran and how much memory it took (plain text; None for neither)."""
    parts = [summary.runtime_sentence()] if summary.endpoint is None and summary.runtime_sentence() else []
    if summary.peak_memory_text():
        parts.append(f"Peak memory: {summary.peak_memory_text()}.")
    return " ".join(parts) or None


def per_step_label(summary: RunSummary) -> str:
    """What one per-token row is: a token, or with a batch a step of N tokens (one per sequence)."""
    return "token" if (summary.batch or 1) <= 1 else f"step of {summary.batch} tokens"
