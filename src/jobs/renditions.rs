//! Static renditions asked for after an asset is ready (`reeld renditions add`,
//! and `POST …/static-renditions` in the API): recorded as `preparing`, then
//! made from the stored master by one `renditions` job for everything pending.

use crate::asset::{
    AssetSettings, AssetStatus, RenditionRequest, RenditionResolution, RenditionStatus,
    RenditionType,
};
use crate::db::{Db, DbError, RenditionRow};
use crate::plan::rendition_name;

use super::now_ms;

/// Why a rendition cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum AddRenditionError {
    /// No such asset.
    #[error("no asset with id {0:?}")]
    NotFound(String),
    /// Renditions are added to ready assets only (Mux answers 412).
    #[error("asset {0} is not ready; static renditions can be added once it is")]
    NotReady(String),
    /// The asset uses the legacy `mp4_support`, which Mux does not mix with `static_renditions`.
    #[error("asset {0} uses mp4_support; static renditions cannot be added to it")]
    LegacyMp4Support(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Records `request` for the asset and queues (or, with `lease_to`, claims)
/// the job that makes it. Returns the file's row and the job id, or `None`
/// when the file was already requested and nothing new needs making.
pub fn add(
    db: &Db,
    asset_id: &str,
    request: RenditionRequest,
    max_attempts: u32,
    lease_to: Option<&str>,
) -> Result<(RenditionRow, Option<i64>), AddRenditionError> {
    let asset = db
        .read(|r| r.asset(asset_id))?
        .ok_or_else(|| AddRenditionError::NotFound(asset_id.to_owned()))?;
    if asset.status != AssetStatus::Ready {
        return Err(AddRenditionError::NotReady(asset_id.to_owned()));
    }
    let mut settings: AssetSettings = asset.settings;
    if settings.mp4_support.is_some() {
        return Err(AddRenditionError::LegacyMp4Support(asset_id.to_owned()));
    }
    if !settings
        .static_renditions
        .iter()
        .any(|r| r.resolution == request.resolution)
    {
        settings.static_renditions.push(request.clone());
    }
    let kind = match request.resolution {
        RenditionResolution::Highest | RenditionResolution::AudioOnly => RenditionType::Standard,
        _ => RenditionType::Advanced,
    };
    let row = RenditionRow::new(
        &rendition_name(request.resolution),
        Some(request.resolution.as_str()),
        kind.as_str(),
        request.passthrough,
        RenditionStatus::Preparing.as_str(),
    );
    Ok(db.write(|tx| {
        tx.add_rendition(asset_id, &row, &settings, max_attempts, now_ms(), lease_to)
    })?)
}
