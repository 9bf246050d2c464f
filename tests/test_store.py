"""The Store: migrations, WAL, the one-active-job rule, write discipline under concurrent readers."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from energyprof.power.base import PowerWindow
from energyprof.store import JobAlreadyRunning, RunNotActive, Store, StoreError
from energyprof.store.schema import MIGRATIONS


def test_fresh_database_is_migrated_to_latest_and_uses_wal(store: Store) -> None:
    assert store.schema_version == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "power_samples", "steps", "step_energy", "layers", "layer_calls", "layer_energy"} <= tables


def test_reopening_keeps_data_and_applies_only_new_migrations(db_path) -> None:
    first = Store(db_path)
    run = first.create_run("sample", source="estimate", measured=False)
    first.close()
    again = Store(db_path)
    assert again.get_run(run)["source"] == "estimate"
    versions = [r[0] for r in again.conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_older_schema_is_migrated_forward(db_path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute("INSERT INTO runs (kind, status, created_at) VALUES ('sample', 'done', 0)")
    conn.commit()
    conn.close()
    s = Store(db_path)
    assert s.schema_version == len(MIGRATIONS)
    assert len(s.list_runs()) == 1


def test_database_from_a_newer_energyprof_is_refused_with_a_clear_message(db_path) -> None:
    Store(db_path).execute_write("INSERT INTO schema_version VALUES (999, 0)")
    with pytest.raises(StoreError, match="newer energyprof"):
        Store(db_path)


def test_another_programs_sqlite_file_is_refused_and_left_untouched(db_path) -> None:
    other = sqlite3.connect(db_path)
    other.execute("CREATE TABLE contacts (name TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match=r"not an energyprof database \(it holds other tables: contacts\)"):
        Store(db_path)
    tables = {r[0] for r in sqlite3.connect(db_path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"contacts"}


def test_only_one_profile_job_can_be_active_even_from_two_connections(db_path) -> None:
    a, b = Store(db_path), Store(db_path)
    first = a.create_run("profile", status="queued")
    with pytest.raises(JobAlreadyRunning, match=f"run {first}"):
        b.create_run("profile")
    b.create_run("sample")  # other kinds are not exclusive
    a.finish_run(first, "done")
    assert b.create_run("profile") > first


def test_concurrent_launches_from_threads_yield_exactly_one_run(db_path) -> None:
    results: list[str] = []

    def launch() -> None:
        try:
            Store(db_path).create_run("profile")
            results.append("ok")
        except JobAlreadyRunning:
            results.append("refused")

    threads = [threading.Thread(target=launch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7


def test_final_status_is_never_overwritten(store: Store) -> None:
    run = store.create_run("profile")
    store.finish_run(run, "cancelled", error="stopped by user")
    store.finish_run(run, "failed", error="late")
    got = store.get_run(run)
    assert (got["status"], got["error"]) == ("cancelled", "stopped by user")


def test_unknown_component_is_stored_as_null_not_zero(store: Store) -> None:
    run = store.create_run("sample")
    store.add_power_windows(run, [PowerWindow(0, 100_000_000, {"cpu": 50.0, "dram": None})])
    totals = store.power_totals(run).set_index("component")
    assert totals.loc["cpu", "energy_j"] == pytest.approx(0.05)
    assert totals.loc["cpu", "mean_w"] == pytest.approx(0.5)
    assert totals.loc["dram", "known_windows"] == 0
    assert totals["energy_j"].isna()["dram"]


def test_power_timeline_downsamples_and_keeps_energy_true_means(store: Store) -> None:
    run = store.create_run("sample")
    store.update_run(run, clock_t0_ns=0)
    # 1,000 windows of 10 ms; power alternates 1 W and 3 W, so any even bin averages 2 W.
    windows = [PowerWindow(i * 10_000_000, (i + 1) * 10_000_000, {"cpu": 10.0 if i % 2 == 0 else 30.0})
               for i in range(1000)]
    store.add_power_windows(run, windows)
    timeline = store.power_timeline(run, max_points=100)
    assert len(timeline) <= 100
    assert timeline["power_w"].to_numpy() == pytest.approx([2.0] * len(timeline))
    assert timeline["peak_w"].max() == pytest.approx(3.0)
    assert timeline["t_s"].iloc[0] == 0.0
    assert timeline["t1_s"].max() == pytest.approx(10.0)  # the last window ends at 1,000 x 10 ms


def test_writer_waits_for_another_writer_and_goes_on(db_path) -> None:
    store = Store(db_path)
    run = store.create_run("sample")
    blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.5)
        blocker.execute("COMMIT")
        released.set()

    threading.Thread(target=release_later).start()
    store.add_power_windows(run, [PowerWindow(0, 1000, {"cpu": 1.0})])
    assert released.is_set()
    assert len(store.power_samples(run)) == 1


def test_a_long_reader_does_not_block_the_job_writing(db_path) -> None:
    store = Store(db_path)
    run = store.create_run("sample")
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM power_samples").fetchone()[0] == 0
    store.add_power_windows(run, [PowerWindow(i, i + 1, {"cpu": 1.0}) for i in range(0, 2000, 2)])
    assert reader.execute("SELECT COUNT(*) FROM power_samples").fetchone()[0] == 0  # snapshot isolation
    reader.execute("COMMIT")
    assert reader.execute("SELECT COUNT(*) FROM power_samples").fetchone()[0] == 1000


def test_delete_removes_a_finished_run_and_its_rows_but_never_an_active_one(store: Store) -> None:
    active = store.create_run("profile")
    store.add_power_windows(active, [PowerWindow(0, 10, {"cpu": 1.0})])
    store.add_steps(active, [(0, 0, "prefill", 0, 5, 3, 1, "a")])
    assert not store.delete_run(active)
    store.finish_run(active, "done")
    assert store.delete_run(active)
    assert store.get_run(active) is None
    assert store.power_samples(active).empty and store.steps(active).empty


def test_update_run_rejects_unknown_columns(store: Store) -> None:
    run = store.create_run("sample")
    with pytest.raises(ValueError, match="unknown run fields"):
        store.update_run(run, **{"status = 'done'; --": 1})


def test_layer_step_matrix_never_exceeds_max_cells(store: Store) -> None:
    run = store.create_run("profile")
    store.add_layers(run, [(i, f"layer{i}", "block", None, i) for i in range(20)])
    store.add_layer_calls(run, [(0, step, layer, None, None, 1000, 1.0, 0.5)
                                for step in range(1000) for layer in range(20)])
    matrix = store.layer_step_matrix(run, max_cells=5000)
    assert 0 < len(matrix) <= 5000
    assert matrix["energy_j"].sum() == pytest.approx(20 * 1000 * 1e-3)


def test_a_run_no_longer_active_refuses_heartbeats_recorded_data_and_a_second_final_status(store: Store) -> None:
    run = store.create_run("profile")
    store.add_steps(run, [(0, 0, "prefill", 0, 5, 3, 1, "a")])
    store.heartbeat(run, phase="repeat 1 of 2", tokens_done=1)
    assert store.finish_run(run, "failed", error="The profiling job process ended without finishing.")
    refused = [
        lambda: store.heartbeat(run, phase="repeat 2 of 2", tokens_done=2),
        lambda: store.add_steps(run, [(1, 0, "prefill", 10, 15, 3, 1, "b")]),
        lambda: store.add_power_windows(run, [PowerWindow(0, 10, {"cpu": 1.0})]),
        lambda: store.add_step_energy(run, [(0, 0, "cpu", 1.0, 0.5, 1.0)]),
        lambda: store.add_layers(run, [(0, "embed", "embedding", None, 0)]),
        lambda: store.add_layer_calls(run, [(0, 0, 0, 0, 5, 5, 1.0, 1.0)]),
        lambda: store.add_layer_energy(run, [(0, "cpu", 1, 5, 1.0, 0.5, 1.0)]),
    ]
    for write in refused:
        with pytest.raises(RunNotActive, match=f"Run {run} was marked failed") as caught:
            write()
        assert caught.value.status == "failed" and "not recorded" in str(caught.value)
    assert not store.finish_run(run, "done", summary={"late": True}, tokens_done=99)
    got = store.get_run(run)
    assert (got["status"], got["phase"], got["tokens_done"], got["summary"]) == ("failed", "repeat 1 of 2", 1, None)
    assert len(store.steps(run)) == 1 and store.power_samples(run).empty


def test_final_status_and_last_counters_are_written_together(store: Store) -> None:
    run = store.create_run("profile")
    assert store.finish_run(run, "done", summary={"repeats": 1}, tokens_done=12, progress=1.0, samples_skipped=2,
                            power_incomplete=0)
    got = store.get_run(run)
    assert (got["status"], got["tokens_done"], got["progress"], got["samples_skipped"]) == ("done", 12, 1.0, 2)


def test_a_run_records_the_process_that_writes_it(store: Store) -> None:
    import psutil

    run = store.get_run(store.create_run("measure", owned=True))
    assert run["pid"] == os.getpid()
    assert run["pid_started_at"] == pytest.approx(psutil.Process().create_time(), abs=1.0)
    queued = store.create_run("profile", status="queued")
    assert store.get_run(queued)["pid"] is None and store.get_run(queued)["pid_started_at"] is None
    store.update_run(queued, pid=os.getpid())  # a writer that records itself later gets its start time too
    assert store.get_run(queued)["pid_started_at"] == run["pid_started_at"]
