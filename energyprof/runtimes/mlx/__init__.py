"""The MLX runtime: models loaded with mlx-lm (an MLX folder, quantised or not, a Hugging Face-format folder mlx-lm
converts, a cached Hub id, or a built-in with random weights), a token loop that evaluates every step before the
clock is read, layer timing by swapping a module instance's class, and replay of hooked layers.

Nothing here is imported until a run asks for the MLX runtime (mlx is an optional dependency off macOS)."""
