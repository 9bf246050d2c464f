"""Peak memory of a transformers run: the device allocator's figure on cuda (its peak since the model loaded) and mps
(the Metal driver's allocation, read after each repeat), the process's peak resident memory on cpu."""

from __future__ import annotations

import sys

import torch

PEAK_SOURCES: dict[str, str] = {"cuda": "cuda", "mps": "mps", "cpu": "rss"}
"""Which figure a device gives (RunSummary.peak_memory_source)."""


def reset_peak(device: str) -> None:
    """Start the allocator's peak afresh where it keeps one (cuda); elsewhere nothing can be reset."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: str) -> int | None:
    """The peak so far: cuda's max allocated, mps's driver allocation now, else the process's peak RSS."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    if device.startswith("mps"):
        return int(torch.mps.driver_allocated_memory())
    return process_peak_rss_bytes()


def peak_source(device: str) -> str:
    return PEAK_SOURCES.get(device.split(":", 1)[0], "rss")


def process_peak_rss_bytes() -> int | None:
    """This process's peak resident memory (getrusage: KiB on Linux, bytes on macOS); None where there is none."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
