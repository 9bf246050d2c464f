"""Synthetic runs written through the Store's own write methods, for dashboard tests and the render benchmark.

A seeded profile run looks like a real one: an idle baseline, then per repeat a prefill step and decode
steps, power windows per component on one clock, step and layer-call energies attributed from those
windows exactly as the engine does (energy of an interval = integral of the piecewise-constant power),
per-layer aggregates and the run summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from energyprof.components import whole_system
from energyprof.power.base import PowerWindow
from energyprof.store import Store
from energyprof.summary import MeanCI, RunSummary

CLOCK_T0_NS = 10_000_000_000
IDLE_W = {"cpu": 2.0, "gpu": 0.6, "ane": 0.05, "dram": 0.8}
LOAD_W = {"cpu": 9.0, "gpu": 18.0, "ane": 0.1, "dram": 2.2}
PREFILL_BOOST = 1.6
PACKAGE_EXTRA_W = 1.5
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", "\n", " energy",
         " per", " token", " is", " small", ",", " but", " it", " adds", " up")


def seed_run(store: Store, *, minutes: float = 0.5, interval_ms: int = 100,
             components: Sequence[str] = ("cpu", "gpu", "ane", "package"), tokens: int = 40,
             layer_calls: int | None = None, source: str = "powermetrics", measured: bool = True,
             status: str = "done", repeats: int = 1, kind: str | None = None, model: str = "tiny",
             device: str = "cpu", dtype: str = "float32", prompt_tokens: int = 12,
             token_texts: Sequence[str] | None = None, error: str | None = None,
             power_incomplete: bool = False, baseline_s: float | None = None, seed: int = 0,
             replay: bool = False, sweep: tuple[str, int] | None = None) -> int:
    """Write one realistic synthetic run and return its id.

    `tokens` steps per repeat (step 0 is the prefill); `layer_calls` calls in all (0 or None: no layer
    profiling); kind defaults to `profile` with tokens, else `sample`. `replay` (with layer calls) adds replayed
    layers as `layer_energy=replay` writes them (see seed_replay); `sweep`: (sweep id, point) of a sweep's run."""
    rng = np.random.default_rng(seed)
    kind = kind or ("profile" if tokens else "sample")
    comps = [c for c in components if c != "package"]
    span_ns = int(minutes * 60e9)
    interval_ns = int(interval_ms * 1e6)
    n_windows = max(2, span_ns // interval_ns)
    edges = CLOCK_T0_NS + np.arange(n_windows + 1, dtype=np.int64) * interval_ns
    baseline_s = baseline_s if baseline_s is not None else min(5.0, max(1.0, minutes * 6.0))
    work_t0 = CLOCK_T0_NS + int(baseline_s * 1e9) if tokens else edges[-1]
    work_t1 = edges[-1] - interval_ns

    steps = _steps(tokens, repeats, work_t0, work_t1, rng) if tokens else np.zeros((0, 4), dtype=np.int64)
    prefill_spans = [(int(s[2]), int(s[3])) for s in steps if s[1] == 0]
    power = _window_power(edges, comps, "package" in components, work_t0, work_t1 if tokens else work_t0,
                          prefill_spans, rng)
    energy_mj = {c: p * interval_ns / 1e6 for c, p in power.items()}
    cumulative = {c: np.concatenate([[0.0], np.cumsum(e)]) for c, e in energy_mj.items()}
    whole = "package" if "package" in components else None
    total_cum = cumulative[whole] if whole else sum(cumulative[c] for c in comps)

    params = {"model": model, "prompt": "Energy per token, please.", "max_new_tokens": tokens,
              "ignore_eos": True, "device": device, "dtype": dtype, "source": source,
              "interval_ms": interval_ms, "layers": "blocks" if layer_calls else "none", "repeats": repeats,
              "warmup": 0, "baseline_s": baseline_s, "temperature": 0.0, "top_p": 1.0, "seed": seed,
              "trust_remote_code": False}
    run_id = store.create_run(kind, status="running", source=source, measured=measured, model=model if tokens
                              else None, device=device if tokens else None, dtype=dtype if tokens else None,
                              params=params if kind == "profile" else {"seconds": minutes * 60},
                              sweep_id=sweep[0] if sweep else None, sweep_point=sweep[1] if sweep else None)
    store.update_run(run_id, clock_t0_ns=CLOCK_T0_NS, phase="decode", power_incomplete=int(power_incomplete))
    store.add_power_windows(run_id, (
        PowerWindow(int(edges[i]), int(edges[i + 1]), {c: float(energy_mj[c][i]) for c in energy_mj})
        for i in range(n_windows)))

    baseline_w = {c: float(power[c][edges[1:] <= work_t0].mean()) if (edges[1:] <= work_t0).any() else 0.0
                  for c in power}
    summary = RunSummary(run_id=run_id, kind=kind, status=status, source=source, measured=measured,
                         model=model if tokens else None, device=device if tokens else None,
                         dtype=dtype if tokens else None, power_incomplete=power_incomplete,
                         interval_ms=interval_ms, windows=int(n_windows),
                         energy_j={c: float(e.sum() / 1e3) for c, e in energy_mj.items()},
                         mean_w={c: float(p.mean()) for c, p in power.items()},
                         peak_w={c: float(p.max()) for c, p in power.items()})
    summary.total_energy_j = whole_system(summary.energy_j)
    if tokens:
        texts = list(token_texts) if token_texts else [WORDS[i % len(WORDS)] for i in range(tokens)]
        _write_steps(store, run_id, steps, texts, prompt_tokens, cumulative, edges, interval_ns, baseline_w)
        step_total = (np.interp(steps[:, 3], edges, total_cum) - np.interp(steps[:, 2], edges, total_cum))
        if layer_calls:
            _write_layers(store, run_id, steps, layer_calls, cumulative, total_cum, edges, interval_ns,
                          baseline_w, rng)
            if replay:
                for name, value in seed_replay(store, run_id, list(energy_mj), int(edges[-1]), step_total).items():
                    setattr(summary, name, value)
        work = (edges[:-1] >= steps[:, 2].min()) & (edges[1:] <= steps[:, 3].max())
        _profile_summary(summary, steps, step_total, energy_mj, power, baseline_w, work, interval_ns,
                         prompt_tokens, tokens, repeats)
    summary.baseline_w = baseline_w if tokens else None
    if status in ("done", "failed", "cancelled"):
        default_error = {"failed": "CUDA out of memory while loading the model (tried to allocate 2.00 GiB).",
                         "cancelled": "Cancelled by the user; the data recorded so far is kept."}
        store.update_run(run_id, progress=1.0 if status == "done" else 0.5, tokens_done=tokens * repeats)
        store.finish_run(run_id, status, error=error or default_error.get(status),
                         summary=dataclasses.replace(summary, error=error or default_error.get(status)).to_dict())
    else:
        store.update_run(run_id, status=status, progress=0.4, tokens_done=tokens // 2, heartbeat_at=time.time(),
                         phase="decode" if status == "running" else "queued")
    return run_id


def _steps(tokens: int, repeats: int, t0: int, t1: int, rng: np.random.Generator) -> np.ndarray:
    """Rows (repeat, idx, t0_ns, t1_ns): per repeat a prefill 6x as long as a decode step, small gaps."""
    weights = np.concatenate([[6.0], rng.uniform(0.8, 1.2, tokens - 1)]) if tokens > 1 else np.array([6.0])
    per_repeat = (t1 - t0) / repeats
    rows = []
    for r in range(repeats):
        start = t0 + r * per_repeat
        usable = per_repeat * 0.97
        bounds = start + np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * usable
        bounds = bounds.astype(np.int64)
        for i in range(tokens):
            rows.append((r, i, int(bounds[i]), int(bounds[i + 1])))
    return np.array(rows, dtype=np.int64)


def _window_power(edges: np.ndarray, comps: list[str], package: bool, work_t0: int, work_t1: int,
                  prefill_spans: list[tuple[int, int]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    mid = (edges[:-1] + edges[1:]) // 2
    load = ((mid >= work_t0) & (mid <= work_t1)).astype(float)
    boost = np.ones_like(load)
    for a, b in prefill_spans:
        boost[(edges[1:] > a) & (edges[:-1] < b)] = PREFILL_BOOST
    power = {}
    for c in comps:
        base = IDLE_W.get(c, 1.0) + load * (LOAD_W.get(c, 3.0) - IDLE_W.get(c, 1.0)) * boost
        power[c] = np.clip(base * rng.normal(1.0, 0.06, len(mid)), 0.0, None)
    if package:
        power["package"] = sum(power[c] for c in comps) + PACKAGE_EXTRA_W if comps else \
            np.full(len(mid), 10.0) + 15.0 * load
    return power


def _resolution(t0: np.ndarray, t1: np.ndarray, interval_ns: int) -> np.ndarray:
    """Interval length over the length of the windows it touches (1 = spans whole windows)."""
    lo = np.floor((t0 - CLOCK_T0_NS) / interval_ns)
    hi = np.ceil((t1 - CLOCK_T0_NS) / interval_ns)
    covering = np.maximum(1, hi - lo) * interval_ns
    return np.minimum(1.0, (t1 - t0) / covering)


def _write_steps(store: Store, run_id: int, steps: np.ndarray, texts: list[str], prompt_tokens: int,
                 cumulative: dict[str, np.ndarray], edges: np.ndarray, interval_ns: int,
                 baseline_w: dict[str, float]) -> None:
    store.add_steps(run_id, [
        (int(r), int(i), "prefill" if i == 0 else "decode", int(a), int(b), prompt_tokens if i == 0 else 1,
         1000 + int(i), texts[int(i) % len(texts)]) for r, i, a, b in steps])
    res = _resolution(steps[:, 2], steps[:, 3], interval_ns)
    dur_s = (steps[:, 3] - steps[:, 2]) / 1e9
    rows = []
    for c, cum in cumulative.items():
        e = np.interp(steps[:, 3], edges, cum) - np.interp(steps[:, 2], edges, cum)
        net = e - baseline_w[c] * dur_s * 1e3
        rows.extend(zip(steps[:, 0].tolist(), steps[:, 1].tolist(), [c] * len(steps), e.tolist(), net.tolist(),
                        res.tolist(), strict=True))
    store.add_step_energy(run_id, rows)


def _layer_names(n: int) -> list[tuple[str, str]]:
    if n < 4:
        return [(f"model.layers.{i}", "block") for i in range(n)]
    blocks = [(f"model.layers.{i}", "block") for i in range(n - 4)]
    return [("model.embed_tokens", "embedding"), *blocks, ("model.norm", "norm"), ("lm_head", "lm_head"),
            ("other", "other")]


def _write_layers(store: Store, run_id: int, steps: np.ndarray, layer_calls: int,
                  cumulative: dict[str, np.ndarray], total_cum: np.ndarray, edges: np.ndarray, interval_ns: int,
                  baseline_w: dict[str, float], rng: np.random.Generator) -> None:
    n = max(1, layer_calls // len(steps))
    names = _layer_names(n)
    store.add_layers(run_id, [(i, name, kind, None, i) for i, (name, kind) in enumerate(names)])
    shares = np.array([0.4 if k == "embedding" else 3.0 if k == "lm_head" else 0.2 if k in ("norm", "other")
                       else 1.0 for _, k in names])
    jitter = rng.uniform(0.9, 1.1, (len(steps), n))
    w = shares * jitter
    frac = np.concatenate([np.zeros((len(steps), 1)), np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)], axis=1)
    bounds = (steps[:, 2:3] + frac * (steps[:, 3:4] - steps[:, 2:3])).astype(np.int64)
    bounds[:, -1] = steps[:, 3]
    t0, t1 = bounds[:, :-1], bounds[:, 1:]
    dur = t1 - t0
    total = np.interp(t1, edges, total_cum) - np.interp(t0, edges, total_cum)
    res = _resolution(t0, t1, interval_ns)
    other = np.array([k == "other" for _, k in names])
    layer_ids = np.broadcast_to(np.arange(n), (len(steps), n))
    rows = zip(np.repeat(steps[:, 0], n).tolist(), np.repeat(steps[:, 1], n).tolist(), layer_ids.ravel().tolist(),
               np.where(other, None, t0).ravel().tolist(), np.where(other, None, t1).ravel().tolist(),
               dur.ravel().tolist(), total.ravel().tolist(), res.ravel().tolist(), strict=True)
    store.add_layer_calls(run_id, list(rows))
    agg = []
    for c, cum in cumulative.items():
        e = (np.interp(t1, edges, cum) - np.interp(t0, edges, cum)).sum(axis=0)
        time_ns = dur.sum(axis=0)
        net = e - baseline_w[c] * time_ns / 1e9 * 1e3
        for i in range(n):
            agg.append((i, c, len(steps), int(time_ns[i]), float(e[i]), float(net[i]), float(res[:, i].mean())))
    store.add_layer_energy(run_id, agg)


REPLAY_W = {"embedding": 20.0, "block": 60.0, "norm": 15.0, "lm_head": 45.0}
REPLAY_TIME_S = {"embedding": 2e-6, "block": 4e-4, "norm": 2e-5, "lm_head": 5e-5}
FLAGGED_LAYER = "model.layers.1"
"""The seeded replayed layer whose 95 % CI is wider than its mean."""


def seed_replay(store: Store, run_id: int, components: Sequence[str], t0_ns: int,
                step_total_mj: np.ndarray) -> dict[str, Any]:
    """Replayed layers of a running run's hooked layers (layer_replay, layer_replay_energy, replay_trials rows with
    power REPLAY_W by kind and time per call REPLAY_TIME_S, 5 % CI, FLAGGED_LAYER's CI 1.5× its mean) plus the
    `(cache restore)` reference; returns the RunSummary fields a replay fills."""
    from energyprof.store.replay import RESTORE_LAYER_ID

    layers = store.layers(run_id)
    layers = layers[layers["kind"] != "other"]
    parts = [c for c in components if c != "package"] or list(components)
    share = {c: (i + 1) / sum(range(1, len(parts) + 1)) for i, c in enumerate(parts)}
    trials, rows, energy, sums = [], [], [], {}
    t = t0_ns
    for phase, step in (("prefill", 0), ("decode", 3)):
        scale = 4.0 if phase == "prefill" else 1.0
        entries = [(RESTORE_LAYER_ID, "restore", "(cache restore)")] + [
            (int(x.layer_id), x.kind, x.name) for x in layers.itertuples()]
        for layer_id, kind, name in entries:
            watts, seconds = (10.0, 1e-6) if kind == "restore" else (REPLAY_W.get(kind, 30.0),
                                                                    REPLAY_TIME_S.get(kind, 1e-4) * scale)
            mj = watts * seconds * 1e3
            ci = mj * (1.5 if name == FLAGGED_LAYER else 0.05)
            calls = max(1, int(0.5 / seconds))
            rows.append((layer_id, phase, step, 3, 3 * calls, seconds * 1e9, mj, mj * 0.8, watts, watts * 0.8, ci,
                         ci, 0.04, int(ci > mj), "windows", 4, int(kind in ("block", "restore"))))
            energy.extend((layer_id, phase, c, mj * share[c], mj * 0.8 * share[c], ci * share[c]) for c in parts)
            if "package" in components:
                energy.append((layer_id, phase, "package", mj, mj * 0.8, ci))
            for trial in (1, 2, 3):
                trials.append((layer_id, phase, step, trial, t, t + 500_000_000, calls, mj * calls, mj * calls * 0.8))
                t += 500_000_000
            if kind != "restore":
                sums[phase] = sums.get(phase, 0.0) + mj / 1e3
    store.add_replay_trials(run_id, trials)
    store.add_layer_replay(run_id, rows)
    store.add_layer_replay_energy(run_id, energy)
    measured = {"prefill": float(step_total_mj[0]) / 1e3, "decode": float(step_total_mj[3]) / 1e3}
    return {"layer_energy": "replay", "replay_steps": {"prefill": 0, "decode": 3}, "replay_s": 0.5,
            "replay_trials": 3, "replay_layers": 2 * len(layers), "replay_flagged": 2, "replay_sum_j": sums,
            "replay_step_j": measured, "replay_skipped": [],
            "replay_closure": {p: sums[p] / measured[p] for p in sums},
            "replay_closure_net": {p: 0.8 * sums[p] / measured[p] for p in sums}}


def _mean_ci(values: np.ndarray) -> MeanCI:
    if len(values) == 0:
        return MeanCI()
    ci = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else None
    return MeanCI(float(values.mean()), ci, len(values))


def _profile_summary(summary: RunSummary, steps: np.ndarray, step_total_mj: np.ndarray,
                     energy_mj: dict[str, np.ndarray], power: dict[str, np.ndarray], baseline_w: dict[str, float],
                     work: np.ndarray, interval_ns: int, prompt_tokens: int, tokens: int, repeats: int) -> None:
    """Fill the per-token part of a seeded profile run's summary, as the engine would."""
    prefill = steps[:, 1] == 0
    decode_s = (steps[~prefill, 3] - steps[~prefill, 2]).sum() / 1e9
    work_s = work.sum() * interval_ns / 1e9
    per_repeat_decode = [step_total_mj[~prefill & (steps[:, 0] == r)].mean() / 1e3 for r in range(repeats)]
    summary.prompt_tokens, summary.new_tokens, summary.repeats = prompt_tokens, [tokens] * repeats, repeats
    summary.duration_s = work_s
    summary.net_energy_j = {c: float(e[work].sum() / 1e3 - baseline_w[c] * work_s) for c, e in energy_mj.items()}
    summary.net_total_energy_j = whole_system(summary.net_energy_j)
    summary.j_per_token = {"prefill": _mean_ci(step_total_mj[prefill] / 1e3 / prompt_tokens),
                           "decode": _mean_ci(np.array(per_repeat_decode)) if repeats > 1
                           else _mean_ci(step_total_mj[~prefill] / 1e3)}
    summary.tokens_per_s = float((~prefill).sum() / decode_s) if decode_s else None
    summary.mean_w = {c: float(p[work].mean()) for c, p in power.items()}
    summary.closure_error = 0.0


def seed_sweep(store: Store, *, batches: Sequence[int] = (1, 2, 4, 8), prompt_tokens: Sequence[int] = (16, 64),
               sweep_id: str = "batch-study", status: str = "done", source: str = "powermetrics",
               measured: bool = True, failed_points: Sequence[int] = (), pending_points: Sequence[int] = (),
               grid: float | None = None) -> str:
    """A finished sweep over batch sizes and prompt lengths written through the Store: each point a seeded profile
    run whose per-token figures follow batching as GPUs show it (decode J/token falling with the batch, prefill
    J/token rising with the prompt), with 95% CIs; `failed_points` end failed, `pending_points` have no run."""
    from energyprof.analysis.quoted import fill_quoted
    from energyprof.spec.params import ProfileParams
    from energyprof.spec.sweep import SweepSpec

    spec = SweepSpec(ProfileParams(model="tiny", device="cpu", source=source, max_new_tokens=8, ignore_eos=True,
                                   grid_g_per_kwh=grid),
                     {"batch": list(batches), "prompt_tokens": list(prompt_tokens)})
    store.create_sweep(sweep_id, spec.to_dict(), spec.size)
    for point, values in enumerate(spec.point_values()):
        if point in pending_points:
            continue
        failed = point in failed_points
        run_id = seed_run(store, minutes=0.05, tokens=8, source=source, measured=measured, seed=point,
                          status="failed" if failed else "done", prompt_tokens=values["prompt_tokens"],
                          sweep=(sweep_id, point), repeats=2)
        if failed:
            continue
        run = store.get_run(run_id)
        summary = RunSummary.from_dict(run["summary"])
        batch, tokens = values["batch"], values["prompt_tokens"]
        decode = 0.2 / batch ** 0.7 * (1 + tokens / 512)
        summary.batch, summary.prompt_tokens, summary.prompt_tokens_each = batch, tokens, [tokens] * batch
        summary.new_tokens = [8 * batch, 8 * batch]
        summary.j_per_token = {"prefill": MeanCI(0.02 * (1 + tokens / 256), 0.002, 2),
                               "decode": MeanCI(decode, decode * 0.08, 2)}
        summary.tokens_per_s = 50.0 * batch ** 0.8 / (1 + tokens / 512)
        fill_quoted(summary, grid)
        store.update_run(run_id, summary=summary.to_dict())
    if status in ("done", "failed", "cancelled"):
        store.finish_sweep(sweep_id, status, None if status == "done" else "1 of 8 points failed.")
    return sweep_id


def shipped_rows(element: Any) -> int:
    """Data rows one vega_lite_chart element of an AppTest ships to the browser (every dataset summed)."""
    import pyarrow as pa

    proto = element.proto
    total = 0
    for dataset in proto.datasets:
        total += pa.ipc.open_stream(dataset.data.data).read_all().num_rows
    if proto.data.data:
        total += pa.ipc.open_stream(proto.data.data).read_all().num_rows
    spec = json.loads(proto.spec)
    for data in _inline(spec):
        total += len(data)
    return total


def _inline(node: Any) -> list[list[Any]]:
    """Inline `data: {values: [...]}` lists anywhere in a spec."""
    found: list[list[Any]] = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("values"), list):
            found.append(data["values"])
        for value in node.values():
            found.extend(_inline(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_inline(value))
    return found


REPO = Path(__file__).resolve().parents[1]


def open_page(page: str | None = None, query: dict[str, str] | None = None, *, timeout: float = 30.0) -> Any:
    """A fresh AppTest of app.py (the Runs page) or of `page` (e.g. "pages/run.py") with these query parameters,
    after one run, as a fresh server's first request would open it.

    Streamlit's caches live for the whole process, so they are cleared first."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    if page and page != "app.py":
        at.switch_page(page)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def texts(at: Any, kind: str) -> list[str]:
    """The text of every element of one kind (markdown, caption, error, warning, info, success…) as people read
    it: energyprof.ui.md_escape's backslashes and invisible word joiners removed."""
    return [_MD_ESCAPE.sub(r"\1", str(e.value)).replace("\u2060", "") for e in getattr(at, kind)]


def charts_by_title(at: Any) -> dict[str, dict[str, Any]]:
    """Every vega-lite chart of a page run: its title -> {"spec": spec dict, "rows": rows shipped}."""
    out = {}
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        name = spec.get("title")
        name = name.get("text") if isinstance(name, dict) else name
        out[str(name)] = {"spec": spec, "rows": shipped_rows(element)}
    return out
