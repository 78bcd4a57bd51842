//! The daemon's wiring. Start-up and shutdown read as ordered scripts:
//!
//! start: folders → database → store → pipeline fragments → recovery
//! (dead leases, pending source disposals, stale spool) → workers → watcher.
//!
//! stop (SIGTERM/SIGINT): stop the watcher, cancel running pipelines (their jobs
//! go back to the queue without using an attempt), wait for the workers, exit.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::Config;
use crate::db::Db;
use crate::jobs::{self, Context};
use crate::pipelines::Fragments;
use crate::store::Store;

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
}

/// Opens everything a job needs and recovers from a previous run.
pub async fn open_context(config: Config) -> Result<Arc<Context>, StartError> {
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
    let fragments = Fragments::load(&config.pipelines_dir).map_err(StartError::Fragments)?;
    let ctx = Arc::new(Context {
        worker_id: jobs::new_worker_id(),
        config,
        db,
        store,
        fragments,
        queue_signal: tokio::sync::Notify::new(),
    });
    Ok(ctx)
}

/// Crash recovery at start-up: take back leases of dead processes on this
/// host, finish source disposals a crash interrupted, and clear the spool of
/// jobs that no longer run.
pub async fn recover(ctx: &Arc<Context>) -> Result<(), StartError> {
    let db = ctx.db.clone();
    let own = ctx.worker_id.clone();
    let released = tokio::task::spawn_blocking(move || {
        db.release_dead_leases(|w| jobs::worker_is_dead(w, &own))
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
    if let Ok(entries) = std::fs::read_dir(&ctx.config.spool_dir) {
        for entry in entries.flatten() {
            let asset_id = entry.file_name().to_string_lossy().into_owned();
            let state = ctx.db.job_state(&asset_id).unwrap_or(None);
            if state.as_deref() != Some("running") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), StartError> {
    info!(
        watch = %config.watch_dir.display(),
        database = %config.database_path.display(),
        "Starting reeld."
    );
    let ctx = open_context(config).await?;
    info!(store = ctx.store.description(), worker = %ctx.worker_id, "Database and store open.");
    recover(&ctx).await?;

    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for index in 0..ctx.config.concurrency {
        workers.push(tokio::spawn(jobs::worker_loop(
            ctx.clone(),
            index,
            shutdown.child_token(),
        )));
    }
    let mut watcher = tokio::spawn(crate::watch::run(ctx.clone(), shutdown.child_token()));
    let expiry = tokio::spawn(jobs::expire::run(ctx.clone(), shutdown.child_token()));
    info!(workers = ctx.config.concurrency, "reeld is running.");
    crate::systemd::notify("READY=1");
    let watchdog = crate::systemd::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                crate::systemd::notify("WATCHDOG=1");
            }
        })
    });

    let ended_early = tokio::select! {
        _ = wait_for_signal() => {
            info!("Shutting down: no new files are taken; running jobs go back to the queue.");
            None
        }
        result = &mut watcher => Some(result),
    };
    crate::systemd::notify("STOPPING=1");
    shutdown.cancel();
    let watcher_result = match ended_early {
        Some(result) => result,
        None => watcher.await,
    };
    match watcher_result {
        Ok(Err(e)) => error!(error = %e, "The watcher stopped with an error."),
        Err(e) => error!(error = %e, "The watcher task failed."),
        Ok(Ok(())) => {}
    }
    for w in workers {
        let _ = w.await;
    }
    let _ = expiry.await;
    if let Some(w) = watchdog {
        w.abort();
    }
    info!("reeld stopped.");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
