"""The real powermetrics recordings shipped in tests/fixtures/powermetrics and values typed in by hand from them."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "powermetrics"
"""The repository's own copy of the recordings (provenance: SOURCES.md there); nothing outside the repo is read."""
M1_2S = FIXTURES / "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_2.02s.plist"
M1_05S = FIXTURES / "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_0.53s.plist"
M2_ULTRA = FIXTURES / "m2ultra_Mac14-14_macOS14.4-23E224_plist_cpu-gpu-thermal_1sample_1.02s.plist"
M4_PRO = FIXTURES / "m4pro_Mac16-8_macOS15.5-24F74_plist_gpu_power-only_5samples_NUL-separated.plist"
M1_TEXT = FIXTURES / "m1_MacBookAir10-1_macOS12.6-21G115_text_cpu_power_10samples_with-DRAM.txt"
M4_MAX_TEXT = FIXTURES / "m4max_Mac16-6_macOS15.5-24F74_text_default-samplers_1sample.txt"
ALL_RECORDINGS = (M1_2S, M1_05S, M2_ULTRA, M4_PRO, M1_TEXT, M4_MAX_TEXT)

# The M1 MacBook Air text capture (macOS 12), typed in from its 10 samples: elapsed ms and the mW lines.
M1_TEXT_ELAPSED_MS = (104.51, 104.81, 105.93, 108.22, 109.24, 108.45, 108.38, 106.72, 108.88, 108.92)
M1_TEXT_MW = {
    "cpu": (947, 420, 208, 102, 156, 369, 231, 272, 202, 239),
    "gpu": (153, 67, 28, 9, 9, 46, 28, 19, 18, 9),
    "ane": (0,) * 10,
    "dram": (220, 162, 66, 37, 64, 148, 83, 94, 64, 83),
    "package": (1473, 773, 396, 120, 284, 618, 434, 450, 303, 321),
}
# The M4 Pro gpu-only stream: elapsed_ns and gpu.gpu_energy (mJ) of its 5 documents.
M4_PRO_ELAPSED_NS = (5004758375, 5014447083, 5010073541, 5014230916, 5009178500)
M4_PRO_GPU_MJ = (19, 107, 788, 146, 126)
