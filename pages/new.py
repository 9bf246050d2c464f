"""New profile: every engine option in one form; launch returns at once and the job's progress shows live."""

import streamlit as st

from energyprof import ui
from energyprof.profile.params import INTERVAL_MS_RANGE, LAYER_DEPTHS, ProfileParams

store = ui.page_setup("New profile")
st.title("New profile")
ui.show_flash()

active = store.active_profile_run()
last = st.session_state.get("job_run")
if active:
    st.subheader("Running now")
    ui.live_job(active["id"])
    ui.run_link(active["id"])
elif last is not None:
    finished = store.get_run(int(last))
    if finished is not None:
        if finished["status"] == "done":
            st.success(f"Job #{last} is done.")
        else:
            st.error(f"Job #{last} {finished['status']}: "
                     f"{ui.md_escape(finished.get('error') or 'no reason was recorded.')}")
        ui.run_link(int(last), f"Open run #{last}")

statuses, auto = ui.source_statuses()
available = [s.name for s in statuses if s.available]
with st.form("profile"):
    st.markdown("**Model**")
    m1, m2 = st.columns(2)
    builtin = m1.selectbox("Built-in model (random weights, no download)", ui.BUILTIN_MODEL_NAMES, key="model")
    custom = m2.text_input("…or a Hugging Face model id or local folder", key="model_custom",
                           placeholder="e.g. ./my-model or Qwen/Qwen2.5-0.5B (used when filled in)")
    prompt = st.text_area("Prompt", "Explain where the energy of a transformer goes.", key="prompt")
    g1, g2, g3 = st.columns(3)
    max_new_tokens = g1.number_input("Max new tokens", 1, 8192, 64, key="max_new_tokens")
    device = g2.selectbox("Device", ui.DEVICES, key="device")
    dtype = g3.selectbox("Dtype", ui.DTYPES, key="dtype")
    ignore_eos = st.checkbox("Ignore end-of-sequence (always generate max new tokens)", True, key="ignore_eos")

    st.markdown("**Power**")
    p1, p2, p3 = st.columns(3)
    source = p1.selectbox("Power source", ["auto", *available], key="source",
                          help=f"auto picks {auto} here: the first measured source that works, else the estimate.")
    interval_ms = p2.number_input("Sampling interval (ms, 0 = the source's own)", 0, INTERVAL_MS_RANGE[1], 0, step=10,
                                  key="interval_ms")
    baseline_s = p3.number_input("Idle baseline (s)", 0.0, 600.0, 3.0, step=0.5, key="baseline_s",
                                 help="Measured with the model loaded but idle, before the workload.")
    unavailable = [s for s in statuses if not s.available]
    if unavailable:
        st.caption("Not available here:\n" + "\n".join(f"- **{s.name}**: {s.reason}" for s in unavailable))

    st.markdown("**Profiling**")
    r1, r2, r3 = st.columns(3)
    layers = r1.selectbox("Layer depth", LAYER_DEPTHS, index=1, key="layers",
                          help="blocks: embedding, each decoder block, norm, lm_head; modules: also attention "
                               "and MLP inside each block; none: per token only.")
    repeats = r2.number_input("Repeats", 1, 100, 3, key="repeats", help="Measured repeats (for the 95% CI)")
    warmup = r3.number_input("Warm-up runs", 0, 20, 1, key="warmup", help="Unmeasured runs first")

    st.markdown("**Sampling**")
    s1, s2, s3 = st.columns(3)
    temperature = s1.number_input("Temperature (0 = greedy)", 0.0, 5.0, 0.0, step=0.1, key="temperature")
    top_p = s2.number_input("Top-p", 0.01, 1.0, 1.0, step=0.05, key="top_p")
    seed = s3.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    trust_remote_code = st.checkbox("Trust remote code", False, key="trust_remote_code",
                                    help="Off unless you trust the model's repository.")
    st.warning("*Trust remote code* runs Python code shipped with the model on this machine, with your rights. "
               "Leave it off unless you have read that code or trust its author.", icon=":material/warning:")
    submitted = st.form_submit_button("Launch profile", type="primary", key="launch")

if submitted:
    params = ProfileParams(
        model=custom.strip() or builtin, prompt=prompt, max_new_tokens=int(max_new_tokens),
        ignore_eos=bool(ignore_eos), device=device, dtype=dtype, source=source,
        interval_ms=int(interval_ms) or None, layers=layers, repeats=int(repeats), warmup=int(warmup),
        baseline_s=float(baseline_s), temperature=float(temperature), top_p=float(top_p), seed=int(seed),
        trust_remote_code=bool(trust_remote_code))
    problems = params.errors()
    for problem in problems:
        st.error(problem)
    if not problems:
        run_id = ui.launch(store, params.to_dict())
        if run_id is not None:
            st.session_state["job_run"] = run_id
            ui.flash(f"Job #{run_id} started.")
            st.rerun()
