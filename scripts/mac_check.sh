#!/usr/bin/env bash
# Check an Apple Silicon Mac's energy counters end to end, in one run, through the real command line, and print one
# block of text to paste into an issue:
#   1. energyprof doctor --json --probe-seconds 5    (ioreport available? each component's update period, quantum and
#                                                      counter health while the probe polls)
#   2. energyprof doctor --cross-check powermetrics   (only when the sudo rule is installed: both sources under one busy
#                                                      CPU core, the energy ratio per component)
#   3. energyprof profile --model small --device cpu --source ioreport   (counter health under a CPU load, J/token,
#                                                                         share of tokens measured)
#   4. the same with --device mps                      (under a GPU load)
#   5. the same with --runtime mlx when MLX is installed and this energyprof has the MLX runtime (a Metal load)
# Off an Apple Silicon Mac it stops at once with one sentence and exit 1. A step that fails becomes a line of the block
# (with its own sentence) and the script ends with exit 1: it never prints a figure it did not measure.
# Creates .venv (requirements.txt) when there is none. Options: MAC_CHECK_TOKENS (new tokens per repeat, default 64),
# MAC_CHECK_REPEATS (3), MAC_CHECK_PROBE_S (5), MAC_CHECK_CROSS_S (5), MAC_CHECK_BASELINE_S (2), MAC_CHECK_KEEP=1
# keeps the output folder (and its database).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "mac_check: $*" >&2; exit 1; }

SYSTEM=$(uname -s)
ARCH=$(uname -m)
[ "$SYSTEM" = Darwin ] && [ "$ARCH" = arm64 ] \
    || fail "this is not an Apple Silicon Mac ($SYSTEM $ARCH): run scripts/mac_check.sh on an M-series Mac (for an NVIDIA GPU, scripts/gpu_check.sh)."

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "mac_check: creating .venv (requirements.txt) ..." >&2
    "${PYTHON:-python3}" -m venv .venv || fail "could not create .venv; install Python 3.11 or newer and run again."
    "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt -e . \
        || fail "installing requirements.txt into .venv failed (see pip's message above)."
fi

CHIP=$(sysctl -n machdep.cpu.brand_string 2>/dev/null || echo "unknown chip")
MACOS="$(sw_vers -productVersion 2>/dev/null || echo '?') ($(sw_vers -buildVersion 2>/dev/null || echo '?'))"
MODEL=$(sysctl -n hw.model 2>/dev/null || echo "?")
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")

OUT=$(mktemp -d "${TMPDIR:-/tmp}/energyprof-mac-check.XXXXXX")
[ "${MAC_CHECK_KEEP:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT
DB="$OUT/mac_check.sqlite3"
TOKENS="${MAC_CHECK_TOKENS:-64}"
REPEATS="${MAC_CHECK_REPEATS:-3}"
PROBE_S="${MAC_CHECK_PROBE_S:-5}"
CROSS_S="${MAC_CHECK_CROSS_S:-5}"
BASELINE_S="${MAC_CHECK_BASELINE_S:-2}"
FAILED=()

step() {  # step NAME FILE ARGS...: run one energyprof command, its JSON to FILE; a failure is kept, not fatal
    local name=$1 file=$2
    shift 2
    echo "mac_check: $name ..." >&2
    if "$PY" -m energyprof "$@" >"$file" 2>"$file.err"; then
        return 0
    fi
    local why
    why=$(grep -v '^\s*$' "$file.err" | tail -1 | sed -e 's/^energyprof: //' -e 's/\.$//')
    echo "${why:-exit status $?}" >"$file.failed"
    FAILED+=("$name: ${why:-it failed}")
    return 0
}

profile() {  # profile NAME FILE ARGS...: the `small` profile every load runs, with ioreport at every step boundary
    local name=$1 file=$2
    shift 2
    step "$name" "$file" profile --model small --source ioreport --max-new-tokens "$TOKENS" --ignore-eos \
        --repeats "$REPEATS" --warmup 1 --baseline-s "$BASELINE_S" --layers blocks --json --db "$DB" "$@"
}

step "energyprof doctor --probe-seconds $PROBE_S" "$OUT/doctor.json" doctor --json --probe-seconds "$PROBE_S"
[ -f "$OUT/doctor.json.failed" ] && fail "energyprof doctor failed: $(cat "$OUT/doctor.json.failed")"
"$PY" - "$OUT/doctor.json" <<'PY' || exit 1
import json, sys
io = next(s for s in json.load(open(sys.argv[1]))["sources"] if s["name"] == "ioreport")
if not io["available"]:
    sys.exit(f"mac_check: the ioreport source is not available here: {io['reason']}")
PY
POWERMETRICS=$("$PY" -c 'import json, sys
pm = next(s for s in json.load(open(sys.argv[1]))["sources"] if s["name"] == "powermetrics")
print("yes" if pm["available"] else pm["reason"])' "$OUT/doctor.json")
if [ "$POWERMETRICS" = yes ]; then
    step "energyprof doctor --cross-check powermetrics" "$OUT/cross.json" doctor --json --probe-seconds 0 \
        --cross-check powermetrics --cross-check-seconds "$CROSS_S"
else
    echo "$POWERMETRICS" >"$OUT/cross.json.skipped"
fi
profile "energyprof profile --device cpu" "$OUT/cpu.json" --device cpu
profile "energyprof profile --device mps" "$OUT/mps.json" --device mps
if ! "$PY" -c 'import mlx.core' >/dev/null 2>&1; then
    echo "MLX is not installed (pip install mlx mlx-lm)" >"$OUT/mlx.json.skipped"
elif ! "$PY" -m energyprof profile --help 2>/dev/null | grep -q -- '--runtime'; then
    echo "MLX is installed, but this energyprof has no MLX runtime (--runtime mlx)" >"$OUT/mlx.json.skipped"
else
    profile "energyprof profile --runtime mlx" "$OUT/mlx.json" --runtime mlx
fi

"$PY" - "$OUT" "$CHIP" "$MODEL" "$MACOS" "$REVISION" "$PROBE_S" <<'PY'
import json, os, sys

from energyprof.components import ordered

out, chip, model, macos, revision, probe_s = sys.argv[1:]


def load(name):
    """(JSON, None) for a step that ran, (None, sentence) for one that failed or was skipped."""
    path = os.path.join(out, name)
    for suffix, label in ((".failed", "failed"), (".skipped", "skipped")):
        if os.path.exists(path + suffix):
            return None, f"{label}: {open(path + suffix).read().strip()}"
    return json.load(open(path)), None


def ms(seconds):
    return "untimed" if seconds is None else f"{seconds * 1e3:.4g} ms"


def pct(share):
    return "unknown" if share is None else f"{share * 100:.0f} %"


def j(entry):
    if not entry or entry.get("mean") is None:
        return "unknown"
    ci = entry.get("ci95")
    return f"{entry['mean']:.4g} J" + (f" ± {ci:.2g}" if ci is not None else "")


def by_component(values):
    """A {component: value} dict in display order (JSON sorts the keys)."""
    values = values or {}
    return [(c, values[c]) for c in ordered(values)]


def health(detail):
    return ", ".join(f"{c} {h['status']}" + ("" if h.get("judged", True) else " (not judged)")
                     + ("" if h.get("used", True) else " (not used)") for c, h in by_component(detail)) or "not judged"


doctor, _ = load("doctor.json")
io = next(s for s in doctor["sources"] if s["name"] == "ioreport")
counter = io.get("counter") or {}
print("energyprof Mac check (scripts/mac_check.sh)")
print(f"  machine:        {chip}, {model}, macOS {macos}; energyprof {revision}")
print(f"  ioreport:       {io['reason']}")
parts = [f"{c} untimed" if v.get("update_period_s") is None else
         f"{c} every {ms(v['update_period_s'])} in steps >= {v.get('quantum_mj'):.4g} mJ"
         for c, v in by_component(counter.get("components"))]
print(f"  probe ({probe_s} s):    " + ("; ".join(parts) or "not probed") + f"; one read {counter.get('read_us', 0):.3g} us")
print(f"  health (probe): {health(io.get('health') or {})}")
cross, why = load("cross.json")
if cross is None:
    print(f"  cross-check:    {why}")
else:
    opinion = cross.get("cross_check") or {}
    if opinion.get("error"):
        print(f"  cross-check:    failed: {opinion['error']}")
    else:
        ratios = "; ".join(f"{c} {a['cross_check_j'] if a['cross_check_j'] is None else round(a['cross_check_j'], 4)} J"
                           f" / {a['primary_j'] if a['primary_j'] is None else round(a['primary_j'], 4)} J = ratio "
                           f"{'n/a' if a['ratio'] is None else format(a['ratio'], '.3g')}"
                           for c, a in by_component(opinion.get("agreement")))
        print(f"  cross-check:    powermetrics / ioreport over {opinion.get('seconds', 0):.1f} s of one busy core: "
              f"{ratios or 'no common component'}")
        print(f"  health (cross): {health(opinion.get('health') or {})}")
loads = (("CPU load", "cpu.json"), ("GPU load, mps", "mps.json"), ("GPU load, MLX", "mlx.json"))
for label, name in loads:
    run, why = load(name)
    if run is None:
        print(f"  {label + ':':<16}{why}")
        continue
    where = f"run {run['run_id']}, {run.get('model')} on {run.get('device')} ({run.get('dtype')})"
    print(f"  {label + ':':<16}{where}, {run['status']}, {run.get('boundary_reads', 0)} boundary reads")
    print(f"    health:       {health(run.get('counter_health_detail') or {})}")
    periods = run.get("counter_update_period_s") or {}
    print("    update period (probed at start): " + ", ".join(f"{c} {ms(p)}" for c, p in by_component(periods)))
    lacks = f" (without {', '.join(run['total_lacks'])})" if run.get("total_lacks") else ""
    print(f"    J/token:      decode {j(run['j_per_token'].get('decode'))}, prefill (per prompt token) "
          f"{j(run['j_per_token'].get('prefill'))}{lacks}")
    by = run.get("tokens_measured_share_by_component") or {}
    print(f"    measured:     {pct(run.get('tokens_measured_share'))} of tokens whole-system ("
          + ", ".join(f"{c} {pct(s)}" for c, s in by_component(by)) + ")")
    print("    power:        " + ", ".join(f"{c} {'unknown' if w is None else format(w, '.3g') + ' W'}"
                                          for c, w in by_component(run.get("mean_w")))
          + f"; {run.get('tokens_per_s') or 0:.1f} tokens/s")
    for c, h in by_component(run.get("counter_health_detail")):
        if h["status"] != "ok":
            print(f"    {c}: {h['note']}")
    for warning in run.get("warnings") or []:
        print(f"    warning: {warning}")
scope = next((r.get("scope") for r in (load(n)[0] for _, n in loads) if r and r.get("scope")), None)
print(f"  whole system:   {scope or 'no profile ran'}")
PY
if [ "${#FAILED[@]}" -gt 0 ]; then
    fail "${#FAILED[@]} step(s) failed: $(printf '%s; ' "${FAILED[@]}" | sed 's/; $//')."
fi
