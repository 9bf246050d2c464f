"""powermetrics parsing over every real recording in tests/fixtures/powermetrics, values worked out by hand."""

from __future__ import annotations

import math
import plistlib
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from recordings import (
    ALL_RECORDINGS,
    FIXTURES,
    M1_05S,
    M1_2S,
    M1_TEXT,
    M1_TEXT_ELAPSED_MS,
    M1_TEXT_MW,
    M2_ULTRA,
    M4_MAX_TEXT,
    M4_PRO,
    M4_PRO_ELAPSED_NS,
    M4_PRO_GPU_MJ,
)

from energyprof.power.base import MAX_PLAUSIBLE_W
from energyprof.power.plist_reader import PlistError, load_top_dict, reduced_document
from energyprof.power.powermetrics_parse import (
    PlistStreamFramer,
    PowermetricsParseError,
    macos_version,
    parse_capture,
    parse_plist_document,
    parse_plist_stream,
    read_capture,
    sample_from_dict,
)


def test_every_recording_is_covered() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.suffix in (".plist", ".txt")}
    assert on_disk == {p.name for p in ALL_RECORDINGS}


@pytest.mark.parametrize("path", ALL_RECORDINGS, ids=lambda p: p.name.split("_")[0] + "-" + p.suffix[1:])
def test_every_recording_parses_without_skips(path: Path) -> None:
    capture = read_capture(path)
    assert capture.samples and capture.skipped == 0 and capture.not_delta == 0
    for sample in capture.samples:
        assert "combined" not in " ".join(sample.energy_mj)  # combined_power = cpu+gpu+ane is never stored
        assert sample.elapsed_ns > 0


def test_m1_2s_uses_the_mj_energies() -> None:
    sample = parse_plist_document(M1_2S.read_bytes())
    assert sample is not None
    assert sample.elapsed_ns == 2019178750
    assert sample.energy_mj == {"cpu": 89.0, "gpu": 31.0, "ane": 0.0, "dram": None}
    # cpu_energy = 89 mJ over elapsed_ns 2019178750 -> 89e-3 / 2.01917875 = 0.0441 W (file: cpu_power 44.0773 mW)
    assert sample.power_w("cpu") == pytest.approx(0.0440773, rel=1e-5)
    # gpu_energy = 31 mJ / 2.01917875 s = 0.01535 W (file: gpu_power 15.3528 mW)
    assert sample.power_w("gpu") == pytest.approx(0.0153528, rel=1e-4)
    assert (sample.hw_model, sample.os_build, sample.thermal_pressure) == ("MacBookPro17,1", "22E252", "Nominal")
    assert macos_version(sample.os_build) == "13"


def test_m1_half_second_window() -> None:
    sample = parse_plist_document(M1_05S.read_bytes())
    assert sample is not None
    assert sample.elapsed_ns == 525992374
    # cpu_energy 54 mJ / 0.525992374 s = 0.102663 W (file: cpu_power 102.663 mW); gpu 10 mJ -> 19.0117 mW
    assert sample.energy_mj == {"cpu": 54.0, "gpu": 10.0, "ane": 0.0, "dram": None}
    assert sample.power_w("cpu") == pytest.approx(0.102663, rel=1e-5)
    assert sample.power_w("gpu") == pytest.approx(0.0190117, rel=1e-4)


def test_m2_ultra_gpu_rule_prefers_the_processor_figure() -> None:
    data = M2_ULTRA.read_bytes()
    raw = plistlib.loads(data)
    assert raw["processor"]["gpu_energy"] == 72607 and raw["gpu"]["gpu_energy"] == 73491
    sample = parse_plist_document(data)
    assert sample is not None
    # processor.gpu_energy (72607 mJ) wins over gpu.gpu_energy (73491 mJ): same basis as cpu and ane, since
    # cpu_power 835.188 + gpu_power 70924.6 + ane_power 0 = combined_power 71759.8 mW.
    assert sample.energy_mj == {"cpu": 855.0, "gpu": 72607.0, "ane": 0.0, "dram": None}
    assert 835.188 + 70924.6 + 0 == pytest.approx(raw["processor"]["combined_power"], abs=0.05)
    # 72607 mJ / 1.023721416 s = 70.92 W, the processor's own gpu_power (70924.6 mW)
    assert sample.power_w("gpu") == pytest.approx(70.9246, rel=1e-4)
    assert sample.elapsed_ns == 1023721416
    assert (sample.hw_model, macos_version(sample.os_build)) == ("Mac14,14", "14")


def test_m4_pro_gpu_only_stream() -> None:
    capture = read_capture(M4_PRO)
    assert capture.fmt == "plist" and capture.skipped == 0
    assert [s.elapsed_ns for s in capture.samples] == list(M4_PRO_ELAPSED_NS)
    # gpu-only stream: no processor dict, so gpu = gpu.gpu_energy mJ, and cpu/ane were not sampled -> None
    assert [s.energy_mj for s in capture.samples] == [
        {"cpu": None, "gpu": float(mj), "ane": None, "dram": None} for mj in M4_PRO_GPU_MJ]
    assert all(s.thermal_pressure is None for s in capture.samples)  # no thermal sampler in this stream
    assert (capture.hw_model, capture.os_build, macos_version(capture.os_build)) == ("Mac16,8", "24F74", "15")
    # 788 mJ over 5.010073541 s = 0.1573 W
    assert capture.samples[2].power_w("gpu") == pytest.approx(0.788 / 5.010073541)


def test_m4_pro_duplicated_idle_keys_and_idle_longer_than_window() -> None:
    docs = M4_PRO.read_bytes().split(b"\0")
    assert all(d.count(b"<key>idle_ns</key>") == 2 and d.count(b"<key>idle_ratio</key>") == 2 for d in docs)
    second = plistlib.loads(docs[1])
    # sample 2: gpu.idle_ns 5843395291 > elapsed_ns 5014447083; it is metadata we do not use, so no harm
    assert second["gpu"]["idle_ns"] == 5843395291 > second["elapsed_ns"] == 5014447083
    sample = parse_plist_document(docs[1])
    assert sample is not None and sample.energy_mj["gpu"] == 107.0 and sample.elapsed_ns == 5014447083


def test_m1_text_macos12_has_dram_and_package() -> None:
    capture = read_capture(M1_TEXT)
    assert capture.fmt == "text" and len(capture.samples) == 10 and capture.skipped == 0
    assert (capture.hw_model, capture.os_build, macos_version(capture.os_build)) == ("MacBookAir10,1", "21G115", "12")
    first = capture.samples[0]
    assert first.elapsed_ns == 104_510_000
    # energy = mW × elapsed: CPU 947 mW × 0.10451 s = 98.97097 mJ; DRAM 220 × 0.10451 = 22.9922 mJ;
    # Package 1473 × 0.10451 = 153.94323 mJ
    assert first.energy_mj["cpu"] == pytest.approx(98.97097)
    assert first.energy_mj["dram"] == pytest.approx(22.9922)
    assert first.energy_mj["package"] == pytest.approx(153.94323)
    for i, sample in enumerate(capture.samples):
        assert sample.elapsed_ns == round(M1_TEXT_ELAPSED_MS[i] * 1e6)
        for comp, mw in M1_TEXT_MW.items():
            assert sample.energy_mj[comp] == pytest.approx(mw[i] * M1_TEXT_ELAPSED_MS[i] / 1e3)
    # "Package Power" is not the sum of the parts (1473 != 947 + 153 + 0 + 220 = 1320); it is kept as recorded
    assert 947 + 153 + 0 + 220 != 1473


def test_m4_max_text_has_no_dram_line() -> None:
    capture = read_capture(M4_MAX_TEXT)
    assert capture.fmt == "text" and len(capture.samples) == 1
    sample = capture.samples[0]
    assert sample.elapsed_ns == 5_021_960_000
    # CPU 954 mW × 5.02196 s = 4790.94984 mJ; GPU 28 mW × 5.02196 = 140.61488 mJ (the line appears twice,
    # both 28 mW); ANE 0; no DRAM line -> None; no Package line -> no key; Combined (983 mW) is not stored
    assert sample.energy_mj == pytest.approx({"cpu": 4790.94984, "gpu": 140.61488, "ane": 0.0, "dram": None})
    assert "package" not in sample.energy_mj
    assert (sample.hw_model, macos_version(sample.os_build)) == ("Mac16,6", "15")


def _edited(path: Path, edit) -> bytes:
    doc = plistlib.loads(path.read_bytes())
    edit(doc)
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML)


def test_mw_fallback_multiplies_by_the_window_and_never_divides_again() -> None:
    def drop_energies(doc: dict) -> None:
        for key in ("cpu_energy", "gpu_energy", "ane_energy"):
            del doc["processor"][key]

    sample = parse_plist_document(_edited(M1_2S, drop_energies))
    assert sample is not None
    # cpu_power 44.0773 mW × 2.01917875 s = 89.00 mJ; gpu_power 15.3528 mW × 2.01917875 s = 31.00 mJ
    assert sample.energy_mj["cpu"] == pytest.approx(44.0773 * 2.01917875)
    assert sample.energy_mj["cpu"] == pytest.approx(89.0, abs=0.01)
    assert sample.energy_mj["gpu"] == pytest.approx(15.3528 * 2.01917875)


def test_gpu_sampler_figure_is_used_when_the_processor_has_none() -> None:
    def drop_processor_gpu(doc: dict) -> None:
        del doc["processor"]["gpu_energy"], doc["processor"]["gpu_power"]

    sample = parse_plist_document(_edited(M2_ULTRA, drop_processor_gpu))
    assert sample is not None and sample.energy_mj["gpu"] == 73491.0


def test_macos12_plist_dram_and_package() -> None:
    def monterey(doc: dict) -> None:
        doc["processor"].update(dram_energy=40, package_energy=200)
        del doc["processor"]["combined_power"]

    sample = parse_plist_document(_edited(M1_2S, monterey))
    assert sample is not None
    assert sample.energy_mj == {"cpu": 89.0, "gpu": 31.0, "ane": 0.0, "dram": 40.0, "package": 200.0}


def test_since_boot_sample_is_dropped() -> None:
    data = _edited(M1_2S, lambda doc: doc.update(is_delta=False))
    assert parse_plist_document(data) is None
    capture = parse_plist_stream(data + b"\0" + M1_05S.read_bytes())
    assert len(capture.samples) == 1 and capture.not_delta == 1 and capture.skipped == 0


@pytest.mark.parametrize("data", [
    b"<?xml version='1.0'?><plist><dict><key>is_delta</key><true/>",          # cut off
    b"<?xml version='1.0'?><plist version='1.0'><array></array></plist>",     # not a dict
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>x</integer></dict></plist>",
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>is_delta</key><true/></dict></plist>",  # no elapsed
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>0</integer></dict></plist>",
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>5</integer>"
    b"<key>processor</key><string>oops</string></dict></plist>",
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>5</integer>"
    b"<key>processor</key><dict><key>cpu_energy</key><string>9</string></dict></dict></plist>",
    b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>5</integer>"
    b"<key>processor</key><dict><key>cpu_energy</key><integer>-3</integer></dict></dict></plist>",
])
def test_malformed_documents_raise_the_specific_error(data: bytes) -> None:
    with pytest.raises(PowermetricsParseError):
        parse_plist_document(data)


# -- framing ---------------------------------------------------------------------------------------------


SYNTHETIC_GPU_MJ = (19, 107, 788, 146, 126)


def synthetic_document(i: int, pad: int = 0) -> bytes:
    """A small gpu-only powermetrics-shaped document built here, so the framing tests need no recording."""
    doc = {"is_delta": True, "elapsed_ns": 5_000_000_000 + i, "hw_model": "Mac16,8", "kern_osversion": "24F74",
           "gpu": {"idle_ns": 12, "idle_ratio": 0.5, "gpu_energy": SYNTHETIC_GPU_MJ[i % 5]},
           "pad": "x" * pad}
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML).rstrip(b"\n")


@pytest.fixture(scope="module")
def stream() -> tuple[bytes, list[bytes]]:
    """Five documents framed like powermetrics: `</plist>\\n`, then a NUL before the next `<?xml`, none at the end."""
    expected = [synthetic_document(i) for i in range(5)]
    return b"\n\0".join(expected) + b"\n", expected


def test_framing_at_every_byte_boundary(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    for cut in range(len(data) + 1):
        framer = PlistStreamFramer()
        docs = framer.feed(data[:cut]) + framer.feed(data[cut:])
        framer.close()
        assert docs == expected, f"split at byte {cut}"
        assert framer.skipped == 0


def test_framing_one_byte_at_a_time(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    framer = PlistStreamFramer()
    docs = []
    for i in range(len(data)):
        docs += framer.feed(data[i:i + 1])
    framer.close()
    assert docs == expected and framer.skipped == 0


def test_document_is_delivered_at_its_closing_tag_not_at_the_nul(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    framer = PlistStreamFramer()
    first_end = data.index(b"</plist>") + len(b"</plist>")
    assert framer.feed(data[:first_end]) == expected[:1]


def test_junk_before_xml_is_skipped(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    framer = PlistStreamFramer()
    docs = framer.feed(b"\0\0sudo: unable to resolve host\n<?xm") + framer.feed(b"nope\n" + data)
    assert docs == expected
    assert framer.junk_bytes > 0 and framer.skipped == 0


def test_truncated_last_document_is_dropped_and_counted(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    framer = PlistStreamFramer()
    docs = framer.feed(data + b"\0" + expected[0][:200])
    assert docs == expected
    framer.close()
    assert framer.skipped == 1
    capture = parse_capture(data + b"\0" + expected[0][:200])
    assert len(capture.samples) == 5 and capture.skipped == 1


def test_document_cut_by_a_new_one_is_dropped_and_the_next_kept(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    framer = PlistStreamFramer()
    docs = framer.feed(expected[0][:200] + b"\n\0" + data)
    assert docs == expected and framer.skipped == 1


def test_malformed_document_is_skipped_and_counted(stream: tuple[bytes, list[bytes]]) -> None:
    data, expected = stream
    bad = b"<?xml version='1.0'?><plist version='1.0'><dict><key>elapsed_ns</key><integer>x</integer></dict></plist>"
    capture = parse_capture(expected[0] + b"\n\0" + bad + b"\n\0" + b"\n\0".join(expected[1:]))
    assert [s.energy_mj["gpu"] for s in capture.samples] == [float(mj) for mj in SYNTHETIC_GPU_MJ]
    assert capture.skipped == 1


def test_framer_does_not_rescan_what_it_has_seen() -> None:
    big = synthetic_document(0, pad=4_100_000) + b"\n"
    framer = PlistStreamFramer()
    started = time.perf_counter()
    docs = []
    for i in range(0, len(big), 256):
        docs += framer.feed(big[i:i + 256])
    elapsed = time.perf_counter() - started
    assert len(big) > 4_000_000 and docs == [big.rstrip(b"\n")]
    assert elapsed < 2.0, f"feeding {len(big)} bytes in 256-byte chunks took {elapsed:.1f} s"


def test_a_foreign_file_is_refused() -> None:
    with pytest.raises(PowermetricsParseError):
        parse_capture(b"hello, this is not powermetrics\n")


def test_macos_version_from_build() -> None:
    assert [macos_version(b) for b in ("21G115", "22E252", "23E224", "24F74", "25A362", "", None)] == [
        "12", "13", "14", "15", "26", None, None]


def test_mutated_streams_only_ever_raise_the_parse_error() -> None:
    """Random cuts, insertions and byte flips of the real stream: framing never fails, parsing fails cleanly."""
    import random

    data = M4_PRO.read_bytes()
    rng = random.Random(20250706)
    snippets = (b"<dict>", b"</dict>", b"<key>elapsed_ns</key>", b"</plist>", b"<?xml", b"<real>nan</real>",
                b"<date>x</date>", b"<data>!!</data>", b"\xff", b"\0")
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            pos, roll = rng.randrange(len(mutated)), rng.random()
            if roll < 0.4:
                del mutated[pos:pos + rng.randint(1, 80)]
            elif roll < 0.7:
                mutated[pos:pos] = rng.choice(snippets)
            else:
                mutated[pos] = rng.randrange(256)
        capture = parse_capture(bytes(mutated))
        assert len(capture.samples) + capture.skipped + capture.not_delta >= 1
        for sample in capture.samples:
            assert sample.elapsed_ns > 0
            assert all(v is None or v >= 0 for v in sample.energy_mj.values())


def _scalars(value: object) -> object:
    """A plist value with arrays dropped (the fast reader does not read them) and NaN made comparable."""
    if isinstance(value, dict):
        return {k: _scalars(v) for k, v in value.items() if not isinstance(v, list | ET.Element)}
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _documents(path: Path) -> list[bytes]:
    framer = PlistStreamFramer()
    docs = framer.feed(path.read_bytes()) + framer.close()
    assert docs
    return docs


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.plist")))
def test_fast_plist_reader_agrees_with_plistlib_on_every_recording(name: str) -> None:
    for doc in _documents(FIXTURES / name):
        expected = plistlib.loads(doc)
        got = load_top_dict(doc)
        assert set(got) == set(expected)
        assert _scalars(got) == _scalars(expected)
        # the whole pipeline: the sample read through the fast reader is the one plistlib's dict gives
        assert parse_plist_document(doc) == sample_from_dict(expected)


def test_the_fast_reader_builds_only_what_it_reads() -> None:
    doc = M2_ULTRA.read_bytes()
    reduced = reduced_document(doc)
    # the per-cluster and per-CPU arrays are 98% of the M2 Ultra document; what is left is what energyprof reads
    assert reduced is not None and len(reduced) < 0.03 * len(doc) and reduced.count(b"<array/>") >= 2
    assert b"<!-- <key>idle_ratio</key>" in doc  # powermetrics writes a comment into the gpu dict: it is kept
    assert _scalars(plistlib.loads(reduced)) == _scalars(plistlib.loads(doc))


@pytest.mark.parametrize("doc, values", [
    # array tags inside a comment or a processing instruction are not markup
    (b"<plist><dict><key>a</key><array><!-- </array> --><integer>1</integer></array>"
     b"<key>b</key><integer>2</integer></dict></plist>", {"b": 2}),
    (b"<plist><dict><!-- <array> --><key>b</key><integer>2</integer><!-- </array> --></dict></plist>", {"b": 2}),
    (b"<plist><dict><?pi <array> ?><key>b</key><integer>2</integer><?pi </array> ?></dict></plist>", {"b": 2}),
    # tags the byte search cannot see, CDATA and an internal DTD subset: the document is read whole
    (b"<plist><dict><key>a</key><array ><array><integer>1</integer></array></array>"
     b"<key>b</key><integer>2</integer></dict></plist>", {"b": 2}),
    (b"<plist><dict><key>s</key><string><![CDATA[<array>]]></string><key>b</key><integer>2</integer>"
     b"</dict></plist>", {"s": "<array>", "b": 2}),
])
def test_fast_reader_is_not_fooled_by_literals(doc: bytes, values: dict) -> None:
    assert _scalars(plistlib.loads(doc)) == values
    assert _scalars(load_top_dict(doc)) == values


def test_entity_declarations_are_refused_like_plistlib() -> None:
    doc = (b"<?xml version='1.0'?><!DOCTYPE plist [<!ENTITY e '3'>]><plist><dict><key>b</key><integer>&e;</integer>"
           b"</dict></plist>")
    with pytest.raises(plistlib.InvalidFileException):
        plistlib.loads(doc)
    with pytest.raises(PlistError, match="entity"):
        load_top_dict(doc)


def _arrays_emptied(doc: bytes) -> bytes:
    """The document with every array emptied by ElementTree (ET.ParseError when it is not well-formed)."""
    root = ET.fromstring(doc)
    for array in root.iter("array"):
        array.clear()
    return ET.tostring(root)


def test_mutated_documents_read_like_plistlib() -> None:
    """Random cuts, insertions and byte flips of every real document. When plistlib reads a mutated document,
    the fast reader reads the same values; when the fast reader accepts one, its values are plistlib's for the
    same document with its arrays emptied (a break inside a skipped array is all it may miss)."""
    import random

    rng = random.Random(20250707)
    snippets = (b"<dict>", b"</dict>", b"<array>", b"</array>", b"<key>elapsed_ns</key>", b"<integer>7</integer>",
                b"<!-- <array> -->", b"<!-- </array> -->", b"<?pi <array>?>", b"<![CDATA[</array>]]>", b"<array >",
                b"<array/>", b"<real>nan</real>", b"<date>x</date>", b"\xff", b"&amp;", b"<", b"-->", b"<!--")
    docs = [doc for path in sorted(FIXTURES.glob("*.plist")) for doc in _documents(path)]
    outcomes = {"both read": 0, "both refuse": 0, "break inside an array": 0}
    for _ in range(300):
        mutated = bytearray(rng.choice(docs))
        for _ in range(rng.randint(1, 3)):
            pos, roll = rng.randrange(len(mutated)), rng.random()
            if roll < 0.25:
                del mutated[pos:pos + rng.randint(1, 40)]
            elif roll < 0.5:
                mutated[pos:pos] = rng.choice(snippets)
            elif roll < 0.7:
                mutated[pos] = rng.randrange(256)
            else:  # a new digit: the document stays valid, and a figure may change
                digits = [i for i in range(pos, min(pos + 400, len(mutated))) if 0x30 <= mutated[i] <= 0x39]
                if digits:
                    mutated[rng.choice(digits)] = rng.randrange(0x30, 0x3A)
        doc = bytes(mutated)
        try:
            expected = plistlib.loads(doc)
        except Exception:
            expected = None
        try:
            got = load_top_dict(doc)
        except PlistError:
            got = None
        if isinstance(expected, dict):
            assert got is not None and _scalars(got) == _scalars(expected)
            outcomes["both read"] += 1
        elif got is None:
            outcomes["both refuse"] += 1
        else:  # plistlib refuses a value inside an array (or the XML there), which the fast reader skips
            try:
                emptied = _arrays_emptied(doc)  # independent of the byte search, when the XML is well-formed
            except ET.ParseError:
                emptied = reduced_document(doc)  # broken XML inside a skipped array
            assert _scalars(got) == _scalars(plistlib.loads(emptied))
            outcomes["break inside an array"] += 1
    assert all(n >= 10 for n in outcomes.values()), outcomes


@pytest.mark.parametrize("bad", [b"<plist><dict><key>a</key></dict></plist>", b"<plist><array/></plist>",
                                 b"<plist><dict><key>a</key><integer>x</integer></dict></plist>",
                                 b"<plist><dict><key>a</key><blob/></dict></plist>", b"<plist><dict>"])
def test_fast_plist_reader_rejects_what_plistlib_rejects(bad: bytes) -> None:
    with pytest.raises(PlistError):
        load_top_dict(bad)


# -- hostile captures: one bad sample is skipped and counted, never a crash, never Infinity --------------

_DEEP = b"<key>deep</key>" + b"<dict><key>a</key>" * 50_000 + b"<integer>1</integer>" + b"</dict>" * 50_000


def _hostile_plist(edit) -> bytes:
    return M1_05S.read_bytes().rstrip(b"\n") + b"\n\0" + _edited(M1_2S, edit)


def _hostile_elapsed(elapsed_ns: int) -> bytes:
    doc = M1_2S.read_bytes().replace(b"<integer>2019178750</integer>", f"<integer>{elapsed_ns}</integer>".encode())
    return M1_05S.read_bytes().rstrip(b"\n") + b"\n\0" + doc


def _text_sample(header: str, cpu_mw: str) -> str:
    return (f"*** Sampled system activity (Fri Nov 10 12:37:08 2023 +0100) ({header} elapsed) ***\n\n"
            f"CPU Power: {cpu_mw} mW\n")


HOSTILE = {
    "elapsed_ns 2^63": _hostile_elapsed(2**63),
    "elapsed_ns 10^30": _hostile_elapsed(10**30),
    "cpu_energy 1e308": _hostile_plist(lambda d: d["processor"].update(cpu_energy=1e308)),
    "cpu_power 1e308 (mW x elapsed overflows)": _hostile_plist(
        lambda d: (d["processor"].pop("cpu_energy"), d["processor"].update(cpu_power=1e308))),
    "gpu.gpu_energy 1e300": _hostile_plist(lambda d: (d["processor"].pop("gpu_energy"), d["processor"].pop("gpu_power"),
                                                      d["gpu"].update(gpu_energy=1e300))),
    "20 kW cpu": _hostile_plist(lambda d: d["processor"].update(cpu_energy=20_000 * 2019)),
    "50,000-level nesting": M1_05S.read_bytes().rstrip(b"\n") + b"\n\0"
    + M1_2S.read_bytes().replace(b"<dict>", b"<dict>" + _DEEP, 1),
    "text: 400-digit watts": (_text_sample("104.51ms", "947") + _text_sample("104.81ms", "9" * 400)).encode(),
    "text: 400-digit elapsed": (_text_sample("104.51ms", "947") + _text_sample("9" * 400 + "ms", "420")).encode(),
    "text: 1e308-scale watts": (_text_sample("104.51ms", "947") + _text_sample("104.81ms", "9" * 300)).encode(),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_sample_is_skipped_and_the_rest_kept(name: str) -> None:
    capture = parse_capture(HOSTILE[name])
    assert (len(capture.samples), capture.skipped) == (1, 1)
    (sample,) = capture.samples
    assert all(v is None or (math.isfinite(v) and v / 1e3 / (sample.elapsed_ns / 1e9) <= MAX_PLAUSIBLE_W)
               for v in sample.energy_mj.values())
    windows = capture.windows()
    assert windows[-1].t1_ns < 2**63


def test_plausibility_bound_is_ten_kilowatts_per_component() -> None:
    # 9.9 kW of GPU for 1 s is kept (an 8-GPU server board set can draw that); 10.1 kW is a corrupt figure
    def gpu(mj: float):
        return lambda d: d.update(elapsed_ns=10**9, processor={"gpu_energy": mj})

    assert parse_plist_document(_edited(M1_2S, gpu(9_900_000))).energy_mj["gpu"] == 9_900_000
    with pytest.raises(PowermetricsParseError, match="10000 W"):
        parse_plist_document(_edited(M1_2S, gpu(10_100_000)))
