"""The parameters of a profiling run: one table (default, range, choices, help, label) that the engine validates
against, `energyprof profile` builds its options from, and the New-profile form builds its widgets from.

Each field of `ProfileParams` carries its `ParamSpec` in the dataclass field's metadata; `param_specs()` lists
them in order. The default lives on the field, the rest on the spec; nothing else repeats them. This module
imports nothing heavy (the dashboard imports it).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from energyprof.power.registry import AUTO, SOURCE_NAMES
from energyprof.runtimes.endpoint.url import api_key_env_problem, endpoint_problem
from energyprof.spec.records import LoopOptions

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog."
MAX_PROMPT_CHARS = 100_000
MAX_PROMPT_TOKENS = 32_768
"""Longest exact prompt (--prompt-tokens) any model is asked for; the model's own limit is checked when it loads."""
MAX_BATCH = 256
BUILTIN_MODEL_NAMES: tuple[str, ...] = ("tiny", "small", "medium")
"""Names of the built-in models (energyprof.runtimes.transformers.models.BUILTIN_MODELS, which imports torch;
a test checks they match)."""
LAYER_DEPTHS: tuple[str, ...] = ("none", "blocks", "modules")
LAYER_ENERGY_METHODS: tuple[str, ...] = ("apportioned", "replay")
"""How per-layer energy is obtained: time shares of the measured windows, or each layer replayed alone
(energyprof.runtimes.transformers.replay)."""
DTYPE_NAMES: tuple[str, ...] = ("float32", "float16", "bfloat16")
DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "mps", "cuda")
MAX_REPEATS = 1000
INTERVAL_MS_RANGE: tuple[int, int] = (10, 9_999)
"""Sampling intervals accepted everywhere (the powermetrics sudo rule allows exactly 10-9999 ms)."""

GROUPS: dict[str, str] = {"model": "Model", "endpoint": "Endpoint", "power": "Power", "profiling": "Profiling",
                          "sampling": "Sampling"}
"""Form sections, in order: group key -> heading."""
MODES: tuple[str, ...] = ("local", "endpoint")
"""What a run profiles: a model loaded here (`local`) or an OpenAI-compatible server (`endpoint`, see
energyprof.runtimes.endpoint)."""
API_KINDS: tuple[str, ...] = ("chat", "completions")
TIMEOUT_S_RANGE: tuple[float, float] = (0.1, 3600.0)


def _source_choices() -> tuple[str, ...]:
    return (AUTO, *SOURCE_NAMES)


NO_CROSS_CHECK = "none"


def _cross_check_choices() -> tuple[str, ...]:
    return (NO_CROSS_CHECK, *SOURCE_NAMES)


@dataclass(frozen=True)
class ParamSpec:
    """What the CLI and the form need to know about one parameter (its default is the dataclass field's)."""

    help: str
    label: str
    group: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    """The value must be above `minimum`, not equal to it."""
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    step: float | None = None
    indexed: bool = False
    """A choice may carry a `:N` suffix (cuda:1)."""
    none_means: str | None = None
    """For an optional number: what leaving it unset means (the form shows 0 for it)."""
    caution: str | None = None
    """A warning the form shows under the widget (e.g. what turning it on allows)."""
    widget: str | None = None
    """A widget other than the type's default: `text_area` (long text), `model` (built-in or custom), `text` (a text
    input that starts empty)."""
    cli: bool = True
    form: bool = True
    modes: tuple[str, ...] = MODES
    """The modes the parameter applies to (the form shows it only there; elsewhere it is ignored)."""
    sweepable: bool = False
    """`energyprof sweep` (and the form's sweep tab) takes a list of values for it (energyprof.spec.sweep)."""

    def allowed(self) -> tuple[str, ...] | None:
        """The choices, computed when they depend on what is installed."""
        return self.choices() if callable(self.choices) else self.choices


def param(default: Any, **spec: Any) -> Any:
    """A ProfileParams field with its spec."""
    return field(default=default, metadata={"spec": ParamSpec(**spec)})


@dataclass
class ProfileParams:
    """Everything a profiling run needs; stored as the run's params JSON."""

    model: str = param("tiny", label="Model", group="model", widget="model", sweepable=True,
                       help="built-in model (tiny, small, medium: random weights, no download), a local model "
                            "folder or a Hugging Face id; with --endpoint, the server's name for the model")
    prompt: str = param(DEFAULT_PROMPT, label="Prompt", group="model", widget="text_area",
                        help="the prompt text")
    prompts: list[str] | None = param(None, label="Prompts", group="model", cli=False, form=False,
                                      help="one prompt per sequence of the batch, in order (from --prompt-file in "
                                           "lines or JSONL form); unset or one prompt: the prompt, copied")
    prompt_tokens: int | None = param(None, label="Prompt tokens", group="model", minimum=1, modes=("local",),
                                      maximum=MAX_PROMPT_TOKENS, none_means="the prompt's own length",
                                      sweepable=True,
                                      help="a deterministic prompt of exactly this many tokens for the model's "
                                           "tokenizer (the prompt text repeated, then cut), for each sequence")
    batch: int = param(1, label="Batch size", group="model", minimum=1, maximum=MAX_BATCH, sweepable=True,
                       modes=("local",),
                       help="sequences generated together (left-padded, with an attention mask); one prompt is "
                            "copied to each, a prompt file gives each its own")
    max_new_tokens: int = param(32, label="Max new tokens", group="model", minimum=1, maximum=100_000,
                                sweepable=True,
                                help="tokens to generate per sequence and repeat (fewer when the model ends the "
                                     "text first)")
    ignore_eos: bool = param(False, label="Ignore end-of-sequence (always generate max new tokens)", group="model",
                             help="always generate max-new-tokens tokens (an endpoint gets `ignore_eos`, which "
                                  "llama.cpp and vLLM honour)")
    device: str = param("auto", label="Device", group="model", choices=DEVICE_NAMES, indexed=True, modes=("local",),
                        sweepable=True,
                        help="auto (cuda, else mps, else cpu), cpu, mps or cuda")
    dtype: str = param("float32", label="Dtype", group="model", choices=DTYPE_NAMES, modes=("local",), sweepable=True,
                       help="weights and activations precision")
    source: str = param("auto", label="Power source", group="power", choices=_source_choices,
                        help="power source (auto = the first measured source that works here, else the estimate)")
    cross_check: str = param(NO_CROSS_CHECK, label="Cross-check source", group="power", choices=_cross_check_choices,
                             help="a second power source recorded during the same run, for a second opinion on the "
                                  "first (none: no cross-check)")
    interval_ms: int | None = param(None, label="Sampling interval (ms)", group="power",
                                    minimum=INTERVAL_MS_RANGE[0], maximum=INTERVAL_MS_RANGE[1], step=10,
                                    none_means="the source's own", help="power sampling interval in ms")
    grid_g_per_kwh: float | None = param(None, label="Grid intensity (g CO2e/kWh)", group="power", minimum=0.0,
                                         maximum=5_000.0, step=10.0, none_means="no CO2e figure",
                                         help="your electricity's carbon intensity, for gCO2e per 1,000 tokens "
                                              "(the figure you give; nothing is looked up)")
    baseline_s: float = param(2.0, label="Idle baseline (s)", group="power", minimum=0.0, maximum=600.0, step=0.5,
                              help="seconds of idle baseline (model loaded, nothing running) before the workload; "
                                   "0: none, so no net energy")
    layers: str = param("blocks", label="Layer depth", group="profiling", choices=LAYER_DEPTHS, modes=("local",),
                        help="layer hooks: none, blocks (embedding, each block, norm, lm_head) or modules (also "
                             "attention and MLP)")
    repeats: int = param(3, label="Repeats", group="profiling", minimum=1, maximum=MAX_REPEATS,
                         help="measured repeats (mean and 95% CI over them); with a target CI, the least")
    target_ci: float | None = param(None, label="Target CI (%)", group="profiling", minimum=0.1, maximum=100.0,
                                    step=0.5, none_means="a fixed number of repeats",
                                    help="keep adding repeats until the decode J/token 95% CI half-width is at most "
                                         "this % of the mean (bounded by max-seconds)")
    max_seconds: float = param(60.0, label="Max seconds of repeats", group="profiling", minimum=1.0,
                               maximum=86_400.0, step=5.0,
                               help="with a target CI: no repeat starts that would end the repeats later than "
                                    "this many seconds after the first began")
    warmup: int = param(1, label="Warm-up runs", group="profiling", minimum=0, maximum=100,
                        help="unmeasured warm-up runs before the repeats")
    layer_energy: str = param("apportioned", label="Per-layer energy", group="profiling",
                              choices=LAYER_ENERGY_METHODS,
                              help="apportioned (a time share of each power window) or replay (after the repeats, "
                                   "each hooked layer is called alone in a loop until the meter can see it: "
                                   "measured, but takes longer)")
    replay_step: int | None = param(None, label="Replay decode step", group="profiling", minimum=1,
                                    maximum=100_000, none_means="the middle decode step",
                                    help="with replay: the decode step whose layer inputs are replayed")
    replay_s: float | None = param(None, label="Replay seconds per trial", group="profiling", minimum=0.01,
                                   maximum=600.0, step=0.1,
                                   none_means="10 counter updates or sample windows, at least 1 s",
                                   help="with replay: seconds each layer is called in a loop per trial")
    replay_trials: int = param(3, label="Replay trials", group="profiling", minimum=1, maximum=100,
                               help="with replay: trials per layer and phase (mean and 95% CI over them)")
    temperature: float = param(0.0, label="Temperature", group="sampling", minimum=0.0, maximum=100.0, step=0.1,
                               help="sampling temperature (0: greedy)")
    top_p: float = param(1.0, label="Top-p", group="sampling", minimum=0.0, maximum=1.0, exclusive_min=True, step=0.05,
                         help="nucleus sampling threshold, above 0 (1 keeps every token)")
    seed: int = param(0, label="Seed", group="sampling", minimum=0, maximum=2**53 - 1,
                      help="sampling seed (at most 2^53 - 1, so JSON and browsers keep it exact)")
    trust_remote_code: bool = param(False, label="Trust remote code", group="model", modes=("local",),
                                    help="allow a model repository's own code to run (only for code you trust)",
                                    caution="Trust remote code runs Python code shipped with the model on this "
                                            "machine, with your rights. Leave it off unless you have read that code "
                                            "or trust its author.")
    endpoint: str | None = param(None, label="Endpoint (API base URL)", group="endpoint", modes=("endpoint",),
                                 none_means="load the model here",
                                 help="profile an OpenAI-compatible server (Ollama, LM Studio, llama.cpp, "
                                      "mlx_lm.server, vLLM) instead of loading the model: its API base URL, e.g. "
                                      "http://127.0.0.1:11434/v1 (http or https only)")
    api: str = param("chat", label="API", group="endpoint", choices=API_KINDS, modes=("endpoint",),
                     help="the endpoint's streaming API: chat (/chat/completions) or completions (/completions)")
    api_key_env: str | None = param(None, label="API key environment variable", group="endpoint", modes=("endpoint",),
                                    none_means="no key",
                                    help="the NAME of an environment variable holding the endpoint's API key (sent "
                                         "as a Bearer token); never the key itself, which is neither stored nor "
                                         "logged")
    timeout_s: float = param(60.0, label="Stall timeout (s)", group="endpoint", minimum=TIMEOUT_S_RANGE[0],
                             maximum=TIMEOUT_S_RANGE[1], step=5.0, modes=("endpoint",),
                             help="seconds without data from the endpoint before the run fails as stalled (also "
                                  "the longest wait for a first token, model loading included)")
    server_pid: int | None = param(None, label="Server process id", group="endpoint", minimum=1, maximum=2**31 - 1,
                                   modes=("endpoint",), none_means="found from the endpoint's local port",
                                   help="the server's process id, to record its CPU time and memory")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileParams:
        """Parameters from a run's params JSON; unknown keys are ignored, numbers coerced to each field's type."""
        types = field_types()
        values = {key: _coerce(key, value, types[key]) for key, value in (data or {}).items() if key in types}
        return cls(**values)

    @property
    def mode(self) -> str:
        """`endpoint` when an endpoint URL is given, else `local`."""
        return "local" if self.endpoint is None else "endpoint"

    def errors(self, *, check_model: bool = True, mode: str | None = None) -> list[str]:
        """Every problem with these parameters, each one sentence saying what to change (`mode`: the one the
        form was filled in for; an endpoint mode without an endpoint URL is a problem)."""
        problems = []
        if mode == "endpoint" and self.mode != "endpoint":
            problems.append(endpoint_problem(self.endpoint))
        if self.mode == "endpoint":
            if not str(self.model).strip():
                problems.append("The model name is empty; give the name the server knows the model by (e.g. "
                                "llama3.2 for Ollama).")
            problems += [p for p in (endpoint_problem(self.endpoint), api_key_env_problem(self.api_key_env)) if p]
        elif check_model and not str(self.model).strip():
            problems.append("The model name is empty; give a built-in name (tiny, small, medium), a folder or a "
                            "Hugging Face id.")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            problems.append("The prompt is empty; give some text to profile.")
        elif len(self.prompt) > MAX_PROMPT_CHARS:
            problems.append(f"The prompt has {len(self.prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
        if self.cross_check != NO_CROSS_CHECK and self.cross_check == self.source:
            problems.append(f"The cross-check source {self.cross_check} is the run's own source; choose another one, "
                            "or none.")
        problems += self._prompts_errors()
        skip = set() if check_model else {"device", "dtype"}
        for name, spec in param_specs():
            if name not in skip and name not in ("endpoint", "api_key_env"):
                problems += _value_errors(name, getattr(self, name), spec, field_types()[name])
        return problems + self._replay_errors()

    def _replay_errors(self) -> list[str]:
        """Replay needs layer hooks, and a decode step the generation reaches."""
        if self.layer_energy != "replay":
            return []
        problems = []
        if self.layers == "none":
            problems.append("Replaying layers needs layer hooks; set the layer depth to blocks or modules.")
        if isinstance(self.replay_step, int) and isinstance(self.max_new_tokens, int) \
                and self.replay_step >= self.max_new_tokens:
            problems.append(f"The replay step {self.replay_step} is never reached: {self.max_new_tokens} new tokens "
                            f"give decode steps 1 to {self.max_new_tokens - 1}; choose one of those.")
        return problems

    def _prompts_errors(self) -> list[str]:
        """Problems with the per-sequence prompts (a list of non-empty texts, enough for the batch)."""
        if self.prompts is None:
            return []
        if not isinstance(self.prompts, list) or not all(isinstance(p, str) for p in self.prompts):
            return ["The prompts must be a list of texts."]
        if not self.prompts or any(not p.strip() for p in self.prompts):
            return ["A prompt of the prompt list is empty; give some text for each sequence."]
        total = sum(len(p) for p in self.prompts)
        if total > MAX_PROMPT_CHARS:
            return [f"The prompts have {total:,} characters together; the limit is {MAX_PROMPT_CHARS:,}."]
        if isinstance(self.batch, int) and 1 < len(self.prompts) < self.batch:
            return [f"A batch of {self.batch} needs {self.batch} prompts, one per sequence, and the prompt list has "
                    f"{len(self.prompts)}; give more prompts, one prompt (copied), or a smaller batch."]
        return []

    def sequence_texts(self) -> list[str]:
        """The prompt text of each sequence of the batch: the first `batch` prompts of the list, else copies of the
        one prompt."""
        if self.prompts and len(self.prompts) > 1:
            return list(self.prompts[:self.batch])
        return [self.prompts[0] if self.prompts else self.prompt] * self.batch

    def validate(self, *, check_model: bool = True) -> None:
        """Raise ValueError with the first problem, if any."""
        problems = self.errors(check_model=check_model)
        if problems:
            raise ValueError(problems[0])

    def loop_options(self) -> LoopOptions:
        return LoopOptions(self.max_new_tokens, self.ignore_eos, self.temperature, self.top_p, self.seed)


def param_specs() -> list[tuple[str, ParamSpec]]:
    """(name, spec) of every parameter, in the table's order."""
    return [(f.name, f.metadata["spec"]) for f in dataclasses.fields(ProfileParams)]


def not_in_mode(mode: str) -> tuple[str, ...]:
    """The parameters that do not apply to a mode (the form leaves them out)."""
    return tuple(name for name, spec in param_specs() if mode not in spec.modes)


def spec_of(name: str) -> ParamSpec:
    return dict(param_specs())[name]


def defaults() -> dict[str, Any]:
    """Every parameter's default."""
    return ProfileParams().to_dict()


def field_types() -> dict[str, type]:
    """The value type of each parameter (int, float, bool or str; Optional unwrapped)."""
    hints = typing.get_type_hints(ProfileParams)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if args else hint
    return out


def value_errors(name: str, value: Any) -> list[str]:
    """Problems with one parameter's value against the table (type, range, choices)."""
    return _value_errors(name, value, spec_of(name), field_types()[name])


def _coerce(key: str, value: Any, kind: type) -> Any:
    """A JSON value as the field's type (an integral float becomes an int; strings stay strings)."""
    if value is None:
        return None
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"The parameter {key} must be true or false, not {value!r}.")
    return value


def _value_errors(name: str, value: Any, spec: ParamSpec, kind: type) -> list[str]:
    """Problems with one value against its spec (type, range, choices)."""
    if value is None and spec.none_means is not None:
        return []
    allowed = spec.allowed()
    if allowed is not None:
        base = str(value).split(":", 1)[0] if spec.indexed else value
        if base not in allowed:
            return [f"Unknown {spec.label.lower()} {value!r}; use one of {', '.join(map(str, allowed))}."]
        return []
    if kind is bool:
        return [] if isinstance(value, bool) else [f"{name} must be true or false, not {value!r}."]
    if kind in (int, float):
        ok = _is_number(value, kind) and (spec.minimum is None or value >= spec.minimum) and \
            (spec.maximum is None or value <= spec.maximum)
        if not ok:
            what = "a whole number" if kind is int else "a number"
            return [f"{name} must be {what} from {spec.minimum:g} to {spec.maximum:g}, not {value!r}."]
        if spec.exclusive_min and value == spec.minimum:
            return [f"{name} must be above {spec.minimum:g}, not {value!r}."]
        return []
    if kind is str and not isinstance(value, str):
        return [f"{name} must be text, not {value!r}."]
    return []


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)
