//! The `playback_ids` and `signing_keys` tables, Cloudflare's
//! `requireSignedURLs` flag on an asset, and how far each rendition file's
//! encode has come (Cloudflare's `percentComplete`).

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{DbError, Lease, Read, Tx};
use crate::playback::{PlaybackId, PlaybackPolicy};

/// A signing key as kept: its public half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// The `kid`.
    pub id: String,
    /// SPKI PEM.
    pub public_key: String,
    /// `mux`, `cloudflare` or `cli`.
    pub origin: String,
    /// Unix s.
    pub created_at: i64,
}

fn read_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRow> {
    Ok(SigningKeyRow {
        id: r.get(0)?,
        public_key: r.get(1)?,
        origin: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn policy(text: String) -> Result<PlaybackPolicy, DbError> {
    PlaybackPolicy::parse(&text).ok_or_else(|| DbError::Corrupt {
        table: "playback_ids",
        detail: format!("unknown policy {text:?}"),
    })
}

impl Read<'_> {
    /// An asset's playback IDs, oldest first.
    pub fn playback_ids(&self, asset_id: &str) -> Result<Vec<PlaybackId>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, policy FROM playback_ids WHERE asset_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map(params![asset_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (id, text) = row?;
            Ok(PlaybackId {
                id,
                policy: policy(text)?,
            })
        })
        .collect()
    }

    /// The asset a playback ID belongs to (if neither is deleted) and its
    /// policy.
    pub fn playback_target(
        &self,
        playback_id: &str,
    ) -> Result<Option<(String, PlaybackPolicy)>, DbError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT p.asset_id, p.policy FROM playback_ids p JOIN assets a ON a.id = p.asset_id
                 WHERE p.id = ?1 AND a.deleted_at IS NULL",
                params![playback_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(asset, text)| Ok((asset, policy(text)?)))
            .transpose()
    }

    /// One signing key.
    pub fn signing_key(&self, id: &str) -> Result<Option<SigningKeyRow>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, public_key, origin, created_at FROM signing_keys WHERE id = ?1",
                params![id],
                read_key,
            )
            .optional()?)
    }

    /// Signing keys, newest first, `limit` from `offset`.
    pub fn signing_keys(&self, limit: u32, offset: u64) -> Result<Vec<SigningKeyRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, public_key, origin, created_at FROM signing_keys
             ORDER BY created_at DESC, id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![limit, offset as i64], read_key)?;
        rows.collect::<Result<_, _>>().map_err(DbError::from)
    }

    /// How far the encode of each of an asset's rendition files has come,
    /// by file name (files no job has reported on yet are absent).
    pub fn rendition_progress(&self, asset_id: &str) -> Result<HashMap<String, f64>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, progress FROM renditions WHERE asset_id = ?1 AND progress IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![asset_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>().map_err(DbError::from)
    }
}

impl Tx<'_> {
    /// Adds a playback ID to an asset.
    pub fn add_playback_id(
        &self,
        asset_id: &str,
        id: &str,
        policy: PlaybackPolicy,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO playback_ids (id, asset_id, policy, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, asset_id, policy.as_str(), now_ms],
        )?;
        Ok(())
    }

    /// Removes one of an asset's playback IDs. Returns whether it existed.
    pub fn delete_playback_id(&self, asset_id: &str, id: &str) -> Result<bool, DbError> {
        let n = self.conn.execute(
            "DELETE FROM playback_ids WHERE asset_id = ?1 AND id = ?2",
            params![asset_id, id],
        )?;
        Ok(n > 0)
    }

    /// Sets Cloudflare's `requireSignedURLs`. Returns whether the asset exists.
    pub fn set_require_signed_urls(&self, asset_id: &str, on: bool) -> Result<bool, DbError> {
        let n = self.conn.execute(
            "UPDATE assets SET require_signed_urls = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            params![asset_id, on],
        )?;
        Ok(n > 0)
    }

    /// Keeps the public half of a new signing key.
    pub fn add_signing_key(&self, key: &SigningKeyRow) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO signing_keys (id, public_key, origin, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![key.id, key.public_key, key.origin, key.created_at],
        )?;
        Ok(())
    }

    /// Forgets a signing key: tokens it signed stop working at once.
    /// Returns whether it existed.
    pub fn delete_signing_key(&self, id: &str) -> Result<bool, DbError> {
        let n = self
            .conn
            .execute("DELETE FROM signing_keys WHERE id = ?1", params![id])?;
        Ok(n > 0)
    }

    /// Records how far the files an asset's running job makes have come,
    /// if `lease` still holds the job.
    pub fn set_rendition_progress(
        &self,
        lease: &Lease,
        asset_id: &str,
        percent: f64,
    ) -> Result<(), DbError> {
        self.ensure_held(lease)?;
        self.conn.execute(
            "UPDATE renditions SET progress = ?2 WHERE asset_id = ?1 AND status = 'preparing'",
            params![asset_id, percent],
        )?;
        Ok(())
    }
}
