//! Ends a pause of the queue: while the store is misconfigured, probes it
//! (a round trip under `reeld-probe/`) every `PROBE_EVERY`, and at once
//! after a SIGHUP. When the probe passes, the
//! queue opens and the waiting jobs are taken.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::Context;
use crate::store::{Problem, probe};

/// How often a paused queue probes the store.
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// Probes the store once and opens or pauses the queue by the result.
/// Returns whether the store can be used.
pub async fn check_store(ctx: &Context) -> bool {
    let steps = probe::round_trip(&ctx.store, &probe_tag(&ctx.worker_id)).await;
    let health = ctx.store.health();
    match probe::first_failure(steps) {
        None => {
            if health.resume() {
                info!(
                    store = %ctx.store.description(),
                    "The store answers again; the queue resumes."
                );
                ctx.queue_signal.notify_waiters();
            }
            true
        }
        Some((step, e)) => {
            match e.problem() {
                Problem::Misconfigured => {
                    let advice = e.advice(&ctx.store.description());
                    if health.pause(&advice) {
                        error!(
                            step,
                            error = %e.chain(),
                            "{advice} The queue is paused: jobs stay queued and use no \
                             attempt until the store answers again."
                        );
                    } else {
                        debug!(step, error = %e.chain(), "The store still refuses reeld.");
                    }
                }
                Problem::Unavailable | Problem::Failed => {
                    warn!(step, error = %e.chain(), "The store cannot be reached yet.");
                }
            }
            false
        }
    }
}

/// A probe object's name for this process: its worker id with `_` for
/// `:` (host names have no `_`), so a leftover can be traced to its process.
pub fn probe_tag(worker_id: &str) -> String {
    worker_id.replace(':', "_")
}

/// Removes probe objects left by processes of this host that died in the
/// middle of a probe (they would otherwise stay in the bucket for ever).
pub async fn remove_stale_probes(ctx: &Context) {
    let prefix = object_store::path::Path::from(probe::PROBE_PREFIX);
    let Ok(keys) = ctx.store.list(&prefix).await else {
        return;
    };
    for key in keys {
        let tag = key.filename().unwrap_or_default();
        let worker = tag.replace('_', ":");
        if super::worker_is_dead(&worker, &ctx.worker_id) && ctx.store.delete(&key).await.is_ok() {
            info!(key = %key, "Removed a store probe a stopped process left.");
        }
    }
}

/// Runs until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let health = ctx.store.health();
    loop {
        // The tick runs whether or not the queue is paused: a pause that
        // began between a look and a wait is still seen within a tick.
        let asked = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = health.probe_requested() => true,
            _ = tokio::time::sleep(PROBE_EVERY) => false,
        };
        if asked || health.paused().is_some() {
            check_store(&ctx).await;
        }
    }
}
