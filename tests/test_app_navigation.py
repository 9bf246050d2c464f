"""The app's shape: the pages-folder layout, the shared sidebar, what pages may import, the server config, every
page on an empty database, and query parameters that are not run numbers."""

from __future__ import annotations

import ast
import sys
import tomllib

import pytest
from seed import REPO, open_page, seed_run, texts

from energyprof import ui
from energyprof.store import Store

PAGES = [page.path for page in ui.PAGES]
UI_MODULES = sorted(str(p.relative_to(REPO)) for p in (REPO / "energyprof" / "ui").glob("*.py"))
ALLOWED = ("energyprof.ui", "energyprof.charts", "energyprof.runner.jobs", "energyprof.export", "energyprof.store",
           "energyprof.power.registry", "energyprof.power.base", "energyprof.power.sudo_rule",
           "energyprof.spec.params", "energyprof.summary", "energyprof.errors",
           "energyprof.components", "energyprof.provenance", "energyprof.units", "streamlit", "pandas", "altair",
           "energyprof.spec.sweep", "energyprof.analysis.precision", "energyprof.analysis.quoted",
           "energyprof.sweep_table", "energyprof.spec.ray_cluster", "energyprof.redact", "energyprof.textsafe",
           "energyprof.spec.replay_plan", "energyprof.runtimes.choice", "energyprof.compare_table",
           "energyprof.run_views", "energyprof.flow", "energyprof.machine", "energyprof.read_only",
           "energyprof.formatting", "energyprof.token_html", "energyprof.report")
"""What the dashboard may import: no torch, no transformers (energyprof.spec.params: the parameter table;
sweep_spec: a sweep's grid; precision: the target CI's rule; errors: the one sentence-maker; spec.ray_cluster: a
Ray address checked, without Ray; redact: the secret scrubber; textsafe: outside text made inert; replay_plan: what
a replay will do; runtimes.choice: whether mlx is installed, without importing it; report: the HTML reports, built
from the same reads)."""


def test_pages_folder_layout() -> None:
    # Streamlit's pages-folder app: app.py is the home page, pages/NAME.py is served at /NAME. The app must not
    # call st.navigation as well: with a pages/ folder, a fresh server's first request to a deep link would then
    # run the page without it and keep Streamlit's generated navigation (see tests/test_browser_e2e.py).
    assert not (REPO / "app_pages").exists()
    assert PAGES[0] == "app.py"
    assert sorted(PAGES[1:]) == sorted(f"pages/{p.name}" for p in (REPO / "pages").glob("*.py"))
    assert [p.removeprefix("pages/").removesuffix(".py") for p in PAGES[1:]] == ["run", "new", "compare", "sweep",
                                                                                 "sources"]
    for path in PAGES:
        source = (REPO / path).read_text()
        assert "st.navigation" not in source and "st.Page(" not in source, path
        assert ast.unparse(_first_page_statement(ast.parse(source))).startswith("store = ui.page_setup("), path


def _first_page_statement(tree: ast.Module) -> ast.stmt:
    """The first module-level statement that does something (not the docstring, an import, a def or a constant)."""
    for node in tree.body:
        skip = isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef) or (
            isinstance(node, ast.Expr | ast.Assign) and isinstance(node.value, ast.Constant))
        if not skip:
            return node
    raise AssertionError("the page does nothing")


@pytest.mark.parametrize("path", ["app.py", *PAGES[1:], *UI_MODULES])
def test_pages_import_only_light_modules(path: str) -> None:
    tree = ast.parse((REPO / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
              for a in n.names]
    for name in names:
        if name.split(".")[0] in sys.stdlib_module_names or name.startswith("__future__"):
            continue
        assert any(name == a or name.startswith(a + ".") for a in ALLOWED), (path, name)


def test_server_config_is_local_private_and_quiet() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    # No file watcher: with README's .venv inside the app folder it cost the server most of a core per
    # live-view rerun, on the machine being measured (issue 9).
    assert config["server"]["fileWatcherType"] == "none"
    # No forced gc.collect(2) after each script run: with the watcher off it was most of what a live-view refresh
    # cost the server (bench/live_view.py).
    assert config["runner"]["postScriptGC"] is False
    # The app draws its own sidebar navigation; Streamlit's generated one is hidden.
    assert config["client"]["showSidebarNavigation"] is False


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_database(store: Store, page: str) -> None:
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    links = [(link.proto.label, link.proto.page) for link in at.sidebar.get("page_link")]
    assert links[:len(PAGES)] == [("Runs", ""), ("Run", "run"), ("New profile", "new"), ("Compare", "compare"),
                                  ("Sweeps", "sweep"), ("Power sources", "sources")]


def test_sidebar_shows_database_active_job_and_source(store: Store) -> None:
    at = open_page()
    side = " ".join(texts(at.sidebar, "caption") + texts(at.sidebar, "markdown"))
    assert str(store.path) in side and "No profiling job running" in side and "Power source:" in side
    running = seed_run(store, tokens=10, status="running")
    store.update_run(running, phase="repeat 1 of 3", progress=0.25)
    at = open_page("pages/compare.py")
    links = [e.proto for e in at.sidebar.get("page_link")]
    assert any(link.label == f"Job #{running}: repeat 1 of 3 25%" and f"run={running}" in link.query_string
               for link in links)


@pytest.mark.parametrize("text", ["99999999999999999999", "abc", "²", "-1", "0", "1.5", "1e3", "3,4",
                                  "![t](http://hostile.invalid/x.png)"])
def test_run_page_refuses_what_is_not_a_run_number(store: Store, text: str) -> None:
    seed_run(store, tokens=4)
    at = open_page("pages/run.py", {"run": text})
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at, "error")
    assert errors == [f"The link asks for run={text}, which is not a run number: pick a run below."]
    assert at.selectbox(key="open_run").options == ["#1 tiny (done)"]
    assert "![" not in " ".join(e.value for e in at.error)


@pytest.mark.parametrize(("text", "kept", "left_out"), [
    ("²,1", [1], "²"), ("1,99999999999999999999", [1], "99999999999999999999"), ("x,2,1", [2, 1], "x"),
    ("1,2", [1, 2], None), ("", [], None)])
def test_compare_keeps_the_run_numbers_of_the_link(store: Store, text: str, kept: list[int],
                                                   left_out: str | None) -> None:
    seed_run(store, tokens=4)
    seed_run(store, tokens=4)
    at = open_page("pages/compare.py", {"runs": text})
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="compare_pick").value == kept
    warnings = texts(at, "warning")
    if left_out is None:
        assert not warnings
    else:
        assert warnings == [f"The link's runs= holds {left_out}, which is not a run number: left out."]


def test_parse_run_ids_accepts_ascii_run_numbers_only() -> None:
    from energyprof.ui.nav import MAX_RUN_ID, parse_run_ids

    assert parse_run_ids(" 3, 4 ,,") == ([3, 4], [])
    assert parse_run_ids(f"{MAX_RUN_ID},{MAX_RUN_ID + 1}") == ([MAX_RUN_ID], [str(MAX_RUN_ID + 1)])
    assert parse_run_ids("١,２,0,+1") == ([], ["١", "２", "0", "+1"])
    assert parse_run_ids(None) == ([], [])
