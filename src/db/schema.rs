//! The schema, as migrations applied in order; `PRAGMA user_version` counts
//! them. A migration is never edited once released: add a new one.

use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` counts them.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE assets (
    id              TEXT PRIMARY KEY,
    created_at      INTEGER NOT NULL,          -- Unix seconds
    status          TEXT NOT NULL,             -- preparing | ready | errored
    settings        TEXT NOT NULL,             -- JSON AssetSettings
    ingest_type     TEXT NOT NULL,
    summary         TEXT NOT NULL DEFAULT '{}',-- JSON MediaSummary of the stored master
    errors          TEXT,                      -- JSON AssetErrors
    progress_state  TEXT NOT NULL,
    progress        REAL NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX assets_by_created ON assets (created_at, id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id      TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,               -- transcode
    state         TEXT NOT NULL,               -- queued | running | done | failed
    worker_id     TEXT,                        -- holder of the lease while running
    heartbeat_at  INTEGER,                     -- Unix ms of the last heartbeat
    attempts      INTEGER NOT NULL DEFAULT 0,  -- claims so far
    max_attempts  INTEGER NOT NULL,
    not_before    INTEGER NOT NULL DEFAULT 0,  -- Unix ms: backoff
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX jobs_runnable ON jobs (state, not_before, id);

CREATE TABLE sources (
    asset_id     TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,                -- where the source was taken from
    origin       TEXT NOT NULL,                -- watch | cli
    device       INTEGER NOT NULL,
    inode        INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    disposition  TEXT NOT NULL                 -- pending | kept | moved | deleted | failed | untouched
);
CREATE INDEX sources_identity ON sources (device, inode, size, mtime_ns);
"#,
    r#"
CREATE TABLE renditions (
    asset_id         TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,            -- highest.mp4, 720p.mp4, audio.m4a, ...
    id               TEXT NOT NULL,
    ext              TEXT NOT NULL,
    resolution       TEXT,                     -- as requested; NULL for legacy mp4_support files
    kind             TEXT NOT NULL,            -- standard | advanced
    passthrough      TEXT,
    status           TEXT NOT NULL,            -- preparing | ready | skipped | errored
    resolution_tier  TEXT,
    width            INTEGER,
    height           INTEGER,
    bitrate          INTEGER,                  -- bits per second, measured
    filesize         INTEGER,                  -- bytes
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (asset_id, name)
);
ALTER TABLE sources ADD COLUMN sidecar TEXT;   -- the settings file consumed with the source
"#,
    r#"
-- Times the process running the job died under it. A crash gives the attempt
-- back (the job did not fail) but counts here, so that a file that crashes
-- the daemon every time is given up on instead of looping.
ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Fencing: every claim takes the next generation, and every later write of
-- the job names it, so a worker that lost its lease cannot write.
ALTER TABLE jobs ADD COLUMN lease_generation INTEGER NOT NULL DEFAULT 0;
-- Set when the job's asset is deleted; the heartbeat stops the job.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- Unix ms. A deleted asset is hidden at once; its row stays as a tombstone
-- (so its watch-folder source stays known) and its files are purged after
-- its job has stopped.
ALTER TABLE assets ADD COLUMN deleted_at INTEGER;
ALTER TABLE assets ADD COLUMN purged_at INTEGER;
-- Unix s after which temporary master access ends.
ALTER TABLE assets ADD COLUMN master_expires_at INTEGER;
CREATE INDEX assets_live_newest ON assets (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX assets_to_purge ON assets (deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
CREATE INDEX jobs_by_asset ON jobs (asset_id, state);
"#,
    r#"
-- The webhook outbox: each event once, written in the transaction of the
-- change that caused it, and one delivery row per endpoint.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,          -- the event's UUID
    type        TEXT NOT NULL,
    asset_id    TEXT,                          -- one asset's events go out in order
    created_at  INTEGER NOT NULL,              -- Unix ms
    body        TEXT NOT NULL                  -- Mux's envelope without attempts
);
CREATE TABLE deliveries (
    event_seq        INTEGER NOT NULL REFERENCES outbox (seq),
    endpoint         TEXT NOT NULL,            -- the endpoint's URL
    asset_id         TEXT,
    status           TEXT NOT NULL,            -- pending | delivered | failed
    attempts         TEXT NOT NULL DEFAULT '[]',
    next_attempt_at  INTEGER NOT NULL,         -- Unix ms
    claimed_by       TEXT,
    claimed_until    INTEGER,                  -- Unix ms
    PRIMARY KEY (event_seq, endpoint)
);
CREATE INDEX deliveries_due ON deliveries (endpoint, status, next_attempt_at);
CREATE INDEX deliveries_order ON deliveries (endpoint, asset_id, status, event_seq);
"#,
    r#"
-- One asset per watch-folder file: the identity check before an insert is
-- backed by the index. A file taken twice by an older version keeps its first
-- asset as the watch source; the others become 'watch-again' (still disposed
-- of, never matched).
UPDATE sources SET origin = 'watch-again'
 WHERE origin = 'watch' AND rowid NOT IN (
       SELECT MIN(rowid) FROM sources WHERE origin = 'watch'
        GROUP BY device, inode, size, mtime_ns);
CREATE UNIQUE INDEX sources_watch_identity ON sources (device, inode, size, mtime_ns)
 WHERE origin = 'watch';
"#,
    r#"
-- Direct uploads (Mux's /video/v1/uploads). The bytes live in
-- SPOOL/uploads/ID; `received` counts those that are durable there (synced
-- before the count is written), so an upload resumes after a restart.
CREATE TABLE uploads (
    id                  TEXT PRIMARY KEY,
    created_at          INTEGER NOT NULL,      -- Unix ms
    status              TEXT NOT NULL,         -- waiting | asset_created | errored | cancelled | timed_out
    cors_origin         TEXT NOT NULL,
    timeout_s           INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,      -- Unix ms: created_at + timeout
    new_asset_settings  TEXT,                  -- JSON object, as given
    test                INTEGER NOT NULL DEFAULT 0,
    total_size          INTEGER,               -- bytes, once a Content-Range has said
    received            INTEGER NOT NULL DEFAULT 0,
    asset_id            TEXT,
    error               TEXT                   -- JSON {type, message}
);
CREATE INDEX uploads_newest ON uploads (created_at DESC, id DESC);
CREATE INDEX uploads_waiting ON uploads (expires_at) WHERE status = 'waiting';
CREATE INDEX uploads_by_asset ON uploads (asset_id) WHERE asset_id IS NOT NULL;
-- The upload an asset was made from (GET /video/v1/assets?upload_id=).
ALTER TABLE assets ADD COLUMN upload_id TEXT;
CREATE INDEX assets_by_upload ON assets (upload_id) WHERE upload_id IS NOT NULL;
"#,
    // 8: why a preparing asset's job waits (the store is down, say).
    r#"
ALTER TABLE assets ADD COLUMN progress_note TEXT;
"#,
    // 9: playback IDs, signing keys (public halves only) and Cloudflare's
    // requireSignedURLs; how far each rendition file's encode has come.
    r#"
CREATE TABLE playback_ids (
    id          TEXT PRIMARY KEY,
    asset_id    TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    policy      TEXT NOT NULL,                 -- public | signed
    created_at  INTEGER NOT NULL               -- Unix ms
);
CREATE INDEX playback_ids_by_asset ON playback_ids (asset_id, created_at);
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,                 -- SPKI PEM; the private key is never kept
    origin      TEXT NOT NULL,                 -- mux | cloudflare | cli: the route that made it
    created_at  INTEGER NOT NULL               -- Unix s
);
ALTER TABLE assets ADD COLUMN require_signed_urls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE renditions ADD COLUMN progress REAL;  -- 0-100 while its job runs
"#,
    // 10: the sources still awaiting their move or delete, looked up every
    // few seconds; kept sources (disposition 'kept') are never read by it.
    r#"
CREATE INDEX sources_pending ON sources (asset_id) WHERE disposition = 'pending';
"#,
    // 11: the dashboard's sign-ins (only a digest of each session's cookie
    // is kept), and when a job's current attempt was claimed (the queue
    // view's elapsed time).
    r#"
CREATE TABLE dashboard_sessions (
    id_digest    BLOB PRIMARY KEY,             -- SHA-256 of the cookie's value
    token_id     TEXT NOT NULL,                -- the API token signed in with
    csrf         TEXT NOT NULL,                -- sent back in X-CSRF-Token
    token_check  BLOB NOT NULL,                -- ties it to the token's current secret
    created_at   INTEGER NOT NULL,             -- Unix ms
    expires_at   INTEGER NOT NULL              -- Unix ms
);
ALTER TABLE jobs ADD COLUMN claimed_at INTEGER;  -- Unix ms of the last claim
"#,
];

/// Applies the migrations `conn`'s file has not had yet.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= MIGRATIONS.len() as i64 {
        return Ok(());
    }
    // IMMEDIATE takes the write lock before the version is read again, so two
    // processes opening a new file at once (the daemon and `reeld assets
    // list`) cannot both apply the same migration.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()
}
