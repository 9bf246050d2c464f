"""Secure by default: no shell, local-only dashboard, powermetrics-only sudo rule, no remote code."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("energyprof", "pages", "tests", "bench", "scripts")


def _python_files() -> list[Path]:
    files = [REPO / "app.py"]
    for folder in SOURCE_DIRS:
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if f.exists()]


def test_no_subprocess_call_anywhere_uses_a_shell() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("system", "popen") and \
                        isinstance(func.value, ast.Name) and func.value.id == "os":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} os.{func.attr}")
    assert len(_python_files()) > 10
    assert offenders == []


def test_dashboard_binds_to_loopback_and_sends_no_usage_statistics() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False


def _model_folder_with_remote_code(folder: Path, marker: Path) -> Path:
    """A model folder whose config points at custom Python code that leaves a marker file when it runs."""
    folder.mkdir()
    code = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('remote code ran')\n"
            "from transformers import LlamaConfig\n\n\nclass EvilConfig(LlamaConfig):\n    model_type = 'evil'\n")
    (folder / "configuration_evil.py").write_text(code)
    (folder / "config.json").write_text(
        '{"model_type": "evil", "architectures": ["LlamaForCausalLM"], '
        '"auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}, "vocab_size": 384, "hidden_size": 32, '
        '"intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}')
    return folder


def test_model_code_from_a_folder_never_runs_unless_trust_remote_code_is_on(tmp_path: Path) -> None:
    import pytest

    from energyprof.runtimes.transformers.models import ModelLoadError, load_model

    marker = tmp_path / "ran.txt"
    folder = _model_folder_with_remote_code(tmp_path / "evil-model", marker)
    with pytest.raises(ModelLoadError, match="trust"):
        load_model(str(folder), "cpu", "float32")
    assert not marker.exists()
    try:
        load_model(str(folder), "cpu", "float32", trust_remote_code=True)
    except ModelLoadError:
        pass  # the folder has no weights or tokenizer; what matters is that the code ran only when asked
    assert marker.read_text() == "remote code ran"


def test_profile_parameters_default_to_no_remote_code() -> None:
    from energyprof.spec.params import ProfileParams

    assert ProfileParams(model="tiny", prompt="hi").trust_remote_code is False
    assert ProfileParams.from_dict({"model": "x", "prompt": "y"}).trust_remote_code is False
