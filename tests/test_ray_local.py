"""`energyprof sweep --ray local`: the issue's sweep as Ray tasks on a Ray instance started here, every run brought home
as a bundle with the node that made it; Ray missing or a cluster out of reach is one sentence before anything
starts; neither the CLI nor the dashboard imports Ray unless asked to."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from energyprof.cli import main
from energyprof.store import Store
from energyprof.store.bundle_format import content_hash, run_tables

TINY = ["--model", "tiny", "--max-new-tokens", "4", "--ignore-eos", "--source", "estimate", "--no-target-ci",
        "--repeats", "1", "--warmup", "0", "--baseline-s", "0.3", "--layers", "none", "--device", "cpu"]
"""A sweep point that takes a few seconds, most of it the job process importing torch."""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_issue_sweep_runs_as_ray_tasks_and_brings_each_run_home(db_path: Path, tmp_path: Path) -> None:
    # its own process, as a user runs it (a local Ray instance changes its process's environment for good), with its
    # own HOME: a local Ray instance writes an auth token to ~/.ray, which must not be the user's
    done = subprocess.run([sys.executable, "-m", "energyprof", "sweep", *TINY, "--batch", "1,2", "--ray", "local",
                           "--sweep-id", "on-ray", "--json", "--db", str(db_path)], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(tmp_path)}, timeout=600)
    out = json.loads(done.stdout)
    assert done.returncode == 0 and out["status"] == "done" and out["points"] == 2, done.stderr[-2000:]
    assert (tmp_path / ".ray" / "auth_token").is_file()  # Ray's default for a local instance: token authentication
    assert [(r["batch"], r["status"], r["new_tokens"]) for r in out["runs"]] == [(1, "done", 4), (2, "done", 8)]
    store = Store(db_path)
    sweep = store.get_sweep("on-ray")
    assert sweep["status"] == "done" and sweep["ray"] == {"address": "local", "replicate": False}
    nodes = set()
    for row in out["runs"]:
        run = store.get_run(row["run_id"])
        assert run["sweep_id"] == "on-ray" and run["status"] == "done" and run["pid"] is None
        origin = store.run_origin(row["run_id"])
        assert len(origin["ray_node_id"]) == 56 and origin["ray_node_ip"]  # Ray's 28-byte node id, in hex
        nodes.add(origin["ray_node_id"])
        assert row["machine"] == origin["ray_node_name"] or row["machine"].startswith(origin["ray_node_name"])
        # the whole run came home: its rows hash to what the node exported
        assert content_hash(store.conn, row["run_id"], run_tables(store.conn)) == origin["content_hash"]
        assert not store.steps(row["run_id"]).empty and not store.power_samples(row["run_id"]).empty
        summary = run["summary"]
        assert summary["run_id"] == row["run_id"] and summary["source"] == "estimate"
        # Ray's own processes ran beside the job: its disturbed check measured them as background
        assert summary["background_cpu"]["ray_workload"] is not None
    assert len(nodes) == 1  # one local node, one profiling task at a time
    tasks = store.sweep_tasks("on-ray")
    assert [(t["point"], t["status"], t["node_id"]) for t in tasks] == [(0, "done", *nodes), (1, "done", *nodes)]


def test_an_unreachable_cluster_is_one_sentence_before_anything_starts(db_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code = main(["sweep", *TINY, "--ray", f"ray://127.0.0.1:{port}", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"energyprof: Cannot reach the Ray cluster at ray://127.0.0.1:{port} (Connection refused); start "
                   "it there with `ray start --head` (and `--ray-client-server-port` for ray://), or check the "
                   "address.\n")
    assert Store(db_path).list_sweeps().empty  # nothing started


def test_a_bad_address_or_replicate_without_ray_is_a_usage_error(db_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for argv, said in ((["--ray", "http://head:80"], "'http://head:80' is not a Ray address"),
                       (["--ray-replicate"], "--ray-replicate runs every point on every Ray node: give --ray")):
        with pytest.raises(SystemExit):
            main(["sweep", *TINY, *argv, "--db", str(db_path)])
        assert said in capsys.readouterr().err


def test_without_ray_the_sweep_says_how_to_install_it(db_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    code = main(["sweep", *TINY, "--ray", "auto", "--db", str(db_path)])
    assert code == 1
    assert capsys.readouterr().err == ('energyprof: Ray is not installed here, so --ray cannot be used; install it '
                                       'with `pip install -e ".[ray]"` (or `pip install ray==2.60.0`).\n')


def test_the_cli_and_the_dashboard_do_not_import_ray() -> None:
    script = ("import sys, runpy\n"
              "import energyprof.cli, energyprof.ui, energyprof.charts, energyprof.sweep_table\n"
              "import energyprof.runner.sweep, energyprof.commands.sweep\n"
              "energyprof.cli.build_parser()\n"
              "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rays_processes_are_named_and_counted_apart_in_the_disturbed_check() -> None:
    from energyprof.runner.background import RAY_TAG, compare, is_ray

    assert is_ray("raylet", ["/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet", "--x"])
    assert is_ray("ray::energyprof point 1", ["ray::energyprof point 1"]) and is_ray("gcs_server", [])
    assert is_ray("python", ["/venv/bin/python", "-u", "/venv/lib/site-packages/ray/_private/log_monitor.py"])
    assert not is_ray("python", ["/venv/bin/python", "-m", "pytest"]) and not is_ray("Xorg", ["/usr/bin/Xorg"])
    before = {(1, 0.0): (f"raylet{RAY_TAG}", 1.0, False), (2, 0.0): ("browser", 1.0, True)}
    after = {(1, 0.0): (f"raylet{RAY_TAG}", 1.2, False), (2, 0.0): ("browser", 2.0, True)}
    span = compare(before, after, 2.0, "repeat 0")
    assert span.cores == pytest.approx(0.6) and span.ray_cores == pytest.approx(0.1)
    assert compare({(2, 0.0): ("browser", 1.0, True)}, {(2, 0.0): ("browser", 2.0, True)}, 2.0, "x").ray_cores is None

