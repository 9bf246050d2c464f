"""`energyprof profile`: profile a model's generation in the foreground and print the run's summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from energyprof.commands.args import add_db_option, add_json_option, fail, float_range, int_range, print_json
from energyprof.power.registry import AUTO, SOURCE_NAMES
from energyprof.profile.job import (
    DEFAULT_PROMPT,
    DTYPE_NAMES,
    INTERVAL_MS_RANGE,
    LAYER_DEPTHS,
    MAX_BASELINE_S,
    MAX_NEW_TOKENS,
    MAX_REPEATS,
    MAX_SEED,
    MAX_TEMPERATURE,
    MAX_WARMUP,
    ProfileParams,
    profile_foreground,
)
from energyprof.store import JobAlreadyRunning, Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile", help="profile the energy of a model's generation, per token and per layer",
        description="Profile a model's text generation in the foreground: energy per token (prefill vs "
                    "decode), per layer and per hardware component, stored as a run.")
    parser.add_argument("--model", default="tiny",
                        help="built-in model (tiny, small, medium), local model folder or Hugging Face id")
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default=None, help="the prompt text")
    prompt.add_argument("--prompt-file", type=Path, default=None, metavar="PATH", help="read the prompt from a file")
    parser.add_argument("--max-new-tokens", type=int_range(1, MAX_NEW_TOKENS), default=32)
    parser.add_argument("--ignore-eos", action="store_true", help="always generate max-new-tokens tokens")
    parser.add_argument("--layers", choices=LAYER_DEPTHS, default="blocks",
                        help="layer hooks: none, blocks (embedding, blocks, norm, lm_head) or modules "
                             "(also attention and MLP)")
    parser.add_argument("--source", choices=(*SOURCE_NAMES, AUTO), default=AUTO,
                        help="power source (default: auto = the first measured source that works here)")
    parser.add_argument("--interval-ms", type=int_range(*INTERVAL_MS_RANGE), default=None,
                        help="sampling interval (default: the source's own)")
    parser.add_argument("--repeats", type=int_range(1, MAX_REPEATS), default=3, help="measured repeats")
    parser.add_argument("--warmup", type=int_range(0, MAX_WARMUP), default=1, help="unmeasured warm-up runs")
    parser.add_argument("--baseline-s", type=float_range(0, MAX_BASELINE_S), default=2.0,
                        help="seconds of idle baseline before the workload (0: none, no net energy)")
    parser.add_argument("--device", default="auto", help="auto, cpu, mps or cuda (default: auto)")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="float32")
    parser.add_argument("--temperature", type=float_range(0, MAX_TEMPERATURE), default=0.0,
                        help="sampling temperature (0: greedy)")
    parser.add_argument("--top-p", type=float_range(0, 1, strict_min=True), default=1.0,
                        help="nucleus sampling threshold")
    parser.add_argument("--seed", type=int_range(0, MAX_SEED), default=0, help="sampling seed")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a model repository's own code to run (only for code you trust)")
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run, parser=parser)


def params_from_args(args: argparse.Namespace) -> ProfileParams:
    """ProfileParams from parsed arguments (the prompt file is read here)."""
    if args.prompt_file is not None:
        try:
            prompt = args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            args.parser.error(f"cannot read the prompt file {args.prompt_file}: {exc}")
    else:
        prompt = DEFAULT_PROMPT if args.prompt is None else args.prompt
    return ProfileParams(model=args.model, prompt=prompt, max_new_tokens=args.max_new_tokens,
                         ignore_eos=args.ignore_eos, device=args.device, dtype=args.dtype, source=args.source,
                         interval_ms=args.interval_ms, layers=args.layers, repeats=args.repeats,
                         warmup=args.warmup, baseline_s=args.baseline_s, temperature=args.temperature,
                         top_p=args.top_p, seed=args.seed, trust_remote_code=args.trust_remote_code)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    problems = params.errors()
    if problems:
        args.parser.error(problems[0])
    store = Store(args.db)
    try:
        summary = profile_foreground(store, params)
    except JobAlreadyRunning as exc:
        if args.json:
            print_json({"run_id": None, "status": "failed", "error": str(exc)})
        return fail(str(exc))
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    if summary["status"] != "done":
        return fail(summary.get("error") or f"Run {summary['run_id']} ended as {summary['status']}.")
    for warning in summary.get("warnings") or []:
        fail(f"warning: {warning}")
    return 0


def _j(value: float | None, unit: str = "J") -> str:
    return "unknown" if value is None else f"{value:.4g} {unit}"


def _per_token(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("mean") is None:
        return "unknown"
    ci = entry.get("ci95")
    return f"{entry['mean']:.4g} J" + (f" ± {ci:.2g}" if ci is not None else "")


def _components(values: dict[str, float | None] | None, unit: str) -> str:
    if not values:
        return "unknown"
    return ", ".join(f"{comp} {_j(v, unit)}" for comp, v in values.items())


def format_summary(s: dict[str, Any]) -> str:
    """A run's summary for people; estimated figures are labelled as such."""
    est = "" if s.get("measured") else " (estimated)"
    lines = [f"Run {s['run_id']} {s['status']}: {s.get('model')} on {s.get('device')} ({s.get('dtype')}), "
             f"{s.get('repeats', 0)} repeat(s), layers {s.get('layers')}",
             f"Power source: {s.get('source')}{est}"]
    if s.get("new_tokens") is not None:
        lines.append(f"Prompt tokens: {s.get('prompt_tokens')}   new tokens per repeat: "
                     f"{', '.join(map(str, s.get('new_tokens') or [])) or 'none'}")
    if "energy_j" in s:
        lines.append(f"Energy, gross{est}: {_components(s['energy_j'], 'J')}   whole system "
                     f"{_j(s.get('total_energy_j'))}")
        if s.get("baseline_w"):
            lines.append(f"Idle baseline: {_components(s['baseline_w'], 'W')}   net energy{est}: "
                         f"{_j(s.get('net_total_energy_j'))}")
        jpt = s.get("j_per_token") or {}
        parts = [f"{phase} {_per_token(jpt.get(phase))}" for phase in ("prefill", "decode", "forward")
                 if phase in jpt and (phase != "forward" or jpt[phase].get("mean") is not None)]
        lines.append(f"J/token{est} (mean ± 95% CI over repeats): {'   '.join(parts)}")
        rate = s.get("tokens_per_s")
        lines.append(f"Decode speed: {'unknown' if rate is None else f'{rate:.1f} tokens/s'}")
        lines.append(f"Mean power{est}: {_components(s.get('mean_w'), 'W')}   "
                     f"peak: {_components(s.get('peak_w'), 'W')}")
        closure = s.get("closure_error")
        lines.append(f"Closure error: {'n/a' if closure is None else f'{closure:.2g}'}")
    for warning in s.get("warnings") or []:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines)
