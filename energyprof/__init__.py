"""energyprof: where the energy of transformer inference goes, per token, per layer, per component."""

__version__ = "0.1.0"
