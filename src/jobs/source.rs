//! The source file a job reads, held by identity.
//!
//! The file is opened once, checked against the identity recorded when it was
//! taken (device, inode, size, mtime), and kept open for the whole job. Every
//! reader (probe, stream inspection, loudness, the pipeline) is given
//! `/proc/self/fd/N`, which opens that same inode again, so a new file renamed
//! over the old name while the job runs is never read in its place: it is a
//! new asset of its own, taken by the watch folder.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::db::SourceIdentity;

/// The recorded source, open.
#[derive(Debug)]
pub struct HeldSource {
    /// Kept open so that `reading_path` names this inode for as long as the
    /// job runs.
    file: File,
    /// Where it was taken from, for messages.
    pub path: PathBuf,
    /// Its identity.
    pub identity: SourceIdentity,
}

impl HeldSource {
    /// Opens the source at `path` and checks it is the recorded file.
    /// The error is a sentence for the asset's errors.
    pub fn open(path: &Path, recorded: &SourceIdentity) -> Result<HeldSource, String> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "The source file {} no longer exists.",
                    path.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "Cannot open the source file {}: {e}.",
                    path.display()
                ));
            }
        };
        let found = identity_of(&file)
            .map_err(|e| format!("Cannot read the source file {}: {e}.", path.display()))?;
        if !found.same_inode(recorded) {
            return Err(format!(
                "The source file {} was replaced by another file after it was taken; \
                 the new file is taken as an asset of its own.",
                path.display()
            ));
        }
        if found != *recorded {
            return Err(format!(
                "The source file {} changed after it was taken ({} bytes then, {} now); \
                 the changed file is taken as an asset of its own.",
                path.display(),
                recorded.size,
                found.size
            ));
        }
        Ok(HeldSource {
            file,
            path: path.to_owned(),
            identity: found,
        })
    }

    /// A path that opens the held inode, whatever is at `path` now.
    pub fn reading_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// The identity of an open file (one `fstat`).
pub fn identity_of(file: &File) -> std::io::Result<SourceIdentity> {
    Ok(SourceIdentity::from_metadata(&file.metadata()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_renamed_over_the_source_is_not_read_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.mp4");
        std::fs::write(&path, b"first export").unwrap();
        let recorded = SourceIdentity::of(&path).unwrap();
        let held = HeldSource::open(&path, &recorded).unwrap();

        let next = dir.path().join("final.mp4.tmp");
        std::fs::write(&next, b"second export, longer").unwrap();
        std::fs::rename(&next, &path).unwrap();

        assert_eq!(std::fs::read(held.reading_path()).unwrap(), b"first export");
        let e = HeldSource::open(&path, &recorded).unwrap_err();
        assert!(e.contains("was replaced by another file"), "{e}");
    }

    #[test]
    fn a_source_changed_in_place_is_refused_and_a_missing_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mp4");
        std::fs::write(&path, b"12345").unwrap();
        let recorded = SourceIdentity::of(&path).unwrap();
        std::fs::write(&path, b"1234567").unwrap();
        let e = HeldSource::open(&path, &recorded).unwrap_err();
        assert!(
            e.contains("changed after it was taken (5 bytes then, 7 now)"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        let e = HeldSource::open(&path, &recorded).unwrap_err();
        assert!(e.contains("no longer exists"), "{e}");
    }
}
