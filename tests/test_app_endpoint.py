"""The New-profile page's Endpoint mode: the same form (generated from the parameter table, endpoint group
shown, local-model fields left out) launches the same job with the endpoint's parameters."""

from __future__ import annotations

from typing import Any

import pytest
from seed import open_page, texts

from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.store import Store

PAGE = "pages/new.py"


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_launch(s: Store, params: dict[str, Any]) -> int:
        calls.append(params)
        return s.create_run("profile", status="queued", model=params["model"], params=params)

    monkeypatch.setattr(jobs, "launch_job", fake_launch)
    return calls


def _endpoint_form() -> Any:
    at = open_page(PAGE)
    at.radio(key="mode").set_value("Endpoint").run()
    assert not at.exception
    return at


def test_endpoint_mode_launches_the_job_with_the_endpoint(store: Store, launched: list[dict[str, Any]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_TEST_KEY", "sk-never-shown")
    at = _endpoint_form()
    keys = {w.key for kind in ("text_input", "selectbox", "checkbox", "number_input") for w in at.get(kind)}
    assert not {"endpoint_device", "endpoint_dtype", "endpoint_layers", "endpoint_trust_remote_code"} & keys
    assert any("OpenAI-compatible" in t for t in texts(at, "caption"))
    at.text_input(key="endpoint_endpoint").set_value(" http://127.0.0.1:11434/v1 ")
    at.text_input(key="endpoint_model").set_value("llama3.2")
    at.selectbox(key="endpoint_api").set_value("completions")
    at.text_input(key="endpoint_api_key_env").set_value("OLLAMA_TEST_KEY")
    at.number_input(key="endpoint_timeout_s").set_value(30.0)
    at.number_input(key="endpoint_max_new_tokens").set_value(40)
    at.selectbox(key="endpoint_source").set_value("estimate")
    at.button(key="launch").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    params = ProfileParams.from_dict(launched[0])
    assert (params.endpoint, params.model, params.api, params.api_key_env, params.timeout_s, params.server_pid) == (
        "http://127.0.0.1:11434/v1", "llama3.2", "completions", "OLLAMA_TEST_KEY", 30.0, None)
    assert params.mode == "endpoint" and params.max_new_tokens == 40 and params.source == "estimate"
    assert "sk-never-shown" not in str(launched)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("endpoint_endpoint", "", "The endpoint URL is empty"),
    ("endpoint_endpoint", "ftp://127.0.0.1/v1", "must start with http:// or https://"),
    ("endpoint_api_key_env", "sk-pasted-key-123", "the NAME of an environment variable"),
])
def test_endpoint_mode_refuses_what_cannot_be_used(store: Store, launched: list[dict[str, Any]], field: str,
                                                   value: str, says: str) -> None:
    at = _endpoint_form()
    at.text_input(key="endpoint_endpoint").set_value("http://127.0.0.1:11434/v1")
    at.text_input(key="endpoint_model").set_value("llama3.2")
    at.text_input(key=field).set_value(value)
    at.button(key="launch").click().run()
    errors = texts(at, "error")
    assert launched == [] and any(says in e for e in errors), errors
    assert not any("sk-pasted-key-123" in e for e in errors)
    assert store.list_runs().empty
