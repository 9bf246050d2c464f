"""The app's shape: navigation, the sidebar, what pages may import, the server config, every page on an empty db."""

from __future__ import annotations

import ast
import sys
import tomllib

import pytest
from seed import REPO, open_page, seed_run, texts

from energyprof import ui
from energyprof.store import Store

PAGES = [ui.RUNS_PAGE, ui.RUN_PAGE, ui.NEW_PAGE, ui.COMPARE_PAGE, ui.SOURCES_PAGE]
ALLOWED = ("energyprof.ui", "energyprof.charts", "energyprof.jobs", "energyprof.export", "energyprof.store",
           "energyprof.power.registry", "energyprof.power.base", "energyprof.profile.params", "energyprof.summary",
           "energyprof.components", "energyprof.provenance", "energyprof.units", "streamlit", "pandas", "altair")
"""What the dashboard may import: no torch, no transformers (energyprof.profile.params: the parameter table)."""


def test_no_legacy_pages_folder() -> None:
    # A `pages/` folder beside app.py makes Streamlit 1.67 run its legacy page discovery for the first request
    # of a fresh server: a deep link such as /run?run=12 then runs the page without app.py (no sidebar) and
    # st.navigation is never set up. The pages live in app_pages/ instead (see tests/test_browser_e2e.py).
    assert not (REPO / "pages").exists()
    assert all((REPO / page).is_file() for page in PAGES)


def test_app_registers_every_page_with_its_url() -> None:
    source = (REPO / "app.py").read_text()
    for path in ("runs", "run", "new", "compare", "sources"):
        assert f'url_path="{path}"' in source
    assert "default=True" in source


@pytest.mark.parametrize("path", ["app.py", *PAGES, "energyprof/ui.py"])
def test_pages_import_only_light_modules(path: str) -> None:
    tree = ast.parse((REPO / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
              for a in n.names]
    for name in names:
        if name.split(".")[0] in sys.stdlib_module_names or name.startswith("__future__"):
            continue
        assert any(name == a or name.startswith(a + ".") for a in ALLOWED), (path, name)


def test_server_config_is_local_and_private() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_database(store: Store, page: str) -> None:
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]


def test_sidebar_shows_database_active_job_and_source(store: Store) -> None:
    at = open_page()
    side = " ".join(texts(at.sidebar, "caption") + texts(at.sidebar, "markdown"))
    assert str(store.path) in side and "No profiling job running" in side and "Power source:" in side
    running = seed_run(store, tokens=10, status="running")
    at = open_page()
    links = [e.proto for e in at.sidebar.get("page_link")]
    assert any(f"Job #{running}" in link.label and f"run={running}" in link.query_string for link in links)
