//! The daemon's wiring. Start-up and shutdown read as ordered scripts:
//!
//! start: folders → database → store → pipeline fragments → recovery
//! (dead leases, pending source disposals, stale spool) → worker processes
//! (`supervisor`) → watcher.
//!
//! stop (SIGTERM/SIGINT): stop the watcher and stop starting jobs; running
//! jobs get `shutdown_grace_seconds` to finish, then their workers are told
//! to stop (the jobs go back to the queue without using an attempt); wait,
//! exit 0.
//!
//! SIGHUP: reload defaults, profiles and the log level; log what needs a restart.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::db::Db;
use crate::jobs::{self, Context};
use crate::pipelines::Fragments;
use crate::store::Store;

/// How long shutdown waits at most for due webhooks to go out.
const WEBHOOK_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A folder could not be created.
    #[error("cannot create folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// One or more pipeline fragments are unusable.
    #[error("pipeline fragments are unusable:\n  - {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  - "))]
    Fragments(Vec<crate::pipelines::FragmentError>),
    /// The watch folder could not be watched.
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    /// A secret file (URL signing key, API token) could not be read or made.
    #[error(transparent)]
    KeyFile(#[from] crate::keys::KeyFileError),
    /// `[playback] geoip_database` cannot be opened.
    #[error("{0}")]
    GeoIp(String),
    /// The API could not listen.
    #[error("cannot listen on {address} for the API: {source}")]
    Listen {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The folder reeld keeps its generated secrets in: the database's.
pub fn data_dir(config: &Config) -> std::path::PathBuf {
    config
        .database_path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| config.base_dir.clone())
}

/// The signer of download URLs: the configured key, or the one generated
/// beside the database; URLs start at the public base URL, or at the
/// address the API is bound to (`bound`), or the configured one.
pub fn links_for(
    config: &Config,
    bound: Option<std::net::SocketAddr>,
) -> Result<crate::links::Links, crate::keys::KeyFileError> {
    let key = match &config.api.url_signing_key {
        Some(k) => k.0.clone(),
        None => crate::keys::load_or_create(
            &data_dir(config).join("url-signing.key"),
            crate::keys::random_secret,
        )?,
    };
    let base = config
        .api
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", bound.unwrap_or(config.api.listen)));
    Ok(crate::links::Links::new(
        &base,
        key.as_bytes(),
        config.api.download_url_ttl_seconds as i64,
    ))
}

/// Opens everything a job needs. `api_address` is where the API listens,
/// when this process serves it.
pub async fn open_context(
    config: Config,
    api_address: Option<std::net::SocketAddr>,
) -> Result<Arc<Context>, StartError> {
    build_context(config, api_address, None).await
}

/// What a worker process needs for its one job (see `worker`): the same,
/// with the fragments it loaded while it waited, except that the
/// supervisor disposes of sources.
pub async fn open_worker_context(
    config: Config,
    fragments: Fragments,
) -> Result<Arc<Context>, StartError> {
    build_context(config, None, Some(fragments)).await
}

/// `fragments`: already loaded (a worker process); `None` loads them.
async fn build_context(
    config: Config,
    api_address: Option<std::net::SocketAddr>,
    fragments: Option<Fragments>,
) -> Result<Arc<Context>, StartError> {
    let worker_process = fragments.is_some();
    let mut folders = vec![
        config.watch_dir.clone(),
        config.failed_dir.clone(),
        config.spool_dir.clone(),
    ];
    folders.extend(config.done_dir.clone());
    for path in folders {
        std::fs::create_dir_all(&path).map_err(|source| StartError::Folder { path, source })?;
    }
    let db = Db::open(&config.database_path)?;
    let store = Store::open(&config.storage)?;
    let fragments = match fragments {
        Some(f) => f,
        None => Fragments::load(&config.pipelines_dir).map_err(StartError::Fragments)?,
    };
    let links = links_for(&config, api_address)?;
    // Every change this process commits writes its webhook events with it
    // (with no endpoints there is nothing to write, or to work out).
    let observer = Arc::new(crate::webhooks::Observer::new(
        config.webhooks.clone(),
        links.clone(),
    ));
    let webhook_signal = observer.signal.clone();
    if !config.webhooks.endpoints.is_empty() {
        db.set_observer(observer);
    }
    let config_copy = config.clone();
    let concurrency = config.concurrency;
    let ctx = Arc::new(Context {
        worker_id: jobs::new_worker_id(),
        config,
        db,
        store,
        fragments,
        queue_signal: tokio::sync::Notify::new(),
        reloadable: std::sync::RwLock::new(Arc::new(config_copy)),
        worker_alive_ms: (0..concurrency)
            .map(|_| std::sync::atomic::AtomicI64::new(jobs::now_ms()))
            .collect(),
        links,
        running: Default::default(),
        purge_signal: tokio::sync::Notify::new(),
        webhook_signal,
        worker_process,
    });
    Ok(ctx)
}

/// Crash recovery at start-up: take back leases of dead processes on this
/// host, finish source disposals a crash interrupted, remove uploads it cut
/// short, and clear the spool of jobs that no longer run.
pub async fn recover(ctx: &Arc<Context>) -> Result<(), StartError> {
    let db = ctx.db.clone();
    let own = ctx.worker_id.clone();
    let released = tokio::task::spawn_blocking(move || {
        db.write(|tx| {
            tx.release_dead_claims(|w| jobs::worker_is_dead(w, &own))?;
            tx.release_dead_leases(|w| jobs::worker_is_dead(w, &own))
        })
    })
    .await
    .expect("recovery task does not panic")?;
    if released > 0 {
        info!(
            jobs = released,
            "Took back jobs from a process that stopped."
        );
    }
    jobs::dispose::dispose_pending(ctx).await;
    let staging = ctx.store.remove_interrupted_uploads();
    if staging > 0 {
        info!(files = staging, "Removed uploads a crash interrupted.");
    }
    remove_unwanted_uploads(ctx);
    if let Ok(entries) = std::fs::read_dir(&ctx.config.spool_dir) {
        for entry in entries.flatten() {
            let asset_id = entry.file_name().to_string_lossy().into_owned();
            if asset_id == jobs::spool::UPLOADS_FOLDER {
                continue;
            }
            let state = ctx.db.read(|r| r.job_state(&asset_id)).unwrap_or(None);
            if state.as_deref() != Some("running") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Removes upload bytes no upload wants any more (a crash between an
/// upload's end and the removal of its bytes).
fn remove_unwanted_uploads(ctx: &Context) {
    let folder = ctx.config.spool_dir.join(jobs::spool::UPLOADS_FOLDER);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !ctx.db.read(|r| r.upload_bytes_wanted(&id)).unwrap_or(true) {
            info!(upload.id = %id, "Removing the bytes of an upload that no longer needs them.");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Applies a new log filter; `Err` says why it was not applied.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the daemon re-reads its settings on SIGHUP.
pub struct Reload {
    /// Reads and validates the config again, from where it came from.
    pub config: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
    /// Applies a new log filter.
    pub log_level: SetLogLevel,
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads what can change
/// while it runs. `worker` says how to start a worker process.
pub async fn run(
    config: Config,
    reload: Option<Reload>,
    worker: crate::supervisor::Launch,
) -> Result<(), StartError> {
    info!(
        watch = %config.watch_dir.display(),
        database = %config.database_path.display(),
        "Starting reeld."
    );
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| StartError::Listen {
            address: config.api.listen,
            source,
        })?;
    let api_address = listener.local_addr().ok();
    let ctx = open_context(config, api_address).await?;
    info!(store = %ctx.store.description(), worker = %ctx.worker_id, "Database and store open.");
    recover(&ctx).await?;
    // `reeld doctor`'s checks that start-up does not make already; a
    // misconfigured store pauses the queue rather than stopping reeld, so
    // the API keeps answering.
    crate::doctor::log_problems();
    jobs::store_watch::remove_stale_probes(&ctx).await;
    jobs::store_watch::check_store(&ctx).await;
    let tokens = crate::api::tokens_for(&ctx.config)?;
    let playback = crate::api::playback_for(&ctx)?;

    // Two stages of stopping: first no new files and no new jobs; then, when
    // the grace period is over, running pipelines are stopped too.
    let stop_taking = CancellationToken::new();
    let stop_running = CancellationToken::new();
    // Each job runs in a worker process; a slot keeps one alive.
    let wakeups = crate::supervisor::Wakeups::new(ctx.config.concurrency);
    let wake_task = tokio::spawn(crate::supervisor::relay_wakeups(
        ctx.clone(),
        wakeups.clone(),
    ));
    let mut workers = Vec::new();
    for index in 0..ctx.config.concurrency {
        workers.push(tokio::spawn(crate::supervisor::run_slot(
            ctx.clone(),
            index,
            worker.clone(),
            wakeups.clone(),
            stop_taking.child_token(),
            stop_running.child_token(),
        )));
    }
    let mut watcher = tokio::spawn(crate::watch::run(ctx.clone(), stop_taking.child_token()));
    let expiry = tokio::spawn(jobs::expire::run(ctx.clone(), stop_taking.child_token()));
    let purge = tokio::spawn(jobs::purge::run(ctx.clone(), stop_taking.child_token()));
    let store_watch = tokio::spawn(jobs::store_watch::run(
        ctx.clone(),
        stop_taking.child_token(),
    ));
    // The relay stops with the API, after what is due has been sent.
    let stop_relay = CancellationToken::new();
    let relay = tokio::spawn(crate::webhooks::relay::run(
        ctx.clone(),
        ctx.webhook_signal.clone(),
        stop_relay.clone(),
    ));
    // The API stops last: it keeps answering (and serving downloads) while
    // running jobs finish.
    let stop_api = CancellationToken::new();
    let api = tokio::spawn(crate::api::serve(
        ctx.clone(),
        tokens,
        playback,
        listener,
        stop_api.clone(),
    ));
    info!(workers = ctx.config.concurrency, "reeld is running.");
    crate::systemd::notify("READY=1");
    let watchdog = crate::systemd::watchdog_interval().map(|every| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // Fed only while every worker shows life (a worker turns its loop
            // at least every 2 s, and renews a running job's lease every 5 s):
            // a stuck worker stops the pings and systemd restarts reeld.
            let window = (every * 2).max(jobs::HEARTBEAT_INTERVAL * 3);
            loop {
                tokio::time::sleep(every).await;
                let silent = ctx.silent_workers(window);
                if silent.is_empty() {
                    crate::systemd::notify("WATCHDOG=1");
                } else {
                    warn!(workers = ?silent, "Workers show no sign of life; not feeding the systemd watchdog.");
                }
            }
        })
    });

    let mut signals = Signals::install();
    let ended_early = loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break None,
                Signal::Reload => {
                    crate::systemd::notify("RELOADING=1");
                    apply_reload(&ctx, reload.as_ref());
                    crate::systemd::notify("READY=1");
                }
            },
            result = &mut watcher => break Some(result),
        }
    };
    crate::systemd::notify("STOPPING=1");
    let grace = ctx.config.shutdown_grace;
    info!(
        grace_s = grace.as_secs_f64(),
        "Shutting down: no new files or jobs are taken; running jobs may finish."
    );
    stop_taking.cancel();
    let watcher_result = match ended_early {
        Some(result) => result,
        None => watcher.await,
    };
    match watcher_result {
        Ok(Err(e)) => error!(error = %e, "The watcher stopped with an error."),
        Err(e) => error!(error = %e, "The watcher task failed."),
        Ok(Ok(())) => {}
    }
    let mut all_workers = futures::future::join_all(workers);
    tokio::select! {
        _ = &mut all_workers => {}
        _ = tokio::time::sleep(grace) => {
            info!("Grace period over: stopping running pipelines; their jobs go back to the queue.");
            stop_running.cancel();
            all_workers.await;
        }
        _ = signals.next_stop() => {
            info!("Second stop signal: stopping running pipelines now; their jobs go back to the queue.");
            stop_running.cancel();
            all_workers.await;
        }
    }
    wake_task.abort();
    let _ = expiry.await;
    let _ = purge.await;
    let _ = store_watch.await;
    crate::webhooks::relay::flush(
        &ctx,
        WEBHOOK_FLUSH.min(grace.max(std::time::Duration::from_secs(1))),
    )
    .await;
    stop_relay.cancel();
    let _ = relay.await;
    stop_api.cancel();
    let _ = api.await;
    if let Some(w) = watchdog {
        w.abort();
    }
    info!("reeld stopped.");
    Ok(())
}

/// SIGHUP: reads the config again and applies what can change at run time
/// (defaults, profiles, the log level); names what needs a restart. A config
/// that does not validate changes nothing.
fn apply_reload(ctx: &Arc<Context>, reload: Option<&Reload>) {
    let Some(reload) = reload else {
        warn!("SIGHUP: this configuration cannot be reloaded.");
        return;
    };
    let new = match (reload.config)() {
        Ok(config) => config,
        Err(e) => {
            error!(error = %e, "SIGHUP: the config does not validate; nothing was changed.");
            return;
        }
    };
    let needs_restart = ctx.config.restart_needed_for(&new);
    if !needs_restart.is_empty() {
        warn!(
            settings = %needs_restart.join(", "),
            "SIGHUP: these settings changed but only take effect after a restart."
        );
    }
    if let Err(e) = (reload.log_level)(&new.log_level) {
        warn!(error = %e, "SIGHUP: the log level was not changed.");
    }
    if new.storage != ctx.store.config() && !needs_restart.contains(&"storage") {
        match ctx.store.replace(&new.storage) {
            Ok(()) => {
                info!(store = %ctx.store.description(), "SIGHUP: the store settings were reloaded.")
            }
            Err(e) => {
                error!(error = %e.chain(), "SIGHUP: the new store settings cannot be used; the old ones stay.")
            }
        }
    }
    // Probed even with the settings unchanged: the operator may have fixed
    // the server side (created the bucket, granted the policy).
    ctx.store.health().probe_soon();
    let profiles = new.profiles.len();
    ctx.reload_settings(new);
    info!(
        profiles,
        "SIGHUP: defaults, profiles and log level reloaded."
    );
}

/// The daemon's signal handlers, installed once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler installs"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler installs"),
            hup: signal(SignalKind::hangup()).expect("SIGHUP handler installs"),
        }
    }

    /// The next signal that asks for something.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUP is ignored while stopping).
    async fn next_stop(&mut self) {
        while self.next().await != Signal::Stop {}
    }
}

/// What a signal asks of the daemon.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}
