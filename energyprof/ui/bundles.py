"""Run bundles on the pages: a download button (Run, Compare, Sweeps), the upload that imports one (Runs) and where
an imported run came from (Run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from energyprof.store import FINAL_STATUSES, BundleError, Store
from energyprof.ui.data import clear_caches, store_errors
from energyprof.ui.format import fmt_date, md_escape
from energyprof.ui.live import refused
from energyprof.ui.nav import flash

BUNDLE_MIME = "application/vnd.sqlite3"
BUNDLE_HELP = ("One SQLite file holding these runs whole (summary, parameters, power windows, tokens, layers, replay); "
               "open it elsewhere with `energyprof import FILE` or the Runs page's import.")


def _bundle_bytes(store: Store, run_ids: Sequence[int], sweep_ids: Sequence[str]) -> bytes:
    """Built only when the button is pressed."""
    try:
        return store.export_bundle(run_ids, sweep_ids).data
    finally:
        store.close()


def bundle_download(store: Store, *, run_ids: Sequence[int] = (), sweep_id: str | None = None,
                    runs: Sequence[dict[str, Any]] = (), label: str = "⬇ Bundle (SQLite)") -> None:
    """A download button for finished runs (or a finished sweep) as one bundle; a caption instead while one of them
    still runs. `runs`: the run rows, to check their status without another read."""
    if any(r.get("status") not in FINAL_STATUSES for r in runs):
        st.caption("The bundle download appears when every run here has finished.")
        return
    ids = sorted({int(i) for i in run_ids})
    name = f"sweep-{sweep_id}" if sweep_id else "run" + "-".join(str(i) for i in ids[:8]) + \
        ("-more" if len(ids) > 8 else "")
    st.download_button(label, data=lambda: _bundle_bytes(store, ids, [sweep_id] if sweep_id else []),
                       file_name=f"energyprof-{name}.bundle.sqlite", mime=BUNDLE_MIME, on_click="ignore",
                       key=f"dl-bundle-{name}", help=BUNDLE_HELP)


def import_section(store: Store) -> None:
    """The Runs page's "Import a bundle": upload a file, import it in one transaction, say what happened (refused in
    read-only mode, where the Runs page does not draw it)."""
    with st.expander("Import a bundle"):
        st.caption("A bundle is what `energyprof export RUN … --format bundle` or a Download bundle button wrote: "
                   "its runs are added here under new ids, with the machine and time they came from. Runs already "
                   "here are skipped; nothing is imported unless everything is.")
        upload = st.file_uploader("Bundle file", key="bundle_upload", accept_multiple_files=False)
        if upload is None or not st.button("Import", key="bundle_import", type="primary"):
            return
        if refused("import a bundle"):
            return
        with store_errors(store.path):
            try:
                result = store.import_bundle(upload.getvalue(), name=upload.name)
            except BundleError as exc:
                st.error(md_escape(str(exc)))
                return
        clear_caches()
        parts = []
        if result.imported:
            parts.append(f"Imported {len(result.imported)} run(s) as "
                         + ", ".join(f"#{new}" for _, new in result.imported) + ".")
        if result.skipped:
            parts.append(f"Skipped {len(result.skipped)} run(s) already here ("
                         + ", ".join(f"#{here}" for _, here in result.skipped) + ").")
        flash(md_escape(" ".join(parts)))
        st.rerun()


def origin_caption(origin: dict[str, Any] | None) -> None:
    """Where an imported run came from (nothing for a run made here)."""
    if not origin:
        return
    parts = [f"imported: run #{origin['origin_run_id']} of another database"] if origin.get("origin_run_id") else []
    if origin.get("exported_on"):
        parts.append(f"exported on {origin['exported_on']}")
    if origin.get("exported_at"):
        parts.append(f"at {fmt_date(origin['exported_at'])}")
    if origin.get("machine_id"):
        parts.append(f"machine {origin['machine_id']}")
    if origin.get("ray_node_name") or origin.get("ray_node_ip"):
        node = origin.get("ray_node_name") or origin.get("ray_node_ip")
        ip = f" ({origin['ray_node_ip']})" if origin.get("ray_node_ip") and origin.get("ray_node_ip") != node else ""
        parts.append(f"ran on Ray node {node}{ip}, id {str(origin.get('ray_node_id') or '?')[:12]}…")
    if parts:
        st.caption(md_escape("; ".join(parts) + "."))
