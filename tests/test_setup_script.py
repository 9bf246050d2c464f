"""scripts/setup_powermetrics.sh: the sudoers line it would install grants only /usr/bin/powermetrics to one user."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup_powermetrics.sh"
POWERMETRICS = "/usr/bin/powermetrics"
GRANT = re.compile(r"^(?P<user>[A-Za-z0-9._-]+) ALL=\(root\) NOPASSWD: ENERGYPROF_POWERMETRICS$")


def _run(*args: str, sudo_user: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    if sudo_user is not None:
        env["SUDO_USER"] = sudo_user
    return subprocess.run(["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30,
                          check=False)


def _only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def _rule(user: str) -> tuple[str, list[str], str]:
    """(the printed rule, the command patterns it allows, the user it grants them to)."""
    done = _run("--print", "--user", user)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    header, _, rest = text.partition("\n")
    assert header == "Cmnd_Alias ENERGYPROF_POWERMETRICS = \\"
    body, grant = rest.rstrip("\n").rsplit("\n", 1)
    patterns = [p.strip().rstrip("\\").strip().rstrip(",").replace("\\,", ",") for p in body.splitlines()]
    match = GRANT.match(grant)
    assert match, grant
    return text, patterns, match["user"]


def _allowed(patterns: list[str], argv: list[str]) -> bool:
    """sudo's matching of a command line against Cmnd_Alias entries (fnmatch over the joined arguments)."""
    line = " ".join(argv)
    return any(fnmatch.fnmatchcase(line, pattern) for pattern in patterns)


def test_script_is_valid_executable_shell() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(SCRIPT)], check=False).returncode == 0


def test_print_grants_only_powermetrics_to_the_sudo_user() -> None:
    done = _run("--print", sudo_user="alice")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "alice ALL=(root) NOPASSWD: ENERGYPROF_POWERMETRICS"
    _, patterns, user = _rule("alice")
    assert user == "alice"
    assert all(p.startswith(POWERMETRICS + " ") for p in patterns)  # one program, never ALL or a shell


def test_print_for_an_explicit_user() -> None:
    done = _run("--print", "--user", "bob.smith", sudo_user="alice")
    assert done.stdout.splitlines()[-1] == "bob.smith ALL=(root) NOPASSWD: ENERGYPROF_POWERMETRICS"


@pytest.mark.skipif(shutil.which("visudo") is None and os.environ.get("CI") != "true",
                    reason="visudo is not installed here (CI installs sudo and fails without it)")
def test_the_rule_passes_visudo(tmp_path: Path) -> None:
    text, _, _ = _rule("alice")
    rule = tmp_path / "rule"
    rule.write_text(text)
    done = subprocess.run(["visudo", "-cf", str(rule)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_allows_exactly_the_command_lines_energyprof_runs() -> None:
    from energyprof.power.powermetrics import PowermetricsSource

    _, patterns, _ = _rule("alice")
    source = PowermetricsSource(command=[POWERMETRICS])
    for interval in (10, 50, 100, 250, 1000, 9999):
        assert _allowed(patterns, [POWERMETRICS, *source.arguments(interval)]), interval
    assert _allowed(patterns, [POWERMETRICS, *source.arguments(50, count=1)])  # the availability probe
    for argv in (["-f", "plist", "-i", "100", "-o", "/etc/sudoers", "--samplers", "cpu_power,gpu_power,thermal",
                  "-b", "0"],
                 ["-f", "plist", "-i", "100 -o /etc/passwd", "--samplers", "cpu_power,gpu_power,thermal", "-b", "0"],
                 ["-f", "plist", "-i", "5", "--samplers", "cpu_power,gpu_power,thermal", "-b", "0"],
                 ["-f", "plist", "-i", "100", "--samplers", "all", "-b", "0"],
                 ["-o", "/etc/passwd"], []):
        assert not _allowed(patterns, [POWERMETRICS, *argv]), argv


@pytest.mark.parametrize("user", ["a b", "x;rm", "ALL,%admin", "-oops", "root", "ALL"])
def test_refuses_users_that_are_not_one_plain_account(user: str) -> None:
    done = _run("--print", "--user", user)
    assert done.returncode == 1 and done.stdout == ""
    assert _only_line(done.stderr).startswith("setup_powermetrics: ")


@pytest.mark.skipif(sys.platform == "darwin", reason="the refusal is for systems without powermetrics")
def test_refuses_to_install_outside_macos() -> None:
    for args in ((), ("--uninstall",)):
        done = _run(*args, sudo_user="alice")
        assert done.returncode == 1
        assert "exists only on macOS" in _only_line(done.stderr)
    assert not Path("/etc/sudoers.d/energyprof-powermetrics").exists()


def test_unknown_option_and_help() -> None:
    done = _run("--everything")
    assert done.returncode == 1 and "unknown option --everything" in done.stderr
    done = _run("--help")
    assert done.returncode == 0 and "NOPASSWD: ENERGYPROF_POWERMETRICS" in done.stdout and "set -eu" not in done.stdout


def test_readme_shows_exactly_the_rule_the_script_writes() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    printed = _run("--print", "--user", "alice")
    assert printed.returncode == 0
    assert printed.stdout.strip() in readme
