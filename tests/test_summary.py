"""The typed run summary: the record every writer fills and every reader trusts."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from energyprof.analysis.replay_results import ReplayFigures
from energyprof.analysis.results import EnergyFigures
from energyprof.runner.boundary_reads import CounterFigures
from energyprof.runner.cross_check_run import CrossCheckFigures
from energyprof.runner.health import HealthFigures
from energyprof.summary import MeanCI, RunSummary


def _profile_summary() -> RunSummary:
    return RunSummary(run_id=3, kind="profile", status="done", source="powermetrics", measured=True,
                      new_tokens=[8, 8], repeats=2, energy_j={"cpu": 1.0, "gpu": 2.0, "dram": None},
                      net_energy_j={"cpu": 0.5, "gpu": 1.0, "dram": None}, mean_w={"cpu": 4.0, "gpu": 8.0},
                      peak_w={"cpu": 5.0, "gpu": 9.0}, baseline_w={"cpu": 1.0, "gpu": 0.5},
                      j_per_token={"prefill": MeanCI(0.2, None, 2), "decode": MeanCI(0.1, 0.01, 2)})


def test_json_round_trip_keeps_every_field_and_type() -> None:
    summary = _profile_summary()
    stored = json.loads(json.dumps(summary.to_dict()))
    back = RunSummary.from_dict(stored)
    assert back == summary
    assert isinstance(back.j_per_token["decode"], MeanCI) and back.j_per_token["decode"].ci95 == 0.01
    assert stored["j_per_token"]["decode"] == {"mean": 0.1, "ci95": 0.01, "n": 2}


def test_whole_system_figures_follow_the_one_rule() -> None:
    summary = _profile_summary()
    assert summary.gross_total_j == 3.0 and summary.net_total_j == 1.5
    assert summary.mean_total_w == 12.0 and summary.peak_total_w == 14.0 and summary.baseline_total_w == 1.5
    assert summary.tokens_per_repeat == 8 and summary.tokens_total == 16 and summary.profiled
    with_package = RunSummary(energy_j={"cpu": 1.0, "package": 4.0})
    assert with_package.gross_total_j == 4.0


def test_old_or_damaged_summaries_are_read_without_trusting_wrong_shapes() -> None:
    # A measure() run of an earlier version stored mean_w as one float (the pages then crashed on .items()).
    old = {"label": "block", "duration_s": 2.0, "energy_j": {"cpu": 3.0}, "total_j": 3.0, "mean_w": 1.5,
           "resolution": 0.9, "block_t0_ns": 10, "block_t1_ns": 20, "unknown_key": [1, 2]}
    summary = RunSummary.from_dict(old)
    assert summary.mean_w == {} and summary.energy_j == {"cpu": 3.0} and summary.gross_total_j == 3.0
    assert summary.block_t0_ns == 10 and summary.label == "block"
    damaged = RunSummary.from_dict({"j_per_token": {"decode": 5}, "new_tokens": "many", "energy_j": {"cpu": "x"},
                                    "tokens_per_s": float("nan"), "repeats": None})
    assert damaged.j_per_token["decode"] == MeanCI() and damaged.new_tokens == []
    assert damaged.energy_j == {"cpu": None} and damaged.tokens_per_s is None and damaged.repeats == 0
    assert RunSummary.from_dict(None) == RunSummary() and RunSummary.from_dict("garbage") == RunSummary()


def test_provenance_of_the_figures() -> None:
    assert RunSummary(source="estimate", measured=False).estimated
    assert RunSummary(source="ioreport", measured=True).provenance == "measured"
    assert RunSummary().provenance == "unknown"


FIGURE_RECORDS = [EnergyFigures, ReplayFigures, CounterFigures, CrossCheckFigures, HealthFigures]
"""Every typed figure record the engine copies into the summary with RunSummary.take."""


@pytest.mark.parametrize("record", FIGURE_RECORDS, ids=lambda record: record.__name__)
def test_every_figure_field_names_a_summary_field_of_the_same_type(record: type) -> None:
    summary_types = typing.get_type_hints(RunSummary)
    for name, hint in typing.get_type_hints(record).items():
        assert name in summary_types, f"{record.__name__}.{name} is not a RunSummary field"
        assert hint == summary_types[name], (name, hint, summary_types[name])


def test_take_copies_a_figure_record_and_refuses_an_unknown_field() -> None:
    summary = RunSummary(run_id=1).take(CounterFigures(boundary_reads=7, counter_read_us=3.5))
    assert summary.boundary_reads == 7 and summary.counter_read_us == 3.5 and summary.counter_probe_s is None

    @dataclasses.dataclass
    class Misspelt:
        boundary_read: int = 1

    with pytest.raises(AttributeError, match="Misspelt.boundary_read is not a RunSummary field"):
        RunSummary().take(Misspelt())
