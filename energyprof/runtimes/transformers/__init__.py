"""The transformers runtime: models loaded with transformers, a hand-written KV-cache token loop, forward hooks on
the layers, and replay of hooked layers."""
