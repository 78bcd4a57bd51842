//! The watch folder: file-system events and periodic scans in, settled files
//! out as new assets (each with its job, in one transaction).
//!
//! inotify names what changed, so an idle folder costs nothing however many
//! kept sources it holds. The whole tree is walked (every file `stat`ed) at
//! start-up, after the kernel drops events, and every `rescan_seconds` as a
//! safety net for writes no event reports (network mounts).
//!
//! A file is taken once its name is not a partial-download name, no
//! close-after-write event is outstanding for it (see `settle`), it has not
//! changed for `settle_seconds`, and no process reeld can see holds it open
//! for writing. Its sidecar (`NAME.json`) must be complete by the same rules.
//! Its
//! identity (device, inode, size, mtime) is recorded with the asset, so the
//! same file seen again (by a rescan, an event, or after a restart with
//! `on_success = keep`) never makes a second asset, while a file dropped again
//! (new inode or mtime) does.

pub mod settle;
mod writers;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::Watcher as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::asset::IngestType;
use crate::db::{NewAsset, NewSource, SourceIdentity, SourceOrigin};
use crate::jobs::{Context, now_ms};
use settle::{Observation, Settler, is_candidate_name};
use writers::say_what_writers_are_visible;
pub use writers::{open_for_writing, other_users_fds_visible};

/// How often candidates are re-examined.
const TICK: Duration = Duration::from_millis(500);
/// How often errored sources that wait in the folder are offered to
/// `dispose_pending` again (one indexed query when there are none).
const DISPOSAL_RETRY: Duration = Duration::from_secs(5);

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The folder could not be created or resolved.
    #[error("cannot use watch folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// inotify refused.
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: notify::Error,
    },
}

/// Runs the watcher until `shutdown`; returns once it has stopped taking files.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), WatchError> {
    let root = ctx.config.watch_dir.clone();
    std::fs::create_dir_all(&root).map_err(|source| WatchError::Folder {
        path: root.clone(),
        source,
    })?;
    let root = root.canonicalize().map_err(|source| WatchError::Folder {
        path: root.clone(),
        source,
    })?;
    // Output folders that users nest inside the watch folder are never scanned.
    let excluded: Vec<PathBuf> = [
        Some(ctx.config.failed_dir.clone()),
        ctx.config.done_dir.clone(),
        Some(ctx.config.spool_dir.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|p| p.canonicalize().unwrap_or(p))
    .collect();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(PathBuf, Signal)>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        if event.need_rescan() {
            let _ = tx.send((PathBuf::new(), Signal::EventsLost));
        }
        let signal = Signal::of(&event.kind);
        for path in event.paths {
            let _ = tx.send((path, signal));
        }
    })
    .map_err(|source| WatchError::Notify {
        path: root.clone(),
        source,
    })?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .map_err(|source| WatchError::Notify {
            path: root.clone(),
            source,
        })?;
    say_what_writers_are_visible();
    info!(
        folder = %root.display(),
        settle_s = ctx.config.settle.as_secs_f64(),
        rescan_s = ctx.config.rescan_interval.as_secs_f64(),
        "Watching for new files."
    );

    let mut state = WatchState {
        settler: Settler::new(ctx.config.settle),
        sidecars: Settler::new(ctx.config.settle),
        known: known_sources(&ctx),
        root,
        excluded,
        pending_disposal: false,
        queue_full: false,
    };
    // inotify does the work: between full rescans, only the paths events
    // name are looked at. The rescan (at start, after lost events, and every
    // `rescan_seconds`) is the safety net for what events cannot show.
    let mut last_scan: Option<Instant> = None;
    let mut last_disposal = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let mut dirty: HashSet<PathBuf> = HashSet::new();
        let mut new_folders: Vec<PathBuf> = Vec::new();
        let mut events_lost = false;
        while let Ok((path, signal)) = rx.try_recv() {
            if signal == Signal::Read {
                continue;
            }
            events_lost |= signal == Signal::EventsLost;
            // A folder created or moved in may already hold files, which
            // send no events of their own.
            if signal == Signal::Changed && !state.is_excluded(&path) && path.is_dir() {
                new_folders.push(path.clone());
            }
            state.apply(&path, signal);
            dirty.insert(path);
        }
        let rescan =
            events_lost || last_scan.is_none_or(|t| t.elapsed() >= ctx.config.rescan_interval);
        let first_scan = last_scan.is_none();
        if rescan {
            last_scan = Some(Instant::now());
        }
        let ctx2 = ctx.clone();
        state = tokio::task::spawn_blocking(move || {
            if rescan {
                let started = Instant::now();
                // Kept files that have not changed are passed over as they
                // are met, so a rescan holds only what is new or changed.
                let known = &state.known;
                let unchanged = |path: &Path| {
                    known
                        .get(&path_key(path))
                        .is_some_and(|id| SourceIdentity::of(path).is_ok_and(|now| now == *id))
                };
                let mut files = 0;
                let found = scan(&state.root, &state.excluded, &unchanged, &mut files);
                let ms = started.elapsed().as_millis();
                if first_scan {
                    info!(files, ms, "Rescanned the watch folder.");
                } else {
                    debug!(files, ms, "Rescanned the watch folder.");
                }
                dirty.extend(found);
            }
            for folder in new_folders {
                dirty.extend(scan(&folder, &state.excluded, &|_| false, &mut 0));
            }
            state.tick(&ctx2, dirty);
            state
        })
        .await
        .expect("watch tick does not panic");
        // Errored sources wait in the folder while they may still grow (see
        // `jobs::dispose`), so disposal is retried on its own timer too.
        if std::mem::take(&mut state.pending_disposal) || last_disposal.elapsed() >= DISPOSAL_RETRY
        {
            last_disposal = Instant::now();
            crate::jobs::dispose::dispose_pending(&ctx).await;
        }
    }
    drop(watcher);
    info!("Stopped watching.");
    Ok(())
}

/// What a file-system event says about the files it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Data was written (`IN_MODIFY`): a writer has it open.
    Written,
    /// A writer closed it (`IN_CLOSE_WRITE`).
    Closed,
    /// Something else changed (created, renamed, removed, attributes).
    Changed,
    /// Only read (opened, listed, closed without writing): reeld's own
    /// scans cause these on folders, so they must not start another.
    Read,
    /// The kernel dropped events.
    EventsLost,
}

impl Signal {
    fn of(kind: &notify::EventKind) -> Signal {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
        match kind {
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Signal::Written,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Signal::Closed,
            EventKind::Access(_) => Signal::Read,
            _ => Signal::Changed,
        }
    }
}

struct WatchState {
    settler: Settler,
    /// Sidecars seen, settled by the same rules as media.
    sidecars: Settler,
    /// Identities already made into assets (or found in the database), by a
    /// 64-bit digest of the path, so that a kept file costs one `stat` per
    /// rescan, not a query, and about 60 bytes of memory, not its path's
    /// length. Two paths with one digest only cost a database look-up: a
    /// match also needs the same device, inode, size and mtime.
    known: HashMap<u64, SourceIdentity>,
    root: PathBuf,
    excluded: Vec<PathBuf>,
    /// Set when a file was recorded as errored at once (unusable settings):
    /// its source must go to the failed folder.
    pending_disposal: bool,
    /// Whether the queue was full at the last look (the warning is logged once).
    queue_full: bool,
}

impl WatchState {
    /// Feeds one event to the settler of media or of sidecars.
    fn apply(&mut self, path: &Path, signal: Signal) {
        if signal == Signal::EventsLost {
            warn!(
                "File events were lost; files are settled by size and mtime until the next close."
            );
            self.settler.events_lost();
            self.sidecars.events_lost();
            return;
        }
        let settler = if self.is_candidate(path) {
            &mut self.settler
        } else if self.is_sidecar(path) {
            &mut self.sidecars
        } else {
            return;
        };
        match signal {
            Signal::Written => settler.written(path),
            Signal::Closed => settler.closed(path),
            Signal::Changed | Signal::Read | Signal::EventsLost => {}
        }
    }

    /// Whether `path` lies in one of the output folders nested in the tree.
    fn is_excluded(&self, path: &Path) -> bool {
        self.excluded.iter().any(|e| path.starts_with(e))
    }

    /// Whether `path` is named like a sidecar in the watched part of the tree.
    fn is_sidecar(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            return false;
        };
        let lower = name.to_ascii_lowercase();
        lower.ends_with(".json")
            && !lower.ends_with(".error.json")
            && !name.starts_with('.')
            && path.starts_with(&self.root)
            && !self.is_excluded(path)
    }

    /// Whether the sidecar of `media`, if it has one, is complete: settled by
    /// the same rules as media, and not open for writing.
    fn sidecar_ready(&mut self, media: &Path, now: Instant) -> bool {
        let Some(sidecar) = crate::settings::sidecar_of(media) else {
            return true;
        };
        let seen = SourceIdentity::of(&sidecar).ok().map(|id| Observation {
            size: id.size,
            mtime_ns: id.mtime_ns,
        });
        self.sidecars.observe(&sidecar, seen, now);
        if seen.is_none() {
            // Gone since `sidecar_of` looked: the media is taken without it.
            return true;
        }
        let ready = self.sidecars.is_settled(&sidecar, now)
            && open_for_writing(std::slice::from_ref(&sidecar)).is_empty();
        if !ready {
            debug!(sidecar = %sidecar.display(), "Waiting for the sidecar to be complete.");
        }
        ready
    }

    fn tick(&mut self, ctx: &Context, dirty: HashSet<PathBuf>) {
        let now = Instant::now();
        let mut sidecars: HashSet<PathBuf> = self.sidecars.tracked().cloned().collect();
        sidecars.extend(dirty.iter().filter(|p| self.is_sidecar(p)).cloned());
        for path in sidecars {
            let seen = SourceIdentity::of(&path).ok().map(|id| Observation {
                size: id.size,
                mtime_ns: id.mtime_ns,
            });
            self.sidecars.observe(&path, seen, now);
        }
        let mut to_check: HashSet<PathBuf> = self.settler.tracked().cloned().collect();
        to_check.extend(dirty.into_iter().filter(|p| self.is_candidate(p)));
        for path in to_check {
            match SourceIdentity::of(&path) {
                Ok(id) => {
                    if self.known.get(&path_key(&path)) == Some(&id) {
                        self.settler.forget(&path);
                        continue;
                    }
                    self.settler.observe(
                        &path,
                        Some(Observation {
                            size: id.size,
                            mtime_ns: id.mtime_ns,
                        }),
                        now,
                    );
                }
                _ => {
                    self.settler.observe(&path, None, now);
                    self.known.remove(&path_key(&path));
                }
            }
        }

        let settled = self.settler.settled(now);
        if settled.is_empty() {
            return;
        }
        let paths: Vec<PathBuf> = settled.iter().map(|(p, _)| p.clone()).collect();
        let busy = open_for_writing(&paths);
        let limit = ctx.config.max_queued_files;
        let mut room = match ctx.db.read(|r| r.unfinished_transcodes()) {
            Ok(queued) => limit.saturating_sub(queued),
            Err(e) => {
                warn!(error = %e, "Cannot count the queued files; will retry.");
                0
            }
        };
        if room > 0 && std::mem::take(&mut self.queue_full) {
            info!("The queue has room again; taking new files.");
        }
        for (path, seen) in settled {
            if room == 0 {
                if !std::mem::replace(&mut self.queue_full, true) {
                    warn!(
                        limit,
                        "The queue is full (ingest.max_queued_files); new files wait in the watch folder until it drains."
                    );
                }
                self.settler.restart(&path, now);
                continue;
            }
            if busy.contains(&path) {
                debug!(path = %path.display(), "Still open for writing; waiting.");
                self.settler.restart(&path, now);
                continue;
            }
            if !self.sidecar_ready(&path, now) {
                continue;
            }
            let Ok(identity) = SourceIdentity::of(&path) else {
                self.settler.forget(&path);
                continue;
            };
            if identity.size != seen.size || identity.mtime_ns != seen.mtime_ns {
                self.settler.observe(
                    &path,
                    Some(Observation {
                        size: identity.size,
                        mtime_ns: identity.mtime_ns,
                    }),
                    now,
                );
                continue;
            }
            match self.take(ctx, &path, identity) {
                Ok(taken) => {
                    room -= usize::from(taken);
                    self.settler.forget(&path);
                    if let Some(sidecar) = crate::settings::sidecar_of(&path) {
                        self.sidecars.forget(&sidecar);
                    }
                    self.known.insert(path_key(&path), identity);
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "Cannot record the new file; will retry.")
                }
            }
        }
    }

    fn is_candidate(&self, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return false;
        };
        if self.is_excluded(path) {
            return false;
        }
        relative
            .components()
            .all(|c| is_candidate_name(&c.as_os_str().to_string_lossy()))
    }

    /// Records a settled file as a new asset, unless its identity is known.
    /// Returns whether it made a new asset.
    fn take(
        &mut self,
        ctx: &Context,
        path: &Path,
        identity: SourceIdentity,
    ) -> Result<bool, crate::db::DbError> {
        let known = |ctx: &Context| ctx.db.read(|r| r.watch_source_known(&identity));
        if known(ctx)? {
            debug!(path = %path.display(), "Already made into an asset; not taken again.");
            return Ok(false);
        }
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        let (settings, sidecar, problem) =
            crate::settings::with_sidecar(ctx.settings_for(relative), path);
        let initial_error = problem.map(|p| p.asset_errors());
        let asset = NewAsset::now(settings, IngestType::OnDemandDirectUpload);
        let source = NewSource {
            path: path.to_owned(),
            origin: SourceOrigin::Watch,
            identity,
            sidecar,
        };
        // The identity check and the insert are one transaction, so two
        // scans of the same file can never make two assets.
        let taken = ctx.db.write(|tx| {
            if tx.read().watch_source_known(&identity)? {
                return Ok(false);
            }
            tx.create_asset(
                &asset,
                Some(&source),
                ctx.config.max_attempts,
                now_ms(),
                None,
                initial_error.as_ref(),
            )?;
            Ok(true)
        })?;
        if !taken {
            debug!(path = %path.display(), "Already made into an asset; not taken again.");
            return Ok(false);
        }
        info!(asset.id = %asset.id, path = %path.display(), bytes = identity.size, "New file taken.");
        if let Some(errors) = initial_error {
            warn!(asset.id = %asset.id, error = %errors.messages.join(" "), "Unusable settings; asset errored.");
            self.pending_disposal = true;
        }
        ctx.queue_signal.notify_one();
        Ok(true)
    }
}

/// Every regular file below `root` (recursively), except in `excluded` folders.
/// The key of `path` in `WatchState::known`.
fn path_key(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

/// The sources already taken that are still in the folder, read once at
/// start: the first rescan then passes over them with a `stat` each,
/// instead of settling every one and asking the database about it.
fn known_sources(ctx: &Context) -> HashMap<u64, SourceIdentity> {
    let mut known = HashMap::new();
    if let Err(e) = ctx.db.read(|r| {
        r.watch_sources_in_place(|path, identity| {
            known.insert(path_key(path), identity);
        })
    }) {
        warn!(error = %e, "Cannot read the sources already taken; the first rescan asks about each.");
    }
    known.shrink_to_fit();
    known
}

/// The files below `root` (not below `excluded`) that `skip` does not pass
/// over; `files` counts them all.
fn scan(
    root: &Path,
    excluded: &[PathBuf],
    skip: &dyn Fn(&Path) -> bool,
    files: &mut usize,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && !excluded.iter().any(|e| path.starts_with(e)) => {
                    stack.push(path);
                }
                Ok(t) if t.is_file() => {
                    *files += 1;
                    if !skip(&path) {
                        out.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
