//! The supervisor's side of the worker processes: `transcode.concurrency`
//! slots, each keeping one `reeld worker` alive (see `worker`), so that the
//! media engine never runs in the daemon.
//!
//! A worker's death is seen at once, through `wait`, not when its lease
//! goes stale: the supervisor gives the job back with the crash counted
//! (after `MAX_CRASHES` the job errors, and its source goes to the failed
//! folder), or, when the worker died for lack of memory, gives up on it
//! with that reason. A slot whose workers keep dying waits longer before
//! the next (1 s, doubling to 30 s). A worker that finished a job exits
//! cleanly and the slot starts the next one straight away: every job gets
//! a fresh process, so nothing a media library leaks outlives one job.
//!
//! Shutdown has the daemon's two stages: first the idle workers are told
//! to stop waiting (their stdin closes), then, after the grace period, the
//! busy ones get SIGTERM and put their jobs back.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::jobs::{self, Context};

/// The first wait after a worker died, doubled per death in a row.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between worker starts.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Lines of a worker's stderr kept to tell why it died.
const STDERR_TAIL: usize = 40;

/// How to start a worker: this binary, with the daemon's own `--config`.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The program (this executable).
    pub program: std::path::PathBuf,
    /// Arguments before the `worker` subcommand (`--config PATH`).
    pub global_args: Vec<OsString>,
}

impl Launch {
    /// This executable, with `config` passed on when one was given.
    pub fn this_program(config: Option<&std::path::Path>) -> Launch {
        let mut global_args = Vec::new();
        if let Some(path) = config {
            global_args.push("--config".into());
            global_args.push(path.as_os_str().to_owned());
        }
        Launch {
            program: std::env::current_exe().unwrap_or_else(|_| "reeld".into()),
            global_args,
        }
    }
}

/// The stdin of each slot's idle worker, where a byte wakes it.
#[derive(Clone)]
pub struct Wakeups(Arc<Vec<tokio::sync::Mutex<Option<ChildStdin>>>>);

impl Wakeups {
    /// No worker yet in any of `slots`.
    pub fn new(slots: usize) -> Wakeups {
        Wakeups(Arc::new(
            (0..slots).map(|_| tokio::sync::Mutex::new(None)).collect(),
        ))
    }

    /// Sets (or, with `None`, closes) the pipe to `slot`'s worker.
    async fn set(&self, slot: usize, stdin: Option<ChildStdin>) {
        *self.0[slot].lock().await = stdin;
    }

    /// Wakes every idle worker (a worker with a job no longer reads).
    async fn wake_all(&self) {
        for pipe in self.0.iter() {
            if let Some(stdin) = pipe.lock().await.as_mut() {
                let _ = stdin.write_all(b"w").await;
            }
        }
    }
}

/// Passes the queue's wake-ups (a job was queued) on to the idle workers.
pub async fn relay_wakeups(ctx: Arc<Context>, wakeups: Wakeups) {
    loop {
        ctx.queue_signal.notified().await;
        wakeups.wake_all().await;
    }
}

/// Keeps slot `slot`'s worker alive until `stop_taking`; returns once its
/// last worker has exited.
pub async fn run_slot(
    ctx: Arc<Context>,
    slot: usize,
    launch: Launch,
    wakeups: Wakeups,
    stop_taking: CancellationToken,
    stop_running: CancellationToken,
) {
    let mut deaths_in_a_row = 0u32;
    while !stop_taking.is_cancelled() {
        ctx.worker_alive(slot);
        if ctx.store.health().paused().is_some() {
            // A misconfigured store: jobs stay queued, using no attempt,
            // until `store_watch` sees it answer again.
            tokio::select! {
                _ = stop_taking.cancelled() => break,
                _ = ctx.store.health().changed() => {}
                _ = tokio::time::sleep(jobs::IDLE_POLL) => {}
            }
            continue;
        }
        let nonce = crate::asset::new_asset_id()[..8].to_owned();
        let mut child = match spawn(&launch, &nonce) {
            Ok(child) => child,
            Err(e) => {
                error!(worker = slot, error = %e, "Cannot start a worker process; trying again.");
                deaths_in_a_row += 1;
                backoff(deaths_in_a_row, &stop_taking).await;
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        let worker_id = format!("{}:{pid}:{nonce}", jobs::hostname());
        wakeups.set(slot, child.stdin.take()).await;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let busy = Arc::new(Mutex::new(None::<String>));
        let stdout = child
            .stdout
            .take()
            .map(|out| tokio::spawn(read_reports(ctx.clone(), slot, out, busy.clone())));
        let stderr = child
            .stderr
            .take()
            .map(|err| tokio::spawn(forward_stderr(err, tail.clone())));

        let mut stopped_by_us = false;
        let status = tokio::select! {
            status = child.wait() => status,
            _ = stop_taking.cancelled() => {
                // Stage one: an idle worker stops waiting; a busy one goes on.
                wakeups.set(slot, None).await;
                tokio::select! {
                    status = child.wait() => status,
                    _ = stop_running.cancelled() => {
                        stopped_by_us = true;
                        terminate(pid);
                        child.wait().await
                    }
                }
            }
        };
        wakeups.set(slot, None).await;
        if let Some(task) = stdout {
            let _ = task.await;
        }
        if let Some(task) = stderr {
            let _ = task.await;
        }
        let asset = busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                error!(worker = slot, error = %e, "Cannot wait for a worker process.");
                continue;
            }
        };
        if status.success() {
            deaths_in_a_row = 0;
            continue;
        }
        let how = describe(&status);
        let out_of_memory = ran_out_of_memory(&tail.lock().unwrap_or_else(|e| e.into_inner()));
        let crashed = !stopped_by_us;
        let note = out_of_memory.then(|| crate::jobs::outcome::out_of_memory_reason(&ctx.config));
        let released = release(&ctx, &worker_id, crashed, note).await;
        match (&asset, released) {
            (Some(asset), true) if crashed => error!(
                worker = slot, asset.id = %asset, how = %how, out_of_memory,
                "A worker died while processing a file; its job goes back to the queue with the crash counted."
            ),
            (_, _) if crashed => error!(worker = slot, how = %how, "A worker died."),
            _ => info!(worker = slot, how = %how, "A worker stopped its job for the shutdown."),
        }
        if crashed {
            deaths_in_a_row += 1;
            ctx.queue_signal.notify_one();
            backoff(deaths_in_a_row, &stop_taking).await;
        }
    }
}

fn spawn(launch: &Launch, nonce: &str) -> std::io::Result<Child> {
    Command::new(&launch.program)
        .args(&launch.global_args)
        .arg("worker")
        .arg("--nonce")
        .arg(nonce)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches the
        // supervisor only, which stops its workers in its own order.
        .process_group(0)
        .spawn()
}

/// Sends SIGTERM to a worker (it stops its pipeline and gives its job back).
fn terminate(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// Waits out the backoff after `deaths` deaths in a row (or the stop).
async fn backoff(deaths: u32, stop: &CancellationToken) {
    let wait = RESTART_BACKOFF
        .saturating_mul(2u32.saturating_pow(deaths.saturating_sub(1)))
        .min(RESTART_BACKOFF_MAX);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(wait) => {}
    }
}

/// Reads a worker's reports: signs of life, the job it claimed, its end.
async fn read_reports(
    ctx: Arc<Context>,
    slot: usize,
    out: tokio::process::ChildStdout,
    busy: Arc<Mutex<Option<String>>>,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.worker_alive(slot);
        let mut words = line.split_whitespace();
        match words.next() {
            Some("claimed") => {
                *busy.lock().unwrap_or_else(|e| e.into_inner()) = words.nth(1).map(str::to_owned);
            }
            Some("finished") => {
                // What the worker may not do itself: remove the asset's
                // spool folder (it may write only inside it; only an empty
                // one goes), move or delete the source, send the webhooks
                // it committed, purge files.
                let asset = busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(asset) = asset {
                    let _ = std::fs::remove_dir(ctx.config.spool_dir.join(asset));
                }
                crate::jobs::dispose::dispose_pending(&ctx).await;
                ctx.webhook_signal.notify_one();
                ctx.purge_signal.notify_one();
            }
            _ => {}
        }
    }
}

/// Copies a worker's log to the daemon's stderr, keeping its last lines.
async fn forward_stderr(err: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        {
            use std::io::Write as _;
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{line}");
        }
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Whether a dead worker's last words say an allocation failed: Rust's
/// allocator and GLib's abort with these.
fn ran_out_of_memory(tail: &VecDeque<String>) -> bool {
    tail.iter().any(|line| {
        let line = line.to_ascii_lowercase();
        line.contains("memory allocation of")
            || line.contains("failed to allocate")
            || line.contains("out of memory")
            || line.contains("cannot allocate memory")
    })
}

/// How a worker ended, in words: `signal 11 (SIGSEGV)` or `exit code 3`.
fn describe(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(signal), _) => {
            let name = match signal {
                4 => " (SIGILL)",
                5 => " (SIGTRAP)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("signal {signal}{name}")
        }
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "an unknown end".to_owned(),
    }
}

/// Gives back the job a dead worker held; `crashed` counts the death,
/// `note` (lack of memory) gives up on the job with that reason. Returns
/// whether it held one.
async fn release(ctx: &Arc<Context>, worker_id: &str, crashed: bool, note: Option<String>) -> bool {
    let db = ctx.db.clone();
    let worker_id = worker_id.to_owned();
    let released = tokio::task::spawn_blocking(move || {
        db.write(|tx| tx.release_worker(&worker_id, crashed, note.as_deref()))
    })
    .await
    .expect("db task does not panic");
    match released {
        Ok(n) => n > 0,
        Err(e) => {
            warn!(error = %e, "Cannot give back a dead worker's job; its lease will expire.");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_are_recognised() {
        let tail: VecDeque<String> = [
            "INFO job: Source probed.",
            "memory allocation of 26542080 bytes failed",
        ]
        .map(String::from)
        .into();
        assert!(ran_out_of_memory(&tail));
        let tail: VecDeque<String> = ["(reeld:1): GLib-ERROR **: failed to allocate 8294400 bytes"]
            .map(String::from)
            .into();
        assert!(ran_out_of_memory(&tail));
        let tail: VecDeque<String> = ["Segmentation fault"].map(String::from).into();
        assert!(!ran_out_of_memory(&tail));
    }
}
