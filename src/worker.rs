//! `reeld worker`: one job, in a process of its own, started by the
//! supervisor (`supervisor`). Whatever parses a source (the probe, the
//! measuring passes, the pipelines) runs here, so a file that crashes the
//! media engine ends this process, never the daemon.
//!
//! The order is the point. The worker limits itself (memory, niceness, no
//! new privileges, death with the supervisor), loads GStreamer and the
//! encoder fragments (neither leaves a thread behind), waits for a job on
//! its one thread, claims it, confines itself with Landlock to that job's
//! files while it still has that one thread, and only then starts the async
//! runtime, whose threads and GStreamer's streaming threads inherit the
//! confinement. It runs the job like `reeld ingest` does, and exits; the
//! supervisor starts the next.
//!
//! It talks to the supervisor through its standard streams: a byte on
//! stdin wakes it (a job was queued) and end-of-file tells it to stop
//! waiting; on stdout it says `alive`, `claimed JOB ASSET` and `finished`,
//! one per line. Its log goes to stderr, which the supervisor forwards.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use tracing::{error, info, warn};

use crate::config::{Config, StorageConfig};
use crate::db::{Db, Job, JobKind, SourceInput};
use crate::jobs::{self, HEARTBEAT_INTERVAL, IDLE_POLL, LEASE_POLICY};
use crate::sandbox::{self, Confinement, JobPaths};

/// Exit code of a worker that could not set its limits.
const EXIT_LIMITS: u8 = 3;

/// Runs `reeld worker`: waits for a job, runs it, exits.
pub fn run(config: Config, nonce: &str) -> ExitCode {
    if let Err(e) = sandbox::limit_worker(config.worker_memory_bytes, config.worker_nice) {
        error!(error = %e, "Cannot set the worker's limits; it does not start.");
        return ExitCode::from(EXIT_LIMITS);
    }
    let db = match Db::open(&config.database_path) {
        Ok(db) => db,
        Err(e) => {
            error!(error = %e, "The worker cannot open the database.");
            return ExitCode::FAILURE;
        }
    };
    // GStreamer's registry and the encoder fragments are loaded while the
    // worker waits, not after its job came. Neither leaves a thread behind,
    // which the confinement below needs (it checks).
    if let Err(e) = crate::graph::init() {
        error!(error = %e, "The worker cannot start GStreamer.");
        return ExitCode::FAILURE;
    }
    let fragments = match crate::pipelines::Fragments::load(&config.pipelines_dir) {
        Ok(f) => f,
        Err(problems) => {
            error!(
                problems = problems.len(),
                "The worker cannot load the encoder fragments."
            );
            return ExitCode::FAILURE;
        }
    };
    let worker_id = format!("{}:{}:{nonce}", jobs::hostname(), std::process::id());
    let Some(job) = wait_for_job(&db, &worker_id) else {
        return ExitCode::SUCCESS;
    };
    let claimed_at = std::time::Instant::now();
    let paths = match job_paths(&config, &db, &job) {
        Ok(paths) => paths,
        Err(e) => {
            error!(error = %e, "Cannot prepare the job's folders; it goes back to the queue.");
            give_back(&db, &job, &e);
            return ExitCode::FAILURE;
        }
    };
    let threads = sandbox::thread_count();
    let confinement = if threads == Some(1) {
        sandbox::confine(&paths)
    } else {
        // Landlock would confine this thread alone; refuse to pretend.
        Ok(Confinement::Skipped)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(run_job(config, fragments, db, job, confinement, claimed_at))
}

/// Writes one line to the supervisor.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Claims a job, waiting between tries for a wake-up on stdin; `None` when
/// the supervisor closed stdin (it is stopping) or the queue cannot be read.
fn wait_for_job(db: &Db, worker_id: &str) -> Option<Job> {
    let stdin = std::io::stdin();
    loop {
        say("alive");
        match db.write(|tx| tx.claim_job(worker_id, LEASE_POLICY, None)) {
            Ok(Some(job)) => return Some(job),
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "The worker cannot read the job queue.");
                return None;
            }
        }
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: IDLE_POLL.as_secs() as i64,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 64];
            match stdin.lock().read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// The files the job may touch, with its spool and store folders made.
fn job_paths(config: &Config, db: &Db, job: &Job) -> Result<JobPaths, String> {
    let mut paths = JobPaths::default();
    if job.kind == JobKind::Transcode
        && let Some(SourceInput::File { path, .. }) = db
            .read(|r| r.source(&job.asset_id))
            .map_err(|e| e.to_string())?
    {
        paths.read.push(path);
    }
    paths.read.push(config.pipelines_dir.clone());
    let data = crate::daemon::data_dir(config);
    paths.read.push(data.join("url-signing.key"));
    let spool = config.spool_dir.join(&job.asset_id);
    std::fs::create_dir_all(&spool).map_err(|e| format!("{}: {e}", spool.display()))?;
    paths.write.push(spool);
    if let StorageConfig::Local { root } = &config.storage {
        // Made (and its entry synced) now: once confined, the worker may
        // not open the folders above it.
        let folder = root.join("assets").join(&job.asset_id);
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for dir in [root.join("assets"), root.clone()] {
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        paths.write.push(folder);
    }
    let db_file = config.database_path.clone();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db_file.clone().into_os_string();
        name.push(suffix);
        paths.write.push(PathBuf::from(name));
    }
    Ok(paths)
}

/// Puts a claimed job back without using an attempt.
fn give_back(db: &Db, job: &Job, why: &str) {
    let note = format!("the worker could not start the job: {why}");
    if let Err(e) = db.write(|tx| tx.requeue_job(&job.lease, Some(&note), 0, true)) {
        warn!(error = %e, "Cannot give the job back; its lease will expire.");
    }
}

async fn run_job(
    config: Config,
    fragments: crate::pipelines::Fragments,
    db: Db,
    job: Job,
    confinement: Result<Confinement, landlock::RulesetError>,
    claimed_at: std::time::Instant,
) -> ExitCode {
    match confinement {
        Ok(Confinement::Full) => info!("The worker is confined to its job's files (Landlock)."),
        Ok(Confinement::Partial) => {
            info!(
                "The worker is confined to its job's files (Landlock, an older version: renames and truncation are not restricted)."
            )
        }
        Ok(Confinement::Skipped) => {
            warn!(
                "The worker had more than one thread before its job; it runs with its memory and privilege limits only."
            )
        }
        Ok(Confinement::None) => {
            warn!(
                "This kernel has no Landlock: the worker runs with its memory and privilege limits only."
            )
        }
        Err(e) => {
            warn!(error = %e, "Landlock could not be set up: the worker runs with its memory and privilege limits only.")
        }
    }
    let ctx = match crate::daemon::open_worker_context(config, fragments).await {
        Ok(ctx) => ctx,
        Err(e) => {
            error!(error = %e, "The worker cannot open what the job needs; it goes back to the queue.");
            give_back(&db, &job, &e.to_string());
            return ExitCode::FAILURE;
        }
    };
    say(&format!("claimed {} {}", job.id, job.asset_id));
    // What a job pays for its own process: the worker was started and
    // waiting before the job came; this is the rest (confinement, runtime,
    // database, store, fragments).
    info!(
        ms = claimed_at.elapsed().as_secs_f64() * 1000.0,
        "The worker is ready for its job."
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    // SIGTERM or SIGINT from the supervisor, after its grace period: stop
    // the pipeline; the job goes back to the queue without using an attempt.
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            cancel.cancel();
        });
    }
    let alive = tokio::spawn(async {
        loop {
            say("alive");
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
        }
    });
    let lease = job.lease.clone();
    let run = {
        let ctx = ctx.clone();
        async move { jobs::run_claimed(&ctx, job, cancel, None).await }
    };
    jobs::run_guarded(&ctx.db, &lease, run).await;
    alive.abort();
    say("finished");
    ExitCode::SUCCESS
}
