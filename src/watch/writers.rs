//! Who holds a file open for writing, read from `/proc`: the watch folder's
//! last check before it takes a settled file, and the start-up note on
//! whether other users' processes can be seen at all.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

/// Says at start-up whether other users' open files can be seen in `/proc`,
/// and what reeld relies on when they cannot.
pub(super) fn say_what_writers_are_visible() {
    match other_users_fds_visible() {
        Some(false) => warn!(
            "Files other users' processes hold open cannot be seen (/proc/PID/fd is not readable \
             without root or CAP_SYS_PTRACE). On local disks reeld relies on close-after-write \
             events; on network mounts (NFS, SMB) and for files present at start-up, on \
             settle_seconds of no change in size and mtime."
        ),
        Some(true) => debug!("Other processes' open files are visible in /proc."),
        None => debug!("No other user's process is running; /proc visibility not checked."),
    }
}

/// Whether this process can list the open files of a process of another
/// user; `None` when it found no such process.
pub fn other_users_fds_visible() -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.uid() == me {
            continue;
        }
        return Some(std::fs::read_dir(entry.path().join("fd")).is_ok());
    }
    None
}

/// Which of `paths` some process holds open for writing, found by reading
/// `/proc/*/fd` (the links) and `/proc/*/fdinfo` (the open flags). Processes we
/// may not inspect are skipped; as root, that is none.
pub fn open_for_writing(paths: &[PathBuf]) -> HashSet<PathBuf> {
    let wanted: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let mut busy = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return busy;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let fd_dir = proc_entry.path().join("fd");
        let Ok(fds) = std::fs::read_dir(&fd_dir) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if !wanted.contains(target.as_path()) {
                continue;
            }
            let info = proc_entry.path().join("fdinfo").join(fd.file_name());
            if opened_for_writing(&info) {
                busy.insert(target);
            }
        }
    }
    busy
}

fn opened_for_writing(fdinfo: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(fdinfo) else {
        return false;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        // O_ACCMODE: 1 = O_WRONLY, 2 = O_RDWR.
        .is_some_and(|flags| flags & 0o3 != 0)
}
