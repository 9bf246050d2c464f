"""A fast reader for the XML plists powermetrics writes: only the parts energyprof reads are built.

plistlib builds every value through Python callbacks (1.5-7 ms for one 30-65 KB powermetrics document),
and even ElementTree's C tree builder spends about 1 ms on the M2 Ultra document, nearly all of it on
the per-cluster and per-CPU arrays that energyprof never reads. So `load_top_dict`:

1. finds every outermost ``<array>...</array>`` element with ``bytes.find`` and replaces it by an empty
   ``<array/>``. In XML ``<`` cannot occur in text or attribute values, so those bytes are array tags
   unless they sit inside a comment, a processing instruction or the DOCTYPE (powermetrics writes one
   comment, into the ``gpu`` dict). Those are located first by looking for ``!`` and ``?`` (a C
   ``memchr``, nearly free) and skipped. A document with a CDATA section, another declaration or a
   DOCTYPE internal subset is read whole instead (and entity declarations are refused, as plistlib
   refuses them);
2. lets expat, a real XML parser, build the few remaining elements (ElementTree) and converts them with
   plistlib's semantics. If that reduced document is not well-formed (a broken or truncated document,
   or an array tag the byte search cannot see such as ``<array >``), the whole document is parsed
   instead, so a malformed document is refused exactly as before.

What is not checked: the content of the skipped arrays beyond their tags' nesting. A document broken
only inside an array (which plistlib would refuse) is read, and its values are then plistlib's values
of the same document with that array emptied. Semantics follow plistlib: a repeated key keeps its
last value (the `gpu` dict repeats `idle_ns`/`idle_ratio`), `<integer>`, `<real>`, `<true/>`,
`<false/>`, `<string>`, `<date>` (UTC), `<data>` (base64); arrays come back as empty ``ET.Element``.
tests/test_powermetrics_parse.py checks the values against plistlib on every document of every real
recording and on mutated streams.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from datetime import datetime
from typing import Any

from energyprof.errors import EnergyprofError

MAX_DEPTH = 64
"""Containers nested deeper than this are refused (powermetrics nests 4 deep; a hostile file 50,000)."""

_ARRAY_OPEN, _ARRAY_CLOSE, _EMPTY_ARRAY = b"<array>", b"</array>", b"<array/>"
_LITERALS = ((b"<!--", b"-->"), (b"<?", b"?>"), (b"<!DOCTYPE", b">"))
_DATE = re.compile(r"(\d\d\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", re.ASCII)


class PlistError(EnergyprofError, ValueError):
    """The bytes are not a well-formed XML plist."""


def load_top_dict(data: bytes) -> dict[str, Any]:
    """The top-level dict of one XML plist document (arrays inside it come back empty, as ET.Element)."""
    reduced = reduced_document(data)
    try:
        if reduced is None:
            raise PlistError("read whole")
        root = ET.fromstring(reduced)
    except (ET.ParseError, PlistError):
        root = _whole(data)
    if root.tag != "plist" or len(root) != 1:
        raise PlistError("not a plist document with one top-level value")
    top = root[0]
    if top.tag != "dict":
        raise PlistError("the plist's top level is not a dict")
    return _dict(top, 1)


def _whole(data: bytes) -> ET.Element:
    """The whole document as a tree; entity declarations are refused, as plistlib refuses them."""
    checker = xml.parsers.expat.ParserCreate()
    checker.EntityDeclHandler = _refuse_entity
    try:
        checker.Parse(data, True)
        return ET.fromstring(data)
    except (xml.parsers.expat.ExpatError, ET.ParseError) as exc:
        raise PlistError(f"not well-formed XML: {exc}") from exc


def _refuse_entity(*args: object) -> None:
    raise PlistError("XML entity declarations are not allowed in a plist")


def reduced_document(data: bytes) -> bytes | None:
    """The document with its arrays emptied (step 1 of the module docstring); None: read it whole."""
    spans = literal_spans(data)
    if spans is None:
        return None
    try:
        return without_arrays(data, [(a, b) for a, b in spans if data.find(b"array>", a, b) >= 0])
    except PlistError:
        return None


def literal_spans(data: bytes) -> list[tuple[int, int]] | None:
    """[start, end) of each comment, processing instruction and DOCTYPE, in order; None: read the document whole.



    Every such construct starts with ``<!`` or ``<?``, so only the (rare) ``!`` and ``?`` bytes are visited."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        hits = [at for at in (data.find(b"!", pos), data.find(b"?", pos)) if at >= 0]
        if not hits:
            return spans
        start = min(hits) - 1
        if start < 0 or data[start] != 0x3C:  # a `!` or `?` in text, not markup
            pos = start + 2
            continue
        literal = next(((o, c) for o, c in _LITERALS if data.startswith(o, start)), None)
        if literal is None:
            return None  # a CDATA section or another declaration
        opener, closer = literal
        end = data.find(closer, start + len(opener))
        if end < 0:
            return None
        end += len(closer)
        if opener == b"<!DOCTYPE" and (b"[" in data[start:end] or b"<" in data[start + 1:end]):
            return None  # an internal subset, or markup characters quoted inside the DOCTYPE
        spans.append((start, end))
        pos = end


def without_arrays(data: bytes, literals: list[tuple[int, int]]) -> bytes:
    """The document with every outermost <array> element emptied; literals: the literal spans holding array tags."""
    parts, pos = [], 0
    while (start := _find_tag(data, _ARRAY_OPEN, pos, literals)) >= 0:
        depth, cursor = 1, start + len(_ARRAY_OPEN)
        while depth:
            close = _find_tag(data, _ARRAY_CLOSE, cursor, literals)
            if close < 0:
                raise PlistError("an <array> is not closed")
            depth += data.count(_ARRAY_OPEN, cursor, close) - 1
            if literals:
                depth -= sum(data.count(_ARRAY_OPEN, max(a, cursor), min(b, close)) for a, b in literals
                             if a < close and b > cursor)
            cursor = close + len(_ARRAY_CLOSE)
        parts += (data[pos:start], _EMPTY_ARRAY)
        pos = cursor
    if not parts:
        return data
    parts.append(data[pos:])
    return b"".join(parts)


def _find_tag(data: bytes, tag: bytes, start: int, literals: list[tuple[int, int]]) -> int:
    """The first occurrence of tag in data[start:] outside every literal span, else -1."""
    while (at := data.find(tag, start)) >= 0 and literals:
        inside = next((stop for begin, stop in literals if begin <= at < stop), None)
        if inside is None:
            break
        start = inside
    return at


def _dict(elem: ET.Element, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise PlistError(f"containers nested deeper than {MAX_DEPTH} levels")
    children = list(elem)
    if len(children) % 2:
        raise PlistError("a <dict> has a key without a value")
    out: dict[str, Any] = {}
    for key, value in zip(children[::2], children[1::2], strict=True):
        if key.tag != "key" or len(key):
            raise PlistError(f"expected a <key> with text in a <dict>, found <{key.tag}>")
        out[key.text or ""] = _value(value, depth)
    return out


def _value(elem: ET.Element, depth: int) -> Any:
    tag, text = elem.tag, elem.text
    if len(elem) and tag not in ("dict", "array"):
        raise PlistError(f"<{tag}> holds an element")
    if tag == "integer":
        try:
            return int((text or "").strip(), 0) if (text or "").strip().startswith("0x") else int(text or "")
        except ValueError as exc:
            raise PlistError(f"bad <integer> {text!r}") from exc
    if tag == "real":
        try:
            return float(text or "")
        except ValueError as exc:
            raise PlistError(f"bad <real> {text!r}") from exc
    if tag == "string":
        return text or ""
    if tag == "true":
        return True
    if tag == "false":
        return False
    if tag == "dict":
        return _dict(elem, depth + 1)
    if tag == "array":
        return elem
    if tag == "date":
        return _date(text or "")
    if tag == "data":
        try:
            return base64.b64decode((text or "").encode(), validate=False)
        except binascii.Error as exc:
            raise PlistError("bad <data>") from exc
    raise PlistError(f"unknown plist element <{tag}>")


def _date(text: str) -> datetime:
    """plistlib's reading of <date>: YYYY-MM-DDTHH:MM:SSZ in UTC, as a naive datetime."""
    found = _DATE.fullmatch(text.strip())
    try:
        if found is None:
            raise ValueError(text)
        return datetime(*map(int, found.groups()))
    except ValueError as exc:
        raise PlistError(f"bad <date> {text!r}") from exc
