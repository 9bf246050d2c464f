"""Issue 17: each numbered defect and "also seen" case that is a command, run as that command (the real CLI entry,
or a subprocess where the terminal or stdout itself matters) against real servers on 127.0.0.1 and the real
engine, asserting the fixed behaviour."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from endpoint_servers import FakeEndpoint, Handler, chunk, event, token_stream
from profile_helpers import REPO

from energyprof.cli import main
from energyprof.commands.profile import format_summary
from energyprof.store import Store
from energyprof.summary import RunSummary


def usage_stream(completion: int, prompt: int = 5, chunks: int = 4) -> Any:
    """A server streaming `chunks` chunks of text, then a usage saying `completion` tokens."""
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        if body["max_tokens"] == 1:
            handler.send_pieces(token_stream(1))
            return
        pieces = [event(chunk(f"w{i} ")) for i in range(chunks)]
        pieces.append(event(chunk(usage={"prompt_tokens": prompt, "completion_tokens": completion})))
        handler.send_pieces([*pieces, b"data: [DONE]\n\n"], delay_s=0.005)
    return respond


def endpoint_args(url: str, db: Path, *extra: str) -> list[str]:
    return ["profile", "--endpoint", url, "--model", "m", "--source", "estimate", "--interval-ms", "20", "--repeats",
            "2", "--warmup", "0", "--baseline-s", "0.1", "--db", str(db), *extra]


def profiled(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# -- 7. absurd server figures -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("completion", "prompt", "chunks", "why"), [
    (10**9, 5, 4, "1,000,000,000 completion tokens, above the max_tokens 8 asked for"),
    (0, 5, 8, "0 completion tokens, fewer than the 8 chunks of text it streamed"),
    (4, 10**12, 4, "1,000,000,000,000 prompt tokens for a prompt of 5 bytes"),
])
def test_absurd_usage_is_replaced_by_counted_chunks_and_said(db_path: Path, capsys: pytest.CaptureFixture[str],
                                                              completion: int, prompt: int, chunks: int,
                                                              why: str) -> None:
    with FakeEndpoint(usage_stream(completion, prompt, chunks)) as server:
        code, out, _ = profiled(capsys, endpoint_args(server.url, db_path, "--max-new-tokens", "8", "--prompt",
                                                      "Hello", "--json"))
    summary = RunSummary.from_dict(json.loads(out))
    assert code == 0 and summary.status == "done"
    assert summary.new_tokens == [min(chunks, completion) if prompt > 10**6 else chunks] * 2
    assert why in summary.usage_rejected and summary.tokens_approximate == (prompt < 10**6)
    assert summary.tokens_per_s is not None and 0 < summary.tokens_per_s < 10**5  # never 16,535,377,675 tokens/s
    assert summary.per_token("decode").mean > 1e-6  # never 1.4e-09 J/token
    text = format_summary(summary)
    assert "approximate" in text and why in text
    assert "Prompt tokens: None" not in text
    if prompt > 10**6:
        assert "Prompt tokens: unknown" in text


# -- 9. an endless stream -------------------------------------------------------------------------------------
def test_a_stream_that_ignores_max_tokens_ends_the_run_with_one_sentence(db_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        if body["max_tokens"] == 1:
            handler.send_pieces(token_stream(1))
            return
        handler.send_pieces(itertools.repeat(event(chunk("again "))), delay_s=0.001)  # for ever

    with FakeEndpoint(respond) as server:
        code, _, err = profiled(capsys, endpoint_args(server.url, db_path, "--max-new-tokens", "8"))
    assert code == 1
    said = err.strip().splitlines()
    assert said[-1].startswith("energyprof: The server at 127.0.0.1:") and "kept streaming past 48 chunks" in said[-1]
    assert "ignores max_tokens" in said[-1] and "Traceback" not in err
    run = Store(db_path).get_run(1)
    assert run["status"] == "failed" and 0 < len(Store(db_path).steps(1)) <= 48  # what came is kept, up to the cap


# -- 8. local-only options in endpoint mode -------------------------------------------------------------------
def test_local_only_options_are_refused_in_endpoint_mode_by_name(db_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/v1"
    with pytest.raises(SystemExit) as exited:
        main(["profile", "--endpoint", url, "--model", "m", "--batch", "4", "--device", "cuda", "--prompt-tokens",
              "100", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    for named in ("batch size (--batch)", "device (--device)", "prompt tokens (--prompt-tokens)"):
        assert named in err.lower()
    assert "only to a model loaded here, not to an endpoint" in err
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "--source", "estimate", "--endpoint", url, "--model", "a,b", "--batch", "1,2",
              "--no-target-ci", "--repeats", "1", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Batch size (--batch) applies only to a model loaded here" in err
    assert not db_path.exists() or Store(db_path).list_runs().empty  # nothing ran
    with pytest.raises(SystemExit):
        main(["profile", "--endpoint", url, "--model", "m", "--layer-energy", "replay", "--db", str(db_path)])
    assert "per-layer energy (--layer-energy)" in capsys.readouterr().err.lower()


# -- also seen: prompt files ------------------------------------------------------------------------------------
def test_a_deeply_nested_jsonl_prompt_file_is_one_sentence(tmp_path: Path, db_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 40000 + "]" * 40000 + "\n")
    with pytest.raises(SystemExit) as exited:
        main(["profile", "--model", "tiny", "--device", "cpu", "--source", "estimate", "--prompt-file", str(deep),
              "--db", str(db_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "line 1 of the prompt file" in err and 'a "prompt" string' in err
    assert "RecursionError" not in err and "Traceback" not in err


def test_a_jsonl_prompt_file_with_a_byte_order_mark_is_read(tmp_path: Path, db_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "Hello from Notepad"}).encode() + b"\r\n")
    with FakeEndpoint(usage_stream(4)) as server:
        code, out, err = profiled(capsys, endpoint_args(server.url, db_path, "--max-new-tokens", "8", "--prompt-file",
                                                        str(bom), "--json"))
    assert code == 0, err
    assert {body["messages"][0]["content"] for _, _, body in server.requests} == {"Hello from Notepad"}


# -- also seen: the model's context -----------------------------------------------------------------------------
def test_prompt_plus_new_tokens_beyond_the_context_is_refused_before_measuring(
        db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = profiled(capsys, ["profile", "--model", "tiny", "--device", "cpu", "--source", "estimate",
                                       "--prompt-tokens", "8000", "--max-new-tokens", "500", "--layers", "none",
                                       "--db", str(db_path), "--json"])
    assert code == 1
    summary = json.loads(out)
    assert summary["status"] == "failed" and summary["repeats"] == 0
    assert summary["error"] == ("The prompt (8000 tokens) plus max-new-tokens (500) is longer than the model's "
                                "context of 8192 tokens; ask for fewer prompt or new tokens.")


# -- also seen: a target CI with a huge minimum and a short cap ---------------------------------------------
def test_the_time_cap_bounds_every_repeat_and_the_output_stays_short(db_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = profiled(capsys, ["profile", "--model", "tiny", "--device", "cpu", "--source", "estimate",
                                       "--target-ci", "0.1", "--repeats", "1000", "--max-seconds", "1",
                                       "--max-new-tokens", "4", "--ignore-eos", "--layers", "none", "--warmup", "0",
                                       "--baseline-s", "0", "--db", str(db_path)])
    summary = RunSummary.from_dict(Store(db_path).get_run(1)["summary"])
    assert summary.repeats_stop == "time cap" and 2 <= summary.repeats < 1000
    assert "stopped by the 1 s cap" in out
    assert f"new tokens per repeat: 4 each ({summary.repeats:,} repeats)" in out or summary.repeats <= 10
    assert "4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4" not in out and len(out) < 5000


# -- 4. stdout that cannot be written ---------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["runs"], ["runs", "--json"], ["export", "1", "--what", "samples"]])
def test_output_to_a_full_device_is_one_sentence_and_a_failure(db_path: Path, args: list[str]) -> None:
    Store(db_path).create_run("sample", status="done")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "energyprof", *args, "--db", str(db_path)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert done.stderr == ("energyprof: Could not write the output (No space left on device); send it to a file or "
                           "program that can take it (on a disk with free space).\n")


# -- the disturbed warning says which way --------------------------------------------------------------------
def test_the_disturbed_warning_says_which_way_the_net_energy_is_off() -> None:
    rose = RunSummary(disturbed=True, background_cpu={"baseline": 0.17, "workload": 0.9}).disturbance()
    fell = RunSummary(disturbed=True, background_cpu={"baseline": 0.17, "workload": 0.03}).disturbance()
    assert "background rose" in rose and "net energy is too high" in rose
    assert "background fell" in fell and "over-subtracts" in fell and "net energy is too low" in fell
    assert "0.03 CPU cores during the workload against 0.17" in fell
