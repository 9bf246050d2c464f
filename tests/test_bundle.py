"""Run bundles: export from one database, import into another (twice), every row equal under new ids; every bad
bundle one sentence with nothing imported; `energyprof export … --format bundle` and `energyprof import`."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from seed import seed_run

from energyprof.cli import main
from energyprof.export import export_csv
from energyprof.power.base import PowerWindow
from energyprof.store import BundleError, Store
from energyprof.store.bundle_format import LOCAL_RUN_COLUMNS, columns, content_hash, run_tables
from energyprof.summary import RunSummary
from energyprof.sweep_table import sweep_rows

HOSTILE_MODEL = "**bold** <img src=x onerror=alert(1)> [x](http://evil.example) =1+2"
HOSTILE_TOKENS = ['=HYPERLINK("http://evil.example","click")', "<script>alert(1)</script>", "@SUM(A1)", " ok"]


def runs_equal_rows(a: Store, a_id: int, b: Store, b_id: int) -> None:
    """Every row of every run table of run a_id in a equals the rows of b_id in b (ids aside)."""
    tables = run_tables(a.conn)
    assert tables == run_tables(b.conn)
    assert {"power_samples", "steps", "step_energy", "layers", "layer_calls", "layer_energy", "replay_trials",
            "layer_replay", "layer_replay_energy"} <= set(tables)
    for table in tables:
        cols = ", ".join(c for c in columns(a.conn, table) if c != "run_id")
        select = f"SELECT {cols} FROM {table} WHERE run_id = ? ORDER BY {cols}"  # noqa: S608 - names from the schema
        mine, theirs = a.conn.execute(select, (a_id,)).fetchall(), b.conn.execute(select, (b_id,)).fetchall()
        assert mine == theirs, table
    ra, rb = a.get_run(a_id), b.get_run(b_id)
    for column in ra:
        if column not in LOCAL_RUN_COLUMNS and column != "summary":
            assert ra[column] == rb[column], column
    sa, sb = RunSummary.from_dict(ra["summary"]), RunSummary.from_dict(rb["summary"])
    assert sa.run_id == a_id and sb.run_id == b_id
    assert {**sa.to_dict(), "run_id": None} == {**sb.to_dict(), "run_id": None}


@pytest.fixture
def source(tmp_path: Path) -> tuple[Store, list[int]]:
    """A database with a finished sweep of two runs (one with layers and replayed layers), and a run with a
    cross-check source's windows."""
    store = Store(tmp_path / "made-here.sqlite3")
    store.create_sweep("lab-sweep", {"base": {}, "axes": {"batch": [1, 2]}}, 2, pid=os.getpid())
    first = seed_run(store, minutes=0.1, tokens=12, layer_calls=120, replay=True, sweep=("lab-sweep", 0))
    second = seed_run(store, minutes=0.1, tokens=8, seed=2, sweep=("lab-sweep", 1), status="failed")
    store.finish_sweep("lab-sweep", "failed", "1 of 2 points failed.")
    third = seed_run(store, minutes=0.1, tokens=6, seed=3, status="running")
    store.add_power_windows(third, [PowerWindow(10_000_000_000 + i * 10**8, 10_000_000_000 + (i + 1) * 10**8,
                                                {"package": 1.5 + i}) for i in range(5)], cross_check="rapl")
    store.finish_run(third, "done", summary=RunSummary(run_id=third, status="done", source="powermetrics",
                                                       measured=True, cross_check="rapl",
                                                       cross_check_windows=5).to_dict())
    yield store, [first, second, third]
    store.close()


@pytest.fixture
def target(tmp_path: Path) -> Store:
    """Another database that already has runs 1 and 2 of its own (the bundle's ids collide with them)."""
    store = Store(tmp_path / "elsewhere.sqlite3")
    seed_run(store, minutes=0.1, tokens=5, seed=7, model="local-one")
    seed_run(store, minutes=0.1, tokens=5, seed=8, model="local-two")
    yield store
    store.close()


def count_runs(store: Store) -> int:
    return int(store.query_one("SELECT COUNT(*) FROM runs")[0])


def test_round_trip_keeps_every_row_under_new_ids_and_a_second_import_adds_nothing(source, target) -> None:
    a, ids = source
    before = {i: content_hash(target.conn, i, run_tables(target.conn)) for i in (1, 2)}
    bundle = a.export_bundle(ids[2:], ["lab-sweep"])
    assert sorted(bundle.run_ids) == sorted(ids) and bundle.sweep_ids == ["lab-sweep"]

    result = target.import_bundle(bundle.data, name="lab.bundle")
    assert [old for old, _ in result.imported] == sorted(ids) and not result.skipped
    assert [new for _, new in result.imported] == [3, 4, 5]  # new ids: 1 and 2 are taken here
    for old, new in result.imported:
        runs_equal_rows(a, old, target, new)
        origin = target.run_origin(new)
        assert origin["origin_run_id"] == old and origin["origin_database_id"] == a.database_id()
        assert origin["exported_at"] == pytest.approx(result.exported_at) and origin["exported_on"]
    assert {i: content_hash(target.conn, i, run_tables(target.conn)) for i in (1, 2)} == before
    assert [target.get_run(i)["model"] for i in (1, 2)] == ["local-one", "local-two"]
    # the sweep came along, its runs are its points here
    assert result.sweeps == ["lab-sweep"] and target.get_sweep("lab-sweep")["status"] == "failed"
    assert [(r["point"], r["status"]) for r in sweep_rows(target, "lab-sweep")] == [(0, "done"), (1, "failed")]
    assert not target.power_samples(5, cross_check="rapl").empty

    again = target.import_bundle(bundle.data, name="lab.bundle")
    assert not again.imported and [here for _, here in again.skipped] == [3, 4, 5]
    assert count_runs(target) == 5
    # nor does importing it into the database it came from
    home = a.import_bundle(bundle.data)
    assert not home.imported and sorted(here for _, here in home.skipped) == sorted(ids)


def test_a_run_imported_then_exported_again_keeps_its_first_origin(source, target, tmp_path: Path) -> None:
    a, ids = source
    first = target.import_bundle(a.export_bundle([ids[0]]).data)
    third = Store(tmp_path / "third.sqlite3")
    relayed = third.import_bundle(target.export_bundle(first.run_ids).data)
    origin = third.run_origin(relayed.run_ids[0])
    assert origin["origin_run_id"] == ids[0] and origin["origin_database_id"] == a.database_id()
    runs_equal_rows(a, ids[0], third, relayed.run_ids[0])
    # the same run arriving by either way is one run
    assert not third.import_bundle(a.export_bundle([ids[0]]).data).imported
    third.close()


def tampered(data: bytes, tmp_path: Path, statement: str, *params: Any) -> bytes:
    """The bundle with one SQL statement applied to a copy of it."""
    path = tmp_path / "tampered.sqlite"
    path.write_bytes(data)
    conn = sqlite3.connect(path)
    conn.execute(statement, params)
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_every_bad_bundle_is_one_sentence_and_nothing_is_imported(source, target, tmp_path: Path) -> None:
    a, ids = source
    data = a.export_bundle(ids).data
    target.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the database file alone holds every table
    cases: dict[str, tuple[bytes, str]] = {
        "not sqlite": (b"PK\x03\x04 this is a zip, not a bundle" * 10, "is not an energyprof bundle (not an SQLite"),
        "empty": (b"", "is empty"),
        "cut off": (data[: len(data) // 2], "is damaged or cut off"),
        "a database": ((tmp_path / "elsewhere.sqlite3").read_bytes(), "is an energyprof database, not an energyprof"),
        "newer format": (tampered(data, tmp_path, "UPDATE bundle_meta SET value = '99' WHERE key = 'format_version'"),
                         "was written by a newer energyprof (bundle format 99"),
        "newer schema": (tampered(data, tmp_path, "UPDATE bundle_meta SET value = '999' WHERE key = 'schema_version'"),
                         "was written by a newer energyprof (database schema 999"),
        "edited row": (tampered(data, tmp_path, "UPDATE steps SET token_text = 'edited' WHERE idx = 3"),
                       "does not match its checksum"),
        "edited energy": (tampered(data, tmp_path, "UPDATE power_samples SET energy_mj = energy_mj * 2"),
                          "does not match its checksum"),
        "runs it does not list": (tampered(data, tmp_path, "UPDATE bundle_runs SET run_id = 999 WHERE run_id = ?",
                                           ids[0]), "lists other runs than it holds"),
        "rows of a run it does not hold": (tampered(data, tmp_path, "UPDATE steps SET run_id = 77 WHERE run_id = ?",
                                                    ids[0]), "which it does not hold"),
        "an unfinished run": (tampered(data, tmp_path, "UPDATE runs SET status = 'running' WHERE id = ?", ids[0]),
                              "which had not finished"),
    }
    for case, (bad, expected) in cases.items():
        with pytest.raises(BundleError) as caught:
            target.import_bundle(bad, name="bad.bundle")
        sentence = str(caught.value)
        assert expected in sentence, case
        assert sentence.startswith("bad.bundle") or sentence.startswith("Run "), case
        assert "\n" not in sentence and sentence.endswith("."), case
        assert count_runs(target) == 2, case


def test_a_bundle_that_fails_halfway_imports_nothing(source, target, tmp_path: Path) -> None:
    """Duplicate step rows in the last run (checksums recomputed, so only the database can refuse them): the
    first runs were already inserted in the transaction and are rolled back with it."""
    a, ids = source
    path = tmp_path / "dup.sqlite"
    path.write_bytes(a.export_bundle(ids).data)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE steps2 AS SELECT * FROM steps")
    conn.execute("DROP TABLE steps")
    conn.execute("CREATE TABLE steps (run_id INTEGER REFERENCES runs (id), repeat INTEGER, idx INTEGER, phase TEXT, "
                 "t0_ns INTEGER, t1_ns INTEGER, n_tokens INTEGER, token_id INTEGER, token_text TEXT)")
    conn.execute("INSERT INTO steps SELECT * FROM steps2")
    conn.execute("INSERT INTO steps SELECT * FROM steps2 WHERE run_id = ? AND idx = 0", (max(ids),))
    conn.execute("DROP TABLE steps2")
    tables = run_tables(a.conn)  # what holds a run's rows is the importing database's schema, not the file's
    for run_id in ids:
        conn.execute("UPDATE bundle_runs SET content_hash = ? WHERE run_id = ?",
                     (content_hash(conn, run_id, tables), run_id))
    conn.commit()
    conn.close()
    with pytest.raises(BundleError, match="holds rows this database cannot take"):
        target.import_bundle(path.read_bytes(), name="dup.bundle")
    assert count_runs(target) == 2
    assert target.query_one("SELECT COUNT(*) FROM steps WHERE run_id > 2")[0] == 0
    assert target.get_sweep("lab-sweep") is None


def test_hostile_text_travels_as_data_and_csv_stays_inert(tmp_path: Path, target: Store) -> None:
    a = Store(tmp_path / "hostile.sqlite3")
    run_id = seed_run(a, minutes=0.1, tokens=4, model=HOSTILE_MODEL, token_texts=HOSTILE_TOKENS,
                      status="failed", error="# Not a heading\n<b>bold</b> =cmd|' /C calc'!A0")
    new = target.import_bundle(a.export_bundle([run_id]).data).run_ids[0]
    run = target.get_run(new)
    assert run["model"] == HOSTILE_MODEL and run["error"].startswith("# Not a heading")
    assert target.steps(new)["token_text"].tolist()[:4] == HOSTILE_TOKENS
    tokens_csv = export_csv(target, new, "tokens")
    assert "'=HYPERLINK" in tokens_csv and "'@SUM(A1)" in tokens_csv
    assert ",=HYPERLINK" not in tokens_csv and ",@SUM" not in tokens_csv
    a.close()


def test_a_run_still_running_or_missing_is_not_exported(store: Store) -> None:
    running = seed_run(store, minutes=0.1, tokens=4, status="running")
    with pytest.raises(BundleError, match=f"Run {running} is still running; export it when it has finished"):
        store.export_bundle([running])
    with pytest.raises(BundleError, match="There is no run 99 in"):
        store.export_bundle([99])
    with pytest.raises(BundleError, match="There is no sweep nope in"):
        store.export_bundle([], ["nope"])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_export_and_import(source, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, ids = source
    bundle, other = tmp_path / "lab.bundle.sqlite", tmp_path / "other.sqlite3"
    code, out, _ = cli(capsys, "export", "--sweep", "lab-sweep", "--format", "bundle", "-o", str(bundle),
                       "--db", str(a.path))
    assert code == 0 and out.startswith(f"Wrote 2 run(s) and 1 sweep(s) to {bundle}")
    code, out, _ = cli(capsys, "import", str(bundle), "--db", str(other), "--json")
    result: dict[str, Any] = json.loads(out)
    assert code == 0 and [r["bundle_run_id"] for r in result["imported"]] == ids[:2]
    assert result["sweeps"] == ["lab-sweep"]
    code, out, _ = cli(capsys, "import", str(bundle), "--db", str(other))
    assert code == 0 and out.startswith("Skipped 2 run(s) already in the database")
    code, _, err = cli(capsys, "export", str(ids[2]), str(ids[0]), "--format", "bundle", "-o", str(bundle),
                       "--db", str(a.path))
    assert code == 0 and not err
    newer = tampered(bundle.read_bytes(), tmp_path, "UPDATE bundle_meta SET value = '2' WHERE key = 'format_version'")
    bundle.write_bytes(newer)
    code, out, err = cli(capsys, "import", str(bundle), "--db", str(other))
    assert code == 1 and not out
    assert err == (f"energyprof: {bundle} was written by a newer energyprof (bundle format 2; this one reads up to 1); "
                   "upgrade energyprof to import it.\n")
    with pytest.raises(SystemExit):
        main(["export", "1", "--format", "bundle", "--db", str(a.path)])  # no -o
    assert "give -o FILE" in capsys.readouterr().err
    code, _, err = cli(capsys, "import", str(tmp_path / "missing.bundle"), "--db", str(other))
    assert code == 1 and err.strip().endswith("does not exist; check the path.")
