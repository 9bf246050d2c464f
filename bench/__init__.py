"""Benchmarks: each module has run(quick) -> rows; `python -m bench` runs them all."""
