"""Badges and labels that say how far a figure can be trusted: measured or estimated, time-apportioned, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from energyprof.provenance import FULL_RESOLUTION, is_estimated, source_label
from energyprof.provenance import labelled as label
from energyprof.ui.format import md_escape

__all__ = ["APPORTIONED", "APPORTIONED_TOKENS", "apportioned", "apportioned_note", "estimated_badge", "is_estimated",
           "label", "measured_badge", "source_label", "status_badge"]

APPORTIONED = ("time-apportioned: layer calls are shorter than the sampling window, their energy is a share "
               "of the window, not a measurement")
APPORTIONED_TOKENS = ("time-apportioned: some tokens cover only part of a sampling window (or are shorter than the "
                      "counter's update period), their energy is a share of a longer window, not a measurement")
STATUS_BADGES = {"done": ":green-badge[done]", "running": ":blue-badge[running]", "queued": ":gray-badge[queued]",
                 "failed": ":red-badge[failed]", "cancelled": ":orange-badge[cancelled]",
                 "not responding": ":red-badge[not responding]"}


def estimated_badge() -> str:
    return ":orange-badge[estimated]"


def measured_badge(run: Mapping[str, Any]) -> str:
    """A markdown badge saying whether the run's power figures are measured or estimated."""
    return estimated_badge() if is_estimated(run) else ":green-badge[measured]"


def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, f":gray-badge[{md_escape(status)}]")


def apportioned(resolution: pd.Series | None) -> bool:
    """True when some interval is shorter than the windows covering it (resolution below full)."""
    return resolution is not None and bool((resolution.dropna() < FULL_RESOLUTION).any())


def apportioned_note(sentence: str = APPORTIONED) -> None:
    """The time-apportioned badge with its sentence."""
    badge, text = sentence.split(": ", 1)
    st.markdown(f":violet-badge[{badge}] {text}")
