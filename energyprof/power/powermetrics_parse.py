"""Pure parsing of Apple `powermetrics` output: the plist stream framer, one plist document, text captures.

Rules (each one comes from the real recordings in tests/fixtures/powermetrics, provenance in SOURCES.md there):

* **Framing.** `-f plist` writes XML plist documents separated by one NUL byte that comes *before* the
  next document (``</plist>\\n\\0<?xml ...``); there is none after the last one. A document is complete
  when ``</plist>`` arrives (waiting for the NUL would make every sample one interval late). Anything
  before ``<?xml`` (stderr noise, NULs) is skipped; a document cut off by the end of the stream, or by
  a new ``<?xml`` before its ``</plist>``, is dropped and counted in ``skipped``.
* **Parsing** goes through a real XML parser with plistlib's semantics (:mod:`energyprof.power.plist_reader`,
  which builds only the parts read: about 20x faster than :mod:`plistlib`, and checked against it on
  every recording), never lines or regular expressions: keys and values may sit on separate lines, and
  the ``gpu`` dict repeats ``idle_ns``/``idle_ratio`` (the last one wins).
* A document with ``is_delta`` false covers the time since boot: it is dropped (``None``).
* The window length is ``elapsed_ns`` (asking for 100 ms gives ~103-109 ms); ``timestamp`` has 1 s
  resolution and is kept only as metadata.
* **Energies.** macOS 13+ ``processor`` holds ``cpu_energy``/``gpu_energy``/``ane_energy`` in mJ over the
  window: they are used as they are. Without an mJ figure, ``*_power`` (mW, an average over the window)
  × ``elapsed_ns`` is used. A mW value is never divided by the interval again.
* **GPU rule.** When both exist, ``processor.gpu_energy`` wins over ``gpu.gpu_energy`` (the gpu
  sampler's figure) because it is on the same accounting basis as ``cpu_energy``/``ane_energy`` and
  ``combined_power`` (on the M2 Ultra recording cpu 835.188 + gpu 70924.6 + ane 0 = combined 71759.8 mW,
  with ``processor.gpu_energy`` = 72607 mJ while ``gpu.gpu_energy`` = 73491 mJ). Order for ``gpu``:
  ``processor.gpu_energy`` (mJ), then ``processor.gpu_power`` × elapsed, then ``gpu.gpu_energy`` (mJ,
  the only figure of a ``--samplers gpu_power`` stream, which has no ``processor`` dict).
* **DRAM and package.** macOS 12 reports ``dram_energy``/``package_energy``; from macOS 13 on there is
  no DRAM figure at all, so ``dram`` is ``None`` (unknown), never 0. ``package`` appears only when the
  recording has it. ``combined_power`` (= cpu + gpu + ane) is never stored: it would count them twice.
* Components the recording's samplers did not produce are ``None`` (e.g. cpu and ane in a gpu-only
  stream).
* **Hostile input.** A sample whose window is not in (0, 1 day], whose plist nests deeper than
  :data:`~energyprof.power.plist_reader.MAX_DEPTH`, or whose energy is not finite or is above the
  plausibility bound (:data:`~energyprof.power.base.MAX_PLAUSIBLE_W`) is malformed: skipped and counted,
  and the samples around it are kept.
* **Text captures** (``powermetrics`` without ``-f plist``): samples start at ``*** Sampled system
  activity ... (N ms elapsed) ***``; only the ``CPU Power``, ``GPU Power``, ``ANE Power``, ``DRAM Power``
  and ``Package Power`` lines (``N mW``) are read, energy = mW × elapsed. Text has no mJ fields. When
  ``GPU Power`` appears twice (processor and GPU sections, e.g. the M4 Max capture), the first one
  (the processor section's, same basis as CPU and ANE) is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from energyprof.errors import EnergyprofError
from energyprof.power.base import ANE, CPU, DRAM, GPU, PACKAGE, PowerWindow, implausible
from energyprof.power.plist_reader import PlistError, load_top_dict

XML_START = b"<?xml"
PLIST_END = b"</plist>"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""A document that grows beyond this without a `</plist>` is dropped (a stream that is not powermetrics)."""

TEXT_SAMPLE_HEADER = "*** Sampled system activity"

MAX_WINDOW_NS = 86_400 * 10**9
"""A sample longer than a day is not a powermetrics window (hostile or corrupt): it is skipped and counted."""
MAX_CAPTURE_NS = 2**62
"""Samples past this much total time (146 years) are skipped, so a capture's clock always fits in 64 bits."""

LIVE_COMPONENTS: tuple[str, ...] = (CPU, GPU, ANE, DRAM)
"""Components every parsed sample carries (None when unknown); `package` is added only when recorded."""


class PowermetricsParseError(EnergyprofError, ValueError):
    """A powermetrics document or capture could not be understood; callers count it as skipped."""


@dataclass(frozen=True)
class ParsedSample:
    """One powermetrics sample: its window length, energy per component (mJ, None = unknown), metadata."""

    elapsed_ns: int
    energy_mj: dict[str, float | None]
    hw_model: str | None = None
    os_build: str | None = None
    thermal_pressure: str | None = None
    timestamp: datetime | None = None
    fmt: str = "plist"

    def window(self, t1_ns: int) -> PowerWindow:
        """The sample as a window ending at t1_ns (t0 = t1 - elapsed_ns)."""
        return PowerWindow(t1_ns - self.elapsed_ns, t1_ns, dict(self.energy_mj))

    def power_w(self, component: str) -> float | None:
        """Mean power of one component over the sample, in watts."""
        energy = self.energy_mj.get(component)
        return None if energy is None else energy / 1e3 / (self.elapsed_ns / 1e9)


def macos_version(os_build: str | None) -> str | None:
    """macOS major version from a build number such as 22E252 (Darwin 22 -> macOS 13; Darwin 25 -> 26)."""
    digits = ""
    for ch in os_build or "":
        if not ch.isdigit():
            break
        digits += ch
    if not digits:
        return None
    darwin = int(digits)
    if darwin >= 25:
        return str(darwin + 1)
    if darwin >= 20:
        return str(darwin - 9)
    return f"10.{darwin - 4}"


# -- framing -----------------------------------------------------------------------------------------


class PlistStreamFramer:
    """Cuts a powermetrics `-f plist` byte stream into complete documents, as soon as each `</plist>` arrives.

    Feed it chunks of any size (one byte at a time works); each call scans only the bytes it has not
    scanned before. `skipped` counts documents dropped because they were cut off; `junk_bytes` counts
    bytes skipped outside documents (NUL separators included).
    """

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._buf = bytearray()
        self._in_doc = False
        self._scan = 0
        self.max_document_bytes = max_document_bytes
        self.skipped = 0
        self.junk_bytes = 0
        self.documents = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a document that has not ended yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every document completed by them, in order."""
        self._buf += data
        docs: list[bytes] = []
        while True:
            if not self._in_doc and not self._find_start():
                return docs
            doc = self._find_end()
            if doc is None:
                return docs
            docs.append(doc)

    def close(self, count_partial: bool = True) -> list[bytes]:
        """End of stream: an unfinished document is dropped (and counted in `skipped` when count_partial)."""
        if self._in_doc and count_partial:
            self.skipped += 1
        else:
            self.junk_bytes += len(self._buf)
        self._buf.clear()
        self._in_doc = False
        self._scan = 0
        return []

    def _find_start(self) -> bool:
        """Discard bytes before the next `<?xml`; True when a document has started."""
        pos = self._buf.find(XML_START, self._scan)
        if pos < 0:
            keep = len(XML_START) - 1
            drop = max(0, len(self._buf) - keep)
            self.junk_bytes += drop
            del self._buf[:drop]
            self._scan = 0
            return False
        self.junk_bytes += pos
        del self._buf[:pos]
        self._in_doc = True
        self._scan = len(XML_START)
        return True

    def _find_end(self) -> bytes | None:
        """Return the finished document (and drop it from the buffer), or None while it is incomplete."""
        while True:
            end = self._buf.find(PLIST_END, self._scan)
            restart = self._buf.find(XML_START, self._scan, end if end >= 0 else len(self._buf))
            if restart < 0:
                break
            self.skipped += 1
            del self._buf[:restart]
            self._scan = len(XML_START)
        if end < 0:
            if len(self._buf) > self.max_document_bytes:
                self.skipped += 1
                self._buf.clear()
                self._in_doc = False
                self._scan = 0
                return None
            self._scan = max(len(XML_START), len(self._buf) - len(PLIST_END) + 1)
            return None
        stop = end + len(PLIST_END)
        doc = bytes(self._buf[:stop])
        del self._buf[:stop]
        self._in_doc = False
        self._scan = 0
        self.documents += 1
        return doc


# -- one plist document ------------------------------------------------------------------------------


def _number(value: Any, where: str) -> float | None:
    """A finite, non-negative number from the plist, None when absent; anything else is malformed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PowermetricsParseError(f"{where} is not a non-negative number: {value!r}")
    return float(value)


def _energy(section: dict[str, Any], energy_key: str, power_key: str, elapsed_ns: int,
            where: str) -> float | None:
    """mJ from `energy_key`, else mW from `power_key` × the window length, else None."""
    energy = _number(section.get(energy_key), f"{where}.{energy_key}")
    if energy is not None:
        return energy
    power = _number(section.get(power_key), f"{where}.{power_key}")
    return None if power is None else power * elapsed_ns / 1e9


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PowermetricsParseError(f"`{key}` is not a dict")
    return value


def _check_plausible(energy_mj: dict[str, float | None], elapsed_ns: int) -> None:
    problem = implausible(energy_mj, elapsed_ns)
    if problem:
        raise PowermetricsParseError(f"not a real sample: {problem}")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_plist_document(data: bytes) -> ParsedSample | None:
    """One powermetrics plist document -> ParsedSample; None for an `is_delta` false (since-boot) sample.

    Raises PowermetricsParseError for anything that is not a well-formed powermetrics sample.
    """
    try:
        doc = load_top_dict(data)
    except PlistError as exc:
        raise PowermetricsParseError(f"not a valid plist document: {exc}") from exc
    return sample_from_dict(doc)


def sample_from_dict(doc: dict[str, Any]) -> ParsedSample | None:
    """The rules above applied to a document's top-level dict (from plist_reader, or plistlib in the tests)."""
    if doc.get("is_delta", True) is False:
        return None
    elapsed = doc.get("elapsed_ns")
    if isinstance(elapsed, bool) or not isinstance(elapsed, int) or not 0 < elapsed <= MAX_WINDOW_NS:
        raise PowermetricsParseError(f"elapsed_ns is not a positive integer of at most a day: {elapsed!r:.40}")
    processor = _section(doc, "processor")
    gpu_sampler = _section(doc, "gpu")
    energy: dict[str, float | None] = {
        CPU: _energy(processor, "cpu_energy", "cpu_power", elapsed, "processor"),
        GPU: _energy(processor, "gpu_energy", "gpu_power", elapsed, "processor"),
        ANE: _energy(processor, "ane_energy", "ane_power", elapsed, "processor"),
        DRAM: _energy(processor, "dram_energy", "dram_power", elapsed, "processor"),
    }
    if energy[GPU] is None:
        energy[GPU] = _number(gpu_sampler.get("gpu_energy"), "gpu.gpu_energy")
    package = _energy(processor, "package_energy", "package_power", elapsed, "processor")
    if package is not None:
        energy[PACKAGE] = package
    _check_plausible(energy, elapsed)
    timestamp = doc.get("timestamp")
    return ParsedSample(
        elapsed_ns=elapsed, energy_mj=energy, hw_model=_text(doc.get("hw_model")),
        os_build=_text(doc.get("kern_osversion")), thermal_pressure=_text(doc.get("thermal_pressure")),
        timestamp=timestamp if isinstance(timestamp, datetime) else None, fmt="plist")


# -- text captures -----------------------------------------------------------------------------------

_ELAPSED_RE = re.compile(r"\((\d+(?:\.\d+)?)\s*ms elapsed\)")
_POWER_RE = re.compile(r"^(CPU|GPU|ANE|DRAM|Package) Power:\s*(\d+(?:\.\d+)?)\s*(mW|W)\s*$")
_TEXT_COMPONENTS = {"CPU": CPU, "GPU": GPU, "ANE": ANE, "DRAM": DRAM, "Package": PACKAGE}


def _text_header(lines: Iterable[str]) -> dict[str, str]:
    """`Machine model:` and `OS version:` from the lines before the first sample."""
    meta: dict[str, str] = {}
    for line in lines:
        for prefix, key in (("Machine model:", "hw_model"), ("OS version:", "os_build")):
            if line.startswith(prefix):
                meta[key] = line[len(prefix):].strip()
    return meta


def _parse_text_sample(lines: list[str], meta: dict[str, str]) -> ParsedSample:
    """One text sample (its header line first) -> ParsedSample."""
    found = _ELAPSED_RE.search(lines[0])
    if not found:
        raise PowermetricsParseError(f"sample header without an elapsed time: {lines[0].strip()!r}")
    elapsed_ms = float(found.group(1))
    if not 0 < elapsed_ms * 1e6 <= MAX_WINDOW_NS:
        raise PowermetricsParseError(f"sample header with an elapsed time not in (0, 1 day]: {lines[0][:80]!r}")
    elapsed_ns = round(elapsed_ms * 1e6)
    if elapsed_ns <= 0:
        raise PowermetricsParseError(f"sample header with a zero elapsed time: {lines[0].strip()!r}")
    power_mw: dict[str, float] = {}
    pressure = None
    for line in lines[1:]:
        stripped = line.strip()
        match = _POWER_RE.match(stripped)
        if match:
            comp = _TEXT_COMPONENTS[match.group(1)]
            value = float(match.group(2)) * (1e3 if match.group(3) == "W" else 1.0)
            power_mw.setdefault(comp, value)
        elif stripped.startswith("Current pressure level:"):
            pressure = stripped.split(":", 1)[1].strip()
    energy: dict[str, float | None] = {comp: None for comp in LIVE_COMPONENTS}
    for comp, mw in power_mw.items():
        energy[comp] = mw * elapsed_ns / 1e9
    _check_plausible(energy, elapsed_ns)
    return ParsedSample(elapsed_ns=elapsed_ns, energy_mj=energy, hw_model=meta.get("hw_model"),
                        os_build=meta.get("os_build"), thermal_pressure=pressure, fmt="text")


def parse_text_capture(text: str) -> tuple[list[ParsedSample], int]:
    """Every sample of a text-format capture, and how many were malformed and skipped."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(TEXT_SAMPLE_HEADER)]
    meta = _text_header(lines[:starts[0]] if starts else lines)
    samples: list[ParsedSample] = []
    skipped = 0
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        try:
            samples.append(_parse_text_sample(lines[start:end], meta))
        except PowermetricsParseError:
            skipped += 1
    return samples, skipped


# -- whole captures ----------------------------------------------------------------------------------


@dataclass
class Capture:
    """A whole recording read from a file: its samples in order, and what had to be left out."""

    fmt: str
    samples: list[ParsedSample] = field(default_factory=list)
    skipped: int = 0
    not_delta: int = 0
    duration_ns: int = 0

    @property
    def hw_model(self) -> str | None:
        return next((s.hw_model for s in self.samples if s.hw_model), None)

    @property
    def os_build(self) -> str | None:
        return next((s.os_build for s in self.samples if s.os_build), None)

    def add(self, sample: ParsedSample) -> None:
        """Append a sample; one that would take the capture past MAX_CAPTURE_NS is skipped and counted."""
        if self.duration_ns + sample.elapsed_ns > MAX_CAPTURE_NS:
            self.skipped += 1
            return
        self.duration_ns += sample.elapsed_ns
        self.samples.append(sample)

    def windows(self, start_ns: int = 0) -> list[PowerWindow]:
        """The samples laid end to end on a synthetic clock starting at start_ns (their real spacing)."""
        out, t = [], start_ns
        for sample in self.samples:
            out.append(sample.window(t + sample.elapsed_ns))
            t += sample.elapsed_ns
        return out


def parse_plist_stream(data: bytes) -> Capture:
    """Every sample in a NUL-separated plist stream (a file written with `-f plist`)."""
    framer = PlistStreamFramer()
    capture = Capture(fmt="plist")
    for doc in framer.feed(data) + framer.close():
        try:
            sample = parse_plist_document(doc)
        except PowermetricsParseError:
            capture.skipped += 1
            continue
        if sample is None:
            capture.not_delta += 1
        else:
            capture.add(sample)
    capture.skipped += framer.skipped
    return capture


def parse_capture(data: bytes) -> Capture:
    """A recording's bytes -> Capture, detecting plist or text; PowermetricsParseError if it is neither."""
    if XML_START in data and b"<plist" in data:
        return parse_plist_stream(data)
    text = data.decode("utf-8", errors="replace")
    if TEXT_SAMPLE_HEADER in text:
        samples, skipped = parse_text_capture(text)
        capture = Capture(fmt="text", skipped=skipped)
        for sample in samples:
            capture.add(sample)
        return capture
    raise PowermetricsParseError("neither a `-f plist` stream nor a text capture")


def read_capture(path: str | Path) -> Capture:
    """Read a recording file (plist stream or text); OSError if unreadable, PowermetricsParseError if foreign."""
    return parse_capture(Path(path).read_bytes())
