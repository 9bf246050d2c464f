"""Power sources: one module per hardware family behind `PowerSource`, plus the registry and sampler."""
