"""The New-profile form, generated from the parameter table (energyprof.spec.params): one widget per parameter,
with the table's label, default, range, choices and help. Nothing here repeats a default or a range.

For a sweep, the sweepable parameters get list widgets instead (several choices, or comma-separated values that
energyprof.spec.sweep parses)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from energyprof.spec.params import BUILTIN_MODEL_NAMES, GROUPS, ParamSpec, defaults, field_types, param_specs

COLUMNS = 3
WIDE_WIDGETS = ("model", "text_area")
"""Widgets that take a whole row."""


def param_widgets(choices: Mapping[str, tuple[str, ...]] | None = None, *, key_prefix: str = "",
                  groups: tuple[str, ...] | None = None, skip: tuple[str, ...] = (), lists: tuple[str, ...] = (),
                  overrides: Mapping[str, Any] | None = None,
                  widgets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Draw every parameter's widget, by group, and return {name: value} (call inside st.form).

    `choices` narrows a parameter's choices to what this machine offers (e.g. the available power sources);
    parameters in `lists` get a list widget (their value: a list of choices, or the comma-separated text);
    `overrides` replaces defaults (a sweep's); `widgets` overrides a parameter's widget (`text`: a text input that
    starts empty, e.g. an endpoint's model name)."""
    values: dict[str, Any] = {}
    ctx = _Context(choices, key_prefix, frozenset(lists), {**defaults(), **(overrides or {})})
    specs = [(n, dataclasses.replace(s, widget=(widgets or {}).get(n, s.widget))) for n, s in param_specs()
             if s.form and n not in skip]
    for group, heading in GROUPS.items():
        if groups is not None and group not in groups:
            continue
        fields = [(n, s) for n, s in specs if s.group == group]
        if not fields:
            continue
        st.markdown(f"**{heading}**")
        row: list[tuple[str, ParamSpec]] = []
        for name, spec in fields:
            if spec.widget in WIDE_WIDGETS:
                values.update(_row(row, ctx))
                row = []
                values[name] = _widget(st, name, spec, ctx)
                continue
            row.append((name, spec))
            if len(row) == COLUMNS:
                values.update(_row(row, ctx))
                row = []
        values.update(_row(row, ctx))
    return values


@dataclass(frozen=True)
class _Context:
    """What every widget of one form shares."""

    choices: Mapping[str, tuple[str, ...]] | None
    key_prefix: str
    lists: frozenset[str]
    defaults: Mapping[str, Any]


def _row(fields: list[tuple[str, ParamSpec]], ctx: _Context) -> dict[str, Any]:
    if not fields:
        return {}
    columns = st.columns(COLUMNS)
    return {name: _widget(col, name, spec, ctx) for col, (name, spec) in zip(columns, fields, strict=False)}


def _widget(where: Any, name: str, spec: ParamSpec, ctx: _Context) -> Any:
    """One parameter's widget; returns its value as the parameter's type (None for an unset optional)."""
    default, kind, key = ctx.defaults[name], field_types()[name], f"{ctx.key_prefix}{name}"
    options = (ctx.choices or {}).get(name) or spec.allowed()
    if name in ctx.lists:
        return _list_widget(where, spec, default, key, options)
    if spec.widget == "text":
        return where.text_input(spec.label, "", key=key, help=spec.help).strip()
    if spec.widget == "model":
        return _model_widget(where, spec, default, key)
    if spec.widget == "text_area":
        return where.text_area(spec.label, default, key=key, help=spec.help)
    if options is not None:
        options = tuple(options)
        index = options.index(default) if default in options else 0
        return where.selectbox(spec.label, options, index=index, key=key, help=spec.help)
    if kind is bool:
        value = where.checkbox(spec.label, default, key=key, help=spec.help)
        if spec.caution:
            where.warning(spec.caution, icon=":material/warning:")
        return bool(value)
    if kind in (int, float):
        return _number_widget(where, spec, kind, default, key)
    text = where.text_input(spec.label, "" if default is None else str(default), key=key, help=spec.help)
    return None if spec.none_means is not None and not text.strip() else text.strip()


def _number_widget(where: Any, spec: ParamSpec, kind: type, default: Any, key: str) -> Any:
    """A number input over the table's range; an optional number shows 0 for "unset"."""
    lo, hi = spec.minimum, spec.maximum
    label = spec.label
    if spec.none_means is not None:
        label = f"{spec.label} (0 = {spec.none_means})"
        lo = 0
        default = 0 if default is None else default
    cast = int if kind is int else float
    step = cast(spec.step) if spec.step is not None else cast(1) if kind is int else None
    value = where.number_input(label, cast(lo) if lo is not None else None, cast(hi) if hi is not None else None,
                               cast(default), step=step, key=key, help=spec.help)
    if spec.none_means is not None and not value:
        return None
    return cast(value)


def _list_widget(where: Any, spec: ParamSpec, default: Any, key: str, options: Any) -> Any:
    """A sweepable parameter's values: several choices (a list), or comma-separated text (parsed by the caller)."""
    if options is not None:
        options = tuple(options)
        return where.multiselect(f"{spec.label}s" if not spec.label.endswith("s") else spec.label, options,
                                 default=[default] if default in options else [], key=key, help=spec.help)
    shown = "" if default is None else str(default)
    unset = f"; leave empty for {spec.none_means}" if spec.none_means else ""
    return where.text_input(f"{spec.label} (comma-separated)", shown, key=key,
                            help=f"{spec.help}; several values separated by commas{unset}")


def _model_widget(where: Any, spec: ParamSpec, default: str, key: str) -> str:
    """A built-in model, or a Hugging Face id / local folder typed in (which wins when filled in)."""
    left, right = where.columns(2)
    builtin = left.selectbox("Built-in model (random weights, no download)", BUILTIN_MODEL_NAMES,
                             index=BUILTIN_MODEL_NAMES.index(default) if default in BUILTIN_MODEL_NAMES else 0,
                             key=key, help=spec.help)
    custom = right.text_input("…or a Hugging Face model id or local folder", key=f"{key}_custom",
                              placeholder="e.g. ./my-model or Qwen/Qwen2.5-0.5B (used when filled in)")
    return custom.strip() or builtin
