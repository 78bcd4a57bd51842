//! What happens to a watch-folder source once its asset has finished: kept,
//! moved to the done folder or deleted (`ingest.on_success`), or moved to the
//! failed folder with `NAME.error.json` beside it. A direct upload's bytes
//! are reeld's own copy: they are removed whatever the outcome.
//!
//! It runs only after the asset's outcome is committed to the database, and
//! the database says which sources still wait for it, so a crash in between
//! is finished at the next start-up. A source is never touched before then.
//!
//! Only the recorded file is ever moved or deleted: a different file that
//! has its name by then (a re-export renamed over it) is left alone, since
//! the watch folder takes it as an asset of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::Context;
use crate::asset::AssetStatus;
use crate::config::OnSuccess;
use crate::db::{Disposition, PendingSource, SourceIdentity};

/// How long an errored source that was modified recently stays in the watch
/// folder, in settle times: a file taken too early (a writer reeld could not
/// see paused, then resumed) that grows again in that time is a new file, and
/// is taken again as a new asset.
const ERRORED_HOLD_SETTLES: u32 = 5;

/// Disposes of every source whose asset has finished, except errored ones
/// still held back (see `ERRORED_HOLD_SETTLES`; the watch folder calls this
/// with every rescan). Returns whether some source is still waiting.
pub async fn dispose_pending(ctx: &Arc<Context>) -> bool {
    let ctx = ctx.clone();
    let result = tokio::task::spawn_blocking(move || {
        let pending = ctx.db.read(|r| r.pending_sources())?;
        let mut waiting = false;
        for source in pending {
            match dispose_one(&ctx, &source) {
                Ok(None) => waiting = true,
                Ok(Some(disposition)) => ctx
                    .db
                    .write(|tx| tx.set_disposition(&source.asset_id, disposition))?,
                Err(e) => warn!(
                    asset.id = %source.asset_id,
                    path = %source.path.display(),
                    error = %e,
                    "Cannot dispose of the source; will try again later."
                ),
            }
        }
        Ok::<_, crate::db::DbError>(waiting)
    })
    .await
    .expect("dispose task does not panic");
    result.unwrap_or_else(|e| {
        warn!(error = %e, "Cannot read the sources awaiting disposal.");
        true
    })
}

/// Disposes of one source; `None` while an errored one is held back.
fn dispose_one(ctx: &Context, source: &PendingSource) -> std::io::Result<Option<Disposition>> {
    let config = &ctx.config;
    if source.own_copy {
        match std::fs::remove_file(&source.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        info!(asset.id = %source.asset_id, "The upload's bytes are removed (the asset has them now, or errored).");
        return Ok(Some(Disposition::Deleted));
    }
    if source.status == AssetStatus::Ready && config.on_success == OnSuccess::Keep {
        return Ok(Some(Disposition::Kept));
    }
    if source.status != AssetStatus::Ready
        && modified_within(source, config.settle * ERRORED_HOLD_SETTLES)
    {
        return Ok(None);
    }
    dispose_claimed(ctx, source).map(Some)
}

/// Whether the recorded file is still at its name and was modified less than
/// `hold` ago.
fn modified_within(source: &PendingSource, hold: std::time::Duration) -> bool {
    let Ok(found) = SourceIdentity::of(&source.path) else {
        return false;
    };
    let age_ns = super::now_ms().saturating_mul(1_000_000) - found.mtime_ns;
    found == source.identity && age_ns < hold.as_nanos() as i64
}

fn dispose_claimed(ctx: &Context, source: &PendingSource) -> std::io::Result<Disposition> {
    let config = &ctx.config;
    let held = match claim_recorded(source)? {
        Claim::Held(private) => private,
        // Already moved (a crash after the move, before it was recorded) or
        // removed by the user: nothing left to do.
        Claim::Gone => {
            return Ok(match source.status {
                AssetStatus::Ready => match config.on_success {
                    OnSuccess::Keep => Disposition::Kept,
                    OnSuccess::Move => Disposition::Moved,
                    OnSuccess::Delete => Disposition::Deleted,
                },
                _ => Disposition::Failed,
            });
        }
        Claim::Replaced => {
            info!(
                asset.id = %source.asset_id,
                path = %source.path.display(),
                "Another file has the source's name now; it is left alone (it is an asset of its own)."
            );
            return Ok(Disposition::Replaced);
        }
    };
    match source.status {
        AssetStatus::Ready => match config.on_success {
            OnSuccess::Keep => unreachable!("returned above"),
            OnSuccess::Delete => {
                if let Some(sidecar) = source.sidecar.as_ref().filter(|p| p.exists()) {
                    std::fs::remove_file(sidecar)?;
                }
                std::fs::remove_file(&held)?;
                info!(asset.id = %source.asset_id, path = %source.path.display(), "Source deleted.");
                Ok(Disposition::Deleted)
            }
            OnSuccess::Move => {
                let done = config
                    .done_dir
                    .as_ref()
                    .expect("validated: move needs done_dir");
                move_sidecar(source, &config.watch_dir, done)?;
                let to = move_below(
                    &held,
                    &source.path,
                    &config.watch_dir,
                    done,
                    &source.asset_id,
                )?;
                info!(asset.id = %source.asset_id, to = %to.display(), "Source moved to the done folder.");
                Ok(Disposition::Moved)
            }
        },
        _ => {
            move_sidecar(source, &config.watch_dir, &config.failed_dir)?;
            let to = move_below(
                &held,
                &source.path,
                &config.watch_dir,
                &config.failed_dir,
                &source.asset_id,
            )?;
            let report = serde_json::json!({
                "asset_id": source.asset_id,
                "source": source.path,
                "error": source.errors,
            });
            let report_path = PathBuf::from(format!("{}.error.json", to.display()));
            write_atomically(
                &report_path,
                serde_json::to_string_pretty(&report)
                    .expect("report serializes")
                    .as_bytes(),
            )?;
            info!(asset.id = %source.asset_id, to = %to.display(), "Source moved to the failed folder.");
            Ok(Disposition::Failed)
        }
    }
}

/// What `claim_recorded` found at the source's name.
enum Claim {
    /// The recorded file, now under a private name (`.reeld-disposing-ID`
    /// beside it, which the watch folder never takes).
    Held(PathBuf),
    /// Nothing is there.
    Gone,
    /// A different file is there.
    Replaced,
}

/// Takes the recorded source out from under its name before it is moved or
/// deleted, so that only that file is ever disposed of. The name is renamed
/// away first and the file checked after: a file renamed over the name in
/// between is what moved, and it is put back.
fn claim_recorded(source: &PendingSource) -> std::io::Result<Claim> {
    let private = private_name(&source.path, &source.asset_id);
    if !private.exists() {
        match SourceIdentity::of(&source.path) {
            Ok(found) if found == source.identity => {}
            Ok(_) => return Ok(Claim::Replaced),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        }
        std::fs::rename(&source.path, &private)?;
    }
    // Also reached after a crash between the rename and the disposal.
    if SourceIdentity::of(&private)? == source.identity {
        return Ok(Claim::Held(private));
    }
    put_back(&private, &source.path)?;
    Ok(Claim::Replaced)
}

/// `.reeld-disposing-ID` in the source's folder.
fn private_name(path: &Path, asset_id: &str) -> PathBuf {
    path.with_file_name(format!(".reeld-disposing-{asset_id}"))
}

/// Returns a file that is not the recorded source to its name, or, if yet
/// another file has that name now, to `NAME.reeld-restored` beside it, where
/// the watch folder takes it as a new file. A hard link never replaces.
fn put_back(private: &Path, name: &Path) -> std::io::Result<()> {
    let target = match std::fs::hard_link(private, name) {
        Ok(()) => name.to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let beside = PathBuf::from(format!("{}.reeld-restored", name.display()));
            std::fs::hard_link(private, &beside)?;
            beside
        }
        Err(e) => return Err(e),
    };
    std::fs::remove_file(private)?;
    warn!(path = %target.display(), "A file renamed over a source while it was disposed of was put back.");
    Ok(())
}

/// The sidecar is consumed with its media file: it moves first, so that a
/// crash in between never leaves a sidecar behind to be applied to a new drop.
fn move_sidecar(source: &PendingSource, from_root: &Path, to_root: &Path) -> std::io::Result<()> {
    if let Some(sidecar) = source.sidecar.as_ref().filter(|p| p.exists()) {
        move_below(sidecar, sidecar, from_root, to_root, &source.asset_id)?;
    }
    Ok(())
}

/// Moves `path` to the place below `to_root` that `name` had below
/// `from_root`. An existing file there is never overwritten: the asset id is
/// added to the name instead. Falls back to copy + fsync + delete across file
/// systems.
fn move_below(
    path: &Path,
    name: &Path,
    from_root: &Path,
    to_root: &Path,
    asset_id: &str,
) -> std::io::Result<PathBuf> {
    let relative = name
        .strip_prefix(from_root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(name.file_name().unwrap_or_default()));
    let mut target = to_root.join(&relative);
    if target.exists() {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        target.set_file_name(format!("{asset_id}-{name}"));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => Ok(target),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let partial = target.with_extension("reeld-partial");
            std::fs::copy(path, &partial)?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, &target)?;
            std::fs::remove_file(path)?;
            Ok(target)
        }
        Err(e) => Err(e),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_relative_path_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let watch = dir.path().join("watch");
        let done = dir.path().join("done");
        std::fs::create_dir_all(watch.join("sub")).unwrap();
        let src = watch.join("sub/a.mp4");
        std::fs::write(&src, b"x").unwrap();
        let to = move_below(&src, &src, &watch, &done, "ID1").unwrap();
        assert_eq!(to, done.join("sub/a.mp4"));
        std::fs::write(&src, b"y").unwrap();
        let to = move_below(&src, &src, &watch, &done, "ID2").unwrap();
        assert_eq!(to, done.join("sub/ID2-a.mp4"));
        assert_eq!(std::fs::read(done.join("sub/a.mp4")).unwrap(), b"x");
        assert!(!src.exists());
    }

    fn pending(path: &Path, identity: SourceIdentity) -> PendingSource {
        PendingSource {
            asset_id: "A1".into(),
            status: AssetStatus::Ready,
            path: path.to_owned(),
            identity,
            errors: None,
            sidecar: None,
            own_copy: false,
        }
    }

    #[test]
    fn only_the_recorded_file_is_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("final.mp4");
        std::fs::write(&src, b"first").unwrap();
        let first = SourceIdentity::of(&src).unwrap();
        // A re-export renamed over the name: left alone, in place.
        let next = dir.path().join("final.mp4.tmp");
        std::fs::write(&next, b"second").unwrap();
        std::fs::rename(&next, &src).unwrap();
        assert!(matches!(
            claim_recorded(&pending(&src, first)).unwrap(),
            Claim::Replaced
        ));
        assert_eq!(std::fs::read(&src).unwrap(), b"second");
        // The file itself is taken out from under its name.
        let second = SourceIdentity::of(&src).unwrap();
        let Claim::Held(private) = claim_recorded(&pending(&src, second)).unwrap() else {
            panic!("the recorded file is claimed");
        };
        assert!(!src.exists());
        assert_eq!(std::fs::read(&private).unwrap(), b"second");
        // After a crash here, the next look finds it under the private name.
        assert!(matches!(
            claim_recorded(&pending(&src, second)).unwrap(),
            Claim::Held(p) if p == private
        ));
    }

    #[test]
    fn a_file_that_is_not_the_source_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.mp4");
        std::fs::write(&src, b"old").unwrap();
        let old = SourceIdentity::of(&src).unwrap();
        // As if the new file had arrived between the check and the rename.
        let private = private_name(&src, "A1");
        std::fs::remove_file(&src).unwrap();
        std::fs::write(&private, b"newer").unwrap();
        assert!(matches!(
            claim_recorded(&pending(&src, old)).unwrap(),
            Claim::Replaced
        ));
        assert_eq!(std::fs::read(&src).unwrap(), b"newer");
        assert!(!private.exists());
    }
}
