//! State in one SQLite file (WAL): assets, the job queue, and the sources that
//! assets were made from. Every SQL statement of reeld lives in this module.
//!
//! The connection is synchronous; callers on the async runtime go through
//! `spawn_blocking`. Several processes may open the same file (the daemon and
//! `reeld assets list`): WAL plus a busy timeout keeps readers from blocking.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::asset::{
    Asset, AssetErrors, AssetSettings, AssetStatus, IngestType, MediaSummary, Progress,
    ProgressState, RenditionStatus, StaticRenditionFile, StaticRenditions,
};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, applied in order; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &[
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
];

/// Crashes under one job after which it is given up on (see `jobs.crashes`).
pub const MAX_CRASHES: u32 = 5;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be opened or migrated.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The SQLite file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row holds a value this version does not understand.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The identity of a source file: the same file dropped again gets a new
/// inode, size or mtime, and so a new identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceIdentity {
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
    /// Bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
}

impl SourceIdentity {
    /// Reads the identity of the file at `path` (one `stat`); anything but a
    /// regular file is an `InvalidInput` error.
    pub fn of(path: &Path) -> std::io::Result<SourceIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(SourceIdentity {
            device: m.dev(),
            inode: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        })
    }
}

/// Where an asset's source came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOrigin {
    /// The watch folder: reeld disposes of it after success or failure.
    Watch,
    /// `reeld ingest FILE`: the user's file is never touched.
    Cli,
}

impl SourceOrigin {
    fn as_str(self) -> &'static str {
        match self {
            SourceOrigin::Watch => "watch",
            SourceOrigin::Cli => "cli",
        }
    }
}

/// What has been done with a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Waiting for the asset to finish.
    Pending,
    /// Left in place (`on_success = keep`).
    Kept,
    /// Moved to the done folder.
    Moved,
    /// Deleted (`on_success = delete`).
    Deleted,
    /// Moved to the failed folder.
    Failed,
    /// A CLI source: never touched.
    Untouched,
}

impl Disposition {
    fn as_str(self) -> &'static str {
        match self {
            Disposition::Pending => "pending",
            Disposition::Kept => "kept",
            Disposition::Moved => "moved",
            Disposition::Deleted => "deleted",
            Disposition::Failed => "failed",
            Disposition::Untouched => "untouched",
        }
    }
}

/// A new asset to record.
#[derive(Debug, Clone)]
pub struct NewAsset {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Settings in force.
    pub settings: AssetSettings,
    /// How it was ingested.
    pub ingest_type: IngestType,
}

impl NewAsset {
    /// A new asset created now, with a fresh id.
    pub fn now(settings: AssetSettings, ingest_type: IngestType) -> NewAsset {
        NewAsset {
            id: crate::asset::new_asset_id(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            settings,
            ingest_type,
        }
    }
}

/// The source an asset is made from.
#[derive(Debug, Clone)]
pub struct NewSource {
    /// Absolute path at the time it was taken.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: SourceOrigin,
    /// Its identity.
    pub identity: SourceIdentity,
    /// The sidecar settings file taken with it, moved or deleted along with it.
    pub sidecar: Option<PathBuf>,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Make the master and every requested rendition from the source.
    Transcode,
    /// Make the asset's pending renditions from its stored master.
    Renditions,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Transcode => "transcode",
            JobKind::Renditions => "renditions",
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// What it does.
    pub kind: JobKind,
    /// The asset it works on.
    pub asset_id: String,
    /// Claims so far, this one included.
    pub attempts: u32,
    /// The budget.
    pub max_attempts: u32,
    /// The error of the previous attempt, if any.
    pub last_error: Option<String>,
    /// Times the process running this job died under it.
    pub crashes: u32,
}

/// A source whose asset has finished but which has not been disposed of yet.
#[derive(Debug, Clone)]
pub struct PendingSource {
    /// The asset.
    pub asset_id: String,
    /// Whether the asset is ready (else errored).
    pub status: AssetStatus,
    /// Where the source was taken from.
    pub path: PathBuf,
    /// The asset's errors, for the `.error.json`.
    pub errors: Option<AssetErrors>,
    /// The sidecar settings file, if one was taken with the source.
    pub sidecar: Option<PathBuf>,
}

/// The job queue's lease settings.
#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    /// A lease whose heartbeat is older than this is taken back.
    pub stale_after_ms: i64,
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let started = std::time::Instant::now();
        loop {
            match open_connection(path) {
                Ok(conn) => {
                    return Ok(Db {
                        conn: Arc::new(Mutex::new(conn)),
                    });
                }
                // SQLite does not call the busy handler for every lock taken
                // while opening (WAL recovery after a crash, the journal-mode
                // switch), so opening retries by itself.
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(DbError::Open {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is a transaction), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an asset, its transcode job and (optionally) its source in one
    /// transaction: after a crash either all exist or none.
    ///
    /// With `lease_to`, the job is created already claimed by that worker (the
    /// CLI's in-process ingest), so that no daemon sharing the file takes it.
    pub fn create_asset(
        &self,
        asset: &NewAsset,
        source: Option<&NewSource>,
        max_attempts: u32,
        now_ms: i64,
        lease_to: Option<&str>,
        initial_error: Option<&AssetErrors>,
    ) -> Result<i64, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO assets (id, created_at, status, settings, ingest_type, progress_state, progress, updated_at)
             VALUES (?1, ?2, 'preparing', ?3, ?4, 'ingesting', 0, ?5)",
            params![
                asset.id,
                asset.created_at,
                serde_json::to_string(&asset.settings).expect("settings serialize"),
                asset.ingest_type.as_str(),
                now_ms,
            ],
        )?;
        tx.execute(
            "INSERT INTO jobs (asset_id, kind, state, worker_id, heartbeat_at, attempts, max_attempts, created_at)
             VALUES (?1, 'transcode', CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'running' END,
                     ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?3 END,
                     CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END, ?2, ?3)",
            params![asset.id, max_attempts, now_ms, lease_to],
        )?;
        let job_id = tx.last_insert_rowid();
        if let Some(s) = source {
            let disposition = match s.origin {
                SourceOrigin::Watch => Disposition::Pending,
                SourceOrigin::Cli => Disposition::Untouched,
            };
            tx.execute(
                "INSERT INTO sources (asset_id, path, origin, device, inode, size, mtime_ns, disposition, sidecar)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    asset.id,
                    s.path.to_string_lossy(),
                    s.origin.as_str(),
                    s.identity.device as i64,
                    s.identity.inode as i64,
                    s.identity.size as i64,
                    s.identity.mtime_ns,
                    disposition.as_str(),
                    s.sidecar.as_ref().map(|p| p.to_string_lossy().into_owned()),
                ],
            )?;
        }
        if let Some(errors) = initial_error {
            // Settings that cannot be used: the asset is born errored and its
            // job is already over, so the source goes to the failed folder.
            tx.execute(
                "UPDATE assets SET status = 'errored', errors = ?2, progress_state = 'errored', progress = -1
                 WHERE id = ?1",
                params![asset.id, serde_json::to_string(errors).expect("errors serialize")],
            )?;
            fail_job(&tx, job_id, &asset.id, errors, now_ms)?;
        }
        tx.commit()?;
        Ok(job_id)
    }

    /// Whether a watch-folder source with this identity already made an asset.
    pub fn watch_source_known(&self, id: &SourceIdentity) -> Result<bool, DbError> {
        let conn = self.conn();
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sources WHERE device = ?1 AND inode = ?2 AND size = ?3 AND mtime_ns = ?4
                 AND origin = 'watch' LIMIT 1",
                params![id.device as i64, id.inode as i64, id.size as i64, id.mtime_ns],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The path of an asset's source.
    pub fn source_path(&self, asset_id: &str) -> Result<Option<PathBuf>, DbError> {
        let conn = self.conn();
        let path: Option<String> = conn
            .query_row(
                "SELECT path FROM sources WHERE asset_id = ?1",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(path.map(PathBuf::from))
    }

    /// Claims the oldest runnable job for `worker_id`, taking back leases whose
    /// heartbeat is older than the policy allows. `only_job` restricts the claim
    /// to one job (the CLI's in-process ingest).
    pub fn claim_job(
        &self,
        worker_id: &str,
        policy: LeasePolicy,
        now_ms: i64,
        only_job: Option<i64>,
    ) -> Result<Option<Job>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stale_before = now_ms - policy.stale_after_ms;
        let row = tx
            .query_row(
                "SELECT id, asset_id, attempts, max_attempts, last_error, kind, crashes,
                        state = 'running' FROM jobs
                 WHERE ((state = 'queued' AND not_before <= ?1)
                        OR (state = 'running' AND heartbeat_at < ?2))
                   AND (?3 IS NULL OR id = ?3)
                 ORDER BY id LIMIT 1",
                params![now_ms, stale_before, only_job],
                |r| {
                    // A stale lease: its holder died under it. The attempt
                    // it used is given back and the crash counted.
                    let stale: bool = r.get(7)?;
                    let attempts: u32 = r.get(2)?;
                    Ok(Job {
                        id: r.get(0)?,
                        kind: if r.get::<_, String>(5)? == "renditions" {
                            JobKind::Renditions
                        } else {
                            JobKind::Transcode
                        },
                        asset_id: r.get(1)?,
                        attempts: if stale { attempts } else { attempts + 1 },
                        max_attempts: r.get(3)?,
                        last_error: r.get(4)?,
                        crashes: r.get::<_, u32>(6)? + u32::from(stale),
                    })
                },
            )
            .optional()?;
        if let Some(job) = &row {
            tx.execute(
                "UPDATE jobs SET state = 'running', worker_id = ?2, heartbeat_at = ?3, attempts = ?4,
                     crashes = ?5
                 WHERE id = ?1",
                params![job.id, worker_id, now_ms, job.attempts, job.crashes],
            )?;
        }
        tx.commit()?;
        Ok(row)
    }

    /// Transcode jobs not finished yet (queued or running): files taken but
    /// not yet processed.
    pub fn unfinished_transcodes(&self) -> Result<usize, DbError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND state IN ('queued', 'running')",
            params![JobKind::Transcode.as_str()],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// The queued job of `kind` for an asset, if there is one.
    pub fn queued_job(&self, asset_id: &str, kind: JobKind) -> Result<Option<i64>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM jobs WHERE asset_id = ?1 AND kind = ?2 AND state = 'queued'
                 ORDER BY id LIMIT 1",
                params![asset_id, kind.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Renews a lease. Returns false if the lease was lost to another worker.
    pub fn heartbeat(&self, job_id: i64, worker_id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE jobs SET heartbeat_at = ?3 WHERE id = ?1 AND worker_id = ?2 AND state = 'running'",
            params![job_id, worker_id, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Puts a running job back in the queue. With `refund_attempt` the attempt
    /// does not count (shutdown, not failure).
    pub fn requeue_job(
        &self,
        job_id: i64,
        error: Option<&str>,
        not_before_ms: i64,
        refund_attempt: bool,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE jobs SET state = 'queued', worker_id = NULL, heartbeat_at = NULL,
                 not_before = ?2, last_error = COALESCE(?3, last_error),
                 attempts = attempts - ?4
             WHERE id = ?1",
            params![job_id, not_before_ms, error, i64::from(refund_attempt)],
        )?;
        Ok(())
    }

    /// Puts back every running lease held by a worker that `is_dead` says is gone.
    /// Returns how many jobs were released.
    pub fn release_dead_leases(&self, is_dead: impl Fn(&str) -> bool) -> Result<usize, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let holders: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT id, worker_id FROM jobs WHERE state = 'running' AND worker_id IS NOT NULL",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut released = 0;
        for (id, worker) in holders {
            if is_dead(&worker) {
                released += tx.execute(
                    "UPDATE jobs SET state = 'queued', worker_id = NULL, heartbeat_at = NULL,
                         attempts = MAX(attempts - 1, 0), crashes = crashes + 1,
                         last_error = COALESCE(last_error, 'the worker holding this job stopped')
                     WHERE id = ?1",
                    params![id],
                )?;
            }
        }
        tx.commit()?;
        Ok(released)
    }

    /// Updates an asset's progress.
    pub fn set_progress(
        &self,
        asset_id: &str,
        state: ProgressState,
        progress: f64,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE assets SET progress_state = ?2, progress = ?3, updated_at = ?4
             WHERE id = ?1 AND status = 'preparing'",
            params![asset_id, state.as_str(), progress, now_ms],
        )?;
        Ok(())
    }

    /// Records a finished job in one transaction: the asset ready with what
    /// was stored (`summary`, absent for a renditions job, whose asset was
    /// ready already), every rendition file's outcome, and the job done.
    pub fn finish_ready(
        &self,
        job_id: i64,
        asset_id: &str,
        summary: Option<&MediaSummary>,
        files: &[RenditionRow],
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(summary) = summary {
            tx.execute(
                "UPDATE assets SET status = 'ready', summary = ?2, errors = NULL,
                     progress_state = 'completed', progress = 100, updated_at = ?3
                 WHERE id = ?1",
                params![
                    asset_id,
                    serde_json::to_string(summary).expect("summary serializes"),
                    now_ms
                ],
            )?;
        }
        for file in files {
            upsert_rendition(&tx, asset_id, file, now_ms)?;
        }
        tx.execute(
            "UPDATE jobs SET state = 'done', worker_id = NULL, finished_at = ?2 WHERE id = ?1",
            params![job_id, now_ms],
        )?;
        // Files left `preparing` (a remuxed master's renditions, which need a
        // decode) get the job that makes them, in the same transaction, so
        // none is ever left pending with no job.
        tx.execute(
            "INSERT INTO jobs (asset_id, kind, state, attempts, max_attempts, created_at)
             SELECT ?1, ?3, 'queued', 0, max_attempts, ?4 FROM jobs WHERE id = ?2
               AND EXISTS (SELECT 1 FROM renditions WHERE asset_id = ?1 AND status = 'preparing')
               AND NOT EXISTS (SELECT 1 FROM jobs WHERE asset_id = ?1 AND kind = ?3
                               AND state IN ('queued', 'running'))",
            params![asset_id, job_id, JobKind::Renditions.as_str(), now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks the asset errored and the job failed, together.
    pub fn finish_errored(
        &self,
        job_id: i64,
        asset_id: &str,
        errors: &AssetErrors,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE assets SET status = 'errored', errors = ?2,
                 progress_state = 'errored', progress = -1, updated_at = ?3
             WHERE id = ?1",
            params![
                asset_id,
                serde_json::to_string(errors).expect("errors serialize"),
                now_ms
            ],
        )?;
        fail_job(&tx, job_id, asset_id, errors, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// A renditions job failed for good: its files are errored, the asset stays as it was.
    pub fn finish_renditions_errored(
        &self,
        job_id: i64,
        asset_id: &str,
        errors: &AssetErrors,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        fail_job(&tx, job_id, asset_id, errors, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// Records the planned rendition files of an asset (replacing what the
    /// request alone suggested), so that skips show while the encode runs.
    pub fn record_planned_renditions(
        &self,
        asset_id: &str,
        files: &[RenditionRow],
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for file in files {
            upsert_rendition(&tx, asset_id, file, now_ms)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The rendition files of an asset, in the order they were requested.
    pub fn renditions(&self, asset_id: &str) -> Result<Vec<RenditionRow>, DbError> {
        renditions_of(&self.conn(), asset_id)
    }

    /// Asks for one more rendition file of a ready asset and queues the job
    /// that makes it (one job for everything pending). Returns the file row
    /// and the job id; an existing file is returned as it is, with no job.
    pub fn add_rendition(
        &self,
        asset_id: &str,
        file: &RenditionRow,
        settings: &AssetSettings,
        max_attempts: u32,
        now_ms: i64,
        lease_to: Option<&str>,
    ) -> Result<(RenditionRow, Option<i64>), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing = tx
            .query_row(
                &format!(
                    "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = ?1 AND name = ?2"
                ),
                params![asset_id, file.name],
                RenditionRow::read,
            )
            .optional()?;
        if let Some(row) = existing
            && row.status != "errored"
        {
            return Ok((row, None));
        }
        upsert_rendition(&tx, asset_id, file, now_ms)?;
        tx.execute(
            "UPDATE assets SET settings = ?2, updated_at = ?3 WHERE id = ?1",
            params![
                asset_id,
                serde_json::to_string(settings).expect("settings serialize"),
                now_ms
            ],
        )?;
        let queued: Option<i64> = tx
            .query_row(
                "SELECT id FROM jobs WHERE asset_id = ?1 AND kind = 'renditions' AND state = 'queued'",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?;
        let job_id = match queued {
            Some(id) if lease_to.is_none() => id,
            _ => {
                tx.execute(
                    "INSERT INTO jobs (asset_id, kind, state, worker_id, heartbeat_at, attempts, max_attempts, created_at)
                     VALUES (?1, ?5, CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'running' END,
                             ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?3 END,
                             CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END, ?2, ?3)",
                    params![asset_id, max_attempts, now_ms, lease_to, JobKind::Renditions.as_str()],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()?;
        Ok((file.clone(), Some(job_id)))
    }

    /// The settings an asset was created with.
    pub fn asset_settings(&self, asset_id: &str) -> Result<Option<AssetSettings>, DbError> {
        let conn = self.conn();
        let text: Option<String> = conn
            .query_row(
                "SELECT settings FROM assets WHERE id = ?1",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| DbError::Corrupt {
                table: "assets",
                detail: format!("asset {asset_id}: settings: {e}"),
            })
        })
        .transpose()
    }

    /// Watch-folder sources of finished assets that still await their move,
    /// delete or keep (left over if the daemon stopped in between).
    pub fn pending_sources(&self) -> Result<Vec<PendingSource>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.asset_id, a.status, s.path, a.errors, s.sidecar FROM sources s JOIN assets a ON a.id = s.asset_id
             WHERE s.disposition = 'pending' AND a.status != 'preparing' ORDER BY a.created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (asset_id, status, path, errors, sidecar) = row?;
            out.push(PendingSource {
                asset_id,
                status: parse_status(&status)?,
                path: PathBuf::from(path),
                errors: errors.and_then(|e| serde_json::from_str(&e).ok()),
                sidecar: sidecar.map(PathBuf::from),
            });
        }
        Ok(out)
    }

    /// Records what was done with a source.
    pub fn set_disposition(&self, asset_id: &str, disposition: Disposition) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sources SET disposition = ?2 WHERE asset_id = ?1",
            params![asset_id, disposition.as_str()],
        )?;
        Ok(())
    }

    /// One asset, if it exists.
    pub fn get_asset(&self, id: &str) -> Result<Option<Asset>, DbError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?1"),
                params![id],
                AssetRow::read,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let files = renditions_of(&conn, id)?;
        row.into_asset(files).map(Some)
    }

    /// Assets, oldest first, `limit` per page starting at `offset`.
    pub fn list_assets(&self, limit: u32, offset: u64) -> Result<Vec<Asset>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ASSET_COLUMNS} FROM assets ORDER BY created_at, rowid LIMIT ?1 OFFSET ?2"
        ))?;
        let rows: Vec<AssetRow> = stmt
            .query_map(params![limit, offset as i64], AssetRow::read)?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|row| {
                let files = renditions_of(&conn, &row.id)?;
                row.into_asset(files)
            })
            .collect()
    }

    /// Test assets created before `before_s` (Unix seconds) with no job
    /// running: due for deletion.
    pub fn expired_test_assets(&self, before_s: i64) -> Result<Vec<String>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM assets
             WHERE created_at < ?1 AND json_extract(settings, '$.test') = 1
               AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.asset_id = assets.id
                               AND jobs.state = 'running')
             ORDER BY created_at",
        )?;
        let ids = stmt
            .query_map(params![before_s], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Deletes an asset with its jobs, source record and rendition rows.
    /// Its stored files must be deleted first.
    pub fn delete_asset(&self, asset_id: &str) -> Result<bool, DbError> {
        let deleted = self
            .conn()
            .execute("DELETE FROM assets WHERE id = ?1", params![asset_id])?;
        Ok(deleted > 0)
    }

    /// The state of an asset's newest job (`queued`, `running`, `done`, `failed`).
    pub fn job_state(&self, asset_id: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT state FROM jobs WHERE asset_id = ?1 ORDER BY id DESC LIMIT 1",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < MIGRATIONS.len() as i64 {
        migrate(&mut conn)?;
    }
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock before the version is read, so two
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

fn parse_status(s: &str) -> Result<AssetStatus, DbError> {
    AssetStatus::parse(s).ok_or_else(|| DbError::Corrupt {
        table: "assets",
        detail: format!("unknown status {s:?}"),
    })
}

/// The columns `RenditionRow::read` expects, in its order.
const RENDITION_COLUMNS: &str = "id, name, ext, resolution, kind, passthrough, status, resolution_tier, width, height, bitrate, filesize";

/// One rendition file as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionRow {
    /// Stable id.
    pub id: String,
    /// File name.
    pub name: String,
    /// `mp4` or `m4a`.
    pub ext: String,
    /// Requested resolution, as Mux spells it.
    pub resolution: Option<String>,
    /// `standard` or `advanced`.
    pub kind: String,
    /// User data.
    pub passthrough: Option<String>,
    /// `preparing`, `ready`, `skipped`, `errored`.
    pub status: String,
    /// Tier as made.
    pub resolution_tier: Option<String>,
    /// Pixels.
    pub width: Option<u32>,
    /// Pixels.
    pub height: Option<u32>,
    /// Bits per second.
    pub bitrate: Option<u64>,
    /// Bytes.
    pub filesize: Option<u64>,
}

impl RenditionRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RenditionRow> {
        Ok(RenditionRow {
            id: r.get(0)?,
            name: r.get(1)?,
            ext: r.get(2)?,
            resolution: r.get(3)?,
            kind: r.get(4)?,
            passthrough: r.get(5)?,
            status: r.get(6)?,
            resolution_tier: r.get(7)?,
            width: r.get(8)?,
            height: r.get(9)?,
            bitrate: r.get::<_, Option<i64>>(10)?.map(|b| b as u64),
            filesize: r.get::<_, Option<i64>>(11)?.map(|b| b as u64),
        })
    }

    fn into_file(self) -> Result<StaticRenditionFile, DbError> {
        let corrupt = |what: &str, v: &str| DbError::Corrupt {
            table: "renditions",
            detail: format!("{}: {what} {v:?}", self.name),
        };
        Ok(StaticRenditionFile {
            resolution: self
                .resolution
                .as_deref()
                .map(|r| enum_of(r).map_err(|_| corrupt("resolution", r)))
                .transpose()?,
            resolution_tier: self
                .resolution_tier
                .as_deref()
                .map(|r| enum_of(r).map_err(|_| corrupt("resolution_tier", r)))
                .transpose()?,
            status: RenditionStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            kind: enum_of(&self.kind).map_err(|_| corrupt("kind", &self.kind))?,
            width: self.width,
            height: self.height,
            bitrate: self.bitrate,
            filesize: self.filesize.map(|f| f.to_string()),
            id: self.id,
            name: self.name,
            ext: self.ext,
            passthrough: self.passthrough,
        })
    }
}

/// Ends a job as failed and errors the rendition files it was making.
fn fail_job(
    tx: &rusqlite::Transaction<'_>,
    job_id: i64,
    asset_id: &str,
    errors: &AssetErrors,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE jobs SET state = 'failed', worker_id = NULL, finished_at = ?2, last_error = ?3 WHERE id = ?1",
        params![job_id, now_ms, errors.messages.join(" ")],
    )?;
    tx.execute(
        "UPDATE renditions SET status = 'errored' WHERE asset_id = ?1 AND status = 'preparing'",
        params![asset_id],
    )?;
    Ok(())
}

fn enum_of<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
}

fn upsert_rendition(
    tx: &rusqlite::Transaction<'_>,
    asset_id: &str,
    f: &RenditionRow,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO renditions (asset_id, name, id, ext, resolution, kind, passthrough, status,
                                 resolution_tier, width, height, bitrate, filesize, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (asset_id, name) DO UPDATE SET
             status = excluded.status, resolution_tier = excluded.resolution_tier,
             width = excluded.width, height = excluded.height,
             bitrate = excluded.bitrate, filesize = excluded.filesize",
        params![
            asset_id,
            f.name,
            f.id,
            f.ext,
            f.resolution,
            f.kind,
            f.passthrough,
            f.status,
            f.resolution_tier,
            f.width,
            f.height,
            f.bitrate.map(|b| b as i64),
            f.filesize.map(|b| b as i64),
            now_ms,
        ],
    )?;
    Ok(())
}

fn renditions_of(conn: &Connection, asset_id: &str) -> Result<Vec<RenditionRow>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = ?1 ORDER BY created_at, rowid"
    ))?;
    let rows = stmt.query_map(params![asset_id], RenditionRow::read)?;
    rows.collect::<Result<_, _>>().map_err(DbError::from)
}

/// `static_renditions` of an asset: the recorded files, or, before the source
/// is planned, what the request asks for (all `preparing`, or `errored` if the
/// asset errored first).
fn static_renditions(
    settings: &AssetSettings,
    files: Vec<RenditionRow>,
    status: AssetStatus,
) -> Result<Option<StaticRenditions>, DbError> {
    if !files.is_empty() {
        let files = files
            .into_iter()
            .map(RenditionRow::into_file)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(StaticRenditions::of(files)));
    }
    let requested = crate::plan::requested_names(settings);
    if requested.is_empty() {
        return Ok(None);
    }
    let file_status = if status == AssetStatus::Errored {
        RenditionStatus::Errored
    } else {
        RenditionStatus::Preparing
    };
    let files = requested
        .into_iter()
        .map(
            |(name, resolution, kind, passthrough)| StaticRenditionFile {
                id: String::new(),
                ext: if name.ends_with(".m4a") {
                    "m4a".into()
                } else {
                    "mp4".into()
                },
                name,
                resolution,
                resolution_tier: None,
                width: None,
                height: None,
                bitrate: None,
                filesize: None,
                status: file_status,
                kind,
                passthrough,
            },
        )
        .collect();
    Ok(Some(StaticRenditions::of(files)))
}

const ASSET_COLUMNS: &str =
    "id, created_at, status, settings, ingest_type, summary, errors, progress_state, progress";

struct AssetRow {
    id: String,
    created_at: i64,
    status: String,
    settings: String,
    ingest_type: String,
    summary: String,
    errors: Option<String>,
    progress_state: String,
    progress: f64,
}

impl AssetRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<AssetRow> {
        Ok(AssetRow {
            id: r.get(0)?,
            created_at: r.get(1)?,
            status: r.get(2)?,
            settings: r.get(3)?,
            ingest_type: r.get(4)?,
            summary: r.get(5)?,
            errors: r.get(6)?,
            progress_state: r.get(7)?,
            progress: r.get(8)?,
        })
    }

    fn into_asset(self, files: Vec<RenditionRow>) -> Result<Asset, DbError> {
        let corrupt = |detail: String| DbError::Corrupt {
            table: "assets",
            detail: format!("asset {}: {detail}", self.id),
        };
        let settings: AssetSettings =
            serde_json::from_str(&self.settings).map_err(|e| corrupt(format!("settings: {e}")))?;
        let summary: MediaSummary =
            serde_json::from_str(&self.summary).map_err(|e| corrupt(format!("summary: {e}")))?;
        let errors: Option<AssetErrors> = self
            .errors
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt(format!("errors: {e}")))?;
        let status = parse_status(&self.status)?;
        let static_renditions = static_renditions(&settings, files, status)?;
        let ingest_type = IngestType::parse(&self.ingest_type)
            .ok_or_else(|| corrupt(format!("ingest_type {:?}", self.ingest_type)))?;
        let state = ProgressState::parse(&self.progress_state)
            .ok_or_else(|| corrupt(format!("progress_state {:?}", self.progress_state)))?;
        Ok(Asset {
            id: self.id,
            created_at: self.created_at.to_string(),
            status,
            duration: summary.duration,
            resolution_tier: summary.resolution_tier,
            max_resolution_tier: settings.max_resolution_tier,
            encoding_tier: settings.video_quality.encoding_tier().to_owned(),
            video_quality: settings.video_quality,
            max_stored_frame_rate: summary.max_stored_frame_rate,
            aspect_ratio: summary.aspect_ratio,
            tracks: summary.tracks,
            errors,
            passthrough: settings.passthrough,
            meta: settings.meta,
            master_access: settings.master_access,
            master: None,
            static_renditions,
            normalize_audio: settings.normalize_audio,
            non_standard_input_reasons: summary.non_standard_input_reasons,
            ingest_type,
            test: settings.test,
            progress: Progress {
                state,
                progress: self.progress,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::{MaxResolutionTier, VideoQuality};

    fn settings() -> AssetSettings {
        {
            let mut s = AssetSettings::defaults(MaxResolutionTier::P1080, VideoQuality::Plus);
            s.passthrough = Some("p".into());
            s
        }
    }

    fn new_asset(id: &str) -> NewAsset {
        NewAsset {
            id: id.into(),
            created_at: 1_700_000_000,
            settings: settings(),
            ingest_type: IngestType::OnDemandDirectUpload,
        }
    }

    const POLICY: LeasePolicy = LeasePolicy {
        stale_after_ms: 30_000,
    };

    #[test]
    fn lease_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let job = db
            .create_asset(&new_asset("a1"), None, 3, 0, None, None)
            .unwrap();

        let claimed = db.claim_job("w1", POLICY, 1_000, None).unwrap().unwrap();
        assert_eq!((claimed.id, claimed.attempts), (job, 1));
        // Held: nobody else gets it while the heartbeat is fresh.
        assert!(db.claim_job("w2", POLICY, 20_000, None).unwrap().is_none());
        assert!(db.heartbeat(job, "w1", 20_000).unwrap());
        assert!(db.claim_job("w2", POLICY, 40_000, None).unwrap().is_none());
        // Stale: another worker takes it over and the first one's heartbeat
        // fails. The dead holder's attempt is given back; its crash counts.
        let taken = db.claim_job("w2", POLICY, 60_000, None).unwrap().unwrap();
        assert_eq!((taken.attempts, taken.crashes), (1, 1));
        assert!(!db.heartbeat(job, "w1", 60_001).unwrap());

        // Requeue with backoff: not claimable before not_before.
        db.requeue_job(job, Some("store down"), 70_000, false)
            .unwrap();
        assert!(db.claim_job("w3", POLICY, 65_000, None).unwrap().is_none());
        let again = db.claim_job("w3", POLICY, 70_000, None).unwrap().unwrap();
        assert_eq!(again.last_error.as_deref(), Some("store down"));
        assert_eq!((again.attempts, again.crashes), (2, 1));

        db.finish_ready(job, "a1", Some(&MediaSummary::default()), &[], 80_000)
            .unwrap();
        assert!(
            db.claim_job("w4", POLICY, 1_000_000, None)
                .unwrap()
                .is_none()
        );
        let asset = db.get_asset("a1").unwrap().unwrap();
        assert_eq!(asset.status, AssetStatus::Ready);
        assert_eq!(asset.progress.progress, 100.0);
    }

    #[test]
    fn dead_workers_release_their_leases() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        db.create_asset(&new_asset("a1"), None, 3, 0, None, None)
            .unwrap();
        db.create_asset(&new_asset("a2"), None, 3, 0, None, None)
            .unwrap();
        db.claim_job("dead", POLICY, 1, None).unwrap().unwrap();
        db.claim_job("alive", POLICY, 1, None).unwrap().unwrap();
        assert_eq!(db.release_dead_leases(|w| w == "dead").unwrap(), 1);
        let j = db.claim_job("new", POLICY, 2, None).unwrap().unwrap();
        assert_eq!(j.asset_id, "a1");
        // A crash is not a failed attempt, but it is counted.
        assert_eq!((j.attempts, j.crashes), (1, 1));
    }

    #[test]
    fn sources_are_recorded_with_their_asset() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let identity = SourceIdentity {
            device: 1,
            inode: 2,
            size: 3,
            mtime_ns: 4,
        };
        let source = NewSource {
            path: "/w/a.mp4".into(),
            origin: SourceOrigin::Watch,
            identity,
            sidecar: None,
        };
        assert!(!db.watch_source_known(&identity).unwrap());
        let job = db
            .create_asset(&new_asset("a1"), Some(&source), 3, 0, None, None)
            .unwrap();
        assert!(db.watch_source_known(&identity).unwrap());
        assert!(
            !db.watch_source_known(&SourceIdentity {
                mtime_ns: 5,
                ..identity
            })
            .unwrap()
        );
        assert!(db.pending_sources().unwrap().is_empty(), "still preparing");
        let errors = AssetErrors {
            kind: "invalid_input".into(),
            messages: vec!["bad".into()],
        };
        db.finish_errored(job, "a1", &errors, 1).unwrap();
        let pending = db.pending_sources().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].errors.as_ref(), Some(&errors));
        db.set_disposition("a1", Disposition::Failed).unwrap();
        assert!(db.pending_sources().unwrap().is_empty());
    }

    #[test]
    fn concurrent_first_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Db::open(&path).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Db::open(&path)
            .unwrap()
            .create_asset(&new_asset("a1"), None, 3, 0, None, None)
            .unwrap();
        let db = Db::open(&path).unwrap();
        let list = db.list_assets(10, 0).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].created_at, "1700000000");
        assert_eq!(list[0].passthrough.as_deref(), Some("p"));
    }
}
