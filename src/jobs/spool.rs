//! Spool folders: `SPOOL/ASSET/attempt-GEN`, one per attempt at a job, where
//! outputs are made before they are verified and stored; and
//! `SPOOL/uploads/ID`, the bytes of a direct upload, kept until its asset
//! has finished with them.

use std::path::{Path, PathBuf};

use crate::db::Job;

/// The spool's folder of direct-upload bytes (no asset id is this short, so
/// it never names an asset's folder).
pub const UPLOADS_FOLDER: &str = "uploads";

/// The spool folder of one attempt at a job: `SPOOL/ASSET/attempt-GEN`. A
/// worker that lost its lease and still runs writes only into its own
/// attempt's folder, never into the one of the worker that took over.
pub fn attempt_spool(spool_dir: &Path, job: &Job) -> PathBuf {
    spool_dir
        .join(&job.asset_id)
        .join(format!("attempt-{}", job.lease.generation))
}

/// Removes the folders of the asset's earlier attempts (a crash left them):
/// their leases are fenced out, so nothing they hold can be recorded.
pub fn clear_earlier_attempts(spool: &Path, generation: i64) {
    let Some(asset_folder) = spool.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(asset_folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let earlier = name
            .to_str()
            .and_then(|n| n.strip_prefix("attempt-"))
            .and_then(|g| g.parse::<i64>().ok())
            .is_none_or(|g| g < generation);
        if earlier {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
