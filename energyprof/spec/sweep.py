"""A sweep's grid: lists of values for the sweepable parameters (ParamSpec.sweepable in the parameter table), every
combination of them in a fixed order, and the usual profile parameters for the rest.

Points are ordered with the parameters that need a model load (model, runtime, device, dtype) outermost, so consecutive
points share a loaded model. The spec is stored as JSON in the sweep row; re-running a sweep compares specs, so
a sweep is only resumed with the options it was started with. This module imports nothing heavy (the dashboard
imports it).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from energyprof.spec.params import ProfileParams, field_types, param_specs, spec_of, value_errors

SWEEP_DEFAULTS: dict[str, Any] = {"target_ci": 5.0, "max_seconds": 30.0}
"""What a sweep's points ask for unless told otherwise: repeats until the decode J/token 95 % CI is within 5 % of
the mean (at least `repeats`, at most 30 s of repeats per point), so the curves compare like with like."""
LOAD_AXES: tuple[str, ...] = ("model", "runtime", "device", "dtype")
"""Sweepable parameters that need a model load: outermost in the point order."""
MAX_POINTS = 1000
SWEEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A sweep id: letters, digits, '.', '_' and '-', at most 64 characters (it names a log file and a link)."""


def sweepable_names() -> tuple[str, ...]:
    """The sweepable parameters in point order: the table's order, those needing a model load first."""
    names = [name for name, spec in param_specs() if spec.sweepable]
    return tuple(sorted(names, key=lambda name: name not in LOAD_AXES))


def parse_value(name: str, text: str) -> Any:
    """One value of a sweepable parameter from text, checked against the table; ValueError with one sentence."""
    kind, spec = field_types()[name], spec_of(name)
    text = text.strip()
    if not text:
        raise ValueError(f"An empty value in the list for {spec.label.lower()}; separate values with commas.")
    value: Any = text
    if kind in (int, float):
        if spec.none_means is not None and text.lower() == "none":
            return None
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{text!r} in the list for {spec.label.lower()} is not {what}.") from None
    problems = value_errors(name, value)
    if problems:
        raise ValueError(problems[0])
    return value


def parse_values(name: str, text: str) -> list[Any]:
    """A comma-separated list of values of a sweepable parameter, each checked, repeats dropped (order kept)."""
    values: list[Any] = []
    for piece in text.split(","):
        value = parse_value(name, piece)
        if value not in values:
            values.append(value)
    return values


def axis_values(name: str, value: Any) -> list[Any]:
    """A form's list widget value as the axis: chosen values (each checked), or comma-separated text (parsed; empty
    text means the one unset value of an optional parameter). ValueError with one sentence."""
    if isinstance(value, list | tuple):
        for item in value:
            problems = value_errors(name, item)
            if problems:
                raise ValueError(problems[0])
        if not value:
            raise ValueError(f"Pick at least one {spec_of(name).label.lower()} for the sweep.")
        return list(value)
    text = str(value or "").strip()
    if not text:
        if spec_of(name).none_means is not None:
            return [None]
        raise ValueError(f"Give at least one {spec_of(name).label.lower()} for the sweep.")
    return parse_values(name, text)


def new_sweep_id() -> str:
    """A fresh sweep id: the time and a few random hex digits (sorts by time, never collides in practice)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def sweep_id_error(text: str) -> str | None:
    """One sentence when `text` cannot be a sweep id."""
    if SWEEP_ID.fullmatch(text or ""):
        return None
    return (f"{text[:80]!r} is not a sweep id; use up to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit.")


@dataclass
class SweepSpec:
    """The usual profile parameters (`base`) and, per sweepable parameter, the values to profile (`axes`)."""

    base: ProfileParams
    axes: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = self.axes
        self.axes = {name: list(given.get(name, [getattr(self.base, name)])) for name in sweepable_names()}
        self.base = dataclasses.replace(self.base, **{name: values[0] for name, values in self.axes.items() if values})

    @property
    def size(self) -> int:
        count = 1
        for values in self.axes.values():
            count *= len(values)
        return count

    def point_values(self) -> list[dict[str, Any]]:
        """The sweepable values of every point, in order."""
        names = list(self.axes)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())]

    def points(self) -> list[ProfileParams]:
        """The profile parameters of every point, in order."""
        return [dataclasses.replace(self.base, **values) for values in self.point_values()]

    def varied(self) -> list[str]:
        """The sweepable parameters with more than one value."""
        return [name for name, values in self.axes.items() if len(values) > 1]

    def errors(self) -> list[str]:
        """Every problem with the grid, each one sentence (the first problem of each kind of point)."""
        problems = [f"The list for {spec_of(n).label.lower()} is empty; give at least one value."
                    for n, values in self.axes.items() if not values]
        if problems:
            return problems
        if self.size > MAX_POINTS:
            return [f"The sweep has {self.size:,} points; the limit is {MAX_POINTS:,}, so give fewer values."]
        for params in self.points():
            for problem in params.errors():
                if problem not in problems:
                    problems.append(problem)
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "axes": {name: list(values) for name, values in self.axes.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        axes = data.get("axes") or {}
        return cls(ProfileParams.from_dict(data.get("base") or {}),
                   {name: list(axes[name]) for name in sweepable_names() if isinstance(axes.get(name), list)})

    def difference(self, asked: SweepSpec) -> str | None:
        """How the options `asked` for differ from this (stored) spec, first difference only, or None."""
        mine, theirs = self.to_dict(), asked.to_dict()
        for name, values in mine["axes"].items():
            if theirs["axes"].get(name) != values:
                return f"--{name.replace('_', '-')} was {_text(values)}, not {_text(theirs['axes'].get(name))}"
        for name, value in mine["base"].items():
            if name not in mine["axes"] and theirs["base"].get(name) != value:
                return f"--{name.replace('_', '-')} was {value!r}, not {theirs['base'].get(name)!r}"
        return None


def _text(values: Any) -> str:
    return ",".join("none" if v is None else str(v) for v in values) if isinstance(values, list) else repr(values)


def describe(values: dict[str, Any]) -> str:
    """A point's sweepable values for people, e.g. "tiny, cpu, float32, batch 4, 64 prompt tokens, 8 new tokens"
    (`runtime mlx` when a runtime is asked for)."""
    parts = []
    for name, value in values.items():
        if name == "runtime":
            if value != "auto":  # the default: the run's own runtime is shown beside the point
                parts.append(f"runtime {value}")
        elif name in LOAD_AXES:
            parts.append(str(value))
        elif name == "batch":
            parts.append(f"batch {value}")
        elif name == "prompt_tokens":
            parts.append("own prompt length" if value is None else f"{value} prompt tokens")
        elif name == "max_new_tokens":
            parts.append(f"{value} new tokens")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts)
