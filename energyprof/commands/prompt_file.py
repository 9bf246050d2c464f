"""`--prompt-file` and `--prompt-format`: one prompt, or one prompt per sequence of a batch, from a file.

Formats: `text` (the whole file is one prompt, copied to each sequence), `lines` (one prompt per non-blank line)
and `jsonl` (one JSON object per non-blank line, its "prompt" a string). `auto`, the default, is `jsonl` for a
file whose name ends in .jsonl and `text` for any other. A UTF-8 byte-order mark at the start (Windows editors
write one) is not part of the prompt. The file is read bounded (commands/profile.py
`read_prompt_file`: at most MAX_PROMPT_CHARS characters in all), so a huge file cannot exhaust memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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
        except (json.JSONDecodeError, RecursionError):  # deeply nested arrays exhaust the parser's recursion
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
            raise ValueError(f'line {number} of {name} is not a JSON object with a "prompt" string; write one '
                             '{"prompt": "..."} per line.')
        prompts.append(value["prompt"])
    return prompts


def prompt_values(path: Path, fmt: str) -> dict[str, Any]:
    """ProfileParams values from a prompt file: `prompt` (the first prompt) and, for several, `prompts`."""
    from energyprof.commands.profile import read_prompt_file

    prompts = parse_prompts(read_prompt_file(path), file_format(path, fmt), f"the prompt file {path}")
    return {"prompt": prompts[0], "prompts": prompts if len(prompts) > 1 else None}
