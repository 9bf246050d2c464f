"""The row every benchmark returns."""

from __future__ import annotations

from typing import Any


def row(name: str, value: float, unit: str, setup: str, *, at_most: float | None = None,
        at_least: float | None = None) -> dict[str, Any]:
    """A benchmark result; `met` compares value with the target when there is one."""
    if at_most is not None:
        target, met = f"<= {at_most:g}", value <= at_most
    elif at_least is not None:
        target, met = f">= {at_least:g}", value >= at_least
    else:
        target, met = None, None
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met, "setup": setup}
