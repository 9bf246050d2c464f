"""`--prompt-file` and `--prompt-format`: one prompt, or one prompt per sequence of a batch, from a file.

Formats: `text` (the whole file is one prompt, copied to each sequence), `lines` (one prompt per non-blank line)
and `jsonl` (one JSON object per non-blank line, its "prompt" a string). `auto`, the default, is `jsonl` for a
file whose name ends in .jsonl and `text` for any other. The file is read bounded (`read_prompt_file`: at most
MAX_PROMPT_CHARS characters in all), so a huge file cannot exhaust memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from energyprof.spec.params import MAX_PROMPT_CHARS

PROMPT_FORMATS: tuple[str, ...] = ("auto", "text", "lines", "jsonl")


def add_prompt_file_options(parser: argparse.ArgumentParser, prompt_group: Any) -> None:
    """--prompt-file (exclusive with --prompt, in `prompt_group`) and --prompt-format."""
    prompt_group.add_argument("--prompt-file", type=Path, default=None, metavar="PATH",
                              help="read the prompt(s) from a UTF-8 file (see --prompt-format)")
    parser.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="auto",
                        help="how --prompt-file holds prompts: text (the whole file is one prompt), lines (one "
                             "prompt per line, one per sequence of the batch), jsonl (one {\"prompt\": ...} object "
                             "per line); auto: jsonl for a .jsonl file, else text (default: auto)")


def file_format(path: Path, fmt: str) -> str:
    """The format a file is read in: the one asked for, or by its name for `auto`."""
    if fmt != "auto":
        return fmt
    return "jsonl" if path.suffix.lower() == ".jsonl" else "text"


def parse_prompts(text: str, fmt: str, name: str = "the prompt file") -> list[str]:
    """The prompts a file's text holds in format `fmt` (text, lines or jsonl); ValueError with one sentence."""
    if fmt == "text":
        return [text]
    lines = [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise ValueError(f"{name} holds no prompts; put one prompt per line.")
    if fmt == "lines":
        return [line for _, line in lines]
    prompts = []
    for number, line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
            raise ValueError(f'line {number} of {name} is not a JSON object with a "prompt" string; write one '
                             '{"prompt": "..."} per line.')
        prompts.append(value["prompt"])
    return prompts


def prompt_values(path: Path, fmt: str) -> dict[str, Any]:
    """ProfileParams values from a prompt file: `prompt` (the first prompt) and, for several, `prompts`."""
    prompts = parse_prompts(read_prompt_file(path), file_format(path, fmt), f"the prompt file {path}")
    return {"prompt": prompts[0], "prompts": prompts if len(prompts) > 1 else None}


def read_prompt_file(path: Path, limit: int = MAX_PROMPT_CHARS) -> str:
    """The file's text; ValueError with one sentence when it is unreadable, too long or not UTF-8.

    At most limit × 4 + 1 bytes are read (a UTF-8 character has at most 4 bytes), so /dev/zero or a huge file
    cannot exhaust memory."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit * 4 + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the prompt file {path}: {exc.strerror or exc}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) > limit * 4 and exc.start >= len(data) - 4:
            raise ValueError(f"the prompt file {path} is longer than {limit:,} characters; shorten it.") from None
        raise ValueError(f"the prompt file {path} is not UTF-8 text (byte {exc.start} is not valid); save it as "
                         "UTF-8.") from None
    if len(text) > limit:
        raise ValueError(f"the prompt file {path} is longer than {limit:,} characters; shorten it.")
    return text
