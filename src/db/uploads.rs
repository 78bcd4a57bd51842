//! The `uploads` table: Mux's direct uploads, from `waiting` to
//! `asset_created`, `errored`, `cancelled` or `timed_out`, and how many of
//! their bytes are durable in the spool.
//!
//! Every status change writes its webhook event (`video.upload.*`) in the
//! same transaction, and the change that completes an upload creates its
//! asset in that transaction too: after a crash, either the upload is
//! `asset_created` with its asset, or it is still `waiting` with its bytes.

use rusqlite::{OptionalExtension, params};

use super::{DbError, NewAsset, NewSource, Read, Tx, json_column, to_json};

/// Where a direct upload stands (Mux's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Taking bytes.
    Waiting,
    /// Every byte arrived and the asset exists.
    AssetCreated,
    /// The asset made from it errored (a file that is not media, mostly).
    Errored,
    /// Cancelled over the API before it completed.
    Cancelled,
    /// Not completed before its timeout; its bytes are gone.
    TimedOut,
}

impl UploadStatus {
    fn parse(s: &str) -> Option<UploadStatus> {
        Some(match s {
            "waiting" => UploadStatus::Waiting,
            "asset_created" => UploadStatus::AssetCreated,
            "errored" => UploadStatus::Errored,
            "cancelled" => UploadStatus::Cancelled,
            "timed_out" => UploadStatus::TimedOut,
            _ => return None,
        })
    }
}

/// Why an upload errored, as Mux shows it (`error: {type, message}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadError {
    /// `invalid_input`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A sentence.
    pub message: String,
}

/// A new direct upload.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Its id.
    pub id: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// `*` or one origin (`https://app.example.com`).
    pub cors_origin: String,
    /// Seconds the URL stays valid.
    pub timeout_s: u32,
    /// The settings of the asset it makes, as given.
    pub new_asset_settings: Option<serde_json::Value>,
    /// A test upload (its asset is a test asset).
    pub test: bool,
}

/// A direct upload as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    /// Its id.
    pub id: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Where it stands.
    pub status: UploadStatus,
    /// `*` or one origin.
    pub cors_origin: String,
    /// Seconds the URL stays valid.
    pub timeout_s: u32,
    /// Unix ms after which a waiting upload times out.
    pub expires_at_ms: i64,
    /// The settings of the asset it makes.
    pub new_asset_settings: Option<serde_json::Value>,
    /// A test upload.
    pub test: bool,
    /// The file's size, once a `Content-Range` has said.
    pub total_size: Option<u64>,
    /// Bytes durable in the spool.
    pub received: u64,
    /// The asset, once created.
    pub asset_id: Option<String>,
    /// Why it errored.
    pub error: Option<UploadError>,
}

const UPLOAD_COLUMNS: &str = "id, created_at, status, cors_origin, timeout_s, expires_at, \
                              new_asset_settings, test, total_size, received, asset_id, error";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(UploadRecord, String, Option<String>)> {
    let settings: Option<String> = r.get(6)?;
    let error: Option<String> = r.get(11)?;
    let status: String = r.get(2)?;
    let record = UploadRecord {
        id: r.get(0)?,
        created_at_ms: r.get(1)?,
        status: UploadStatus::Waiting,
        cors_origin: r.get(3)?,
        timeout_s: r.get::<_, i64>(4)? as u32,
        expires_at_ms: r.get(5)?,
        new_asset_settings: settings.and_then(|s| serde_json::from_str(&s).ok()),
        test: r.get(7)?,
        total_size: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        received: r.get::<_, i64>(9)? as u64,
        asset_id: r.get(10)?,
        error: None,
    };
    Ok((record, status, error))
}

fn finish_row(
    (mut record, status, error): (UploadRecord, String, Option<String>),
) -> Result<UploadRecord, DbError> {
    record.status = UploadStatus::parse(&status).ok_or_else(|| DbError::Corrupt {
        table: "uploads",
        detail: format!("upload {}: unknown status {status:?}", record.id),
    })?;
    record.error = error
        .map(|e| json_column("uploads", &format!("upload {}: error", record.id), &e))
        .transpose()?;
    Ok(record)
}

impl Read<'_> {
    /// One upload.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>, DbError> {
        self.conn
            .query_row(
                &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1"),
                params![id],
                read_row,
            )
            .optional()?
            .map(finish_row)
            .transpose()
    }

    /// Uploads, newest first: `limit` of them after skipping `offset`.
    pub fn list_uploads(&self, limit: u32, offset: u64) -> Result<Vec<UploadRecord>, DbError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads ORDER BY created_at DESC, id DESC LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt
            .query_map(params![i64::from(limit), offset as i64], read_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish_row).collect()
    }

    /// Waiting uploads whose timeout passed before `now_ms`.
    pub fn expired_uploads(&self, now_ms: i64) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM uploads WHERE status = 'waiting' AND expires_at <= ?1 ORDER BY expires_at",
        )?;
        let ids = stmt
            .query_map(params![now_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Whether the bytes of upload `id` are still wanted: it is waiting, or
    /// its asset has not yet finished with them.
    pub fn upload_bytes_wanted(&self, id: &str) -> Result<bool, DbError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM uploads u WHERE u.id = ?1 AND (u.status = 'waiting'
                    OR EXISTS (SELECT 1 FROM sources s WHERE s.asset_id = u.asset_id
                               AND s.disposition = 'pending'))",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }
}

impl Tx<'_> {
    fn changed_upload(&self, kind: &'static str, id: &str) -> Result<UploadRecord, DbError> {
        let record = self.read().upload(id)?.ok_or_else(|| DbError::Corrupt {
            table: "uploads",
            detail: format!("upload {id} vanished inside its transaction"),
        })?;
        if let Some(observer) = self.observer {
            for event in observer.upload_events(kind, &record) {
                self.push_event(&event)?;
                self.wrote_events.set(true);
            }
        }
        Ok(record)
    }

    /// Records a new waiting upload (and its `video.upload.created`).
    pub fn create_upload(&self, upload: &NewUpload) -> Result<UploadRecord, DbError> {
        self.conn.execute(
            "INSERT INTO uploads (id, created_at, status, cors_origin, timeout_s, expires_at,
                                  new_asset_settings, test)
             VALUES (?1, ?2, 'waiting', ?3, ?4, ?5, ?6, ?7)",
            params![
                upload.id,
                upload.created_at_ms,
                upload.cors_origin,
                i64::from(upload.timeout_s),
                upload.created_at_ms + i64::from(upload.timeout_s) * 1000,
                upload.new_asset_settings.as_ref().map(to_json),
                upload.test,
            ],
        )?;
        self.changed_upload("video.upload.created", &upload.id)
    }

    /// Records how many bytes of a waiting upload are durable, and its size
    /// once known. Returns whether it was still waiting.
    pub fn set_upload_received(
        &self,
        id: &str,
        received: u64,
        total_size: Option<u64>,
    ) -> Result<bool, DbError> {
        let n = self.conn.execute(
            "UPDATE uploads SET received = ?2, total_size = COALESCE(?3, total_size)
             WHERE id = ?1 AND status = 'waiting'",
            params![id, received as i64, total_size.map(|t| t as i64)],
        )?;
        Ok(n > 0)
    }

    /// Cancels a waiting upload. Returns it as it is now and whether this
    /// call cancelled it (it was waiting), or `None` when there is no such
    /// upload.
    pub fn cancel_upload(&self, id: &str) -> Result<Option<(UploadRecord, bool)>, DbError> {
        let n = self.conn.execute(
            "UPDATE uploads SET status = 'cancelled' WHERE id = ?1 AND status = 'waiting'",
            params![id],
        )?;
        if n == 0 {
            return Ok(self.read().upload(id)?.map(|r| (r, false)));
        }
        Ok(Some((
            self.changed_upload("video.upload.cancelled", id)?,
            true,
        )))
    }

    /// Times out a waiting upload past its expiry. Returns whether it did.
    /// (Mux has no event for this.)
    pub fn time_out_upload(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self.conn.execute(
            "UPDATE uploads SET status = 'timed_out'
             WHERE id = ?1 AND status = 'waiting' AND expires_at <= ?2",
            params![id, now_ms],
        )?;
        Ok(n > 0)
    }

    /// Completes a waiting upload: its asset, job and source are created and
    /// the upload moves to `asset_created`, together (and on to `errored`
    /// when the asset is `born_errored`). `None` when it is no
    /// longer waiting (cancelled or timed out meanwhile): nothing is created.
    pub fn complete_upload(
        &self,
        id: &str,
        asset: &NewAsset,
        source: &NewSource,
        max_attempts: u32,
        now_ms: i64,
        born_errored: Option<&crate::asset::AssetErrors>,
    ) -> Result<Option<UploadRecord>, DbError> {
        let n = self.conn.execute(
            "UPDATE uploads SET status = 'asset_created', asset_id = ?2, received = ?3,
                                total_size = ?3
             WHERE id = ?1 AND status = 'waiting'",
            params![id, asset.id, source.identity.size as i64],
        )?;
        if n == 0 {
            return Ok(None);
        }
        self.create_asset(
            asset,
            Some(source),
            max_attempts,
            now_ms,
            None,
            born_errored,
        )?;
        self.conn.execute(
            "UPDATE assets SET upload_id = ?2 WHERE id = ?1",
            params![asset.id, id],
        )?;
        let created = self.changed_upload("video.upload.asset_created", id)?;
        match born_errored {
            Some(errors) => {
                let error = UploadError {
                    kind: errors.kind.clone(),
                    message: errors.messages.join(" "),
                };
                self.asset_errored_for_upload(&asset.id, &error)?;
                Ok(self.read().upload(id)?)
            }
            None => Ok(Some(created)),
        }
    }

    /// The asset made from an upload errored: so does the upload (and its
    /// `video.upload.errored` is written).
    pub(super) fn asset_errored_for_upload(
        &self,
        asset_id: &str,
        error: &UploadError,
    ) -> Result<(), DbError> {
        let id: Option<String> = self
            .conn
            .query_row(
                "UPDATE uploads SET status = 'errored', error = ?2
                 WHERE asset_id = ?1 AND status = 'asset_created' RETURNING id",
                params![asset_id, to_json(error)],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            self.changed_upload("video.upload.errored", &id)?;
        }
        Ok(())
    }
}
