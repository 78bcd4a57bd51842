//! Settle detection: a pure state machine that decides when a file in the
//! watch folder is complete, plus the name rules for files that are never
//! taken (partial downloads, dot-files, sidecars).
//!
//! Two signals decide. A file that a close-after-write event says is still
//! open for writing (a write was seen and no close since) is never settled,
//! however long its writer pauses. Every file must also show the same size
//! and mtime for the settle time: that is all there is for files with no
//! events (network mounts, files present at start-up).
//!
//! It sees only observations (size and mtime), events and the current time,
//! never the file system, so every rule is tested with made-up clocks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one `stat` of a file showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Bytes.
    pub size: u64,
    /// Modification time in ns since the epoch.
    pub mtime_ns: i64,
}

#[derive(Debug)]
struct Entry {
    last: Observation,
    unchanged_since: Instant,
}

/// Tracks candidate files until each has been unchanged for the settle time.
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    entries: HashMap<PathBuf, Entry>,
    /// Files written to (an `IN_MODIFY`) with no `IN_CLOSE_WRITE` since.
    open_writes: HashSet<PathBuf>,
}

impl Settler {
    /// A settler that wants `settle` of no change.
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            entries: HashMap::new(),
            open_writes: HashSet::new(),
        }
    }

    /// An event said `path` was written to: it is not complete until a
    /// close-after-write event for it arrives.
    pub fn written(&mut self, path: &Path) {
        if !self.open_writes.contains(path) {
            self.open_writes.insert(path.to_owned());
        }
    }

    /// An event said the writer of `path` closed it; the settle time still
    /// applies from its last change.
    pub fn closed(&mut self, path: &Path) {
        self.open_writes.remove(path);
    }

    /// Events were dropped (the kernel's queue overflowed): which writers are
    /// still open is unknown, so settling falls back to size and mtime alone.
    pub fn events_lost(&mut self) {
        self.open_writes.clear();
    }

    /// Whether `path` has been unchanged for the settle time at `now`, and
    /// no event says it is still open for writing.
    pub fn is_settled(&self, path: &Path, now: Instant) -> bool {
        self.entries
            .get(path)
            .is_some_and(|e| self.entry_settled(path, e, now))
    }

    fn entry_settled(&self, path: &Path, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.unchanged_since) >= self.settle
            && !self.open_writes.contains(path)
    }

    /// Records what a `stat` showed at `now`; `None` means the file is gone.
    pub fn observe(&mut self, path: &Path, observation: Option<Observation>, now: Instant) {
        match observation {
            None => {
                self.entries.remove(path);
                self.open_writes.remove(path);
            }
            Some(obs) => match self.entries.get_mut(path) {
                Some(entry) if entry.last == obs => {}
                Some(entry) => {
                    entry.last = obs;
                    entry.unchanged_since = now;
                }
                None => {
                    self.entries.insert(
                        path.to_owned(),
                        Entry {
                            last: obs,
                            unchanged_since: now,
                        },
                    );
                }
            },
        }
    }

    /// Files unchanged for at least the settle time at `now`, with what they showed.
    pub fn settled(&self, now: Instant) -> Vec<(PathBuf, Observation)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|(p, e)| self.entry_settled(p, e, now))
            .map(|(p, e)| (p.clone(), e.last))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restarts the wait for `path` (e.g. a writer still holds it open).
    pub fn restart(&mut self, path: &Path, now: Instant) {
        if let Some(e) = self.entries.get_mut(path) {
            e.unchanged_since = now;
        }
    }

    /// Stops tracking `path` (it was taken, or is known already).
    pub fn forget(&mut self, path: &Path) {
        self.entries.remove(path);
    }

    /// Paths being tracked.
    pub fn tracked(&self) -> impl Iterator<Item = &PathBuf> {
        self.entries.keys()
    }
}

/// Suffixes that copy tools, browsers and editors use for files still being
/// written; such files are never taken (the final name is, after a rename).
const PARTIAL_SUFFIXES: &[&str] = &[
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    ".filepart",
    ".swp",
    ".reeld-partial",
];

/// Whether a file name may be taken as media: not a dot-file, not a partial
/// download, not a JSON sidecar or error report.
pub fn is_candidate_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(name.starts_with('.')
        || name.ends_with('~')
        || lower.ends_with(".json")
        || PARTIAL_SUFFIXES.iter().any(|s| lower.ends_with(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(3);

    fn obs(size: u64, mtime_ns: i64) -> Option<Observation> {
        Some(Observation { size, mtime_ns })
    }

    #[test]
    fn a_file_settles_after_no_change_for_the_settle_time() {
        let t0 = Instant::now();
        let p = Path::new("/w/a.mp4");
        let mut s = Settler::new(SETTLE);
        s.observe(p, obs(10, 1), t0);
        assert!(s.settled(t0 + Duration::from_secs(2)).is_empty());
        s.observe(p, obs(10, 1), t0 + Duration::from_secs(2));
        assert_eq!(s.settled(t0 + SETTLE).len(), 1);
    }

    #[test]
    fn growth_or_touch_restarts_the_wait() {
        let t0 = Instant::now();
        let p = Path::new("/w/a.mp4");
        let mut s = Settler::new(SETTLE);
        s.observe(p, obs(10, 1), t0);
        s.observe(p, obs(20, 2), t0 + Duration::from_secs(2));
        assert!(s.settled(t0 + Duration::from_secs(4)).is_empty());
        // Same size, new mtime (rewritten in place) also counts as a change.
        s.observe(p, obs(20, 3), t0 + Duration::from_secs(4));
        assert!(s.settled(t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(s.settled(t0 + Duration::from_secs(7)).len(), 1);
    }

    #[test]
    fn vanished_files_are_dropped_and_restart_works() {
        let t0 = Instant::now();
        let p = Path::new("/w/a.mp4");
        let mut s = Settler::new(SETTLE);
        s.observe(p, obs(10, 1), t0);
        s.restart(p, t0 + Duration::from_secs(3));
        assert!(s.settled(t0 + Duration::from_secs(4)).is_empty());
        s.observe(p, None, t0 + Duration::from_secs(5));
        assert!(s.settled(t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(s.tracked().count(), 0);
    }

    #[test]
    fn a_file_open_for_writing_waits_for_its_close_however_long_the_pause() {
        let t0 = Instant::now();
        let p = Path::new("/w/a.mp4");
        let mut s = Settler::new(SETTLE);
        s.observe(p, obs(10, 1), t0);
        s.written(p);
        // The writer pauses for ten settle times: still not taken.
        assert!(s.settled(t0 + 10 * SETTLE).is_empty());
        assert!(!s.is_settled(p, t0 + 10 * SETTLE));
        s.observe(p, obs(20, 2), t0 + 10 * SETTLE);
        s.closed(p);
        // Closed: the settle time runs from the last change.
        assert!(
            s.settled(t0 + 10 * SETTLE + Duration::from_secs(1))
                .is_empty()
        );
        assert!(s.is_settled(p, t0 + 11 * SETTLE));
        // Lost events fall back to size and mtime.
        s.written(p);
        assert!(!s.is_settled(p, t0 + 20 * SETTLE));
        s.events_lost();
        assert!(s.is_settled(p, t0 + 20 * SETTLE));
    }

    #[test]
    fn zero_settle_takes_at_first_sight() {
        let t0 = Instant::now();
        let mut s = Settler::new(Duration::ZERO);
        s.observe(Path::new("/w/a.mp4"), obs(1, 1), t0);
        assert_eq!(s.settled(t0).len(), 1);
    }

    #[test]
    fn names_that_are_never_taken() {
        for name in [
            ".hidden.mp4",
            "a.mp4.part",
            "a.MP4.PART",
            "a.tmp",
            "a.mp4.crdownload",
            "a.mp4.partial",
            "a.mp4.filepart",
            "a.mp4~",
            "a.mp4.json",
            "a.mp4.error.json",
        ] {
            assert!(!is_candidate_name(name), "{name}");
        }
        for name in ["a.mp4", "clip.MOV", "song.m4a", "no-extension", "part.mp4"] {
            assert!(is_candidate_name(name), "{name}");
        }
    }
}
