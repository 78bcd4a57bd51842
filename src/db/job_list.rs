//! The queue as people look at it: running and queued jobs with their
//! asset's step and progress (`GET /video/v1/jobs`, the dashboard's queue).
//! The claiming and fencing of jobs lives in `queue.rs`.

use rusqlite::params;

use super::{DbError, Read};

/// A running or queued job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobListing {
    /// The job's id.
    pub id: i64,
    /// Its asset.
    pub asset_id: String,
    /// `transcode` or `renditions`.
    pub kind: String,
    /// `running` or `queued`.
    pub state: String,
    /// The worker holding it, while running.
    pub worker_id: Option<String>,
    /// Claims so far (this one included while running).
    pub attempt: u32,
    /// Claims allowed.
    pub max_attempts: u32,
    /// Times a worker died under it.
    pub crashes: u32,
    /// The asset's step: `ingesting` or `transcoding`.
    pub step: String,
    /// The asset's progress, 0–100 (-1 when unknown).
    pub progress: f64,
    /// Why it waits, when it does (the store is down, say).
    pub note: Option<String>,
    /// The previous attempt's error, if any.
    pub last_error: Option<String>,
    /// Unix ms it was queued.
    pub created_at_ms: i64,
    /// Unix ms this attempt was claimed (running jobs).
    pub claimed_at_ms: Option<i64>,
    /// Unix ms of the holder's last heartbeat (running jobs).
    pub heartbeat_at_ms: Option<i64>,
    /// Unix ms before which a queued job is not claimed (its backoff).
    pub not_before_ms: i64,
}

impl Read<'_> {
    /// Running jobs, then queued ones in the order they will be claimed; at
    /// most `limit`.
    pub fn unfinished_jobs(&self, limit: u32) -> Result<Vec<JobListing>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT j.id, j.asset_id, j.kind, j.state, j.worker_id, j.attempts, j.max_attempts,
                    j.crashes, a.progress_state, a.progress, a.progress_note, j.last_error,
                    j.created_at, j.claimed_at, j.heartbeat_at, j.not_before
             FROM jobs j JOIN assets a ON a.id = j.asset_id
             WHERE j.state IN ('running', 'queued')
             ORDER BY j.state = 'queued', j.id LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit], |r| {
                Ok(JobListing {
                    id: r.get(0)?,
                    asset_id: r.get(1)?,
                    kind: r.get(2)?,
                    state: r.get(3)?,
                    worker_id: r.get(4)?,
                    attempt: r.get(5)?,
                    max_attempts: r.get(6)?,
                    crashes: r.get(7)?,
                    step: r.get(8)?,
                    progress: r.get(9)?,
                    note: r.get(10)?,
                    last_error: r.get(11)?,
                    created_at_ms: r.get(12)?,
                    claimed_at_ms: r.get(13)?,
                    heartbeat_at_ms: r.get(14)?,
                    not_before_ms: r.get(15)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
