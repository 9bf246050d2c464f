"""The built-in models' shapes, shared by every runtime that builds them (transformers, MLX): no torch, no mlx.

Llama-shaped, seeded random weights, the ByT5 byte-level tokenizer (its vocabulary and special ids), so the demo and
the tests run offline with the same shapes under every runtime."""

from __future__ import annotations

BUILTIN_MODELS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "small": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "num_key_value_heads": 4},
    "medium": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 24,
               "num_attention_heads": 16, "num_key_value_heads": 8},
}
"""Llama shapes of the built-in models: tiny ≈ 3M parameters (tests), small ≈ 100M, medium ≈ 290M."""
BUILTIN_SEED = 0
BUILTIN_CONTEXT = 8192
"""max_position_embeddings of every built-in model."""
