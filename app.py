"""energyprof dashboard: `streamlit run app.py`. Navigation and the shared sidebar; each page lives in app_pages/."""

import streamlit as st

from energyprof import ui

st.set_page_config(page_title="energyprof", page_icon=":material/bolt:", layout="wide")
page = st.navigation([
    st.Page(ui.RUNS_PAGE, title="Runs", icon=":material/list:", url_path="runs", default=True),
    st.Page(ui.RUN_PAGE, title="Run", icon=":material/monitoring:", url_path="run"),
    st.Page(ui.NEW_PAGE, title="New profile", icon=":material/play_arrow:", url_path="new"),
    st.Page(ui.COMPARE_PAGE, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(ui.SOURCES_PAGE, title="Power sources", icon=":material/power:", url_path="sources"),
])
ui.sidebar(ui.get_store())
page.run()
