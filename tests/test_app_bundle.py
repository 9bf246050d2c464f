"""Bundles on the dashboard: the Runs page imports an uploaded bundle (a bad one is one sentence), the imported run's
page says where it came from and renders its text as text; Run, Compare and Sweeps offer a bundle download."""

from __future__ import annotations

import os
from pathlib import Path

from seed import open_page, seed_run, texts

from energyprof.store import Store
from energyprof.ui.format import md_escape


def export_from_elsewhere(tmp_path: Path, **seed) -> bytes:
    other = Store(tmp_path / "elsewhere.sqlite3")
    run_id = seed_run(other, minutes=0.1, tokens=6, **seed)
    data = other.export_bundle([run_id]).data
    other.close()
    return data


def upload(at, name: str, data: bytes):
    at.file_uploader(key="bundle_upload").set_value((name, data, "application/octet-stream")).run()
    return at.button(key="bundle_import").click().run()


def test_runs_page_imports_an_uploaded_bundle_once(store: Store, tmp_path: Path) -> None:
    data = export_from_elsewhere(tmp_path, model="from-the-lab")
    at = open_page()  # an empty database: the import is offered beside the demo
    assert not at.exception
    at = upload(at, "lab.bundle.sqlite", data)
    assert not at.exception
    assert texts(at, "success") == ["Imported 1 run(s) as #1."]
    assert at.dataframe[0].value["model"].tolist() == ["from-the-lab"]
    at = upload(at, "lab.bundle.sqlite", data)
    assert texts(at, "success") == ["Skipped 1 run(s) already here (#1)."]
    assert int(store.query_one("SELECT COUNT(*) FROM runs")[0]) == 1


def test_a_bad_upload_is_one_sentence_and_imports_nothing(store: Store, tmp_path: Path) -> None:
    seed_run(store, minutes=0.1, tokens=4)
    at = upload(open_page(), "holiday.png", b"\x89PNG\r\n\x1a\n not a bundle")
    assert not at.exception
    assert texts(at, "error") == ["holiday.png is not an energyprof bundle (not an SQLite file); give the file "
                                  "`energyprof export … --format bundle` wrote."]
    cut = export_from_elsewhere(tmp_path)[:3000]
    at = upload(at, "cut.bundle.sqlite", cut)
    assert len(at.error) == 1 and "cut.bundle.sqlite is damaged or cut off" in texts(at, "error")[0]
    assert int(store.query_one("SELECT COUNT(*) FROM runs")[0]) == 1


def test_an_imported_runs_page_shows_its_origin_and_its_text_as_text(store: Store, tmp_path: Path) -> None:
    hostile = "**bold** <b>html</b> [link](http://evil.example)"
    store.import_bundle(export_from_elsewhere(tmp_path, model=hostile, token_texts=["<script>x</script>", " ok"]))
    at = open_page("pages/run.py", {"run": "1"})
    assert not at.exception
    assert at.title[0].value == f"Run #1 · {md_escape(hostile)}"  # every Markdown character escaped: shown as typed
    origin = [t for t in texts(at, "caption") if t.startswith("imported: run #1 of another database")]
    assert len(origin) == 1 and "exported on" in origin[0]
    html = "".join(str(e.proto.body) for e in at.get("html"))
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html


def test_run_compare_and_sweeps_offer_a_bundle(store: Store) -> None:
    store.create_sweep("s1", {"base": {}, "axes": {}}, 1, pid=os.getpid())
    a = seed_run(store, minutes=0.1, tokens=4, sweep=("s1", 0))
    store.finish_sweep("s1", "done")
    b = seed_run(store, minutes=0.1, tokens=4, seed=1)
    cases = {("pages/run.py", "run", str(a)): f"dl-bundle-run{a}",
             ("pages/compare.py", "runs", f"{a},{b}"): f"dl-bundle-run{a}-{b}",
             ("pages/sweep.py", "sweep", "s1"): "dl-bundle-sweep-s1"}
    for (page, name, value), key in cases.items():
        at = open_page(page, {name: value})
        assert not at.exception, page
        ids = [d.proto.id for d in at.get("download_button")]
        assert any(key in i for i in ids), (page, ids)
