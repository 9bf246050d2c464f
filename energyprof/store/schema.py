"""Schema of the energyprof database as a list of forward migrations; version N = first N applied."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: runs and power samples (long format: one row per window and component).
    """
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL CHECK (kind IN ('profile', 'sample', 'capture', 'measure')),
        status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        source           TEXT,
        measured         INTEGER,
        model            TEXT,
        device           TEXT,
        dtype            TEXT,
        params           TEXT NOT NULL DEFAULT '{}',
        created_at       REAL NOT NULL,
        started_at       REAL,
        ended_at         REAL,
        clock_t0_ns      INTEGER,
        phase            TEXT,
        progress         REAL NOT NULL DEFAULT 0,
        tokens_done      INTEGER NOT NULL DEFAULT 0,
        heartbeat_at     REAL,
        pid              INTEGER,
        error            TEXT,
        traceback        TEXT,
        power_incomplete INTEGER NOT NULL DEFAULT 0,
        samples_skipped  INTEGER NOT NULL DEFAULT 0,
        summary          TEXT
    );
    CREATE UNIQUE INDEX runs_one_active_profile ON runs (kind)
        WHERE kind = 'profile' AND status IN ('queued', 'running');
    CREATE TABLE power_samples (
        run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        t0_ns     INTEGER NOT NULL,
        t1_ns     INTEGER NOT NULL,
        component TEXT NOT NULL,
        energy_mj REAL,
        CHECK (t1_ns > t0_ns)
    );
    CREATE INDEX power_samples_run_time ON power_samples (run_id, t0_ns);
    """,
    # 2: profiling results: steps (tokens), their energy, layers, layer calls and per-layer aggregates.
    """
    CREATE TABLE steps (
        run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        repeat     INTEGER NOT NULL,
        idx        INTEGER NOT NULL,
        phase      TEXT NOT NULL CHECK (phase IN ('prefill', 'decode', 'forward')),
        t0_ns      INTEGER NOT NULL,
        t1_ns      INTEGER NOT NULL,
        n_tokens   INTEGER NOT NULL,
        token_id   INTEGER,
        token_text TEXT,
        PRIMARY KEY (run_id, repeat, idx)
    );
    CREATE TABLE step_energy (
        run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        repeat        INTEGER NOT NULL,
        idx           INTEGER NOT NULL,
        component     TEXT NOT NULL,
        energy_mj     REAL,
        net_energy_mj REAL,
        resolution    REAL,
        PRIMARY KEY (run_id, repeat, idx, component)
    );
    CREATE TABLE layers (
        run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        layer_id  INTEGER NOT NULL,
        name      TEXT NOT NULL,
        kind      TEXT NOT NULL,
        parent_id INTEGER,
        position  INTEGER NOT NULL,
        PRIMARY KEY (run_id, layer_id)
    );
    CREATE TABLE layer_calls (
        run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        repeat     INTEGER NOT NULL,
        step_idx   INTEGER NOT NULL,
        layer_id   INTEGER NOT NULL,
        t0_ns      INTEGER,
        t1_ns      INTEGER,
        time_ns    INTEGER NOT NULL,
        energy_mj  REAL,
        resolution REAL
    );
    CREATE INDEX layer_calls_run_step ON layer_calls (run_id, repeat, step_idx);
    CREATE TABLE layer_energy (
        run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        layer_id      INTEGER NOT NULL,
        component     TEXT NOT NULL,
        calls         INTEGER NOT NULL,
        time_ns       INTEGER NOT NULL,
        energy_mj     REAL,
        net_energy_mj REAL,
        resolution    REAL,
        PRIMARY KEY (run_id, layer_id, component)
    );
    """,
    # 3: the start time of the process that writes a run: with the pid it names one process (pids are reused).
    """
    ALTER TABLE runs ADD COLUMN pid_started_at REAL;
    """,
    # 4: how each step's and layer call's energy was obtained (energyprof.provenance labels); NULL in
    # rows written before, which readers label from the run's source and the row's resolution.
    """
    ALTER TABLE step_energy ADD COLUMN how TEXT
        CHECK (how IS NULL OR how IN ('measured', 'apportioned', 'estimated', 'unknown'));
    ALTER TABLE layer_calls ADD COLUMN how TEXT
        CHECK (how IS NULL OR how IN ('measured', 'apportioned', 'estimated', 'unknown'));
    """,
    # 5: the cross-check source that recorded a window; NULL = the run's own (primary) source, which every
    # existing row is and which every read means unless it names a cross-check source.
    """
    ALTER TABLE power_samples ADD COLUMN source TEXT;
    """,
    # 6: measured per-layer energy by replaying each layer alone (energyprof.runtimes.transformers.replay). One row per
    # timed loop (trial), per layer and phase (figures per call over the trials, whole system) and per layer, phase
    # and component. layer_id -1 is the `(cache restore)` reference (energyprof.store.replay.RESTORE_LAYER_ID).
    """
    CREATE TABLE replay_trials (
        run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        layer_id      INTEGER NOT NULL,
        phase         TEXT NOT NULL,
        step_idx      INTEGER NOT NULL,
        trial         INTEGER NOT NULL,
        t0_ns         INTEGER NOT NULL,
        t1_ns         INTEGER NOT NULL,
        calls         INTEGER NOT NULL,
        energy_mj     REAL,
        net_energy_mj REAL,
        PRIMARY KEY (run_id, layer_id, phase, trial),
        CHECK (t1_ns > t0_ns AND calls > 0)
    );
    CREATE TABLE layer_replay (
        run_id                 INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        layer_id               INTEGER NOT NULL,
        phase                  TEXT NOT NULL,
        step_idx               INTEGER NOT NULL,
        trials                 INTEGER NOT NULL,
        calls                  INTEGER NOT NULL,
        time_ns_per_call       REAL,
        energy_mj_per_call     REAL,
        net_energy_mj_per_call REAL,
        power_w                REAL,
        net_power_w            REAL,
        ci95_mj                REAL,
        net_ci95_mj            REAL,
        cv                     REAL,
        flagged                INTEGER NOT NULL DEFAULT 0,
        method                 TEXT,
        windows                INTEGER,
        restore_subtracted     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, layer_id, phase)
    );
    CREATE TABLE layer_replay_energy (
        run_id                 INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        layer_id               INTEGER NOT NULL,
        phase                  TEXT NOT NULL,
        component              TEXT NOT NULL,
        energy_mj_per_call     REAL,
        net_energy_mj_per_call REAL,
        ci95_mj                REAL,
        PRIMARY KEY (run_id, layer_id, phase, component)
    );
    """,
    # 7: a sweep is a grid of profile runs that one process runs one after another; each of
    # its runs names the sweep and the point (index in the grid's order). At most one sweep is queued or running,
    # and while one is, no profile run outside it starts (Store.create_run and Store.start_sweep check).
    """
    CREATE TABLE sweeps (
        id             TEXT PRIMARY KEY,
        status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        spec           TEXT NOT NULL,
        points         INTEGER NOT NULL,
        created_at     REAL NOT NULL,
        started_at     REAL,
        ended_at       REAL,
        pid            INTEGER,
        pid_started_at REAL,
        error          TEXT
    );
    CREATE UNIQUE INDEX sweeps_one_active ON sweeps ((status IN ('queued', 'running')))
        WHERE status IN ('queued', 'running');
    ALTER TABLE runs ADD COLUMN sweep_id TEXT REFERENCES sweeps (id) ON DELETE SET NULL;
    ALTER TABLE runs ADD COLUMN sweep_point INTEGER;
    CREATE INDEX runs_sweep ON runs (sweep_id, sweep_point);
    """,
    # 8: where an imported run came from (energyprof.store.bundle): the run's id in the database that made it, that
    # database's id, when its bundle was exported, the machine id from its summary, its content hash (importing the
    # same run twice adds nothing) and, for a sweep point run on a Ray node, that node. `database_meta` holds this
    # database's own random id, which bundles exported from it carry. A sweep run on Ray (energyprof.runner.ray_sweep)
    # stores its address and whether every point runs on every node (`ray` JSON; NULL: the points run here), and
    # each Ray task of it a row in `sweep_tasks` (pinned: the node a replicated point must run on, '' otherwise).
    """
    CREATE TABLE run_origins (
        run_id             INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        content_hash       TEXT NOT NULL,
        origin_run_id      INTEGER,
        origin_database_id TEXT,
        exported_at        REAL,
        exported_on        TEXT,
        machine_id         TEXT,
        ray_node_id        TEXT,
        ray_node_ip        TEXT,
        ray_node_name      TEXT,
        bundle_format      INTEGER,
        imported_at        REAL NOT NULL
    );
    CREATE UNIQUE INDEX run_origins_content ON run_origins (content_hash);
    CREATE TABLE database_meta (
        key   TEXT PRIMARY KEY,
        value TEXT
    );
    INSERT INTO database_meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))));
    ALTER TABLE sweeps ADD COLUMN ray TEXT;
    CREATE TABLE sweep_tasks (
        sweep_id   TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
        point      INTEGER NOT NULL,
        pinned     TEXT NOT NULL DEFAULT '',
        status     TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        node_name  TEXT,
        node_id    TEXT,
        node_ip    TEXT,
        phase      TEXT,
        progress   REAL,
        run_id     INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        error      TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (sweep_id, point, pinned)
    );
    """,
    # 9: the machine that made a run (energyprof.machine): its stable hashed id and a label, mirrored from the
    # summary's `machine` so that runs can be listed and filtered by machine. NULL in runs written before: "unknown
    # machine" (their rows are kept as they are).
    """
    ALTER TABLE runs ADD COLUMN machine_id TEXT;
    ALTER TABLE runs ADD COLUMN machine_label TEXT;
    CREATE INDEX runs_machine ON runs (machine_id);
    """,
]
