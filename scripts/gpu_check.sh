#!/usr/bin/env bash
# Prove NVML end to end on a machine with an NVIDIA GPU, through the real command line:
#   1. energyprof doctor --json                     (nvml available? its counter's update period and quantum)
#   2. energyprof sample --source nvml --seconds 3  (windows recorded, mean power)
#   3. energyprof profile --model small --device cuda --source nvml  (counter read at every step boundary)
# and print the card (nvidia-smi), the counter's measured update period, the share of tokens measured and J/token.
# Where there is no GPU, no working NVML or no CUDA in torch it stops at that step with one sentence and exit 1:
# it never prints a result it did not measure. Creates .venv (requirements.txt) when there is none.
# Options: GPU_CHECK_TOKENS (new tokens per repeat, default 64), GPU_CHECK_KEEP=1 keeps the output folder.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "gpu_check: $*" >&2; exit 1; }

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "gpu_check: creating .venv (requirements.txt) ..." >&2
    "${PYTHON:-python3}" -m venv .venv || fail "could not create .venv; install python3-venv and run again."
    "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt -e . \
        || fail "installing requirements.txt into .venv failed (see pip's message above)."
fi

command -v nvidia-smi >/dev/null 2>&1 \
    || fail "there is no nvidia-smi here, so no NVIDIA driver: run this script on a machine with an NVIDIA GPU."
if ! CARD=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
    fail "nvidia-smi found no working GPU ($(echo "$CARD" | head -1)); check the driver with nvidia-smi."
fi
[ -n "$CARD" ] || fail "nvidia-smi lists no GPU; check the driver with nvidia-smi."

OUT=$(mktemp -d "${TMPDIR:-/tmp}/energyprof-gpu-check.XXXXXX")
[ "${GPU_CHECK_KEEP:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT
DB="$OUT/gpu_check.sqlite3"
TOKENS="${GPU_CHECK_TOKENS:-64}"

step() {  # step NAME FILE ARGS...: run one energyprof command, its JSON to FILE; stop with its own sentence
    local name=$1 file=$2
    shift 2
    echo "gpu_check: $name ..." >&2
    if ! "$PY" -m energyprof "$@" >"$file" 2>"$file.err"; then
        fail "$name failed: $(grep -v '^\s*$' "$file.err" | tail -1)"
    fi
}

step "energyprof doctor" "$OUT/doctor.json" doctor --json --probe-seconds 3
"$PY" - "$OUT/doctor.json" <<'PY' || exit 1
import json, sys
nvml = next(s for s in json.load(open(sys.argv[1]))["sources"] if s["name"] == "nvml")
if not nvml["available"]:
    sys.exit(f"gpu_check: NVML is not available here: {nvml['reason']}")
PY
step "energyprof sample --source nvml" "$OUT/sample.json" sample --source nvml --seconds 3 --json --db "$DB"
step "energyprof profile --device cuda --source nvml" "$OUT/profile.json" profile --model small --device cuda \
    --source nvml --max-new-tokens "$TOKENS" --ignore-eos --repeats 3 --warmup 1 --baseline-s 2 --layers blocks \
    --json --db "$DB"

"$PY" - "$CARD" "$OUT/doctor.json" "$OUT/sample.json" "$OUT/profile.json" <<'PY'
import json, sys

card, doctor, sample, profile = sys.argv[1], *(json.load(open(p)) for p in sys.argv[2:])
nvml = next(s for s in doctor["sources"] if s["name"] == "nvml")
counter = (nvml.get("counter") or {}).get("components", {}).get("gpu", {})

def ms(seconds):
    return "untimed" if seconds is None else f"{seconds * 1e3:.1f} ms"

def j(entry):
    if not entry or entry.get("mean") is None:
        return "unknown"
    ci = entry.get("ci95")
    return f"{entry['mean']:.4g} J" + (f" ± {ci:.2g}" if ci is not None else "")

share = profile.get("tokens_measured_share")
print("energyprof GPU check (NVML)")
print(f"  card (nvidia-smi):         {card.strip().splitlines()[0]}")
print(f"  nvml (doctor):             {nvml['reason']}")
print(f"  counter update period:     {ms(counter.get('update_period_s'))} (doctor, 3 s probe), "
      f"{ms((profile.get('counter_update_period_s') or {}).get('gpu'))} (probed at the start of the profile run)")
print(f"  counter quantum:           {(profile.get('counter_quantum_mj') or {}).get('gpu')} mJ")
idle_w = (sample.get("mean_w") or {}).get("gpu")
print(f"  sample (3 s, idle):        {sample['windows']} windows, mean "
      f"{'unknown' if idle_w is None else f'{idle_w:.1f} W'}")
print(f"  {'profile (run %s):' % profile['run_id']:<26} {profile['status']}, {profile['model']} on {profile['device']} "
      f"({profile['dtype']}), {profile['boundary_reads']} boundary reads")
print(f"  tokens measured:           {'unknown' if share is None else f'{share * 100:.0f} %'} "
      "(the rest time-apportioned)")
print(f"  J/token decode:            {j(profile['j_per_token'].get('decode'))}   prefill (per prompt token): "
      f"{j(profile['j_per_token'].get('prefill'))}")
print(f"  decode speed:              {profile.get('tokens_per_s') or 0:.1f} tokens/s; closure error "
      f"{profile.get('closure_error')}")
for warning in profile.get("warnings") or []:
    print(f"  warning: {warning}")
if profile["status"] != "done":
    sys.exit(f"gpu_check: the profile run ended {profile['status']}: {profile.get('error')}")
PY
