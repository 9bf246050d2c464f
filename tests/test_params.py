"""One table of profile parameters: the engine's validation, the CLI's options and the form read it."""

from __future__ import annotations

import argparse

import pytest

from energyprof.commands.profile import register
from energyprof.spec.params import BUILTIN_MODEL_NAMES, ProfileParams, defaults, param_specs, spec_of


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="energyprof", exit_on_error=False)
    register(root.add_subparsers(dest="command"))
    return root


def _parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["profile", *argv])


def test_every_parameter_has_an_option_with_the_table_default() -> None:
    args = _parse()
    for name, value in defaults().items():
        if spec_of(name).cli:
            assert getattr(args, name) == value, name
        else:  # the per-sequence prompts come from --prompt-file
            assert not hasattr(args, name), name


def test_cli_ranges_and_choices_come_from_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    repeats = spec_of("repeats")
    assert _parse("--repeats", str(int(repeats.maximum))).repeats == repeats.maximum
    for bad in (["--repeats", str(int(repeats.maximum) + 1)], ["--baseline-s", "-1"], ["--layers", "all"],
                ["--top-p", "0"], ["--dtype", "int4"]):
        with pytest.raises(SystemExit):
            _parse(*bad)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _parse("--repeats", "0")
    assert "must be >= 1, got 0" in capsys.readouterr().err
    help_text = _parser()._subparsers._group_actions[0].choices["profile"].format_help()
    for name, spec in param_specs():
        if not spec.cli:
            continue
        assert "--" + name.replace("_", "-") in help_text
        assert spec.help.split("(")[0].split()[0] in help_text


def test_validation_uses_the_same_ranges() -> None:
    assert ProfileParams().errors() == []
    assert ProfileParams(repeats=spec_of("repeats").maximum + 1).errors()
    assert ProfileParams(top_p=0.0).errors() == ["top_p must be above 0, not 0.0."]
    assert ProfileParams(device="cuda:1").errors() == []
    assert ProfileParams(device="tpu").errors()[0].startswith("Unknown device 'tpu'")
    assert ProfileParams(interval_ms=None).errors() == [] and ProfileParams(interval_ms=5).errors()


def test_builtin_names_match_the_models_module() -> None:
    from energyprof.runtimes.transformers.models import BUILTIN_MODELS

    assert tuple(BUILTIN_MODELS) == BUILTIN_MODEL_NAMES
