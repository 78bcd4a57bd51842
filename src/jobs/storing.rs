//! A job's dealings with the store: uploading its outputs, turning a store
//! failure into the job's outcome, writing why the job waits to its
//! asset's `progress.reason`, and putting a job back while the store is
//! misconfigured.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::outcome::JobOutcome;
use super::{Context, Finished};
use crate::db::{DbError, Job};
use crate::plan::Plan;
use crate::store::{self, Problem, StoreError};

/// Uploads every output; while the store is unavailable, waits, telling
/// `waiting`.
pub async fn store_outputs(
    ctx: &Arc<Context>,
    asset_id: &str,
    plan: &Plan,
    spool: &Path,
    cancel: &CancellationToken,
    waiting: store::Waiting<'_>,
) -> Result<(), JobOutcome> {
    for output in &plan.outputs {
        if cancel.is_cancelled() {
            return Err(JobOutcome::Cancelled);
        }
        let key = store::asset_key(asset_id, &output.name);
        let bytes = ctx
            .store
            .put_file(&key, &spool.join(&output.name), waiting)
            .await;
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) => return Err(store_failure(ctx, e).await),
        };
        info!(key = %key, bytes, store = %ctx.store.description(), "Output stored.");
    }
    Ok(())
}

/// The outcome of a store failure that waiting did not cure. A refusal
/// pauses the queue (said once, with what to check) only when the store's
/// own probe is refused too: a refusal of this job's keys alone (a policy
/// on some objects, an encryption key) is this job's failure, retried with
/// an attempt used, so it cannot pause and resume the queue for ever.
pub async fn store_failure(ctx: &Context, e: StoreError) -> JobOutcome {
    match e.problem() {
        Problem::Misconfigured => {
            if super::store_watch::check_store(ctx).await {
                return JobOutcome::Transient(format!(
                    "{} (the store accepts reeld otherwise, so only this asset's objects are refused)",
                    e.chain()
                ));
            }
            let advice = ctx
                .store
                .health()
                .paused()
                .unwrap_or_else(|| e.advice(&ctx.store.description()));
            JobOutcome::StorePaused(advice)
        }
        Problem::Unavailable | Problem::Failed => JobOutcome::Transient(e.chain()),
    }
}

/// A `Waiting` for the store that writes why the job waits to its asset's
/// `progress.reason`, through one task (joined by the caller after the
/// `Waiting` is dropped) so the notes land in order.
pub fn store_wait_notes(
    ctx: &Arc<Context>,
    job: &Job,
) -> (
    impl Fn(Option<String>) + Send + Sync + use<>,
    tokio::task::JoinHandle<()>,
) {
    let (ctx, job) = (ctx.clone(), job.clone());
    super::latest_writer(None::<String>, move |note| {
        let (db, lease, id) = (ctx.db.clone(), job.lease.clone(), job.asset_id.clone());
        async move {
            let written = tokio::task::spawn_blocking(move || {
                db.write(|tx| tx.set_progress_note(&lease, &id, note.as_deref()))
            })
            .await;
            if let Ok(Err(e)) = written {
                warn!(error = %e, "Cannot record why the job waits.");
            }
        }
    })
}

/// Back to the queue with its attempt given back, its asset saying why it
/// waits; the queue is paused, so no worker takes it before the store
/// answers again.
pub async fn requeue_paused(ctx: &Arc<Context>, job: &Job, reason: String) -> Finished {
    let (db, lease, id) = (ctx.db.clone(), job.lease.clone(), job.asset_id.clone());
    let note = format!("Queued until the store can be used: {reason}");
    let r = tokio::task::spawn_blocking(move || {
        db.write(|tx| {
            tx.set_progress_note(&lease, &id, Some(&note))?;
            tx.requeue_job(&lease, Some(&note), 0, true)
        })
    })
    .await
    .expect("db task does not panic");
    match r {
        Ok(()) => Finished::Requeued(reason),
        Err(DbError::LeaseLost { .. }) => {
            Finished::Stopped("the lease was lost; the job was not requeued".into())
        }
        Err(e) => {
            warn!(error = %e, "Cannot put the job back in the queue; its lease will expire.");
            Finished::Requeued(reason)
        }
    }
}
