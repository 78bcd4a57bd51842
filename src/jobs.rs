//! The job queue's workers: claim a job as a lease, keep it alive with a
//! heartbeat, run it, and then finish, retry with backoff, or give up.
//!
//! Recovery is crash-only: every step of a job is idempotent (deterministic
//! spool paths and keys, uploads that only appear when complete), so a job
//! whose worker died is simply run again. At start-up, leases held by a dead
//! process on this host are taken back at once; elsewhere a lease expires when
//! its heartbeat is older than `LEASE_STALE_AFTER`.

pub mod dispose;
pub mod expire;
pub mod renditions;
pub mod transcode;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Config;
use crate::db::{Db, Job, LeasePolicy};
use crate::pipelines::Fragments;
use crate::store::Store;

/// How often a running job renews its lease.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A lease not renewed for this long belongs to a dead worker.
pub const LEASE_STALE_AFTER: Duration = Duration::from_secs(60);
/// How long an idle worker sleeps before it looks at the queue again
/// (new jobs also wake it at once).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// First retry delay after a transient failure; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The lease policy every worker uses.
pub const LEASE_POLICY: LeasePolicy = LeasePolicy {
    stale_after_ms: LEASE_STALE_AFTER.as_millis() as i64,
};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Delay before attempt `attempt + 1` after a transient failure of `attempt`.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Everything a job needs, shared by all workers.
pub struct Context {
    /// The validated config.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// The object store.
    pub store: Store,
    /// Encoder fragments.
    pub fragments: Fragments,
    /// This process's worker id (`host:pid:nonce`).
    pub worker_id: String,
    /// Wakes idle workers when a job is queued.
    pub queue_signal: tokio::sync::Notify,
    /// The config as last (re)loaded: its defaults and profiles apply to new
    /// files (SIGHUP replaces it; everything else reads `config`).
    pub reloadable: std::sync::RwLock<Arc<Config>>,
    /// Per worker: Unix ms of its last sign of life (a turn of its loop, or a
    /// renewed lease while it runs a job). systemd's watchdog is fed only
    /// while every worker shows life.
    pub worker_alive_ms: Vec<std::sync::atomic::AtomicI64>,
}

impl Context {
    /// The settings for a file dropped at `relative` below the watch folder,
    /// before its sidecar: the current defaults and profiles.
    pub fn settings_for(&self, relative: &std::path::Path) -> crate::asset::AssetSettings {
        let config = self.reloadable.read().expect("config lock").clone();
        config.settings_for(relative)
    }

    /// Replaces the defaults and profiles new files get.
    pub fn reload_settings(&self, config: Config) {
        *self.reloadable.write().expect("config lock") = Arc::new(config);
    }

    /// Records a sign of life of worker `index`.
    pub fn worker_alive(&self, index: usize) {
        if let Some(slot) = self.worker_alive_ms.get(index) {
            slot.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The workers that showed no life within `window`.
    pub fn silent_workers(&self, window: Duration) -> Vec<usize> {
        let since = now_ms() - window.as_millis() as i64;
        self.worker_alive_ms
            .iter()
            .enumerate()
            .filter(|(_, t)| t.load(std::sync::atomic::Ordering::Relaxed) < since)
            .map(|(i, _)| i)
            .collect()
    }
}

/// A worker id for this process: host name, pid and a random nonce, so that a
/// later process reusing the pid is not mistaken for this one.
pub fn new_worker_id() -> String {
    let host = hostname();
    let nonce = &crate::asset::new_asset_id()[..8];
    format!("{host}:{}:{nonce}", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Whether the worker `worker_id` is known to be gone: it ran on this host and
/// its process no longer exists (or the pid now belongs to another program).
/// Workers of other hosts are never judged here; their leases expire instead.
pub fn worker_is_dead(worker_id: &str, own_worker_id: &str) -> bool {
    let mut parts = worker_id.rsplitn(3, ':');
    let (Some(_nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() || worker_id == own_worker_id {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        // Our pid, but another nonce: a previous process that had our pid.
        return true;
    }
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match (comm(&pid.to_string()), comm("self")) {
        (None, _) => true,
        (Some(theirs), Some(ours)) => theirs != ours,
        (Some(_), None) => false,
    }
}

/// Runs one worker until `stop_taking` is cancelled: claim, run, repeat. A
/// running job is cancelled (and requeued) only by `stop_running`.
pub async fn worker_loop(
    ctx: Arc<Context>,
    index: usize,
    stop_taking: CancellationToken,
    stop_running: CancellationToken,
) {
    info!(worker = index, "Worker started.");
    while !stop_taking.is_cancelled() {
        ctx.worker_alive(index);
        let claimed = {
            let db = ctx.db.clone();
            let worker_id = ctx.worker_id.clone();
            tokio::task::spawn_blocking(move || {
                db.claim_job(&worker_id, LEASE_POLICY, now_ms(), None)
            })
            .await
            .expect("claim task does not panic")
        };
        match claimed {
            Ok(Some(job)) => {
                run_claimed(&ctx, job, stop_running.child_token(), None, Some(index)).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = stop_taking.cancelled() => break,
                    _ = ctx.queue_signal.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(e) => {
                error!(worker = index, error = %e, "Cannot read the job queue; retrying shortly.");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
    info!(worker = index, "Worker stopped.");
}

/// A callback for progress updates (0–100).
pub type ProgressFn = Arc<dyn Fn(f64) + Send + Sync>;

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The asset is ready.
    Ready,
    /// The asset is errored; the messages say why.
    Errored(Vec<String>),
    /// The job went back to the queue (transient failure or shutdown).
    Requeued(String),
}

/// Runs a claimed job under its lease and records the outcome.
pub async fn run_claimed(
    ctx: &Arc<Context>,
    job: Job,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
    worker: Option<usize>,
) -> Finished {
    let span = info_span!("job", job.id = job.id, asset.id = %job.asset_id, attempt = job.attempts);
    async move {
        let heartbeat = spawn_heartbeat(ctx.clone(), job.id, cancel.clone(), worker);
        let outcome = transcode::run(ctx, &job, &cancel, progress).await;
        heartbeat.abort();
        let finished = transcode::record_outcome(ctx, &job, outcome).await;
        match &finished {
            Finished::Ready => info!("Asset ready."),
            Finished::Errored(messages) => warn!(error = %messages.join(" "), "Asset errored."),
            Finished::Requeued(why) => info!(reason = %why, "Job put back in the queue."),
        }
        finished
    }
    .instrument(span)
    .await
}

/// Renews the lease every `HEARTBEAT_INTERVAL`; if the lease is lost, cancels
/// the job so that two workers never finish the same asset.
fn spawn_heartbeat(
    ctx: Arc<Context>,
    job_id: i64,
    cancel: CancellationToken,
    worker: Option<usize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
            let db = ctx.db.clone();
            let worker_id = ctx.worker_id.clone();
            let renewed =
                tokio::task::spawn_blocking(move || db.heartbeat(job_id, &worker_id, now_ms()))
                    .await;
            match renewed {
                Ok(Ok(true)) => {
                    if let Some(index) = worker {
                        ctx.worker_alive(index);
                    }
                }
                Ok(Ok(false)) => {
                    warn!(
                        job.id = job_id,
                        "Lease lost to another worker; stopping this job."
                    );
                    cancel.cancel();
                    return;
                }
                Ok(Err(e)) => warn!(job.id = job_id, error = %e, "Heartbeat failed; will retry."),
                Err(_) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(10), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn dead_worker_detection() {
        let me = new_worker_id();
        assert!(!worker_is_dead(&me, &me));
        let host = hostname();
        // A pid that cannot exist on Linux (above pid_max's hard limit).
        assert!(worker_is_dead(&format!("{host}:99999999:abc"), &me));
        // Our pid with another nonce: an earlier process.
        assert!(worker_is_dead(
            &format!("{host}:{}:other", std::process::id()),
            &me
        ));
        // Another host: never judged from here.
        assert!(!worker_is_dead("elsewhere:1:abc", &me));
        assert!(!worker_is_dead("garbage", &me));
    }
}
