"""Where the energy went (energyprof.flow): on a real profile run and on a measured run with a package component,
every band's children add up to it, the bands are the run's own totals (gross, idle baseline, net per component,
per phase from the stored steps, layer kinds from the layer calls), each band says how it was obtained, and the run
page draws the icicle with the same numbers in the table beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from seed import open_page, seed_run

from energyprof import charts
from energyprof.flow import BETWEEN_STEPS, EnergyFlow, FlowNode, energy_flow, flow_checks
from energyprof.store import Store
from energyprof.summary import RunSummary

REL = 1e-9


@pytest.fixture(scope="module")
def real_run(hostile_run: tuple[Path, int]) -> tuple[Path, int]:
    return hostile_run


def _flow(store: Store, run_id: int) -> tuple[EnergyFlow, RunSummary]:
    summary = RunSummary.from_dict(store.get_run(run_id)["summary"])
    flow = energy_flow(summary, store.phase_energy(run_id), store.layer_phase_energy(run_id))
    assert flow is not None
    return flow, summary


def _node(flow: EnergyFlow, *path: str) -> FlowNode:
    return next(n for n in flow.nodes if n.path == ("whole run", *path))


def test_a_real_runs_flow_adds_up_to_its_totals(real_run: tuple[Path, int]) -> None:
    db, run_id = real_run
    store = Store(db)
    flow, s = _flow(store, run_id)
    for band, energy, children in flow_checks(flow):
        assert children == pytest.approx(energy, rel=REL, abs=1e-12), band
    assert flow.whole_j == pytest.approx(s.gross_total_j, rel=REL)
    assert _node(flow, "workload (net)").energy_j == pytest.approx(s.net_total_j, rel=REL)
    assert _node(flow, "idle baseline").energy_j == pytest.approx(s.gross_total_j - s.net_total_j, rel=REL)
    assert _node(flow, "workload (net)", "cpu").energy_j == pytest.approx(s.net_energy_j["cpu"], rel=REL)
    steps = store.step_energy(run_id)
    for phase in ("prefill", "decode"):
        stored = steps.loc[(steps["phase"] == phase) & (steps["component"] == "cpu"), "net_energy_j"].sum()
        assert _node(flow, "workload (net)", "cpu", phase).energy_j == pytest.approx(stored, rel=REL)
    # layer kinds share out a phase as the layer calls share its energy: attention and MLP from `modules` depth,
    # a block's norms and residual adds, the final norm, the head, embedding and `other`
    calls = store.layer_calls(run_id).merge(store.steps(run_id)[["repeat", "idx", "phase"]],
                                            left_on=["repeat", "step_idx"], right_on=["repeat", "idx"])
    decode = calls[calls["phase"] == "decode"]
    top_level = decode.loc[~decode["kind"].isin(["attention", "mlp"]), "energy_mj"].sum()  # blocks hold those two
    share = decode.loc[decode["kind"] == "attention", "energy_mj"].sum() / top_level
    kinds = {n.name: n.energy_j for n in flow.children(_node(flow, "workload (net)", "cpu", "decode"))}
    assert set(kinds) == {"embedding", "attention", "MLP", "norms & residuals (in blocks)", "norm", "head", "other"}
    assert kinds["attention"] / sum(kinds.values()) == pytest.approx(share, rel=1e-6)
    assert {n.provenance for n in flow.nodes} == {"estimated"}  # the estimate source: every band estimated
    # the fast read (layer totals less the step-0 calls) is the same as summing every call by its step's phase
    fast, calls = store.layer_phase_energy(run_id), store.layer_phase_energy_of_calls(run_id)
    both = fast.merge(calls, on=["phase", "layer_id", "kind"], suffixes=("", "_calls"))
    assert len(both) == len(fast) == len(calls) == 2 * len(store.layers(run_id))
    assert both["energy_j"].to_numpy() == pytest.approx(both["energy_j_calls"].to_numpy(), rel=1e-9, abs=1e-15)
    assert both["time_s"].to_numpy() == pytest.approx(both["time_s_calls"].to_numpy(), rel=1e-9, abs=1e-15)
    assert BETWEEN_STEPS not in {n.name for n in flow.nodes}  # the steps partition the workload
    store.close()


def test_a_measured_run_with_a_package_labels_each_band(store: Store) -> None:
    run_id = seed_run(store, tokens=30, layer_calls=300, components=("cpu", "gpu", "ane", "package"))
    flow, s = _flow(store, run_id)
    for band, energy, children in flow_checks(flow):
        assert children == pytest.approx(energy, rel=REL, abs=1e-12), band
    # the package holds more than its listed parts: a constant 1.5 W, idle draw that the net workload does not have
    idle = flow.children(_node(flow, "idle baseline"))
    assert [n.name for n in idle] == ["cpu", "gpu", "ane", "rest of package"]
    assert [n.name for n in flow.children(_node(flow, "workload (net)"))] == ["cpu", "gpu", "ane"]
    assert idle[-1].energy_j > 0
    assert _node(flow, "workload (net)").energy_j == pytest.approx(s.net_total_j, rel=REL)
    labels = {n.level: set() for n in flow.nodes}
    for n in flow.nodes:
        labels[n.level].add(n.provenance)
    assert labels[0] == labels[1] == labels[2] == {"measured"}
    assert labels[3] <= {"measured", "apportioned"} and labels[4] == {"apportioned"}  # layer kinds: time shares


def test_a_negative_net_band_stays_in_the_table_and_is_drawn_empty() -> None:
    nodes = (FlowNode(("whole run",), 10.0, "measured"), FlowNode(("whole run", "idle baseline"), 6.0, "measured"),
             FlowNode(("whole run", "workload (net)"), 4.0, "measured"),
             FlowNode(("whole run", "workload (net)", "cpu"), 4.5, "measured"),
             FlowNode(("whole run", "workload (net)", "ane"), -0.5, "measured"))
    flow = EnergyFlow(nodes, net=True)
    table = flow.frame().set_index("band")
    assert table.loc["workload (net) › ane", "energy_j"] == -0.5
    drawn = flow.drawn().set_index("band")
    work = drawn.loc["workload (net)"]
    cpu, ane = drawn.loc["workload (net) › cpu"], drawn.loc["workload (net) › ane"]
    assert ane["x1"] == ane["x0"] and work["x0"] <= cpu["x0"] < cpu["x1"] <= work["x1"] + 1e-12
    chart = charts.energy_flow(flow.drawn()).to_dict()
    assert chart["layer"][0]["encoding"]["color"]["field"] == "provenance"


def test_the_run_page_draws_the_flow_and_lists_its_numbers(real_run: tuple[Path, int],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id = real_run
    monkeypatch.setenv("ENERGYPROF_DB", str(db))
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert not at.exception, [e.value for e in at.exception]
    titles = [e.proto.spec for e in at.get("vega_lite_chart")]
    assert any('"Where the energy went (J) (estimated)"' in spec for spec in titles)
    shown = next(d.value for d in at.dataframe if "band" in d.value.columns)
    store = Store(db)
    flow, _ = _flow(store, run_id)
    expected = flow.frame()
    assert list(shown["band"]) == list(expected["band"])
    pd.testing.assert_series_equal(shown["energy_j"], expected["energy_j"], check_names=False)
    store.close()
