//! The job queue's workers: claim a job as a lease, keep it alive with a
//! heartbeat, run it, and then finish, retry with backoff, or give up.
//!
//! Recovery is crash-only: every step of a job is idempotent (deterministic
//! spool paths and keys, uploads that only appear when complete), so a job
//! whose worker died is simply run again. At start-up, leases held by a dead
//! process on this host are taken back at once; elsewhere a lease expires when
//! its heartbeat is older than `LEASE_STALE_AFTER`.

mod assess;
pub mod dispose;
pub mod expire;
pub mod fetch;
pub mod outcome;
pub mod purge;
pub mod renditions;
pub mod source;
pub mod spool;
pub mod store_watch;
pub mod storing;
pub mod transcode;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Config;
use crate::db::{Db, Job, Lease, LeasePolicy, LeaseStatus};
use crate::links::Links;
use crate::pipelines::Fragments;
use crate::store::Store;

/// How often a running job renews its lease.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A lease not renewed for this long belongs to a dead worker.
pub const LEASE_STALE_AFTER: Duration = Duration::from_secs(60);
/// How long an idle worker sleeps before it looks at the queue again
/// (new jobs also wake it at once), and a slot whose store is paused
/// before it looks at the store again.
pub const IDLE_POLL: Duration = Duration::from_secs(2);
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
    /// Signs download URLs (and checks them, in the API).
    pub links: Links,
    /// The jobs this process runs, by asset: deleting an asset stops its
    /// job here at once (other processes see it at their next heartbeat).
    pub running: std::sync::Mutex<std::collections::HashMap<String, JobStop>>,
    /// Wakes the purge of deleted assets' files.
    pub purge_signal: tokio::sync::Notify,
    /// Wakes the webhook relay when events commit.
    pub webhook_signal: Arc<tokio::sync::Notify>,
    /// This is a worker process (`reeld worker`): its supervisor disposes of
    /// sources and relays webhooks once the job has ended.
    pub worker_process: bool,
}

/// How a running job is stopped from outside.
#[derive(Clone, Default)]
pub struct JobStop {
    /// Cancels the job's steps.
    pub cancel: CancellationToken,
    /// Set when the stop is because the asset was deleted (not a shutdown).
    pub deleted: Arc<std::sync::atomic::AtomicBool>,
}

impl JobStop {
    /// Stops the job because its asset was deleted.
    pub fn asset_deleted(&self) {
        self.deleted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Whether the asset was deleted.
    pub fn was_deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::SeqCst)
    }
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

    /// Stops this process's job of `asset_id`, if it runs one, because the
    /// asset was deleted.
    pub fn stop_deleted(&self, asset_id: &str) {
        if let Some(stop) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(asset_id)
        {
            stop.asset_deleted();
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

/// This machine's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
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

/// Values handed to one task that writes them in order, the latest only
/// when writes fall behind; the caller drops the returned function, then
/// awaits the task, so no late write lands after what the job does next.
pub fn latest_writer<T, W, F>(
    initial: T,
    mut write: W,
) -> (
    impl Fn(T) + Send + Sync + use<T, W, F>,
    tokio::task::JoinHandle<()>,
)
where
    T: Clone + Send + Sync + 'static,
    W: FnMut(T) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let (sender, mut seen) = tokio::sync::watch::channel(initial);
    let writer = tokio::spawn(async move {
        while seen.changed().await.is_ok() {
            let value = seen.borrow_and_update().clone();
            write(value).await;
        }
    });
    let hand = move |value: T| {
        sender.send_replace(value);
    };
    (hand, writer)
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
    /// The job ended without an outcome: its asset was deleted, or its
    /// lease was lost to another worker.
    Stopped(String),
}

/// Runs a claimed job under its lease and records the outcome.
pub async fn run_claimed(
    ctx: &Arc<Context>,
    job: Job,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
) -> Finished {
    let span = info_span!("job", job.id = job.id, asset.id = %job.asset_id, attempt = job.attempts);
    async move {
        let stop = JobStop {
            cancel,
            deleted: Default::default(),
        };
        let _registered = Registered::new(ctx, &job.asset_id, &stop);
        let outcome = {
            // The heartbeat lives exactly as long as the job's steps: a
            // panic in them drops the guard and ends the heartbeat too.
            let _heartbeat = spawn_heartbeat(ctx.clone(), job.lease.clone(), stop.clone());
            transcode::run(ctx, &job, &stop.cancel, progress).await
        };
        let finished = outcome::record_outcome(ctx, &job, outcome, stop.was_deleted()).await;
        match &finished {
            Finished::Ready => info!("Asset ready."),
            Finished::Errored(messages) => warn!(error = %messages.join(" "), "Asset errored."),
            Finished::Requeued(why) => info!(reason = %why, "Job put back in the queue."),
            Finished::Stopped(why) => info!(reason = %why, "Job stopped."),
        }
        finished
    }
    .instrument(span)
    .await
}

/// Runs a claimed job as a task of its own. A panic in it ends the task, and
/// with it the job's heartbeat (the abort-on-drop guard inside); the lease is
/// then given back at once, the crash counted, instead of staying `running`
/// until it goes stale, and the worker goes on to the next job.
pub async fn run_guarded<F>(db: &Db, lease: &Lease, job: F) -> Option<Finished>
where
    F: std::future::Future<Output = Finished> + Send + 'static,
{
    match tokio::spawn(job).await {
        Ok(finished) => Some(finished),
        Err(e) if e.is_panic() => {
            error!(
                job.id = lease.job_id,
                "The job stopped with an internal error (a panic); its lease is given back."
            );
            let (db, held) = (db.clone(), lease.clone());
            let released =
                tokio::task::spawn_blocking(move || db.write(|tx| tx.release_after_panic(&held)))
                    .await;
            if !matches!(released, Ok(Ok(()))) {
                warn!(
                    job.id = lease.job_id,
                    "Cannot give back the lease of the job that panicked; it will expire."
                );
            }
            None
        }
        // The runtime is shutting down.
        Err(_) => None,
    }
}

/// This process's entry in `Context::running` while a job runs.
struct Registered<'a> {
    ctx: &'a Context,
    asset_id: String,
}

impl<'a> Registered<'a> {
    fn new(ctx: &'a Context, asset_id: &str, stop: &JobStop) -> Registered<'a> {
        ctx.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(asset_id.to_owned(), stop.clone());
        Registered {
            ctx,
            asset_id: asset_id.to_owned(),
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.ctx
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.asset_id);
    }
}

/// A task that is aborted when this handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease every `HEARTBEAT_INTERVAL`. If the lease is lost, or the
/// asset was deleted, stops the job, so that two workers never finish the
/// same asset and a deleted asset's job does not run on.
fn spawn_heartbeat(ctx: Arc<Context>, lease: Lease, stop: JobStop) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
            let db = ctx.db.clone();
            let held = lease.clone();
            let renewed =
                tokio::task::spawn_blocking(move || db.write(|tx| tx.heartbeat(&held))).await;
            match renewed {
                Ok(Ok(LeaseStatus::Held)) => {}
                Ok(Ok(LeaseStatus::CancelRequested)) => {
                    info!(
                        job.id = lease.job_id,
                        "The asset was deleted; stopping its job."
                    );
                    stop.asset_deleted();
                    return;
                }
                Ok(Ok(LeaseStatus::Lost)) => {
                    warn!(
                        job.id = lease.job_id,
                        "Lease lost to another worker; stopping this job."
                    );
                    stop.cancel.cancel();
                    return;
                }
                Ok(Err(e)) => {
                    warn!(job.id = lease.job_id, error = %e, "Heartbeat failed; will retry.")
                }
                Err(_) => return,
            }
        }
    }))
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

    #[tokio::test]
    async fn a_job_that_panics_leaves_no_running_lease_and_no_heartbeat() {
        use crate::asset::{AssetSettings, IngestType, MaxResolutionTier, VideoQuality};
        use crate::db::NewAsset;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let settings = AssetSettings::defaults(MaxResolutionTier::P1080, VideoQuality::Plus);
        let asset = NewAsset::now(settings, IngestType::OnDemandDirectUpload);
        db.write(|tx| tx.create_asset(&asset, None, 3, 0, None, None))
            .unwrap();
        let policy = LeasePolicy {
            stale_after_ms: 60_000,
        };
        let job = db
            .write(|tx| tx.claim_job("w1", policy, None))
            .unwrap()
            .unwrap();

        // The job's task renews its lease from a heartbeat it holds, as
        // `run_claimed` does, then panics.
        let heartbeat_ended = Arc::new(tokio::sync::Notify::new());
        struct Ended(Arc<tokio::sync::Notify>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.notify_one();
            }
        }
        let run = {
            let (db, lease, ended) = (db.clone(), job.lease.clone(), heartbeat_ended.clone());
            async move {
                let _heartbeat = AbortOnDrop(tokio::spawn(async move {
                    let _ended = Ended(ended);
                    loop {
                        db.write(|tx| tx.heartbeat(&lease)).unwrap();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }));
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!("a bug in a job");
            }
        };
        assert!(run_guarded(&db, &job.lease, run).await.is_none());
        tokio::time::timeout(Duration::from_secs(10), heartbeat_ended.notified())
            .await
            .expect("the heartbeat ended with the task");
        assert_eq!(
            db.read(|r| r.job_state(&asset.id)).unwrap().as_deref(),
            Some("queued")
        );
        // Claimable again at once; the attempt was given back and the crash counted.
        let again = db
            .write(|tx| tx.claim_job("w2", policy, None))
            .unwrap()
            .unwrap();
        assert_eq!((again.attempts, again.crashes), (1, 1));
        assert_eq!(again.lease.generation, job.lease.generation + 1);
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
