"""`energyprof profile`: profile a model's generation in the foreground and print the run's summary."""

from __future__ import annotations

import argparse
import sys

from energyprof.analysis.precision import checked_phase
from energyprof.analysis.quoted import grid_label, quote_summary
from energyprof.commands.args import add_db_option, add_json_option, add_param_options, fail, print_json
from energyprof.commands.progress import terminal_progress
from energyprof.commands.prompt_file import add_prompt_file_options, prompt_values
from energyprof.components import ordered
from energyprof.provenance import labelled
from energyprof.runner.job import profile_foreground
from energyprof.spec.params import ProfileParams
from energyprof.spec.replay_plan import plan_replay
from energyprof.store import JobAlreadyRunning, Store
from energyprof.summary import MeanCI, RunSummary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile", help="profile the energy of a model's generation, per token and per layer",
        description="Profile a model's text generation in the foreground: energy per token (prefill vs "
                    "decode), per layer and per hardware component, stored as a run.")
    prompt = parser.add_mutually_exclusive_group()
    add_param_options(parser, containers={"prompt": prompt})
    add_prompt_file_options(parser, prompt)
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run, parser=parser)


def params_from_args(args: argparse.Namespace) -> ProfileParams:
    """ProfileParams from parsed arguments (the prompt file is read here, bounded)."""
    values = {name: getattr(args, name) for name in ProfileParams().to_dict() if hasattr(args, name)}
    if args.prompt_file is not None:
        try:
            values.update(prompt_values(args.prompt_file, args.prompt_format))
        except ValueError as exc:
            args.parser.error(str(exc))
    return ProfileParams(**values)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    problems = params.errors()
    if problems:
        args.parser.error(problems[0])
    store = Store(args.db)
    if params.layer_energy == "replay":
        print(f"energyprof: {plan_replay(params).describe()}", file=sys.stderr)
    try:
        with terminal_progress() as progress:
            summary = profile_foreground(store, params, on_progress=progress)
    except JobAlreadyRunning as exc:
        if args.json:
            print_json(RunSummary(status="failed", error=str(exc)).to_dict())
        return fail(str(exc))
    if args.json:
        print_json(summary.to_dict())
    else:
        print(format_summary(summary))
    if summary.status != "done":
        return fail(summary.error or f"Run {summary.run_id} ended as {summary.status}.")
    for warning in summary.warnings:
        fail(f"warning: {warning}")
    if summary.disturbed:
        fail(f"warning: {summary.disturbance()}")
    for sentence in summary.health_warnings():
        fail(f"warning: {sentence}")
    return 0


def _j(value: float | None, unit: str = "J") -> str:
    return "unknown" if value is None else f"{value:.4g} {unit}"


def _per_token(entry: MeanCI) -> str:
    if entry.mean is None:
        return "unknown"
    return f"{entry.mean:.4g} J" + (f" ± {entry.ci95:.2g}" if entry.ci95 is not None else "")


def _seconds(entry: MeanCI | None) -> str:
    if entry is None or entry.mean is None:
        return "unknown"
    return f"{entry.mean:.3g} s" + (f" ± {entry.ci95:.2g}" if entry.ci95 is not None else "")


def _components(values: dict[str, float | None] | None, unit: str) -> str:
    if not values:
        return "unknown"
    return ", ".join(f"{comp} {_j(v, unit)}" for comp, v in values.items())


def _replay_lines(s: RunSummary) -> list[str]:
    """The replay's closure per phase, flagged figures and skipped modules."""
    est = s.provenance
    closure = "   ".join(f"{phase} {_ratio(s.replay_closure.get(phase))} ({_j(s.replay_sum_j.get(phase))} replayed / "
                           f"{_j(s.replay_step_j.get(phase))} measured step {step})"
                           for phase, step in s.replay_steps.items()) or "none"
    lines = [labelled(f"Replayed layers: {s.replay_layers} layer × phase figures, {s.replay_trials} trials × "
                      f"{s.replay_s or 0:g} s", est) + f" in {s.replay_wall_s or 0:.1f} s",
             f"Replay closure (top-level layers / step): {closure}"]
    if s.replay_flagged:
        lines.append(f"Replay: {s.replay_flagged} figures have a 95% CI wider than their mean (flagged in "
                     "`energyprof export RUN --what layer-replay`); replay longer (--replay-s) or more often "
                     "(--replay-trials).")
    lines.extend(f"Replay skipped {skipped}" for skipped in s.replay_skipped)
    return lines


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _prompt_tokens(s: RunSummary) -> str:
    """Prompt tokens per sequence: one number, or each sequence's when they differ."""
    each = s.prompt_tokens_each
    return ", ".join(map(str, each)) if len(set(each)) > 1 else str(s.prompt_tokens)


def _quoted_line(s: RunSummary, est: str) -> str:
    """The decode J/token in the units people quote (tokens/J, Wh per 1,000 tokens, gCO2e at the user's grid)."""
    phase = checked_phase(s.j_per_token)
    q = quote_summary(s, phase)
    parts = [f"{_j(q.j_per_token, 'J/token')}", f"{_j(q.tokens_per_j, 'tokens/J')}",
             f"{_j(q.wh_per_1000_tokens, 'Wh per 1,000 tokens')}"]
    if q.g_co2e_per_1000_tokens is not None:
        parts.append(f"{q.g_co2e_per_1000_tokens:.4g} g CO2e per 1,000 tokens {grid_label(q.grid_g_per_kwh)}")
    return labelled(f"{phase.capitalize()}, per token", est) + ": " + "   ".join(parts)


def _target_line(s: RunSummary) -> str:
    """Whether the target CI was met, with the CI reached and the repeats it took."""
    reached = "unknown" if s.ci_pct is None else f"{s.ci_pct:.2g}%"
    verdict = "met" if s.target_ci_met else "not met"
    why = {"time cap": f", stopped by the {s.max_seconds:g} s cap", "repeat cap": ", stopped by the repeat cap"}
    return (f"Target CI {s.target_ci_pct:g}%: {verdict} (CI {reached} of the mean after {s.repeats} repeats"
            f"{why.get(s.repeats_stop or '', '')})")


def format_summary(s: RunSummary) -> str:
    """A run's summary for people; estimated figures are labelled as such."""
    est = s.provenance
    lines = [f"Run {s.run_id} {s.status}: {s.model} on {s.device} ({s.dtype}), {s.repeats} repeat(s), "
             f"layers {s.layers}",
             labelled(f"Power source: {s.source}", est)]
    if s.endpoint is not None:
        lines[0] = f"Run {s.run_id} {s.status}: {s.model} at the endpoint {s.endpoint} ({s.api}), {s.repeats} repeat(s)"
        lines.append(f"Server model: {s.server_model or 'not reported'}   time to first token: {_seconds(s.ttft_s)}")
    if s.new_tokens or s.prompt_tokens:
        lines.append(f"Prompt tokens: {_prompt_tokens(s)}{' per sequence' if (s.batch or 1) > 1 else ''}   "
                     f"new tokens per repeat: {', '.join(map(str, s.new_tokens)) or 'none'}"
                     + (f" (batch of {s.batch} sequences: every sequence's tokens counted)"
                        if (s.batch or 1) > 1 else ""))
    if s.profiled:
        lacks = f" (without {', '.join(s.total_lacks)})" if s.total_lacks else ""
        lines.append(labelled("Energy, gross", est) + f": {_components(s.energy_j, 'J')}   whole system "
                     f"{_j(s.gross_total_j)}{lacks}")
        if s.total_sentence():
            lines.append(s.total_sentence())
        if s.baseline_w:
            lines.append(f"Idle baseline: {_components(s.baseline_w, 'W')}   " + labelled("net energy", est)
                         + f": {_j(s.net_total_j)}")
        parts = [f"{phase} {_per_token(s.per_token(phase))}" for phase in ("prefill", "decode", "forward")
                 if phase in s.j_per_token and (phase != "forward" or s.per_token(phase).mean is not None)]
        lines.append(labelled("J/token", est) + f" (mean ± 95% CI over repeats): {'   '.join(parts)}{lacks}")
        lines.append(_quoted_line(s, est))
        if s.target_ci_pct is not None:
            lines.append(_target_line(s))
        lines.append(f"Decode speed: {'unknown' if s.tokens_per_s is None else f'{s.tokens_per_s:.1f} tokens/s'}")
        lines.append(labelled("Mean power", est) + f": {_components(s.mean_w, 'W')}   "
                     f"peak: {_components(s.peak_w, 'W')}")
        lines.append(f"Closure error: {'n/a' if s.closure_error is None else f'{s.closure_error:.2g}'}")
        lines += _how_lines(s)
    if s.cross_check:
        lines += _cross_check_lines(s)
    for note in (s.token_note(), s.server_activity()):
        if note:
            lines.append(note)
    if s.layer_energy == "replay":
        lines.extend(_replay_lines(s))
    if s.background_cpu.get("workload") is not None:
        lines.append(f"Other processes: {s.background_cpu['workload']:.2f} CPU cores during the workload, "
                     f"{s.background_cpu.get('baseline') or 0:.2f} during the baseline"
                     + (f"; busiest: {'; '.join(p.describe() for p in s.background_top[:3])}"
                        if s.background_top else ""))
    for warning in s.warnings:
        lines.append(f"Warning: {warning}")
    if s.disturbed:
        lines.append(f"Warning: {s.disturbance()}")
    lines.extend(f"Warning: {sentence}" for sentence in s.health_warnings())
    return "\n".join(lines)


def _how_lines(s: RunSummary) -> list[str]:
    """The share of tokens measured and, for a counter source, its update period and quantum per component."""
    lines = [s.measured_sentence()] if s.measured_sentence() else []
    periods, quanta = s.counter_update_period_s or {}, s.counter_quantum_mj or {}
    if s.boundary_reads and periods:
        parts = [f"{c} every {p * 1e3:.3g} ms in steps of {quanta.get(c) or 0:.4g} mJ" if p is not None
                 else f"{c} untimed" for c, p in periods.items()]
        lines.append(f"Counter read at every step boundary ({s.boundary_reads} reads): {'; '.join(parts)}")
    if s.counter_health:
        lines.append("Counter health: " + ", ".join(f"{c} {s.counter_health[c]}" for c in ordered(s.counter_health))
                     + (f" (ceilings for {s.chip})" if s.chip else ""))
        lines.extend(s.batched_notes())
    return lines


def _cross_check_lines(s: RunSummary) -> list[str]:
    """The cross-check source's energies, ratio and correlation per component, or why there are none."""
    lines = [f"Cross-check {s.cross_check}: {s.cross_check_windows} windows"]
    for comp, a in s.cross_check_agreement.items():
        ratio = "n/a" if a.ratio is None else f"{a.ratio:.3g}"
        corr = "n/a" if a.correlation is None else f"{a.correlation:.2f}"
        lines.append(f"  {comp}: {s.source} {_j(a.primary_j)} vs {s.cross_check} {_j(a.cross_check_j)}, "
                     f"ratio {ratio}, correlation {corr} over {a.bins} bins")
    if s.cross_check_error:
        lines.append(f"Warning: {s.cross_check_error}")
    return lines
