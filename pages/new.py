"""New profile: every engine option in one form; launch returns at once and the job's progress shows live. The
Sweep tab launches a sweep (lists for the sweepable options; optionally on a Ray cluster) and opens its page. In
read-only mode: the running job's progress only (energyprof.read_only)."""

import streamlit as st

from energyprof import ui
from energyprof.runtimes.choice import mlx_installed, mlx_missing_sentence
from energyprof.spec.params import ProfileParams, not_in_mode
from energyprof.spec.ray_cluster import RAY_ADDRESS_HELP, RAY_RESOURCE, RaySettings
from energyprof.spec.sweep import (
    SWEEP_DEFAULTS,
    SweepSpec,
    axis_values,
    new_sweep_id,
    sweep_id_error,
    sweepable_names,
)

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
                     f"{ui.md_escape(ui.run_error(finished) or 'no reason was recorded.')}")
        ui.run_link(int(last), f"Open run #{last}")

if ui.is_read_only():
    st.info("This dashboard is read-only: profiles and sweeps are launched on the machine itself "
            "(`energyprof profile`, or the dashboard started without ENERGYPROF_READ_ONLY).", icon=":material/lock:")
    st.stop()
statuses, auto = ui.source_statuses()
available = tuple(s.name for s in statuses if s.available)
one, many = st.tabs(["One profile", "Sweep"])
MODES = {"Local model": "local", "Endpoint": "endpoint"}
with one:
    mode = MODES[st.radio("Profile", list(MODES), horizontal=True, key="mode",
                          help="A model energyprof loads here, or a server you already run (OpenAI-compatible API)")]
with one, st.form("profile"):
    if mode == "endpoint":
        st.caption(ui.ENDPOINT_MODE_HELP)
    values = ui.param_widgets({"source": ("auto", *available), "cross_check": ("none", *available)},
                              skip=not_in_mode(mode), key_prefix="endpoint_" if mode == "endpoint" else "",
                              widgets={"model": "text"} if mode == "endpoint" else None)
    unavailable = [s for s in statuses if not s.available]
    if mode == "local" and not mlx_installed():
        st.caption(ui.md_escape(mlx_missing_sentence()))
    st.caption(f"Power source auto picks {ui.md_escape(auto)} here: the first measured source that works, else "
               "the estimate.")
    if unavailable:
        st.caption("Not available here:\n" + "\n".join(f"- **{ui.md_escape(s.name)}**: {ui.md_escape(s.reason)}"
                                                     for s in unavailable))
    if mode == "local" and "estimate" in available:
        picked = " (what auto picks here)" if auto == "estimate" else ""
        st.caption(f"Per-layer energy *replay* with the estimate source{picked}: "
                   f"{ui.md_escape(ui.REPLAY_WITH_ESTIMATE)}")
    submitted = st.form_submit_button("Launch profile", type="primary", key="launch")

with many, st.form("sweep"):
    st.caption("A sweep profiles every combination of the lists below (comma-separated values, or several choices), "
               "one run per point, one after another. Each point repeats until its decode J/token CI is within the "
               "target (bounded by the max seconds), so the points compare like with like.")
    sweep_values = ui.param_widgets({"source": ("auto", *available), "cross_check": ("none", *available)},
                                    key_prefix="sweep_", lists=sweepable_names(), overrides=SWEEP_DEFAULTS,
                                    skip=not_in_mode("local"))
    if not mlx_installed():
        st.caption(ui.md_escape(mlx_missing_sentence()))
    sweep_id_text = st.text_input("Sweep id (optional)", key="sweep_id", placeholder="e.g. batch-study (default: "
                                  "the date and time)", help="Letters, digits, '.', '_' and '-'.")
    st.markdown("**Run on a Ray cluster (optional)**")
    ray_left, ray_right = st.columns([2, 1])
    ray_address = ray_left.text_input(
        "Ray address", key="sweep_ray", placeholder="empty: here; auto, local or ray://head:10001",
        help=f"Run every point as a Ray task on a machine offering the `{RAY_RESOURCE}` resource: "
             f"{RAY_ADDRESS_HELP}. Needs Ray on this machine and on every node (`pip install -e \".[ray]\"`).")
    ray_replicate = ray_right.checkbox("Every point on every node", key="sweep_ray_replicate",
                                       help="One run per point per machine (a cross-machine comparison) instead of "
                                            "each point once on any free machine.")
    sweep_submitted = st.form_submit_button("Launch sweep", type="primary", key="launch_sweep")

if submitted:
    params = ProfileParams(**values)
    problems = params.errors(mode=mode)
    for problem in problems:
        st.error(ui.md_escape(problem))
    if not problems:
        run_id = ui.launch(store, params.to_dict())
        if run_id is not None:
            st.session_state["job_run"] = run_id
            times = params.layer_energy == "replay" and ui.replay_measures_time(auto if params.source == "auto"
                                                                                else params.source)
            ui.flash(f"Job #{run_id} started." + (f" Note: {ui.REPLAY_WITH_ESTIMATE}" if times else ""))
            st.rerun()

if sweep_submitted:
    problems, axes = [], {}
    for name in sweepable_names():
        try:
            axes[name] = axis_values(name, sweep_values.pop(name))
        except ValueError as exc:
            problems.append(str(exc))
    sweep_id = sweep_id_text.strip() or new_sweep_id()
    if sweep_id_error(sweep_id):
        problems.append(sweep_id_error(sweep_id))
    ray = RaySettings(ray_address.strip(), ray_replicate) if ray_address.strip() else None
    if ray is not None:
        problems.extend(ray.errors())
    elif ray_replicate:
        problems.append("Every point on every node needs a Ray address.")
    if not problems:
        spec = SweepSpec(ProfileParams(**{**sweep_values, **{n: v[0] for n, v in axes.items()}}), axes)
        problems = spec.errors()
    for problem in problems:
        st.error(ui.md_escape(problem))
    if not problems and ui.launch_sweep(store, spec, sweep_id, ray.to_dict() if ray else None) is not None:
        ui.flash(f"Sweep {sweep_id} started: {spec.size} points.")
        st.switch_page(ui.SWEEP_PAGE, query_params={"sweep": sweep_id})
