"""What runs inside a profiling job: model loading, the token loop, layer hooks, attribution."""
