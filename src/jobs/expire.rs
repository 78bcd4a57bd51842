//! Test assets (`"test": true`) are deleted 24 hours after they were
//! created, as Mux deletes them: the same delete as the API's (the asset is
//! hidden and its job stopped), with the files left to the purge.
//!
//! Direct uploads still waiting at their timeout become `timed_out`, and
//! their bytes are removed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Context, now_ms};

/// How long a test asset lives.
pub const TEST_ASSET_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the daemon looks for expired test assets.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often it looks for uploads past their timeout (a cheap indexed read).
const UPLOAD_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Deletes every test asset older than its lifetime at `now_ms`. Returns how
/// many were deleted.
pub async fn sweep(ctx: &Arc<Context>, now_ms: i64) -> usize {
    let cutoff_s = now_ms / 1000 - TEST_ASSET_LIFETIME.as_secs() as i64;
    let db = ctx.db.clone();
    let ids =
        match tokio::task::spawn_blocking(move || db.read(|r| r.expired_test_assets(cutoff_s)))
            .await
            .expect("db task does not panic")
        {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "Cannot look for expired test assets.");
                return 0;
            }
        };
    let mut deleted = 0;
    for id in ids {
        let db = ctx.db.clone();
        let asset = id.clone();
        match tokio::task::spawn_blocking(move || db.write(|tx| tx.delete_asset(&asset, now_ms)))
            .await
            .expect("db task does not panic")
        {
            Ok(_) => {
                ctx.stop_deleted(&id);
                info!(asset.id = %id, "Test asset expired and deleted.");
                deleted += 1;
            }
            Err(e) => warn!(asset.id = %id, error = %e, "Cannot delete an expired test asset."),
        }
    }
    if deleted > 0 {
        super::purge::purge_deleted(ctx).await;
    }
    deleted
}

/// Times out every waiting upload past its timeout at `now_ms` and removes
/// its bytes. Returns how many timed out.
pub async fn sweep_uploads(ctx: &Arc<Context>, now_ms: i64) -> usize {
    let db = ctx.db.clone();
    let timed_out = tokio::task::spawn_blocking(move || {
        let ids = db.read(|r| r.expired_uploads(now_ms))?;
        db.write(|tx| {
            let mut out = Vec::new();
            for id in ids {
                if tx.time_out_upload(&id, now_ms)? {
                    out.push(id);
                }
            }
            Ok(out)
        })
    })
    .await
    .expect("db task does not panic");
    let ids = match timed_out {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "Cannot look for timed-out uploads.");
            return 0;
        }
    };
    for id in &ids {
        let path = crate::api::uploads::upload_file(&ctx.config.spool_dir, id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(upload.id = %id, error = %e, "Cannot remove a timed-out upload's bytes.")
            }
        }
        info!(upload.id = %id, "Direct upload timed out; its bytes are removed.");
    }
    ids.len()
}

/// Sweeps at start-up and then every few seconds (uploads) or every minute
/// (test assets) until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut test_assets_due = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= test_assets_due {
            sweep(&ctx, now_ms()).await;
            test_assets_due += SWEEP_INTERVAL;
        }
        sweep_uploads(&ctx, now_ms()).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UPLOAD_SWEEP_INTERVAL) => {}
        }
    }
}
