//! What happens to a watch-folder source once its asset has finished: kept,
//! moved to the done folder or deleted (`ingest.on_success`), or moved to the
//! failed folder with `NAME.error.json` beside it.
//!
//! It runs only after the asset's outcome is committed to the database, and
//! the database says which sources still wait for it, so a crash in between
//! is finished at the next start-up. A source is never touched before then.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::Context;
use crate::asset::AssetStatus;
use crate::config::OnSuccess;
use crate::db::{Disposition, PendingSource};

/// Disposes of every source whose asset has finished.
pub async fn dispose_pending(ctx: &Arc<Context>) {
    let ctx = ctx.clone();
    let result = tokio::task::spawn_blocking(move || {
        let pending = ctx.db.read(|r| r.pending_sources())?;
        for source in pending {
            match dispose_one(&ctx, &source) {
                Ok(disposition) => ctx
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
        Ok::<_, crate::db::DbError>(())
    })
    .await
    .expect("dispose task does not panic");
    if let Err(e) = result {
        warn!(error = %e, "Cannot read the sources awaiting disposal.");
    }
}

fn dispose_one(ctx: &Context, source: &PendingSource) -> std::io::Result<Disposition> {
    let config = &ctx.config;
    if !source.path.exists() {
        // Already moved (a crash after the move, before it was recorded) or
        // removed by the user: nothing left to do.
        return Ok(match source.status {
            AssetStatus::Ready => match config.on_success {
                OnSuccess::Keep => Disposition::Kept,
                OnSuccess::Move => Disposition::Moved,
                OnSuccess::Delete => Disposition::Deleted,
            },
            _ => Disposition::Failed,
        });
    }
    match source.status {
        AssetStatus::Ready => match config.on_success {
            OnSuccess::Keep => Ok(Disposition::Kept),
            OnSuccess::Delete => {
                if let Some(sidecar) = source.sidecar.as_ref().filter(|p| p.exists()) {
                    std::fs::remove_file(sidecar)?;
                }
                std::fs::remove_file(&source.path)?;
                info!(asset.id = %source.asset_id, path = %source.path.display(), "Source deleted.");
                Ok(Disposition::Deleted)
            }
            OnSuccess::Move => {
                let done = config
                    .done_dir
                    .as_ref()
                    .expect("validated: move needs done_dir");
                move_sidecar(source, &config.watch_dir, done)?;
                let to = move_below(&source.path, &config.watch_dir, done, &source.asset_id)?;
                info!(asset.id = %source.asset_id, to = %to.display(), "Source moved to the done folder.");
                Ok(Disposition::Moved)
            }
        },
        _ => {
            move_sidecar(source, &config.watch_dir, &config.failed_dir)?;
            let to = move_below(
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

/// The sidecar is consumed with its media file: it moves first, so that a
/// crash in between never leaves a sidecar behind to be applied to a new drop.
fn move_sidecar(source: &PendingSource, from_root: &Path, to_root: &Path) -> std::io::Result<()> {
    if let Some(sidecar) = source.sidecar.as_ref().filter(|p| p.exists()) {
        move_below(sidecar, from_root, to_root, &source.asset_id)?;
    }
    Ok(())
}

/// Moves `path` to the same relative place below `to_root` as it had below
/// `from_root`. An existing file there is never overwritten: the asset id is
/// added to the name instead. Falls back to copy + fsync + delete across file
/// systems.
fn move_below(
    path: &Path,
    from_root: &Path,
    to_root: &Path,
    asset_id: &str,
) -> std::io::Result<PathBuf> {
    let relative = path
        .strip_prefix(from_root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(path.file_name().unwrap_or_default()));
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
        let to = move_below(&src, &watch, &done, "ID1").unwrap();
        assert_eq!(to, done.join("sub/a.mp4"));
        std::fs::write(&src, b"y").unwrap();
        let to = move_below(&src, &watch, &done, "ID2").unwrap();
        assert_eq!(to, done.join("sub/ID2-a.mp4"));
        assert_eq!(std::fs::read(done.join("sub/a.mp4")).unwrap(), b"x");
        assert!(!src.exists());
    }
}
