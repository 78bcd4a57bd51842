//! The `assets` table: one row per asset, its settings and what was stored,
//! and the transactions that move it between `preparing`, `ready` and
//! `errored` together with its job and rendition rows.
//!
//! A deleted asset disappears from every read at once (`deleted_at`); its
//! row stays as a tombstone so that its watch-folder source stays known,
//! and its files are purged once no job of it runs (`purged_at`).

use rusqlite::{OptionalExtension, params};

use super::queue::JobKind;
use super::renditions::RENDITION_COLUMNS;
use super::{DbError, Lease, NewSource, Read, RenditionRow, Tx, json_column, to_json};
use crate::asset::{
    AssetErrors, AssetSettings, AssetStatus, IngestType, MediaSummary, Progress, ProgressState,
};

/// How long temporary master access lasts once the master is ready, in s.
pub const MASTER_ACCESS_TTL_S: i64 = 24 * 60 * 60;

/// A new asset to record.
#[derive(Debug, Clone)]
pub struct NewAsset {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Settings in force.
    pub settings: AssetSettings,
    /// How it was ingested.
    pub ingest_type: IngestType,
}

impl NewAsset {
    /// A new asset created now, with a fresh id.
    pub fn now(settings: AssetSettings, ingest_type: IngestType) -> NewAsset {
        NewAsset {
            id: crate::asset::new_asset_id(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            settings,
            ingest_type,
        }
    }
}

/// An asset as stored, with its rendition rows.
#[derive(Debug, Clone)]
pub struct AssetRecord {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Its status.
    pub status: AssetStatus,
    /// Settings in force.
    pub settings: AssetSettings,
    /// How it was ingested.
    pub ingest_type: IngestType,
    /// What was stored (empty until ready).
    pub summary: MediaSummary,
    /// Why it errored.
    pub errors: Option<AssetErrors>,
    /// Its job's progress.
    pub progress: Progress,
    /// Unix s after which temporary master access ends (set once ready).
    pub master_expires_at: Option<i64>,
    /// The direct upload it was made from.
    pub upload_id: Option<String>,
    /// Its rendition files, in the order they were requested.
    pub renditions: Vec<RenditionRow>,
    /// Its playback IDs, oldest first.
    pub playback_ids: Vec<crate::playback::PlaybackId>,
    /// Cloudflare's `requireSignedURLs`: its `/{uid}/downloads/…` URLs need a
    /// token in place of the uid.
    pub require_signed_urls: bool,
}

/// Where a page of the asset list starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Skip this many assets (`page=N`).
    Offset(u64),
    /// The assets after this one in list order (`cursor=…`).
    After {
        /// The last asset's `created_at`.
        created_at: i64,
        /// The last asset's id.
        id: String,
    },
}

/// Which assets a list shows (reeld's additions to Mux's list query).
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    /// Only assets with this status (`preparing`, `ready`, `errored`).
    pub status: Option<String>,
    /// Only assets whose id is this, or whose `meta.title` or `passthrough`
    /// holds it (any case).
    pub search: Option<String>,
}

const ASSET_COLUMNS: &str = "id, created_at, status, settings, ingest_type, summary, errors, \
                             progress_state, progress, master_expires_at, upload_id, progress_note, \
                             require_signed_urls";

struct AssetRow {
    id: String,
    created_at: i64,
    status: String,
    settings: String,
    ingest_type: String,
    summary: String,
    errors: Option<String>,
    progress_state: String,
    progress: f64,
    master_expires_at: Option<i64>,
    upload_id: Option<String>,
    progress_note: Option<String>,
    require_signed_urls: bool,
}

impl AssetRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<AssetRow> {
        Ok(AssetRow {
            id: r.get(0)?,
            created_at: r.get(1)?,
            status: r.get(2)?,
            settings: r.get(3)?,
            ingest_type: r.get(4)?,
            summary: r.get(5)?,
            errors: r.get(6)?,
            progress_state: r.get(7)?,
            progress: r.get(8)?,
            master_expires_at: r.get(9)?,
            upload_id: r.get(10)?,
            progress_note: r.get(11)?,
            require_signed_urls: r.get(12)?,
        })
    }

    fn into_record(
        self,
        renditions: Vec<RenditionRow>,
        playback_ids: Vec<crate::playback::PlaybackId>,
    ) -> Result<AssetRecord, DbError> {
        let what = |field: &str| format!("asset {}: {field}", self.id);
        let corrupt = |detail: String| DbError::Corrupt {
            table: "assets",
            detail,
        };
        Ok(AssetRecord {
            status: parse_status(&self.status)?,
            settings: json_column("assets", &what("settings"), &self.settings)?,
            summary: json_column("assets", &what("summary"), &self.summary)?,
            errors: self
                .errors
                .as_deref()
                .map(|e| json_column("assets", &what("errors"), e))
                .transpose()?,
            ingest_type: IngestType::parse(&self.ingest_type)
                .ok_or_else(|| corrupt(what(&format!("ingest_type {:?}", self.ingest_type))))?,
            progress: Progress {
                state: ProgressState::parse(&self.progress_state).ok_or_else(|| {
                    corrupt(what(&format!("progress_state {:?}", self.progress_state)))
                })?,
                progress: self.progress,
                reason: self.progress_note,
            },
            master_expires_at: self.master_expires_at,
            upload_id: self.upload_id,
            created_at: self.created_at,
            id: self.id,
            renditions,
            playback_ids,
            require_signed_urls: self.require_signed_urls,
        })
    }
}

pub(super) fn parse_status(s: &str) -> Result<AssetStatus, DbError> {
    AssetStatus::parse(s).ok_or_else(|| DbError::Corrupt {
        table: "assets",
        detail: format!("unknown status {s:?}"),
    })
}

impl Read<'_> {
    /// One asset that exists (not deleted), with its renditions.
    pub fn asset(&self, id: &str) -> Result<Option<AssetRecord>, DbError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?1 AND deleted_at IS NULL"),
                params![id],
                AssetRow::read,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let files = self.renditions(id)?;
        let playback_ids = self.playback_ids(id)?;
        row.into_record(files, playback_ids).map(Some)
    }

    /// The asset made from a direct upload, if it exists.
    pub fn asset_of_upload(&self, upload_id: &str) -> Result<Option<AssetRecord>, DbError> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM assets WHERE upload_id = ?1 AND deleted_at IS NULL",
                params![upload_id],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.asset(&id),
            None => Ok(None),
        }
    }

    /// Assets, newest first, at most `limit` from `page` on. The flag says
    /// whether more follow.
    pub fn list_assets(
        &self,
        limit: u32,
        page: &Page,
    ) -> Result<(Vec<AssetRecord>, bool), DbError> {
        self.list_assets_where(limit, page, &AssetFilter::default())
    }

    /// [`Read::list_assets`], of the assets `filter` lets through.
    pub fn list_assets_where(
        &self,
        limit: u32,
        page: &Page,
        filter: &AssetFilter,
    ) -> Result<(Vec<AssetRecord>, bool), DbError> {
        let fetch = i64::from(limit) + 1;
        // `instr`, not LIKE: what people search for may hold `%` or `_`.
        const FILTER: &str = "deleted_at IS NULL
            AND (?4 IS NULL OR status = ?4)
            AND (?5 IS NULL OR id = ?5
                 OR instr(lower(coalesce(json_extract(settings, '$.meta.title'), '')), lower(?5)) > 0
                 OR instr(lower(coalesce(json_extract(settings, '$.passthrough'), '')), lower(?5)) > 0)";
        let status = filter.status.as_deref();
        let search = filter.search.as_deref().filter(|s| !s.is_empty());
        let rows: Vec<AssetRow> = match page {
            Page::Offset(offset) => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE {FILTER} AND ?3 IS NULL
                     ORDER BY created_at DESC, id DESC LIMIT ?1 OFFSET ?2"
                ))?;
                stmt.query_map(
                    params![fetch, *offset as i64, None::<i64>, status, search],
                    AssetRow::read,
                )?
                .collect::<Result<_, _>>()?
            }
            Page::After { created_at, id } => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE {FILTER}
                       AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?1"
                ))?;
                stmt.query_map(
                    params![fetch, created_at, id, status, search],
                    AssetRow::read,
                )?
                .collect::<Result<_, _>>()?
            }
        };
        let more = rows.len() as i64 > i64::from(limit);
        let records = rows
            .into_iter()
            .take(limit as usize)
            .map(|row| {
                let files = self.renditions(&row.id)?;
                let playback_ids = self.playback_ids(&row.id)?;
                row.into_record(files, playback_ids)
            })
            .collect::<Result<_, _>>()?;
        Ok((records, more))
    }

    /// The settings an asset was created with (deleted or not).
    pub fn asset_settings(&self, asset_id: &str) -> Result<Option<AssetSettings>, DbError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT settings FROM assets WHERE id = ?1",
                params![asset_id],
                |r| r.get(0),
            )
            .optional()?;
        text.map(|t| json_column("assets", &format!("asset {asset_id}: settings"), &t))
            .transpose()
    }

    /// Test assets created before `before_s` (Unix seconds) that still exist.
    pub fn expired_test_assets(&self, before_s: i64) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM assets
             WHERE created_at < ?1 AND json_extract(settings, '$.test') = 1 AND deleted_at IS NULL
             ORDER BY created_at",
        )?;
        let ids = stmt
            .query_map(params![before_s], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Deleted assets whose files are still to be removed, and whose jobs
    /// have stopped (no lease renewed since `fresh_after_ms`).
    pub fn assets_to_purge(&self, fresh_after_ms: i64) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM assets a WHERE deleted_at IS NOT NULL AND purged_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.asset_id = a.id AND j.state = 'running'
                               AND j.heartbeat_at >= ?1)
             ORDER BY deleted_at",
        )?;
        let ids = stmt
            .query_map(params![fresh_after_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}

impl Tx<'_> {
    /// Records an asset, its transcode job and (optionally) its source in one
    /// transaction: after a crash either all exist or none.
    ///
    /// With `lease_to`, the job is created already claimed by that worker
    /// (generation 1: the CLI's in-process ingest), so that no daemon sharing
    /// the file takes it.
    pub fn create_asset(
        &self,
        asset: &NewAsset,
        source: Option<&NewSource>,
        max_attempts: u32,
        now_ms: i64,
        lease_to: Option<&str>,
        initial_error: Option<&AssetErrors>,
    ) -> Result<i64, DbError> {
        self.touch(&asset.id)?;
        self.conn.execute(
            "INSERT INTO assets (id, created_at, status, settings, ingest_type, progress_state, progress, updated_at)
             VALUES (?1, ?2, 'preparing', ?3, ?4, 'ingesting', 0, ?5)",
            params![
                asset.id,
                asset.created_at,
                to_json(&asset.settings),
                asset.ingest_type.as_str(),
                now_ms,
            ],
        )?;
        let job_id = self.insert_job(
            &asset.id,
            JobKind::Transcode,
            max_attempts,
            now_ms,
            lease_to,
        )?;
        if let Some(s) = source {
            self.insert_source(&asset.id, s)?;
        }
        for policy in &asset.settings.playback_policies {
            self.add_playback_id(
                &asset.id,
                &crate::playback::new_playback_id(),
                *policy,
                now_ms,
            )?;
        }
        if let Some(errors) = initial_error {
            // Settings that cannot be used: the asset is born errored and its
            // job is already over, so the source goes to the failed folder.
            self.conn.execute(
                "UPDATE assets SET status = 'errored', progress_note = NULL, errors = ?2, progress_state = 'errored', progress = -1
                 WHERE id = ?1",
                params![asset.id, to_json(errors)],
            )?;
            self.conn.execute(
                "UPDATE jobs SET state = 'failed', worker_id = NULL, finished_at = ?2, last_error = ?3
                 WHERE id = ?1",
                params![job_id, now_ms, errors.messages.join(" ")],
            )?;
        }
        Ok(job_id)
    }

    /// Updates an asset's progress, if `lease` still holds its job.
    pub fn set_progress(
        &self,
        lease: &Lease,
        asset_id: &str,
        state: ProgressState,
        progress: f64,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.ensure_held(lease)?;
        self.conn.execute(
            "UPDATE assets SET progress_state = ?2, progress = ?3, updated_at = ?4,
             progress_note = NULL
             WHERE id = ?1 AND status = 'preparing'",
            params![asset_id, state.as_str(), progress, now_ms],
        )?;
        Ok(())
    }

    /// Sets (or with `None` clears) why a preparing asset's job is waiting,
    /// if `lease` still holds its job.
    pub fn set_progress_note(
        &self,
        lease: &Lease,
        asset_id: &str,
        note: Option<&str>,
    ) -> Result<(), DbError> {
        self.ensure_held(lease)?;
        self.conn.execute(
            "UPDATE assets SET progress_note = ?2 WHERE id = ?1 AND status = 'preparing'",
            params![asset_id, note],
        )?;
        Ok(())
    }

    /// Records a finished job: the asset ready with what was stored
    /// (`summary`, absent for a renditions job, whose asset was ready
    /// already), every rendition file's outcome, and the job done. Files
    /// left `preparing` get the job that makes them.
    pub fn finish_ready(
        &self,
        lease: &Lease,
        asset_id: &str,
        summary: Option<&MediaSummary>,
        files: &[RenditionRow],
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.touch(asset_id)?;
        self.job_done(lease, now_ms)?;
        if let Some(summary) = summary {
            self.conn.execute(
                "UPDATE assets SET status = 'ready', progress_note = NULL, summary = ?2, errors = NULL,
                     progress_state = 'completed', progress = 100, updated_at = ?3,
                     master_expires_at = CASE WHEN json_extract(settings, '$.master_access') = 'temporary'
                                              THEN ?4 END
                 WHERE id = ?1",
                params![
                    asset_id,
                    to_json(summary),
                    now_ms,
                    now_ms / 1000 + MASTER_ACCESS_TTL_S
                ],
            )?;
        }
        for file in files {
            self.upsert_rendition(asset_id, file, now_ms)?;
        }
        let max_attempts = self.max_attempts_of(lease.job_id)?;
        self.queue_pending_renditions(asset_id, max_attempts, now_ms)
    }

    /// Marks the asset errored and the job failed, together.
    pub fn finish_errored(
        &self,
        lease: &Lease,
        asset_id: &str,
        errors: &AssetErrors,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.touch(asset_id)?;
        self.job_failed(lease, asset_id, errors, now_ms)?;
        self.conn.execute(
            "UPDATE assets SET status = 'errored', progress_note = NULL, errors = ?2,
                 progress_state = 'errored', progress = -1, updated_at = ?3
             WHERE id = ?1",
            params![asset_id, to_json(errors), now_ms],
        )?;
        let error = super::UploadError {
            kind: errors.kind.clone(),
            message: errors.messages.join(" "),
        };
        self.asset_errored_for_upload(asset_id, &error)
    }

    /// A renditions job failed for good: its files are errored, the asset
    /// stays as it was.
    pub fn finish_renditions_errored(
        &self,
        lease: &Lease,
        asset_id: &str,
        errors: &AssetErrors,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.touch(asset_id)?;
        self.job_failed(lease, asset_id, errors, now_ms)
    }

    /// Asks for one more rendition file of an asset and queues the job that
    /// makes it (one job for everything pending), or, with `lease_to`,
    /// creates it claimed. Returns the file row and the job id; an existing
    /// file that did not error is returned as it is, with no job.
    pub fn add_rendition(
        &self,
        asset_id: &str,
        file: &RenditionRow,
        settings: &AssetSettings,
        max_attempts: u32,
        now_ms: i64,
        lease_to: Option<&str>,
    ) -> Result<(RenditionRow, Option<i64>), DbError> {
        self.touch(asset_id)?;
        let existing = self
            .conn
            .query_row(
                &format!(
                    "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = ?1 AND name = ?2"
                ),
                params![asset_id, file.name],
                RenditionRow::read,
            )
            .optional()?;
        if let Some(row) = existing
            && row.status != "errored"
        {
            return Ok((row, None));
        }
        self.upsert_rendition(asset_id, file, now_ms)?;
        self.set_settings(asset_id, settings, now_ms)?;
        let job_id = match self.read().queued_job(asset_id, JobKind::Renditions)? {
            Some(id) if lease_to.is_none() => id,
            _ => self.insert_job(
                asset_id,
                JobKind::Renditions,
                max_attempts,
                now_ms,
                lease_to,
            )?,
        };
        Ok((file.clone(), Some(job_id)))
    }

    /// Replaces an asset's settings (`PATCH`, master access, mp4_support).
    pub fn set_settings(
        &self,
        asset_id: &str,
        settings: &AssetSettings,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        self.touch(asset_id)?;
        let n = self.conn.execute(
            "UPDATE assets SET settings = ?2, updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            params![asset_id, to_json(settings), now_ms],
        )?;
        Ok(n > 0)
    }

    /// Sets when temporary master access ends (`None`: it is off).
    pub fn set_master_expiry(
        &self,
        asset_id: &str,
        expires_at_s: Option<i64>,
    ) -> Result<(), DbError> {
        self.touch(asset_id)?;
        self.conn.execute(
            "UPDATE assets SET master_expires_at = ?2 WHERE id = ?1",
            params![asset_id, expires_at_s],
        )?;
        Ok(())
    }

    /// Deletes an asset as far as every reader is concerned, and stops its
    /// jobs; its files are purged later (`assets_to_purge`). Its watch-folder
    /// source, if not yet disposed of, is left where it is (an upload's bytes
    /// are removed). Returns whether the asset existed.
    pub fn delete_asset(&self, asset_id: &str, now_ms: i64) -> Result<bool, DbError> {
        self.touch(asset_id)?;
        let n = self.conn.execute(
            "UPDATE assets SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            params![asset_id, now_ms],
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.cancel_jobs_of(asset_id, now_ms)?;
        self.conn.execute(
            "UPDATE sources SET disposition = 'kept'
             WHERE asset_id = ?1 AND disposition = 'pending' AND origin != 'upload'",
            params![asset_id],
        )?;
        Ok(true)
    }

    /// Records that a deleted asset's files are gone.
    pub fn mark_purged(&self, asset_id: &str, now_ms: i64) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE assets SET purged_at = ?2 WHERE id = ?1 AND deleted_at IS NOT NULL",
            params![asset_id, now_ms],
        )?;
        self.conn.execute(
            "DELETE FROM renditions WHERE asset_id = ?1",
            params![asset_id],
        )?;
        Ok(())
    }
}
