"""New profile: every engine option in one form; launch returns at once and the job's progress shows live."""

import streamlit as st

from energyprof import ui
from energyprof.profile.params import ProfileParams, not_in_mode

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
available = tuple(s.name for s in statuses if s.available)
MODES = {"Local model": "local", "Endpoint": "endpoint"}
mode = MODES[st.radio("Profile", list(MODES), horizontal=True, key="mode",
                      help="A model energyprof loads here, or a server you already run (OpenAI-compatible API)")]
with st.form("profile"):
    if mode == "endpoint":
        st.caption(ui.ENDPOINT_MODE_HELP)
    values = ui.param_widgets({"source": ("auto", *available), "cross_check": ("none", *available)},
                              skip=not_in_mode(mode), key_prefix="endpoint_" if mode == "endpoint" else "",
                              widgets={"model": "text"} if mode == "endpoint" else None)
    unavailable = [s for s in statuses if not s.available]
    st.caption(f"Power source auto picks {ui.md_escape(auto)} here: the first measured source that works, else "
               "the estimate.")
    if unavailable:
        st.caption("Not available here:\n" + "\n".join(f"- **{ui.md_escape(s.name)}**: {ui.md_escape(s.reason)}"
                                                     for s in unavailable))
    submitted = st.form_submit_button("Launch profile", type="primary", key="launch")

if submitted:
    params = ProfileParams(**values)
    problems = params.errors(mode=mode)
    for problem in problems:
        st.error(ui.md_escape(problem))
    if not problems:
        run_id = ui.launch(store, params.to_dict())
        if run_id is not None:
            st.session_state["job_run"] = run_id
            ui.flash(f"Job #{run_id} started.")
            st.rerun()
