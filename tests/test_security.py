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
