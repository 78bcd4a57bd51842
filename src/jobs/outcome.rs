//! How a job ends: the outcomes a job's steps return, and what each writes.
//! A ready asset records its stored files; an invalid input errors the
//! asset with a sentence the user reads in `errors.messages`; anything
//! transient goes back to the queue with backoff; a shutdown or a paused
//! store requeues without using an attempt.

use std::sync::Arc;

use tracing::warn;

use super::spool::attempt_spool;
use super::storing::requeue_paused;
use super::{Context, Finished, backoff, now_ms};
use crate::asset::{AssetErrors, MediaSummary};
use crate::db::{DbError, Job, JobKind, RenditionRow};
use crate::pipeline::PipelineError;

/// The Mux error type for inputs reeld cannot use.
pub const INVALID_INPUT: &str = "invalid_input";
/// The error type for failures that persisted through every retry.
pub const PROCESSING_FAILED: &str = "processing_failed";
/// How the reason of a job given up on for lack of memory starts.
pub const OUT_OF_MEMORY: &str = "The file needs more memory than";

/// The reason of a job given up on for lack of memory, whether its worker
/// died of it or an element said so.
pub fn out_of_memory_reason(config: &crate::config::Config) -> String {
    format!(
        "{OUT_OF_MEMORY} transcode.worker_memory_mb allows ({} MiB).",
        config.worker_memory_bytes >> 20
    )
}
/// What a finished job stored.
#[derive(Debug)]
pub struct Stored {
    /// The master's description (absent for a renditions job).
    pub summary: Option<MediaSummary>,
    /// Every rendition file the job decided on, with measurements when made.
    pub files: Vec<RenditionRow>,
}

/// Why a job did not produce a ready asset.
#[derive(Debug)]
pub enum JobOutcome {
    /// Stored and verified.
    Ready(Stored),
    /// The input is at fault: never retried.
    InvalidInput(String),
    /// The environment is at fault: retry with backoff.
    Transient(String),
    /// Shutdown: back to the queue without using an attempt.
    Cancelled,
    /// The store is misconfigured: back to the queue without using an
    /// attempt, and the queue paused until the store answers again.
    StorePaused(String),
}
/// Writes the outcome to the database and disposes of the source. A job
/// stopped because its asset was deleted records only that it ended; a job
/// whose lease was lost records nothing.
pub async fn record_outcome(
    ctx: &Arc<Context>,
    job: &Job,
    outcome: JobOutcome,
    asset_deleted: bool,
) -> Finished {
    let db = ctx.db.clone();
    let asset_id = job.asset_id.clone();
    let lease = job.lease.clone();
    if asset_deleted {
        let _ = std::fs::remove_dir_all(attempt_spool(&ctx.config.spool_dir, job));
        let r = tokio::task::spawn_blocking(move || db.write(|tx| tx.cancel_job(&lease, now_ms())))
            .await
            .expect("db task does not panic");
        if let Err(e) = r {
            warn!(error = %e, "Cannot record the end of a deleted asset's job; its lease will expire.");
        }
        ctx.purge_signal.notify_one();
        return Finished::Stopped("the asset was deleted".into());
    }
    let finished = match outcome {
        JobOutcome::Ready(stored) => {
            let r = tokio::task::spawn_blocking(move || {
                db.write(|tx| {
                    tx.finish_ready(
                        &lease,
                        &asset_id,
                        stored.summary.as_ref(),
                        &stored.files,
                        now_ms(),
                    )
                })
            })
            .await
            .expect("db task does not panic");
            match r {
                Ok(()) => Finished::Ready,
                Err(e) => not_recorded(ctx, job, e).await,
            }
        }
        JobOutcome::InvalidInput(message) => {
            let kind = if job.attempts > job.max_attempts {
                PROCESSING_FAILED
            } else {
                INVALID_INPUT
            };
            let errors = AssetErrors {
                kind: kind.into(),
                messages: vec![message.clone()],
            };
            let kind = job.kind;
            let r = tokio::task::spawn_blocking(move || {
                db.write(|tx| match kind {
                    JobKind::Transcode => tx.finish_errored(&lease, &asset_id, &errors, now_ms()),
                    // The asset stays ready: only the renditions of this job failed.
                    JobKind::Renditions => {
                        tx.finish_renditions_errored(&lease, &asset_id, &errors, now_ms())
                    }
                })
            })
            .await
            .expect("db task does not panic");
            match r {
                Ok(()) => Finished::Errored(vec![message]),
                Err(e) => not_recorded(ctx, job, e).await,
            }
        }
        JobOutcome::Transient(message) => requeue(ctx, job, message, false).await,
        JobOutcome::Cancelled => requeue(ctx, job, "stopped by shutdown".into(), true).await,
        JobOutcome::StorePaused(reason) => requeue_paused(ctx, job, reason).await,
    };
    // A worker process may not touch the watch folder: its supervisor
    // disposes of the source when the worker says it has finished.
    if matches!(finished, Finished::Ready | Finished::Errored(_)) && !ctx.worker_process {
        super::dispose::dispose_pending(ctx).await;
    }
    finished
}

/// The outcome could not be written: with the lease lost, nothing may be;
/// otherwise the job goes back to the queue.
async fn not_recorded(ctx: &Arc<Context>, job: &Job, e: DbError) -> Finished {
    match e {
        DbError::LeaseLost { .. } => {
            Finished::Stopped("the lease was lost; the outcome was not recorded".into())
        }
        e => requeue(ctx, job, format!("Cannot record the result: {e}"), false).await,
    }
}

async fn requeue(ctx: &Arc<Context>, job: &Job, reason: String, refund: bool) -> Finished {
    let db = ctx.db.clone();
    let lease = job.lease.clone();
    let delay = if refund {
        Default::default()
    } else {
        backoff(job.attempts)
    };
    let delay_ms = delay.as_millis() as i64;
    let why = reason.clone();
    let r = tokio::task::spawn_blocking(move || {
        db.write(|tx| tx.requeue_job(&lease, Some(&why), delay_ms, refund))
    })
    .await
    .expect("db task does not panic");
    match r {
        Ok(()) => {}
        Err(DbError::LeaseLost { .. }) => {
            return Finished::Stopped("the lease was lost; the job was not requeued".into());
        }
        // The lease will expire and the job will be taken back anyway.
        Err(e) => warn!(error = %e, "Cannot put the job back in the queue; its lease will expire."),
    }
    ctx.queue_signal.notify_one();
    Finished::Requeued(reason)
}

/// Capitalises a message and ends it with a full stop, for `errors.messages`.
pub(super) fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut s = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => return "Unknown error.".into(),
    };
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// A pipeline failure caused by the input, as a user-facing sentence.
pub(super) fn input_error_sentence(e: &PipelineError) -> String {
    match e {
        PipelineError::Stream {
            message, element, ..
        } => sentence(&format!(
            "The source could not be decoded ({message}, in {})",
            element.rsplit('/').next().unwrap_or(element)
        )),
        other => sentence(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(
            sentence("the file is empty (0 bytes)"),
            "The file is empty (0 bytes)."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "Unknown error.");
    }
}
