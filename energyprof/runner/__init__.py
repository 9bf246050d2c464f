"""Runs jobs: the profiling engine, the job process entry points, launching/cancelling/health of job processes,
sweeps, and the engine's helpers (monitor, cancel switch, background CPU, boundary reads, cross-check)."""
