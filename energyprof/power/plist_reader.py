"""A fast reader for the XML plists powermetrics writes: ElementTree's C parser, plist semantics of plistlib.

plistlib builds every value through Python callbacks, which costs 4-13 ms for one 30-65 KB powermetrics
document — several % of a core at 100 ms sampling. Here expat builds the element tree in C, and only
the values the caller asks for are converted: `load_top_dict` returns the top-level dict with scalars
and nested dicts converted, and arrays (per-cluster and per-CPU detail that energyprof never reads)
left as unconverted elements. Semantics follow plistlib: a repeated key keeps its last value (the
`gpu` dict repeats `idle_ns`/`idle_ratio`), `<integer>`, `<real>`, `<true/>`, `<false/>`, `<string>`,
`<date>` (UTC), `<data>` (base64). tests/test_powermetrics_parse.py checks it against plistlib on
every real recording.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 64
"""Containers nested deeper than this are refused (powermetrics nests 4 deep; a hostile file 50,000)."""


class PlistError(ValueError):
    """The bytes are not a well-formed XML plist."""


def load_top_dict(data: bytes) -> dict[str, Any]:
    """The top-level dict of one XML plist document (arrays inside it are left as ET.Element)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PlistError(f"not well-formed XML: {exc}") from exc
    if root.tag != "plist" or len(root) != 1:
        raise PlistError("not a plist document with one top-level value")
    top = root[0]
    if top.tag != "dict":
        raise PlistError("the plist's top level is not a dict")
    return _dict(top, 1)


def _dict(elem: ET.Element, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise PlistError(f"containers nested deeper than {MAX_DEPTH} levels")
    children = list(elem)
    if len(children) % 2:
        raise PlistError("a <dict> has a key without a value")
    out: dict[str, Any] = {}
    for key, value in zip(children[::2], children[1::2], strict=True):
        if key.tag != "key":
            raise PlistError(f"expected <key> in a <dict>, found <{key.tag}>")
        out[key.text or ""] = _value(value, depth)
    return out


def _value(elem: ET.Element, depth: int) -> Any:
    tag, text = elem.tag, elem.text
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
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).replace(tzinfo=None)
    except ValueError as exc:
        raise PlistError(f"bad <date> {text!r}") from exc
