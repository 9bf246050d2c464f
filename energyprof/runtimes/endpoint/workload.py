"""The engine's workload for an endpoint run: each repeat streams one completion from the server.

The request is sent at the start of the prefill step; the first arrival of text ends it (time to first token),
and every later arrival of text is one decode step, each boundary read from the engine's clock as the data
arrives. Token counts come from the server's `usage` (asked for with `stream_options.include_usage`): the
completion tokens after the first arrival are spread over the decode steps by the chunks each carried, so the
phase totals (J/token, tokens/s) are exact; without `usage`, or with one that cannot be true of the stream
(`checked_usage`: more tokens than max_tokens, fewer than the chunks of text), the chunks are counted as tokens and
the summary says the counts are approximate and why. The prefill's tokens are the prompt's (unknown without a
believable `usage`).

`load` sends one 1-token request, so the server loads the model before the idle baseline (Ollama and LM
Studio load on first use) and a bad endpoint fails before any time is spent measuring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from energyprof.analysis.attribution import mean_ci95
from energyprof.power.base import now_ns
from energyprof.runtimes.base import Clock
from energyprof.runtimes.endpoint.chunks import EndpointError, Usage, shown
from energyprof.runtimes.endpoint.client import Arrival, EndpointClient, StreamResult
from energyprof.runtimes.endpoint.server import ServerProcess, find_server
from energyprof.spec.params import ProfileParams
from energyprof.spec.records import Generation
from energyprof.summary import MeanCI, RunSummary
from energyprof.units import bytes_to_mb, ns_to_s

LOAD_TOKENS = 1
DEVICE = "endpoint"
"""The run row's device for an endpoint run (the hardware is the server's, whatever it uses)."""


@dataclass
class StreamedGeneration(Generation):
    """One streamed completion: the steps (no token ids: the server sends text), and what the server reported."""

    usage: Usage | None = None
    pieces: int = 0
    """Chunks that carried text (the token count when the server sends no usage)."""
    server_model: str | None = None
    finish_reason: str | None = None
    server_cpu_s: float | None = None
    server_rss_bytes: int | None = None
    server_wall_s: float | None = None

    usage_problem: str | None = None
    """Why the server's usage was not believed (then the chunks are counted), or None."""

    @property
    def new_tokens(self) -> int:
        if self.usage is not None and self.usage.completion_tokens is not None:
            return self.usage.completion_tokens
        return self.pieces

    @property
    def approximate(self) -> bool:
        """True when the token counts are counted chunks, not the server's usage."""
        return self.usage is None or self.usage.completion_tokens is None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the prefill step."""
        return ns_to_s(self.steps[0][3] - self.steps[0][2]) if self.steps else None

    def add(self, t_request_ns: int, arrival: Arrival) -> None:
        """One arrival of text as a step (token counts provisional until the usage is known)."""
        idx = len(self.steps)
        t0 = self.steps[-1][3] if self.steps else t_request_ns
        self.steps.append((idx, "prefill" if idx == 0 else "decode", t0, arrival.t_ns,
                           0 if idx == 0 else arrival.pieces, None))
        self.texts.append(arrival.text)
        self.pieces += arrival.pieces

    def count_tokens(self, result: StreamResult, max_tokens: int, prompt: str) -> None:
        """Set each step's token count from the server's usage (prompt tokens on the prefill), when the usage is
        possible for what was asked and received (see `checked_usage`); otherwise from the chunks, flagged."""
        self.usage, self.usage_problem = checked_usage(result.usage, self.pieces, max_tokens, prompt)
        self.server_model, self.finish_reason = result.model, result.finish_reason
        if not self.steps:
            return
        prompt = result.usage.prompt_tokens if result.usage is not None else None
        first = result.arrivals[0].pieces if result.arrivals else 1
        weights = [a.pieces for a in result.arrivals[1:len(self.steps)]]
        decode = spread(max(0, self.new_tokens - first), weights)
        self.steps = [(idx, phase, t0, t1, (prompt or 0) if idx == 0 else decode[idx - 1], tok)
                      for idx, phase, t0, t1, _, tok in self.steps]


MAX_TEMPLATE_TOKENS = 8192
"""Most tokens a server's chat template and system prompt may add to the prompt; more prompt tokens than the
prompt's UTF-8 bytes plus this is not a count of this request."""


def checked_usage(usage: Usage | None, chunks: int, max_tokens: int, prompt: str) -> tuple[Usage | None, str | None]:
    """The server's usage as far as it can be true, and why a figure was dropped (a sentence fragment), or None.

    A server that honours max_tokens generates at most max_tokens tokens, and every chunk of text it streams holds
    at least one token: completion tokens above max_tokens or below the chunks received are not this stream's
    count (the chunks are counted instead, flagged approximate). Prompt tokens above the prompt's UTF-8 bytes plus
    MAX_TEMPLATE_TOKENS are dropped (unknown)."""
    if usage is None:
        return None, None
    completion, prompt_tokens, problems = usage.completion_tokens, usage.prompt_tokens, []
    if completion is not None and (completion > max_tokens or completion < chunks):
        why = f"above the max_tokens {max_tokens:,} asked for" if completion > max_tokens else \
            f"fewer than the {chunks:,} chunks of text it streamed"
        problems.append(f"the server reported {completion:,} completion tokens, {why}")
        completion = None
    prompt_bound = len(prompt.encode("utf-8")) + MAX_TEMPLATE_TOKENS
    if prompt_tokens is not None and prompt_tokens > prompt_bound:
        problems.append(f"the server reported {prompt_tokens:,} prompt tokens for a prompt of "
                        f"{len(prompt.encode('utf-8')):,} bytes")
        prompt_tokens = None
    checked = Usage(prompt_tokens, completion) if prompt_tokens is not None or completion is not None else None
    return checked, "; ".join(problems) or None


def spread(total: int, weights: list[int]) -> list[int]:
    """`total` split into whole numbers proportional to `weights` (largest remainder; the parts add up to it)."""
    if not weights:
        return []
    weight = sum(weights)
    if weight <= 0:
        weights, weight = [1] * len(weights), len(weights)
    exact = [total * w / weight for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return parts


def no_text(where: str, result: StreamResult) -> str:
    """The sentence for a stream that ended before any text."""
    generated = result.usage.completion_tokens if result.usage is not None else None
    if generated:
        return (f"The server at {where} generated {generated} tokens but streamed no text (only special tokens or "
                "incomplete characters); raise --max-new-tokens or change the prompt.")
    said = f" (finish reason: {shown(result.finish_reason, 60)})" if result.finish_reason else ""
    return (f"The stream from {where} ended before any token{said}; check the model name and the prompt, or try "
            "--api completions.")


class EndpointWorkload:
    """Streams completions from an OpenAI-compatible server (energyprof.runtimes.base.Workload)."""

    runtime = "endpoint"

    def __init__(self, params: ProfileParams) -> None:
        self.params = params
        self.layers: list[Any] = []
        self.client: EndpointClient | None = None
        self.server: ServerProcess | None = None
        self.server_note: str | None = None
        self.measured: list[StreamedGeneration] = []

    def load(self) -> dict[str, Any]:
        self.client = EndpointClient(self.params)
        self.server, self.server_note = find_server(self.params.endpoint, self.params.server_pid)
        self.client.stream(LOAD_TOKENS, now_ns)
        return {"model": self.params.model, "device": DEVICE, "dtype": None}

    def tokens_per_repeat(self) -> int:
        return self.params.max_new_tokens

    def generation(self, repeat: int) -> StreamedGeneration:
        gen = StreamedGeneration(repeat, [])
        if repeat >= 0:
            self.measured.append(gen)
        return gen

    def run(self, gen: Any, clock: Clock) -> None:
        assert self.client is not None, "load() first"
        before = self.server.use() if self.server is not None and gen.repeat >= 0 else None
        t_wall = time.monotonic()
        result = self.client.stream(self.params.max_new_tokens, clock, lambda t0, a: gen.add(t0, a))
        after = self.server.use() if before is not None else None
        gen.count_tokens(result, self.params.max_new_tokens, self.params.prompt)
        if before is not None and after is not None:
            gen.server_cpu_s = max(0.0, after.cpu_s - before.cpu_s)
            gen.server_rss_bytes = after.rss_bytes
            gen.server_wall_s = time.monotonic() - t_wall
        if not gen.steps:
            raise EndpointError(no_text(self.client.where, result))

    def cut_short(self, gen: Any) -> None:
        """An interrupted stream keeps its steps, their token counts counted from chunks (no usage came)."""

    def processes(self) -> set[int]:
        return self.server.pids() if self.server is not None else set()

    def describe(self, summary: RunSummary) -> None:
        p, done = self.params, [g for g in self.measured if g.steps]
        summary.model, summary.device, summary.dtype, summary.layers = p.model, DEVICE, None, "none"
        summary.runtime = self.runtime
        summary.runtime_reason = "an OpenAI-compatible server (--endpoint)"
        summary.endpoint, summary.api = p.endpoint, p.api
        summary.server_model = next((g.server_model for g in done if g.server_model), None)
        prompts = [g.usage.prompt_tokens for g in done if g.usage is not None and g.usage.prompt_tokens is not None]
        summary.prompt_tokens = prompts[0] if prompts else None
        summary.tokens_approximate = any(g.approximate for g in done)
        summary.usage_rejected = next((g.usage_problem for g in done if g.usage_problem), None)
        summary.stream_chunks = [g.pieces for g in done]
        ttft = [g.ttft_s for g in done if g.ttft_s is not None]
        if ttft:
            mean, half = mean_ci95(ttft)
            summary.ttft_s = MeanCI(mean, half, len(ttft))
        self._describe_server(summary, done)

    def _describe_server(self, summary: RunSummary, done: list[StreamedGeneration]) -> None:
        if self.server is None:
            summary.server_note = self.server_note
            return
        summary.server_pid, summary.server_process = self.server.pid, self.server.label
        used = [g for g in done if g.server_cpu_s is not None]
        summary.server_cpu_s = [g.server_cpu_s for g in used]
        summary.server_rss_mb = [bytes_to_mb(g.server_rss_bytes) for g in used if g.server_rss_bytes is not None]
        wall = sum(g.server_wall_s or 0.0 for g in used)
        summary.server_cores = sum(summary.server_cpu_s) / wall if wall > 0 else None
