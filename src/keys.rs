//! Secrets reeld makes for itself and keeps beside the database, readable by
//! its owner only (mode 0600): the download URL signing key, and an API token
//! when the config lists none. Each is made once, atomically, and then read
//! back on every start, so URLs and tokens survive restarts.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A generated secret that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot read or create the secret file {path}: {source}")]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// 32 random bytes as 43 characters of URL-safe base64.
pub fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The text of the secret file at `path`, made by `make` (and written with
/// mode 0600) if it does not exist yet.
pub fn load_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, KeyFileError> {
    let err = |source| KeyFileError {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // A copy restored with looser permissions is tightened again.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            return Ok(text.trim().to_owned());
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let text = make();
    // Written under a temporary name and linked into place, so that two
    // processes starting at once agree on one secret and neither reads a
    // half-written file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .map_err(err),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let first = load_or_create(&path, random_secret).unwrap();
        assert_eq!(first.len(), 43);
        let again = load_or_create(&path, || unreachable!("exists already")).unwrap();
        assert_eq!(first, again);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
