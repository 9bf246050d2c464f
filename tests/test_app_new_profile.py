"""The new-profile page: the form launches the runner with every option, refusal of a second job, cancel,
and a job whose process died shown as failed."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from seed import open_page, seed_run, texts

from energyprof.runner import jobs
from energyprof.spec.params import BUILTIN_MODEL_NAMES, DEVICE_NAMES, DTYPE_NAMES
from energyprof.store import Store

PAGE = "pages/new.py"


def test_launch_passes_every_option(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_launch(s: Store, params: dict[str, Any]) -> int:
        calls.append(params)
        return s.create_run("profile", status="queued", model=params["model"], params=params)

    monkeypatch.setattr(jobs, "launch_job", fake_launch)
    at = open_page(PAGE)
    assert not at.exception
    assert at.checkbox(key="trust_remote_code").value is False
    assert any("Trust remote code" in t for t in texts(at, "warning"))
    at.text_input(key="model_custom").set_value("  ./my-model  ")
    at.text_area(key="prompt").set_value("Hello there")
    at.number_input(key="max_new_tokens").set_value(17)
    at.checkbox(key="ignore_eos").set_value(False)
    at.selectbox(key="device").set_value("cpu")
    at.selectbox(key="dtype").set_value("bfloat16")
    at.selectbox(key="source").set_value("estimate")
    at.number_input(key="interval_ms").set_value(50)
    at.number_input(key="baseline_s").set_value(2.5)
    at.selectbox(key="layers").set_value("modules")
    at.number_input(key="repeats").set_value(4)
    at.number_input(key="warmup").set_value(2)
    at.number_input(key="temperature").set_value(0.7)
    at.number_input(key="top_p").set_value(0.9)
    at.number_input(key="seed").set_value(42)
    at.number_input(key="batch").set_value(4)
    at.number_input(key="prompt_tokens").set_value(64)
    at.number_input(key="target_ci").set_value(5.0)
    at.number_input(key="max_seconds").set_value(30.0)
    at.number_input(key="grid_g_per_kwh").set_value(350.0)
    at.button(key="launch").click().run()
    assert not at.exception
    assert calls == [{"model": "./my-model", "prompt": "Hello there", "max_new_tokens": 17, "ignore_eos": False,
                      "device": "cpu", "dtype": "bfloat16", "source": "estimate", "cross_check": "none",
                      "interval_ms": 50,
                      "layers": "modules", "repeats": 4, "warmup": 2, "baseline_s": 2.5, "temperature": 0.7,
                      "top_p": 0.9, "seed": 42, "trust_remote_code": False, "endpoint": None, "api": "chat",
                      "api_key_env": None, "timeout_s": 60.0, "server_pid": None, "layer_energy": "apportioned",
                      "replay_step": None, "replay_s": None, "replay_trials": 3, "prompts": None,
                      "prompt_tokens": 64, "batch": 4, "target_ci": 5.0, "max_seconds": 30.0,
                      "grid_g_per_kwh": 350.0}]
    assert any("Job #1 started" in t for t in texts(at, "success"))
    assert any(m.label == "Tokens done" for m in at.metric)
    assert at.button(key="cancel-1")


def test_defaults_are_a_builtin_model_and_auto_source(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(jobs, "launch_job", lambda s, p: calls.append(p) or s.create_run("profile", params=p))
    at = open_page(PAGE)
    assert at.selectbox(key="model").options == list(BUILTIN_MODEL_NAMES)
    assert at.selectbox(key="source").options[0] == "auto"
    at.button(key="launch").click().run()
    assert calls[0]["model"] == "tiny" and calls[0]["source"] == "auto" and calls[0]["interval_ms"] is None
    assert calls[0]["trust_remote_code"] is False


def test_invalid_parameters_are_refused_before_launch(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(jobs, "launch_job", lambda s, p: calls.append(p) or 1)
    at = open_page(PAGE)
    at.text_area(key="prompt").set_value("   ")
    at.button(key="launch").click().run()
    assert calls == [] and any("prompt is empty" in t for t in texts(at, "error"))


def test_second_launch_is_refused(store: Store) -> None:
    running = seed_run(store, tokens=10, status="running")
    at = open_page(PAGE)
    at.button(key="launch").click().run()  # real jobs.launch_job: the database refuses a second job
    assert not at.exception
    assert any("already running" in t and f"run {running}" in t for t in texts(at, "error"))
    assert len(store.list_runs()) == 1


def test_cancel_stops_the_job(store: Store) -> None:
    running = seed_run(store, tokens=10, status="running")
    at = open_page(PAGE)
    assert any(m.label == "Tokens done" and m.value == "5" for m in at.metric)
    at.button(key=f"cancel-{running}").click().run()
    assert not at.exception
    assert store.get_run(running)["status"] == "cancelled"
    assert any(f"Job #{running} cancelled" in t for t in texts(at, "success"))
    assert f"cancel-{running}" not in [b.key for b in at.button]


def test_dead_job_is_shown_failed(store: Store) -> None:
    running = seed_run(store, tokens=10, status="running")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    store.update_run(running, pid=int(dead.stdout))
    at = open_page(PAGE)
    assert not at.exception
    run = store.get_run(running)
    assert run["status"] == "failed" and "ended without finishing" in run["error"]
    assert not any(m.label == "Tokens done" for m in at.metric)


def test_builtin_names_match_the_engine() -> None:
    models = pytest.importorskip("energyprof.runtimes.transformers.models")
    assert tuple(models.BUILTIN_MODELS) == BUILTIN_MODEL_NAMES
    assert tuple(models.DEVICES) == DEVICE_NAMES
    assert tuple(models.DTYPES) == DTYPE_NAMES


def test_every_form_widget_comes_from_the_parameter_table(store: Store) -> None:
    from energyprof.spec.params import defaults, field_types, not_in_mode, param_specs

    at = open_page(PAGE)
    values, types = defaults(), field_types()
    for mode, prefix in (("Local model", ""), ("Endpoint", "endpoint_")):
        at.radio(key="mode").set_value(mode).run()
        skipped = not_in_mode("endpoint" if prefix else "local")
        for name, spec in param_specs():
            if not spec.form or name in skipped:
                continue
            key = prefix + name
            if prefix and name == "model":  # the server's name for the model: typed, starts empty
                widget, expected = at.text_input(key=key), ""
            elif spec.widget == "text_area":
                widget = at.text_area(key=key)
            elif spec.widget == "model" or spec.allowed() is not None:
                widget = at.selectbox(key=key)
            elif types[name] is bool:
                widget = at.checkbox(key=key)
            elif types[name] is str:
                widget = at.text_input(key=key)
            else:
                widget = at.number_input(key=key)
                if spec.minimum is not None and spec.none_means is None:
                    assert widget.min == spec.minimum and widget.max == spec.maximum, name
            assert widget.label.startswith(spec.label) or spec.widget == "model", name
            assert widget.help == spec.help, name
            if not (prefix and name == "model"):
                expected = (0 if types[name] is not str else "") if values[name] is None else values[name]
            assert widget.value == expected, (name, widget.value, expected)
        shown = {w.key.removeprefix(prefix) for kind in ("text_input", "number_input", "selectbox", "checkbox",
                                                         "text_area") for w in at.get(kind) if w.key}
        assert not shown & set(skipped), (mode, shown & set(skipped))  # a mode shows only its parameters
