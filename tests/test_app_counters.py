"""The run page tells how each token was obtained (share measured, the counter's update period and quantum) and shows
a cross-check source's second opinion, for a real run through the engine (ioreport stand-in + powermetrics stand-in).
"""

from __future__ import annotations

import re

import pytest
from profile_helpers import fast_params, use_fake_powermetrics
from seed import open_page, seed_run, texts

from energyprof.runner import boundary_reads
from energyprof.runner.job import profile_foreground
from energyprof.store import Store


def _table(at, column: str):
    """The one table on the page with this column (AppTest does not expose a table's key), or None."""
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(found) <= 1, column
    return found[0] if found else None


def test_run_page_shows_measured_share_counter_and_cross_check(store: Store, stand_in,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundary_reads, "PROBE_S", 0.5)
    monkeypatch.setenv("FAKE_IOREPORT_UPDATE_MS", "1")
    use_fake_powermetrics(monkeypatch)
    summary = profile_foreground(store, fast_params(source="ioreport", cross_check="powermetrics", interval_ms=50,
                                                    max_new_tokens=16, repeats=1, warmup=1))
    assert summary.status == "done", summary.error
    at = open_page("pages/run.py", {"run": str(summary.run_id)})
    assert not at.exception, [e.value for e in at.exception]
    markdown = " ".join(texts(at, "markdown"))
    assert f"Tokens measured: {summary.tokens_measured_share * 100:.0f} % whole-system (cpu" in markdown
    captions = " ".join(texts(at, "caption"))
    assert f"The counter was read at every step boundary ({summary.boundary_reads} reads" in captions
    counter = _table(at, "Update period (ms)")
    assert list(counter["Component"]) == ["cpu", "gpu", "ane", "dram"]
    assert counter.loc[counter["Component"] == "cpu", "Update period (ms)"].iloc[0] == pytest.approx(1.0, rel=0.5)
    assert set(_table(at, "token_text")["how"]) <= {"measured", "apportioned"}
    assert any(s.value.startswith("Cross-check: ioreport vs powermetrics") for s in at.subheader)
    cross = _table(at, "Correlation")
    assert set(cross["Component"]) == {"cpu", "gpu", "ane"}  # powermetrics has no DRAM since macOS 13
    assert {"ioreport (J)", "powermetrics (J)", "Ratio", "Correlation"} <= set(cross.columns)
    # the second opinion is part of each component's counter verdict
    for comp in ("cpu", "gpu"):
        assert summary.counter_health[comp] == "ok"
        assert re.search(r" powermetrics measured [\d.e+-]+ J over the same work, [\d.e+-]+ times this source's "
                         r"figure\.$", summary.counter_health_detail[comp].note), summary.counter_health_detail[comp]
    assert "Health" in counter.columns


def test_run_without_counter_or_cross_check_shows_neither(store: Store) -> None:
    run_id = seed_run(store, tokens=20)
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.exception
    assert _table(at, "Update period (ms)") is None and _table(at, "Correlation") is None
    assert not any(s.value.startswith("Cross-check") for s in at.subheader)


def test_a_failed_cross_check_is_a_warning_on_the_page(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_powermetrics(monkeypatch, FAKE_POWERMETRICS_EUID="501")
    summary = profile_foreground(store, fast_params(cross_check="powermetrics", repeats=1, layers="none"))
    at = open_page("pages/run.py", {"run": str(summary.run_id)})
    assert not at.exception
    assert any(w.startswith("The cross-check source powermetrics could not start") for w in texts(at, "warning"))
