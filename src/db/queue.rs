//! The `jobs` table as a job queue of leases.
//!
//! A claim hands a job to one worker with the next **lease generation** (a
//! fencing token). Every later write of that job (heartbeat, progress,
//! finish, fail, requeue) names the lease and must change exactly one row;
//! a worker whose lease was taken over, or whose job was cancelled, gets
//! `DbError::LeaseLost` and writes nothing. In SQLite a claim is one
//! `IMMEDIATE` transaction; in Postgres it will be `FOR UPDATE SKIP LOCKED`
//! behind the same calls.
//!
//! Lease times (claims, heartbeats, staleness, backoff) come from the
//! database's clock, `DB_NOW_MS`, never from a worker's: workers on machines
//! whose clocks disagree still agree on who holds a job. In Postgres that is
//! `now()`.

use rusqlite::{OptionalExtension, params};

use super::{DbError, Read, Tx};
use crate::asset::AssetErrors;

/// Crashes under one job after which it is given up on (see `jobs.crashes`).
pub const MAX_CRASHES: u32 = 3;

/// The fence of every write of a claimed job: `?1`, `?2`, `?3` are the
/// lease's job id, worker and generation.
const LEASE_HELD: &str =
    "id = ?1 AND worker_id = ?2 AND lease_generation = ?3 AND state = 'running'";
/// The fence of writes that end or advance a job: also refused once its
/// asset was deleted.
const LEASE_HELD_AND_WANTED: &str = "id = ?1 AND worker_id = ?2 AND lease_generation = ?3 \
                                     AND state = 'running' AND cancel_requested = 0";

/// The database's clock in Unix ms, as SQL.
pub(super) const DB_NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Make the master and every requested rendition from the source.
    Transcode,
    /// Make the asset's pending renditions from its stored master.
    Renditions,
}

impl JobKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            JobKind::Transcode => "transcode",
            JobKind::Renditions => "renditions",
        }
    }
}

/// The right to write a job's outcome: held by one worker at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: i64,
    /// The holder.
    pub worker_id: String,
    /// Which claim of the job this is; a later claim fences this one out.
    pub generation: i64,
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
    /// The lease this worker holds on it.
    pub lease: Lease,
}

/// The job queue's lease settings.
#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    /// A lease whose heartbeat is older than this is taken back.
    pub stale_after_ms: i64,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Renewed: go on.
    Held,
    /// Renewed, but the job's asset was deleted: stop and clean up.
    CancelRequested,
    /// Another worker holds the job now, or it ended: stop, write nothing.
    Lost,
}

impl Read<'_> {
    /// Transcode jobs not finished yet (queued or running): files taken but
    /// not yet processed.
    pub fn unfinished_transcodes(&self) -> Result<usize, DbError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND state IN ('queued', 'running')",
            params![JobKind::Transcode.as_str()],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// The queued job of `kind` for an asset, if there is one.
    pub fn queued_job(&self, asset_id: &str, kind: JobKind) -> Result<Option<i64>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM jobs WHERE asset_id = ?1 AND kind = ?2 AND state = 'queued'
                 ORDER BY id LIMIT 1",
                params![asset_id, kind.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The state of an asset's newest job (`queued`, `running`, `done`,
    /// `failed`, `cancelled`).
    pub fn job_state(&self, asset_id: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM jobs WHERE asset_id = ?1 ORDER BY id DESC LIMIT 1",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

impl Tx<'_> {
    /// Claims the oldest runnable job for `worker_id`, taking back leases whose
    /// heartbeat is older than the policy allows. `only_job` restricts the claim
    /// to one job (the CLI's in-process ingest).
    pub fn claim_job(
        &self,
        worker_id: &str,
        policy: LeasePolicy,
        only_job: Option<i64>,
    ) -> Result<Option<Job>, DbError> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT id, asset_id, attempts, max_attempts, last_error, kind, crashes,
                            state = 'running', lease_generation FROM jobs
                     WHERE ((state = 'queued' AND not_before <= {DB_NOW_MS})
                            OR (state = 'running' AND heartbeat_at < {DB_NOW_MS} - ?1))
                       AND cancel_requested = 0
                       AND (?2 IS NULL OR id = ?2)
                     ORDER BY id LIMIT 1"
                ),
                params![policy.stale_after_ms, only_job],
                |r| {
                    // A stale lease: its holder died under it. The attempt
                    // it used is given back and the crash counted.
                    let stale: bool = r.get(7)?;
                    let attempts: u32 = r.get(2)?;
                    let id: i64 = r.get(0)?;
                    Ok(Job {
                        id,
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
                        lease: Lease {
                            job_id: id,
                            worker_id: worker_id.to_owned(),
                            generation: r.get::<_, i64>(8)? + 1,
                        },
                    })
                },
            )
            .optional()?;
        if let Some(job) = &row {
            self.conn.execute(
                &format!(
                    "UPDATE jobs SET state = 'running', worker_id = ?2, heartbeat_at = {DB_NOW_MS},
                         claimed_at = {DB_NOW_MS}, attempts = ?3, crashes = ?4, lease_generation = ?5
                     WHERE id = ?1"
                ),
                params![
                    job.id,
                    worker_id,
                    job.attempts,
                    job.crashes,
                    job.lease.generation
                ],
            )?;
        }
        Ok(row)
    }

    /// Renews a lease, and says whether the job should go on.
    pub fn heartbeat(&self, lease: &Lease) -> Result<LeaseStatus, DbError> {
        let cancel: Option<bool> = self
            .conn
            .query_row(
                &format!(
                    "UPDATE jobs SET heartbeat_at = {DB_NOW_MS} WHERE {LEASE_HELD}
                     RETURNING cancel_requested"
                ),
                params![lease.job_id, lease.worker_id, lease.generation],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match cancel {
            None => LeaseStatus::Lost,
            Some(true) => LeaseStatus::CancelRequested,
            Some(false) => LeaseStatus::Held,
        })
    }

    /// Fails with `LeaseLost` unless `lease` still holds its running job.
    pub fn ensure_held(&self, lease: &Lease) -> Result<(), DbError> {
        let held: Option<i64> = self
            .conn
            .query_row(
                &format!("SELECT 1 FROM jobs WHERE {LEASE_HELD_AND_WANTED}"),
                params![lease.job_id, lease.worker_id, lease.generation],
                |r| r.get(0),
            )
            .optional()?;
        match held {
            Some(_) => Ok(()),
            None => Err(lease_lost(lease)),
        }
    }

    /// Puts a running job back in the queue, claimable again after `delay_ms`
    /// by the database's clock. With `refund_attempt` the attempt does not
    /// count (shutdown, not failure).
    pub fn requeue_job(
        &self,
        lease: &Lease,
        error: Option<&str>,
        delay_ms: i64,
        refund_attempt: bool,
    ) -> Result<(), DbError> {
        let n = self.conn.execute(
            &format!(
                "UPDATE jobs SET state = 'queued', worker_id = NULL, heartbeat_at = NULL,
                 not_before = {DB_NOW_MS} + ?4, last_error = COALESCE(?5, last_error),
                 attempts = attempts - ?6
             WHERE {LEASE_HELD_AND_WANTED}"
            ),
            params![
                lease.job_id,
                lease.worker_id,
                lease.generation,
                delay_ms,
                error,
                i64::from(refund_attempt)
            ],
        )?;
        exactly_one(n, lease)
    }

    /// Gives back the lease of a job whose task panicked: queued again at
    /// once, its attempt given back and the crash counted (so a file that
    /// panics the job every time is given up on after `MAX_CRASHES`).
    pub fn release_after_panic(&self, lease: &Lease) -> Result<(), DbError> {
        let n = self.conn.execute(
            &format!(
                "UPDATE jobs SET state = 'queued', worker_id = NULL, heartbeat_at = NULL,
                 not_before = {DB_NOW_MS}, attempts = MAX(attempts - 1, 0), crashes = crashes + 1,
                 last_error = 'the job stopped with an internal error (a panic)'
             WHERE {LEASE_HELD}"
            ),
            params![lease.job_id, lease.worker_id, lease.generation],
        )?;
        exactly_one(n, lease)
    }

    /// Ends a job whose asset was deleted while it ran.
    pub fn cancel_job(&self, lease: &Lease, now_ms: i64) -> Result<(), DbError> {
        let n = self.conn.execute(
            &format!(
                "UPDATE jobs SET state = 'cancelled', worker_id = NULL, finished_at = ?4,
                 last_error = 'the asset was deleted'
             WHERE {LEASE_HELD}"
            ),
            params![lease.job_id, lease.worker_id, lease.generation, now_ms],
        )?;
        exactly_one(n, lease)
    }

    /// Gives back the job the worker process `worker_id` held when it died.
    /// `crashed` counts the death; `give_up_because` (lack of memory) counts
    /// enough deaths to give the job up at once, with that reason. Returns
    /// how many jobs were released (0 when it held none).
    pub fn release_worker(
        &self,
        worker_id: &str,
        crashed: bool,
        give_up_because: Option<&str>,
    ) -> Result<usize, DbError> {
        let crashes = match (give_up_because, crashed) {
            (Some(_), _) => format!("MAX(crashes + 1, {MAX_CRASHES})"),
            (None, true) => "crashes + 1".to_owned(),
            (None, false) => "crashes".to_owned(),
        };
        Ok(self.conn.execute(
            &format!(
                "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                     worker_id = NULL, heartbeat_at = NULL,
                     attempts = MAX(attempts - 1, 0), crashes = {crashes},
                     last_error = COALESCE(?2, last_error, 'the worker holding this job stopped')
                 WHERE state = 'running' AND worker_id = ?1"
            ),
            params![worker_id, give_up_because],
        )?)
    }

    /// Puts back every running lease held by a worker that `is_dead` says is gone.
    /// Returns how many jobs were released.
    pub fn release_dead_leases(&self, is_dead: impl Fn(&str) -> bool) -> Result<usize, DbError> {
        let holders: Vec<(i64, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, worker_id FROM jobs WHERE state = 'running' AND worker_id IS NOT NULL",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut released = 0;
        for (id, worker) in holders {
            if is_dead(&worker) {
                released += self.conn.execute(
                    // A job whose asset was deleted while it ran is over.
                    "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                         worker_id = NULL, heartbeat_at = NULL,
                         attempts = MAX(attempts - 1, 0), crashes = crashes + 1,
                         last_error = COALESCE(last_error, 'the worker holding this job stopped')
                     WHERE id = ?1",
                    params![id],
                )?;
            }
        }
        Ok(released)
    }

    /// Ends a job as done.
    pub(super) fn job_done(&self, lease: &Lease, now_ms: i64) -> Result<(), DbError> {
        let n = self.conn.execute(
            &format!(
                "UPDATE jobs SET state = 'done', worker_id = NULL, finished_at = ?4
             WHERE {LEASE_HELD_AND_WANTED}"
            ),
            params![lease.job_id, lease.worker_id, lease.generation, now_ms],
        )?;
        exactly_one(n, lease)
    }

    /// Ends a job as failed and errors the rendition files it was making.
    pub(super) fn job_failed(
        &self,
        lease: &Lease,
        asset_id: &str,
        errors: &AssetErrors,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let n = self.conn.execute(
            &format!(
                "UPDATE jobs SET state = 'failed', worker_id = NULL, finished_at = ?4, last_error = ?5
             WHERE {LEASE_HELD_AND_WANTED}"
            ),
            params![
                lease.job_id,
                lease.worker_id,
                lease.generation,
                now_ms,
                errors.messages.join(" ")
            ],
        )?;
        exactly_one(n, lease)?;
        self.conn.execute(
            "UPDATE renditions SET status = 'errored' WHERE asset_id = ?1 AND status = 'preparing'",
            params![asset_id],
        )?;
        Ok(())
    }

    /// Inserts a job, queued, or already claimed by `lease_to` (generation 1).
    pub(super) fn insert_job(
        &self,
        asset_id: &str,
        kind: JobKind,
        max_attempts: u32,
        now_ms: i64,
        lease_to: Option<&str>,
    ) -> Result<i64, DbError> {
        self.conn.execute(
            &format!("INSERT INTO jobs (asset_id, kind, state, worker_id, heartbeat_at, claimed_at, attempts,
                               max_attempts, created_at, lease_generation)
             VALUES (?1, ?5, CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'running' END,
                     ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE {DB_NOW_MS} END,
                     CASE WHEN ?4 IS NULL THEN NULL ELSE {DB_NOW_MS} END,
                     CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END, ?2, ?3,
                     CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END)"),
            params![asset_id, max_attempts, now_ms, lease_to, kind.as_str()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Queues the renditions job for files left `preparing` (a remuxed
    /// master's renditions, which need a decode), unless one is queued or
    /// running, so none is ever left pending with no job.
    pub(super) fn queue_pending_renditions(
        &self,
        asset_id: &str,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO jobs (asset_id, kind, state, attempts, max_attempts, created_at)
             SELECT ?1, ?2, 'queued', 0, ?3, ?4
              WHERE EXISTS (SELECT 1 FROM renditions WHERE asset_id = ?1 AND status = 'preparing')
                AND NOT EXISTS (SELECT 1 FROM jobs WHERE asset_id = ?1 AND kind = ?2
                                AND state IN ('queued', 'running'))",
            params![asset_id, JobKind::Renditions.as_str(), max_attempts, now_ms],
        )?;
        Ok(())
    }

    /// The budget of a job.
    pub(super) fn max_attempts_of(&self, job_id: i64) -> Result<u32, DbError> {
        Ok(self.conn.query_row(
            "SELECT max_attempts FROM jobs WHERE id = ?1",
            params![job_id],
            |r| r.get(0),
        )?)
    }

    /// Stops every job of a deleted asset: queued ones are cancelled at once,
    /// running ones are asked to stop (their heartbeat sees it).
    pub(super) fn cancel_jobs_of(&self, asset_id: &str, now_ms: i64) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, last_error = 'the asset was deleted'
             WHERE asset_id = ?1 AND state = 'queued'",
            params![asset_id, now_ms],
        )?;
        self.conn.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE asset_id = ?1 AND state = 'running'",
            params![asset_id],
        )?;
        Ok(())
    }
}

fn lease_lost(lease: &Lease) -> DbError {
    DbError::LeaseLost {
        job_id: lease.job_id,
        generation: lease.generation,
    }
}

fn exactly_one(changed: usize, lease: &Lease) -> Result<(), DbError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(lease_lost(lease))
    }
}
