//! Free disk space, checked before a job writes anything, so that a full disk
//! is a clear, retried error up front instead of a half-written output.

use std::path::Path;

/// Space kept free beyond what a job is expected to write.
const MARGIN_BYTES: u64 = 4 << 20;

/// Bytes available to this process on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(stats.blocks_available() as u64 * stats.fragment_size() as u64)
}

/// Checks that `folder` (what it is for: `purpose`) has room for `needed`
/// bytes plus a margin. The error is a sentence for the asset's log.
pub fn ensure_room(folder: &Path, purpose: &str, needed: u64) -> Result<(), String> {
    let free = free_bytes(folder).map_err(|e| {
        format!(
            "Cannot read the free space of the {purpose} {}: {e}.",
            folder.display()
        )
    })?;
    if free < needed + MARGIN_BYTES {
        return Err(format!(
            "Not enough free space in the {purpose} {}: {:.1} MB free, about {:.1} MB needed.",
            folder.display(),
            free as f64 / 1e6,
            (needed + MARGIN_BYTES) as f64 / 1e6
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(ensure_room(dir.path(), "spool folder", 0).is_ok() || free < MARGIN_BYTES);
        let err = ensure_room(dir.path(), "spool folder", u64::MAX / 4).unwrap_err();
        assert!(
            err.contains("Not enough free space in the spool folder"),
            "{err}"
        );
    }
}
