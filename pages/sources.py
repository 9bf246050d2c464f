"""Power sources: what each says about this machine (`doctor`), powermetrics setup, a test sample, capture upload
(the probe, the sample and the upload not in read-only mode: energyprof.read_only)."""

import getpass
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from energyprof import ui
from energyprof.power.sudo_rule import sudo_rule

SAMPLE_TIMEOUT_PAD_S = 60
PROBE_S = 1.0
PROBE_TIMEOUT_S = 120


def energyprof_cli(args: list[str], timeout_s: float) -> tuple[dict | None, str | None]:
    """Run `python -m energyprof ARGS --json` (argv list, no shell); (result, None) or (None, one sentence)."""
    try:
        done = subprocess.run([sys.executable, "-m", "energyprof", *args], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return None, f"energyprof did not answer within {timeout_s:.0f} s."
    if done.returncode != 0 or not done.stdout.strip():
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        message = lines[-1].removeprefix("energyprof: ") if lines else f"energyprof exited with {done.returncode}."
        return None, message
    try:
        return json.loads(done.stdout), None
    except json.JSONDecodeError:
        return None, "energyprof printed something that is not JSON."


def show_result(result: dict) -> None:
    kind = "measured" if result.get("measured") else "estimated"
    st.success(ui.md_escape(f"Run #{result['run_id']} ({result.get('status')}): {result.get('samples', '?')} "
                            f"windows from {result.get('source')} ({kind})."))
    power = result.get("mean_w") or {}
    if power:
        cols = st.columns(len(power))
        for col, (comp, watts) in zip(cols, power.items(), strict=True):
            col.metric(ui.label(f"{ui.md_escape(comp)} mean power", kind == "estimated"), ui.fmt_power(watts))
    ui.run_link(int(result["run_id"]))


store = ui.page_setup("Power sources")
st.title("Power sources")
if st.button("Check again", key="recheck"):
    ui.source_statuses.clear()
statuses, auto = ui.source_statuses()
table = pd.DataFrame([{
    "source": s.name, "available": s.available, "kind": "measured" if s.measured else "estimated",
    "components": ", ".join(s.components) or "—", "interval (ms)": s.interval_ms,
    "auto picks": "✔" if s.name == auto else "", "reason": s.reason} for s in statuses])
st.dataframe(table.drop(columns=["reason"]), hide_index=True, width="stretch", key="sources_table")
st.markdown("\n".join(f"- {'✅' if s.available else '❌'} **{ui.md_escape(s.name)}**: {ui.md_escape(s.reason)}"
                      for s in statuses))
st.markdown(f"**auto** picks **{ui.md_escape(auto)}** here: the first available *measured* source, else the estimate "
            "(always labelled *estimated*).")

st.subheader("Counter timing")
st.caption("A counter source (ioreport, nvml, rapl) is read at every token boundary; a token is *measured* when it "
           "lasts at least the counter's update period, else time-apportioned. Probing polls each available counter "
           "for about a second (the same as `energyprof doctor`); every run probes its own counter again.")
read_only = ui.is_read_only()
if read_only:
    st.caption("Read-only dashboard: probing the counters, test samples and imports run on the machine itself "
               "(`energyprof doctor`, `energyprof sample`, `energyprof import-powermetrics`).")
if not read_only and st.button("Probe the counters", key="probe") and not ui.refused("probe the counters"):
    with st.spinner("Probing…"):
        doctor, error = energyprof_cli(["doctor", "--json", "--probe-seconds", str(PROBE_S)], PROBE_TIMEOUT_S)
    if error:
        st.error(f"The probe failed: {ui.md_escape(error)}")
    elif doctor is not None:
        probed = ui.probe_table(doctor)
        if probed.empty:
            st.info("No counter source is available here: every token is time-apportioned from sample windows "
                    "(or estimated).")
        else:
            st.dataframe(probed, hide_index=True, width="stretch", key="table_probe")
            st.caption("An empty update period: the component did not change during the probe (idle, or slower "
                       "than it); the quantum is the smallest change seen. Health: the counter over the probe "
                       "(stalled: it did not move while the probe kept the CPU busy; batched: it publishes about "
                       "once a second or slower; implausible: backwards, or above what the chip can draw).")

st.subheader("On a Mac (Apple Silicon)")
st.markdown(
    "**ioreport needs no setup.** It reads Apple's IOReport energy counters (the ones powermetrics reads) through "
    "the `zeus-apple-silicon` package, which `pip install` brings on macOS, without sudo. `auto` picks it first.")
st.markdown(
    "**powermetrics** stays for recorded captures and as a second opinion. It needs root: energyprof starts it "
    "with `sudo -n` (never asking for a password), so it needs one sudoers rule. "
    "`scripts/setup_powermetrics.sh` writes it to `/etc/sudoers.d/energyprof-powermetrics` after checking it "
    "with `visudo -cf`. This is exactly what it writes for you:")
user = getpass.getuser()
rule = sudo_rule("YOUR_LOGIN" if user == "root" else user)
if rule is None:
    st.caption("Run `scripts/setup_powermetrics.sh --print` to see the rule.")
else:
    st.code(rule, language="text")
st.markdown("It allows only the command lines energyprof runs (plist output, an interval of 10–9999 ms, the "
            "cpu/gpu/thermal samplers), for you alone: not `-o FILE` (which would write any file as root), not "
            "other samplers, not other users.")
st.code("sudo scripts/setup_powermetrics.sh              # install the rule\n"
        "scripts/setup_powermetrics.sh --print           # show the rule, install nothing\n"
        "sudo scripts/setup_powermetrics.sh --uninstall  # remove it", language="bash")

if read_only:
    st.stop()
st.subheader("Test sample")
usable = [s.name for s in statuses if s.available]
c1, c2 = st.columns(2)
pick = c1.selectbox("Source", ["auto", *usable], key="sample_source")
seconds = c2.number_input("Seconds", 1, 30, 3, key="sample_seconds")
if st.button("Record a test sample", key="sample") and not ui.refused("record a test sample"):
    with st.spinner(f"Recording {seconds} s…"):
        result, error = energyprof_cli(["sample", "--seconds", str(seconds), "--json", "--db", str(store.path),
                                        "--source", pick], seconds + SAMPLE_TIMEOUT_PAD_S)
    ui.clear_caches()
    if error:
        st.error(f"The test sample failed: {ui.md_escape(error)}")
    elif result:
        show_result(result)

st.subheader("Import a powermetrics recording")
st.caption("Recorded elsewhere with e.g. `sudo powermetrics -f plist --samplers cpu_power,gpu_power,thermal "
           "-i 100 -o capture.plist`; plist or text output. It becomes a `capture` run.")
upload = st.file_uploader("powermetrics capture", key="capture")
if upload is not None and st.button("Import", key="import") and not ui.refused("import an upload"):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture"
        path.write_bytes(upload.getvalue())
        result, error = energyprof_cli(["import-powermetrics", str(path), "--json", "--db", str(store.path)], 120)
    ui.clear_caches()
    if error:
        st.error(ui.md_escape(f"Could not import {upload.name}: {error.replace(str(path), upload.name)}"))
    elif result:
        show_result(result)
