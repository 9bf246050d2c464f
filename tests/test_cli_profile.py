"""`energyprof profile`, `job` and `runs` on the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from profile_helpers import assert_closure, fast_params, save_bert, save_gpt2, use_fake_powermetrics

from energyprof.cli import main
from energyprof.store import Store

FAST_ARGS = ["--model", "tiny", "--prompt", "Hello energy", "--max-new-tokens", "5", "--ignore-eos",
             "--device", "cpu", "--source", "estimate", "--interval-ms", "20", "--repeats", "2", "--warmup", "0",
             "--baseline-s", "0.1"]


def profile_json(capsys: pytest.CaptureFixture[str], db: Path, *extra: str) -> tuple[int, dict]:
    code = main(["profile", *FAST_ARGS, *extra, "--db", str(db), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_profile_json_has_the_promised_fields_and_closes(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = profile_json(capsys, db_path)
    assert code == 0
    for key in ("run_id", "status", "source", "measured", "prompt_tokens", "new_tokens", "repeats", "energy_j",
                "net_energy_j", "j_per_token", "tokens_per_s", "closure_error"):
        assert key in out, key
    assert out["status"] == "done" and out["new_tokens"] == [5, 5] and out["prompt_tokens"] == 12
    assert set(out["j_per_token"]["prefill"]) >= {"mean", "ci95"}
    assert out["closure_error"] < 1e-9
    assert_closure(Store(db_path), out["run_id"])


def test_profile_text_output_labels_estimates(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *FAST_ARGS, "--repeats", "1", "--db", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Run 1 done: tiny on cpu (float32)")
    assert "Power source: estimate (estimated)" in text and "J/token (estimated)" in text


def test_modules_depth_records_attention_and_mlp(db_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch)
    code, out = profile_json(capsys, db_path, "--layers", "modules", "--source", "powermetrics")
    assert code == 0 and out["measured"] is True
    calls = Store(db_path).layer_calls(out["run_id"])
    assert {"attention", "mlp", "block", "embedding", "norm", "lm_head", "other"} <= set(calls["kind"])
    assert_closure(Store(db_path), out["run_id"])


def test_gpt2_folder_profiles_by_path(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_gpt2(tmp_path / "gpt2")
    code, out = profile_json(capsys, db_path, "--model", str(folder))
    assert code == 0 and out["model_kind"] == "causal" and out["new_tokens"] == [5, 5]
    layers = Store(db_path).layers(out["run_id"])
    assert "transformer.h.1" in set(layers["name"])
    assert_closure(Store(db_path), out["run_id"])


def test_encoder_folder_profiles_per_forward_pass(db_path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_bert(tmp_path / "bert")
    code, out = profile_json(capsys, db_path, "--model", str(folder), "--repeats", "3")
    assert code == 0 and out["model_kind"] == "encoder"
    steps = Store(db_path).steps(out["run_id"])
    assert list(steps["phase"]) == ["forward"] * 3 and out["new_tokens"] == [0, 0, 0]
    assert out["j_per_token"]["forward"]["mean"] > 0
    assert_closure(Store(db_path), out["run_id"])


def test_unknown_model_exits_1_with_its_sentence(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = profile_json(capsys, db_path, "--model", "ghost-org/ghost-model")
    err = capsys.readouterr().err
    assert code == 1 and out["status"] == "failed"
    assert "'ghost-org/ghost-model'" in out["error"] and "not a built-in" in out["error"]
    code = main(["profile", *FAST_ARGS, "--model", "ghost-org/ghost-model", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("energyprof: Could not load model 'ghost-org/ghost-model'")
    assert Store(db_path).get_run(2)["status"] == "failed"


@pytest.mark.parametrize("bad", [["--max-new-tokens", "0"], ["--max-new-tokens", "many"], ["--repeats", "-1"],
                                 ["--interval-ms", "5"], ["--top-p", "0"], ["--temperature", "nan"],
                                 ["--baseline-s", "-2"], ["--layers", "all"], ["--prompt", ""],
                                 ["--device", "tpu"]])
def test_invalid_numbers_are_usage_errors(bad: list[str], db_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["profile", *FAST_ARGS, *bad, "--db", str(db_path)])
    assert info.value.code == 2
    assert not db_path.exists() or Store(db_path).list_runs().empty


def test_a_second_job_is_refused(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db_path).create_run("profile", status="running")
    code = main(["profile", *FAST_ARGS, "--db", str(db_path)])
    assert code == 1
    assert "Another profiling job is already running (run 1)" in capsys.readouterr().err


def test_job_and_runs_commands(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(db_path)
    run_id = store.create_run("profile", status="queued", params=fast_params(repeats=1).to_dict())
    assert main(["job", "--run-id", str(run_id), "--db", str(db_path)]) == 0
    assert capsys.readouterr().out.strip() == f"Run {run_id} done."
    assert main(["job", "--run-id", str(run_id), "--db", str(db_path)]) == 1
    assert "not queued" in capsys.readouterr().err
    assert main(["job", "--run-id", "99", "--db", str(db_path)]) == 1
    assert "Run 99 does not exist" in capsys.readouterr().err
    assert main(["runs", "--db", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert "estimate (estimated)" in text and "done" in text
    assert main(["runs", "--json", "--db", str(db_path)]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["id"] == run_id and runs[0]["summary"]["status"] == "done"


def test_prompt_file_is_read_with_a_bound_and_must_be_utf8(db_path: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(SystemExit):
        main(["profile", "--prompt-file", "/dev/zero", "--db", str(db_path)])
    assert time.monotonic() - started < 5  # 400 kB read, not gigabytes
    assert "longer than 100,000 characters" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Grüße aus Köln".encode("latin-1"))
    with pytest.raises(SystemExit):
        main(["profile", "--prompt-file", str(latin1), "--db", str(db_path)])
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "Traceback" not in err
    assert not Store(db_path).list_runs().shape[0]  # refused before any run (or model load)
    utf8 = tmp_path / "ok.txt"
    utf8.write_text("Grüße " * 3, encoding="utf-8")
    code = main(["profile", *[a for a in FAST_ARGS if a not in ("--prompt", "Hello energy")], "--prompt-file",
                 str(utf8), "--repeats", "1", "--db", str(db_path), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["prompt_tokens"] == len("Grüße ".encode() * 3)


PROGRESS_BAR = re.compile(r"\|[^|\n]*\| \d+/\d+ tokens \[\d")
"""The progress bar's own line (energyprof.commands.progress: "{desc} |{bar}| {n}/{total} tokens [{elapsed}]")."""


def test_progress_bar_on_a_terminal_and_nothing_otherwise(db_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    command = [sys.executable, "-m", "energyprof", "profile", *FAST_ARGS, "--max-new-tokens", "40", "--repeats", "3",
               "--db", str(db_path), "--json"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert PROGRESS_BAR.search(shown), shown  # the bar itself: "phase |███   | 40/120 tokens [00:01]"
    assert json.loads(out)["status"] == "done"  # stdout stays clean JSON
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["status"] == "done"
    # no bar when stderr is not a terminal, whatever else the run says there (a busy machine makes it "disturbed":
    # a warning that names other processes, escaped, on one line)
    assert not PROGRESS_BAR.search(quiet.stderr) and "\r" not in quiet.stderr, quiet.stderr
