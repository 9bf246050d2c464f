"""Badges and labels that say how far a figure can be trusted: measured or estimated, time-apportioned, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from energyprof.ui.format import md_escape

APPORTIONED = ("time-apportioned: layer calls are shorter than the sampling window, their energy is a share "
               "of the window, not a measurement")
APPORTIONED_TOKENS = ("time-apportioned: some tokens cover only part of a sampling window, their energy is a "
                      "share of those windows, not a measurement")
STATUS_BADGES = {"done": ":green-badge[done]", "running": ":blue-badge[running]", "queued": ":gray-badge[queued]",
                 "failed": ":red-badge[failed]", "cancelled": ":orange-badge[cancelled]"}


def is_estimated(run: Mapping[str, Any]) -> bool:
    """True when the run's figures come from an estimate (or no) power source."""
    return run.get("measured") is False or run.get("source") in ("estimate", "none")


def source_label(source: Any, measured: Any) -> str:
    """`source · measured` or `source · estimated` for tables."""
    if not source:
        return "—"
    return f"{source} · {'estimated' if measured is False or source in ('estimate', 'none') else 'measured'}"


def estimated_badge() -> str:
    return ":orange-badge[estimated]"


def measured_badge(run: Mapping[str, Any]) -> str:
    """A markdown badge saying whether the run's power figures are measured or estimated."""
    return estimated_badge() if is_estimated(run) else ":green-badge[measured]"


def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, f":gray-badge[{md_escape(status)}]")


def label(text: str, estimated: bool) -> str:
    """A metric or table label with "(estimated)" when the figure is an estimate."""
    return f"{text} (estimated)" if estimated else text


def apportioned(resolution: pd.Series | None) -> bool:
    """True when some interval is shorter than the windows covering it (resolution < 1)."""
    return resolution is not None and bool((resolution.dropna() < 0.999).any())


def apportioned_note(sentence: str = APPORTIONED) -> None:
    """The time-apportioned badge with its sentence."""
    badge, text = sentence.split(": ", 1)
    st.markdown(f":violet-badge[{badge}] {text}")
