"""Shared Streamlit helpers for the dashboard pages; pages `from energyprof import ui` and use the names below.

Modules: `nav` (the pages table, page_setup and the sidebar, links, query parameters, flash messages),
`data` (the Store, cached reads, database errors as one sentence), `summary` (a run summary's headline
figures), `format` (numbers as text, md_escape), `badges` (measured/estimated, status, time-apportioned),
`drawing` (charts, downloads, shaded token text), `live` (launch, follow and cancel a job; the quiet live view),
`endpoint` (an endpoint run's server, time to first token and server process), `counters` (share of tokens
measured, a counter's update period, quantum and health, what the totals cover, a cross-check source's agreement),
`replay_view` (the run page's replayed-layers section), `bundles` (bundle download, upload and origin),
`ray_view` (a sweep's Ray tasks), `sharing` (the machine of a run, where its energy went, the HTML report download,
the read-only note).
The dashboard imports energyprof.store, energyprof.runner.jobs, energyprof.charts, energyprof.export,
energyprof.power.registry and energyprof.spec.params (the parameter table), never torch or transformers."""

from energyprof.read_only import is_read_only
from energyprof.ui.badges import (
    APPORTIONED,
    APPORTIONED_TOKENS,
    apportioned,
    apportioned_note,
    estimated_badge,
    is_estimated,
    label,
    measured_badge,
    source_label,
    status_badge,
)
from energyprof.ui.bundles import bundle_download, import_section, origin_caption
from energyprof.ui.counters import (
    health_cell,
    probe_table,
    show_counter,
    show_cross_check,
    show_health,
    show_measured,
    show_scope,
)
from energyprof.ui.data import (
    STORE_ERRORS,
    clear_caches,
    db_path,
    get_store,
    run_views,
    source_statuses,
    store_error,
    store_errors,
)
from energyprof.ui.drawing import chart, csv_download, quoted_metrics, token_text_html, trace_download
from energyprof.ui.endpoint import ENDPOINT_MODE_HELP, NO_LAYERS, endpoint_facts, endpoint_section
from energyprof.ui.form import param_widgets
from energyprof.ui.format import (
    fmt_ci,
    fmt_date,
    fmt_energy,
    fmt_power,
    fmt_rate,
    fmt_seconds,
    md_escape,
)
from energyprof.ui.live import (
    DEMO_PARAMS,
    LIVE_REFRESH_S,
    action_error,
    cancel_job,
    delete_run,
    is_measured_phase,
    launch,
    launch_sweep,
    live_job,
    live_job_body,
    not_responding_sentence,
    refused,
    run_error,
    shown_status,
)
from energyprof.ui.nav import (
    COMPARE_PAGE,
    NEW_PAGE,
    PAGES,
    RUN_PAGE,
    RUNS_PAGE,
    SOURCES_PAGE,
    SWEEP_PAGE,
    flash,
    page_setup,
    query_run_id,
    query_run_ids,
    run_link,
    show_flash,
    sweep_link,
)
from energyprof.ui.ray_view import ray_tasks
from energyprof.ui.replay_view import (
    REPLAY_WITH_ESTIMATE,
    compare_replays,
    replay_measures_time,
    replay_section,
    replay_table,
)
from energyprof.ui.sharing import (
    flow_section,
    machine_name,
    machine_section,
    machine_table,
    read_only_sidebar,
    report_download,
)
from energyprof.ui.summary import PEAK_MEMORY_HELP, per_step_label, runtime_caption, summary_of, workload_components

__all__ = [
    "APPORTIONED", "APPORTIONED_TOKENS", "COMPARE_PAGE", "DEMO_PARAMS",
    "ENDPOINT_MODE_HELP", "NO_LAYERS", "endpoint_facts", "endpoint_section",
    "NEW_PAGE", "PAGES", "RUNS_PAGE", "RUN_PAGE", "SOURCES_PAGE", "STORE_ERRORS", "action_error", "apportioned",
    "apportioned_note", "cancel_job", "chart", "clear_caches", "compare_replays", "csv_download", "db_path",
    "estimated_badge",
    "flash", "fmt_ci", "fmt_date", "fmt_energy", "fmt_power", "fmt_rate", "fmt_seconds", "get_store",
    "is_estimated", "is_measured_phase", "label", "launch", "live_job", "md_escape", "measured_badge",
    "page_setup", "param_widgets", "query_run_id", "query_run_ids", "replay_section", "replay_table", "run_link",
    "probe_table", "run_views", "show_counter", "health_cell", "show_health", "show_scope",
    "show_cross_check", "show_flash", "show_measured", "source_label",
    "source_statuses", "status_badge", "store_error", "store_errors", "summary_of", "token_text_html",
    "trace_download", "workload_components",
    "LIVE_REFRESH_S", "SWEEP_PAGE", "launch_sweep", "live_job_body", "per_step_label",
    "quoted_metrics", "sweep_link", "bundle_download", "import_section", "origin_caption", "ray_tasks",
    "not_responding_sentence", "run_error", "shown_status", "REPLAY_WITH_ESTIMATE", "replay_measures_time",
    "PEAK_MEMORY_HELP", "runtime_caption",
    "delete_run", "flow_section", "is_read_only", "machine_name", "machine_section", "machine_table",
    "read_only_sidebar", "refused", "report_download",
]
