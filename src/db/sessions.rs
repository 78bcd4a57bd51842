//! The `dashboard_sessions` table: who is signed in to the web dashboard.
//!
//! The cookie's value is a random secret; only its SHA-256 digest is
//! stored, so a copy of the database does not sign anybody in. A session
//! lives until it expires or its holder signs out. It is kept in the
//! database, not in a process, so every machine serving the API (see the
//! scale-out notes) accepts it and a restart signs nobody out.

use rusqlite::{OptionalExtension, params};

use super::{DbError, Read, Tx};

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The API token it signed in with.
    pub token_id: String,
    /// The CSRF token its state-changing requests must carry.
    pub csrf: String,
    /// A digest of the token's secret at sign-in: a new secret for the same
    /// token id ends the session.
    pub token_check: Vec<u8>,
    /// Unix ms after which it is no longer accepted.
    pub expires_at_ms: i64,
}

impl Read<'_> {
    /// The live session whose cookie digests to `id_digest`, at `now_ms`.
    pub fn session(&self, id_digest: &[u8], now_ms: i64) -> Result<Option<SessionRow>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT token_id, csrf, expires_at, token_check FROM dashboard_sessions
                 WHERE id_digest = ?1 AND expires_at > ?2",
                params![id_digest, now_ms],
                |r| {
                    Ok(SessionRow {
                        token_id: r.get(0)?,
                        csrf: r.get(1)?,
                        expires_at_ms: r.get(2)?,
                        token_check: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }
}

impl Tx<'_> {
    /// Records a session, and forgets every expired one.
    pub fn insert_session(
        &self,
        id_digest: &[u8],
        row: &SessionRow,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.conn.execute(
            "DELETE FROM dashboard_sessions WHERE expires_at <= ?1",
            params![now_ms],
        )?;
        self.conn.execute(
            "INSERT INTO dashboard_sessions
                 (id_digest, token_id, csrf, token_check, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id_digest,
                row.token_id,
                row.csrf,
                row.token_check,
                now_ms,
                row.expires_at_ms
            ],
        )?;
        Ok(())
    }

    /// Ends a session (sign-out). Whether there was one.
    pub fn delete_session(&self, id_digest: &[u8]) -> Result<bool, DbError> {
        Ok(self.conn.execute(
            "DELETE FROM dashboard_sessions WHERE id_digest = ?1",
            params![id_digest],
        )? == 1)
    }
}
