//! The `renditions` table: one row per static rendition file of an asset,
//! with its outcome and what the file really is once made.

use rusqlite::{OptionalExtension, params};

use super::{DbError, Read, Tx};

/// The columns `RenditionRow::read` expects, in its order.
pub(super) const RENDITION_COLUMNS: &str = "id, name, ext, resolution, kind, passthrough, status, resolution_tier, width, height, bitrate, filesize";

/// One rendition file as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionRow {
    /// Stable id.
    pub id: String,
    /// File name.
    pub name: String,
    /// `mp4` or `m4a`.
    pub ext: String,
    /// Requested resolution, as Mux spells it.
    pub resolution: Option<String>,
    /// `standard` or `advanced`.
    pub kind: String,
    /// User data.
    pub passthrough: Option<String>,
    /// `preparing`, `ready`, `skipped`, `errored`.
    pub status: String,
    /// Tier as made.
    pub resolution_tier: Option<String>,
    /// Pixels.
    pub width: Option<u32>,
    /// Pixels.
    pub height: Option<u32>,
    /// Bits per second.
    pub bitrate: Option<u64>,
    /// Bytes.
    pub filesize: Option<u64>,
}

impl RenditionRow {
    /// A new file row with a fresh id, not yet measured: `name` (its
    /// extension decides `ext`), the requested `resolution` (none for legacy
    /// `mp4_support` files), `kind` and `status` as Mux spells them.
    pub fn new(
        name: &str,
        resolution: Option<&str>,
        kind: &str,
        passthrough: Option<String>,
        status: &str,
    ) -> RenditionRow {
        RenditionRow {
            id: crate::asset::new_asset_id(),
            name: name.to_owned(),
            ext: if name.ends_with(".m4a") { "m4a" } else { "mp4" }.to_owned(),
            resolution: resolution.map(str::to_owned),
            kind: kind.to_owned(),
            passthrough,
            status: status.to_owned(),
            resolution_tier: None,
            width: None,
            height: None,
            bitrate: None,
            filesize: None,
        }
    }

    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RenditionRow> {
        Ok(RenditionRow {
            id: r.get(0)?,
            name: r.get(1)?,
            ext: r.get(2)?,
            resolution: r.get(3)?,
            kind: r.get(4)?,
            passthrough: r.get(5)?,
            status: r.get(6)?,
            resolution_tier: r.get(7)?,
            width: r.get(8)?,
            height: r.get(9)?,
            bitrate: r.get::<_, Option<i64>>(10)?.map(|b| b as u64),
            filesize: r.get::<_, Option<i64>>(11)?.map(|b| b as u64),
        })
    }
}

impl Read<'_> {
    /// The rendition files of an asset, in the order they were requested.
    pub fn renditions(&self, asset_id: &str) -> Result<Vec<RenditionRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = ?1 ORDER BY created_at, rowid"
        ))?;
        let rows = stmt.query_map(params![asset_id], RenditionRow::read)?;
        rows.collect::<Result<_, _>>().map_err(DbError::from)
    }

    /// One rendition file by name.
    pub fn rendition(&self, asset_id: &str, name: &str) -> Result<Option<RenditionRow>, DbError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = ?1 AND name = ?2"
                ),
                params![asset_id, name],
                RenditionRow::read,
            )
            .optional()?)
    }
}

impl Tx<'_> {
    /// Records the planned rendition files of an asset (replacing what the
    /// request alone suggested), so that skips show while the encode runs.
    pub fn record_planned_renditions(
        &self,
        asset_id: &str,
        files: &[RenditionRow],
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.touch(asset_id)?;
        for file in files {
            self.upsert_rendition(asset_id, file, now_ms)?;
        }
        Ok(())
    }

    /// Removes one rendition file's row. Returns whether it existed.
    pub fn delete_rendition(&self, asset_id: &str, rendition_id: &str) -> Result<bool, DbError> {
        self.touch(asset_id)?;
        let n = self.conn.execute(
            "DELETE FROM renditions WHERE asset_id = ?1 AND id = ?2",
            params![asset_id, rendition_id],
        )?;
        Ok(n > 0)
    }

    pub(super) fn upsert_rendition(
        &self,
        asset_id: &str,
        f: &RenditionRow,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO renditions (asset_id, name, id, ext, resolution, kind, passthrough, status,
                                     resolution_tier, width, height, bitrate, filesize, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (asset_id, name) DO UPDATE SET
                 status = excluded.status, resolution_tier = excluded.resolution_tier,
                 width = excluded.width, height = excluded.height,
                 bitrate = excluded.bitrate, filesize = excluded.filesize",
            params![
                asset_id,
                f.name,
                f.id,
                f.ext,
                f.resolution,
                f.kind,
                f.passthrough,
                f.status,
                f.resolution_tier,
                f.width,
                f.height,
                f.bitrate.map(|b| b as i64),
                f.filesize.map(|b| b as i64),
                now_ms,
            ],
        )?;
        Ok(())
    }
}
