//! Removes the stored files of deleted assets. `DELETE /video/v1/assets/{id}`
//! (and test-asset expiry) hides an asset at once and stops its job; the
//! files go here, once no job of the asset runs any more, so that a job that
//! was still uploading cannot leave a file behind.
//!
//! The purge is idempotent: a crash between deleting the files and marking
//! the asset purged only means the next round deletes nothing again.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Context, LEASE_STALE_AFTER, now_ms};
use crate::store;

/// How often the purge looks for work when nothing wakes it.
const PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// Purges every deleted asset whose job has stopped. Returns how many.
pub async fn purge_deleted(ctx: &Arc<Context>) -> usize {
    let db = ctx.db.clone();
    let fresh_after = now_ms() - LEASE_STALE_AFTER.as_millis() as i64;
    let ids = match tokio::task::spawn_blocking(move || db.read(|r| r.assets_to_purge(fresh_after)))
        .await
        .expect("db task does not panic")
    {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "Cannot look for deleted assets to purge.");
            return 0;
        }
    };
    let mut purged = 0;
    for id in ids {
        let files = match ctx.store.delete_prefix(&store::asset_prefix(&id)).await {
            Ok(n) => n,
            Err(e) => {
                warn!(asset.id = %id, error = %e, "Cannot delete a deleted asset's files; will retry.");
                continue;
            }
        };
        let _ = std::fs::remove_dir_all(ctx.config.spool_dir.join(&id));
        let db = ctx.db.clone();
        let asset = id.clone();
        match tokio::task::spawn_blocking(move || db.write(|tx| tx.mark_purged(&asset, now_ms())))
            .await
            .expect("db task does not panic")
        {
            Ok(()) => {
                info!(asset.id = %id, files, "Deleted asset's files removed.");
                purged += 1;
            }
            Err(e) => warn!(asset.id = %id, error = %e, "Cannot record a purge; will retry."),
        }
    }
    purged
}

/// Purges at start-up, whenever woken, and every half minute, until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    loop {
        purge_deleted(&ctx).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ctx.purge_signal.notified() => {}
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
    }
}
