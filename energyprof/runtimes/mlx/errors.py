"""The MLX runtime's error (no mlx import: raised also when mlx is missing)."""

from __future__ import annotations

from energyprof.errors import EnergyprofError


class MlxError(EnergyprofError, ValueError):
    """The MLX runtime cannot load or run this model here; the message is one sentence a user can act on."""
