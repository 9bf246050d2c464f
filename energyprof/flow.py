"""Where a run's energy went: its whole energy split into idle baseline and workload, the workload into components,
each component into prefill and decode, and each of those into layer kinds. One tree of numbers, drawn as an icicle
(energyprof.charts.energy_flow) and listed as a table beside it; every node's children add up to the node.

The figures are the run's own: the whole is the summary's gross whole-system energy over the workload; the idle
baseline is gross − net (the baseline power × the workload's duration); the components are the summary's net energy
per component (gross when the run measured no baseline); a component's phases are the sums of its steps' stored
energy; the layer kinds share out a phase's energy in proportion to the layer calls' time-apportioned energy in that
phase, so they are labelled *apportioned* (or *estimated*) whatever the source. Where a source has an aggregate
component (package), the parts are listed and the rest of the aggregate is its own node, so children still add up.
A negative figure (a net energy below its noise) is kept in the table and drawn as zero width.

Pure pandas/numpy: the pages, the report and the tests build it from what the store returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from energyprof.components import AGGREGATE_COMPONENTS, ordered
from energyprof.provenance import APPORTIONED, ESTIMATED, Provenance
from energyprof.summary import PHASES, RunSummary

LEVELS: tuple[str, ...] = ("run", "idle or workload", "component", "phase", "layer kind")
"""The icicle's rows, top to bottom."""
KIND_NAMES: dict[str, str] = {"embedding": "embedding", "attention": "attention", "mlp": "MLP", "norm": "norm",
                              "lm_head": "head", "block": "block (attention + MLP + norms)", "other": "other"}
"""How each stored layer kind is named in the flow."""
BLOCK_REST = "norms & residuals (in blocks)"
"""A block's time outside its hooked attention and MLP (its norms and residual adds)."""
KIND_ORDER: tuple[str, ...] = ("embedding", "attention", "MLP", BLOCK_REST, "block (attention + MLP + norms)", "norm",
                               "head", "other")
SEPARATOR = " › "
REST_OF = "rest of {}"
BETWEEN_STEPS = "outside the steps"
TOLERANCE = 1e-9
"""Relative size under which a remainder is rounding, not a node."""


@dataclass(frozen=True)
class FlowNode:
    """One band of the flow: its path from the whole, its energy (J, signed) and how that figure was obtained."""

    path: tuple[str, ...]
    energy_j: float
    provenance: Provenance
    note: str = ""

    @property
    def level(self) -> int:
        return len(self.path) - 1

    @property
    def name(self) -> str:
        return self.path[-1]


@dataclass(frozen=True)
class EnergyFlow:
    """Every node of a run's flow, parents before their children."""

    nodes: tuple[FlowNode, ...]
    net: bool
    """True when the workload is net of the idle baseline (the run measured one)."""

    @property
    def whole_j(self) -> float:
        return self.nodes[0].energy_j

    def children(self, node: FlowNode) -> list[FlowNode]:
        return [n for n in self.nodes if n.path[:-1] == node.path]

    def frame(self) -> pd.DataFrame:
        """The table beside the chart: level, band (its path), energy_j, share of the whole (%), provenance, note."""
        whole = self.whole_j
        return pd.DataFrame({
            "level": [LEVELS[n.level] for n in self.nodes],
            "band": [SEPARATOR.join(n.path[1:]) or n.path[0] for n in self.nodes],
            "energy_j": [n.energy_j for n in self.nodes],
            "share_pct": [100 * n.energy_j / whole if whole else None for n in self.nodes],
            "provenance": [n.provenance for n in self.nodes],
            "note": [n.note for n in self.nodes]})

    def drawn(self) -> pd.DataFrame:
        """The icicle's rectangles: each node's [x0, x1] in joules inside its parent's (negatives drawn empty)."""
        spans: dict[tuple[str, ...], tuple[float, float]] = {self.nodes[0].path: (0.0, max(0.0, self.whole_j))}
        for node in self.nodes:
            lo, hi = spans[node.path]
            kids = self.children(node)
            widths = [max(0.0, k.energy_j) for k in kids]
            total = sum(widths)
            scale = min(1.0, (hi - lo) / total) if total > 0 else 0.0
            for kid, width in zip(kids, widths, strict=True):
                spans[kid.path] = (lo, lo + width * scale)
                lo += width * scale
        whole = self.whole_j or 1.0
        rows = []
        for node in self.nodes:
            x0, x1 = spans[node.path]
            rows.append({"level": LEVELS[node.level], "depth": node.level, "name": node.name,
                         "band": SEPARATOR.join(node.path[1:]) or node.path[0], "x0": x0, "x1": x1,
                         "energy_j": node.energy_j, "share_pct": 100 * node.energy_j / whole,
                         "provenance": node.provenance, "note": node.note})
        return pd.DataFrame(rows)


def energy_flow(summary: RunSummary, phases: pd.DataFrame, layers: pd.DataFrame) -> EnergyFlow | None:
    """The run's flow from its summary, Store.phase_energy and Store.layer_phase_energy; None without a whole
    energy or per-step figures (a recording, a run that failed before its first step)."""
    whole = summary.gross_total_j
    if whole is None or phases.empty or not summary.profiled:
        return None
    source = summary.provenance
    root = ("whole run",)
    nodes = [FlowNode(root, whole, source, "gross whole-system energy of the measured repeats")]
    net = summary.net_total_j is not None and summary.baseline_w is not None
    if net:
        idle = ("whole run", "idle baseline")
        nodes.append(FlowNode(idle, whole - summary.net_total_j, source,
                              "idle baseline power × the steps' duration (gross − net)"))
        net_parts = summary.net_energy_j or {}
        idle_parts = {c: None if g is None or net_parts.get(c) is None else g - net_parts[c]
                      for c, g in summary.energy_j.items()}
        nodes += _components(idle, whole - summary.net_total_j, idle_parts, source)
        workload = ("whole run", "workload (net)")
        nodes.append(FlowNode(workload, summary.net_total_j, source, "gross − idle baseline"))
        parts = net_parts
    else:
        workload = ("whole run", "workload (gross)")
        nodes.append(FlowNode(workload, whole, source, "no idle baseline was measured"))
        parts = summary.energy_j
    component_nodes = _components(workload, nodes[-1].energy_j, parts, source)
    kind_shares = _kind_shares(layers)
    layer_label = ESTIMATED if source == ESTIMATED else APPORTIONED
    for comp_node in component_nodes:
        nodes.append(comp_node)
        if comp_node.name not in set(phases["component"]):
            continue
        for phase_node in _phases(comp_node, phases, net):
            nodes.append(phase_node)
            for kind, share in kind_shares.get(phase_node.name, []):
                nodes.append(FlowNode((*phase_node.path, kind), phase_node.energy_j * share, layer_label,
                                      "the phase's energy in proportion to the layer calls' (time-apportioned)"))
    return EnergyFlow(tuple(nodes), net)


def _components(parent: tuple[str, ...], total: float, parts: dict[str, float | None],
                source: Provenance) -> list[FlowNode]:
    """A parent split into its known non-aggregate components, plus the rest of an aggregate (package) if any."""
    known = {c: v for c, v in parts.items() if v is not None}
    names = [c for c in ordered(known) if c not in AGGREGATE_COMPONENTS]
    nodes = [FlowNode((*parent, c), float(known[c]), source) for c in names]
    rest = total - sum(n.energy_j for n in nodes)
    aggregates = [c for c in ordered(known) if c in AGGREGATE_COMPONENTS]
    if aggregates and abs(rest) > TOLERANCE * max(1.0, abs(total)):
        nodes.append(FlowNode((*parent, REST_OF.format(aggregates[0])), rest, source,
                              f"{aggregates[0]} energy not in a listed component"))
    return nodes


def _phases(component: FlowNode, phases: pd.DataFrame, net: bool) -> list[FlowNode]:
    """A workload component split into its phases (sums of its steps), plus a remainder when they fall short."""
    rows = phases[phases["component"] == component.name]
    rows = rows.iloc[sorted(range(len(rows)), key=lambda i: _phase_rank(str(rows["phase"].iloc[i])))]
    column = "net_energy_j" if net else "energy_j"
    nodes = []
    for row in rows.itertuples():
        value = getattr(row, column)
        if pd.notna(value):
            nodes.append(FlowNode((*component.path, str(row.phase)), float(value), row.how))
    rest = component.energy_j - sum(n.energy_j for n in nodes)
    if nodes and abs(rest) > TOLERANCE * max(1.0, abs(component.energy_j)):
        nodes.append(FlowNode((*component.path, BETWEEN_STEPS), rest, component.provenance,
                              "the component's energy not in a step with a known figure"))
    return nodes


def _kind_shares(layers: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """Per phase, each layer kind's share (0-1) of the phase's layer-call energy, in KIND_ORDER."""
    if layers.empty:
        return {}
    out: dict[str, list[tuple[str, float]]] = {}
    for phase, group in layers.groupby("phase", sort=False):
        energy = _kind_energy(group)
        total = sum(energy.values())
        if total > 0:
            out[str(phase)] = [(k, energy[k] / total) for k in sorted(energy, key=_kind_rank) if energy[k] != 0]
    return out


def _kind_energy(group: pd.DataFrame) -> dict[str, float]:
    """One phase's layer energy by kind: top-level layers, a block's parts as their own kinds and its rest."""
    energy: dict[str, float] = {}
    values = pd.to_numeric(group["energy_j"], errors="coerce").fillna(0.0)
    parent = pd.to_numeric(group["parent_id"], errors="coerce")
    for row, value, parent_id in zip(group.itertuples(), values, parent, strict=True):
        kind = KIND_NAMES.get(str(row.kind), str(row.kind))
        if pd.notna(parent_id):
            energy[kind] = energy.get(kind, 0.0) + float(value)
            continue
        children = values[parent == row.layer_id]
        if children.size:
            energy[BLOCK_REST] = energy.get(BLOCK_REST, 0.0) + float(value) - float(children.sum())
        else:
            energy[kind] = energy.get(kind, 0.0) + float(value)
    return energy


def _phase_rank(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase), phase) if phase in PHASES else (len(PHASES), phase)


def _kind_rank(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind), kind) if kind in KIND_ORDER else (len(KIND_ORDER), kind)


def flow_checks(flow: EnergyFlow) -> Sequence[tuple[str, float, float]]:
    """(band, its energy, the sum of its children) for every node with children: what the tests and the table's
    note hold to be equal."""
    out = []
    for node in flow.nodes:
        kids = flow.children(node)
        if kids:
            out.append((SEPARATOR.join(node.path), node.energy_j, sum(k.energy_j for k in kids)))
    return out
