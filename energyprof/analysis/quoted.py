"""The per-token units people quote: J/token, tokens/J, Wh per 1,000 tokens and, only at a grid carbon intensity
the user states (nothing is looked up), gCO2e per 1,000 tokens. Every conversion is energyprof.units'."""

from __future__ import annotations

from dataclasses import dataclass

from energyprof.summary import RunSummary
from energyprof.units import g_co2e_per_1000_tokens, tokens_per_joule, wh_per_1000_tokens


@dataclass(frozen=True)
class Quoted:
    """One J/token figure in the units people quote (None where unknown, or without a grid intensity)."""

    j_per_token: float | None
    tokens_per_j: float | None
    wh_per_1000_tokens: float | None
    g_co2e_per_1000_tokens: float | None = None
    grid_g_per_kwh: float | None = None


def quote(j_per_token: float | None, grid_g_per_kwh: float | None = None) -> Quoted:
    """A J/token figure in every quoted unit."""
    return Quoted(j_per_token, tokens_per_joule(j_per_token), wh_per_1000_tokens(j_per_token),
                  g_co2e_per_1000_tokens(j_per_token, grid_g_per_kwh), grid_g_per_kwh)


def quote_summary(summary: RunSummary, phase: str = "decode") -> Quoted:
    """A run's gross J/token of one phase in every quoted unit, at the grid intensity stored with it."""
    return quote(summary.per_token(phase).mean, summary.grid_g_co2e_per_kwh)


def fill_quoted(summary: RunSummary, grid_g_per_kwh: float | None) -> None:
    """Set the summary's quoted-unit fields from its J/token means (per phase)."""
    summary.grid_g_co2e_per_kwh = grid_g_per_kwh
    quotes = {phase: quote_summary(summary, phase) for phase in summary.j_per_token}
    summary.tokens_per_j = {phase: q.tokens_per_j for phase, q in quotes.items()}
    summary.wh_per_1000_tokens = {phase: q.wh_per_1000_tokens for phase, q in quotes.items()}
    summary.g_co2e_per_1000_tokens = None if grid_g_per_kwh is None else \
        {phase: q.g_co2e_per_1000_tokens for phase, q in quotes.items()}


def grid_label(grid_g_per_kwh: float | None) -> str:
    """How a CO2e figure is labelled: with the intensity it was computed at, which the user gave."""
    return "" if grid_g_per_kwh is None else f"at {grid_g_per_kwh:g} g CO2e/kWh (the grid intensity you gave)"
