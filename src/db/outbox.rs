//! The webhook outbox: `outbox` holds each event once, as it was when the
//! change that caused it committed (in the same transaction); `deliveries`
//! holds one row per event and endpoint, with its attempts so far.
//!
//! A relay claims due deliveries like jobs (claimed_by, claimed_until), so
//! several relays never send the same one; the events of one asset go to an
//! endpoint in order, because only the oldest pending one is due.

use rusqlite::params;

use super::{DbError, Read, Tx};

/// An event to record, with the endpoints that want it.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The event's UUID.
    pub id: String,
    /// `video.asset.ready`, …
    pub kind: String,
    /// The asset it is about, for ordering.
    pub asset_id: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Mux's envelope without `attempts`, as JSON.
    pub body: String,
    /// The endpoint URLs it goes to.
    pub endpoints: Vec<String>,
}

/// A claimed delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event's row.
    pub event_seq: i64,
    /// The event's UUID.
    pub event_id: String,
    /// Its type.
    pub kind: String,
    /// Where it goes.
    pub endpoint: String,
    /// The envelope without `attempts`.
    pub body: String,
    /// The attempts so far, a JSON list.
    pub attempts: String,
    /// When the event happened, Unix ms.
    pub created_at_ms: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx: done.
    Delivered,
    /// Try again at this Unix ms.
    RetryAt(i64),
    /// Given up on.
    Failed,
}

/// One delivery as listed by `GET /video/v1/webhook-events`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    /// The event's UUID.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Every attempt so far.
    pub attempts: serde_json::Value,
    /// When the event happened, Unix seconds as a string (as Mux's times).
    pub created_at: String,
    /// The asset it is about.
    pub asset_id: Option<String>,
}

impl Tx<'_> {
    /// Records an event and its deliveries.
    pub(super) fn push_event(&self, e: &OutboxEvent) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO outbox (id, type, asset_id, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.id, e.kind, e.asset_id, e.created_at_ms, e.body],
        )?;
        let seq = self.conn.last_insert_rowid();
        for endpoint in &e.endpoints {
            self.conn.execute(
                "INSERT INTO deliveries (event_seq, endpoint, asset_id, status, next_attempt_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4)",
                params![seq, endpoint, e.asset_id, e.created_at_ms],
            )?;
        }
        Ok(())
    }

    /// Claims up to `limit` due deliveries to `endpoint` for `worker` until
    /// `now_ms + lease_ms`: pending, due, unclaimed, and the oldest pending
    /// one of their asset.
    pub fn claim_deliveries(
        &self,
        endpoint: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, DbError> {
        let rows: Vec<Delivery> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT d.event_seq, o.id, o.type, o.body, d.attempts, o.created_at
                   FROM deliveries d JOIN outbox o ON o.seq = d.event_seq
                  WHERE d.endpoint = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2
                    AND (d.claimed_until IS NULL OR d.claimed_until < ?2)
                    AND NOT EXISTS (SELECT 1 FROM deliveries p
                                     WHERE p.endpoint = d.endpoint AND d.asset_id IS NOT NULL
                                       AND p.asset_id = d.asset_id AND p.status = 'pending'
                                       AND p.event_seq < d.event_seq)
                  ORDER BY d.event_seq LIMIT ?3",
            )?;
            stmt.query_map(params![endpoint, now_ms, limit as i64], |r| {
                Ok(Delivery {
                    event_seq: r.get(0)?,
                    event_id: r.get(1)?,
                    kind: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                    created_at_ms: r.get(5)?,
                    endpoint: endpoint.to_owned(),
                })
            })?
            .collect::<Result<_, _>>()?
        };
        for d in &rows {
            self.conn.execute(
                "UPDATE deliveries SET claimed_by = ?3, claimed_until = ?4
                 WHERE event_seq = ?1 AND endpoint = ?2",
                params![d.event_seq, d.endpoint, worker, now_ms + lease_ms],
            )?;
        }
        Ok(rows)
    }

    /// Records one attempt of a claimed delivery: the attempts list as it is
    /// now, and what comes next. Refused (no row changes) if another relay
    /// has claimed it since.
    pub fn record_attempt(
        &self,
        delivery: &Delivery,
        worker: &str,
        attempts: &str,
        outcome: AttemptOutcome,
    ) -> Result<bool, DbError> {
        let (status, next) = match outcome {
            AttemptOutcome::Delivered => ("delivered", None),
            AttemptOutcome::RetryAt(at) => ("pending", Some(at)),
            AttemptOutcome::Failed => ("failed", None),
        };
        let n = self.conn.execute(
            "UPDATE deliveries SET status = ?4, attempts = ?5,
                 next_attempt_at = COALESCE(?6, next_attempt_at), claimed_by = NULL, claimed_until = NULL
             WHERE event_seq = ?1 AND endpoint = ?2 AND claimed_by = ?3",
            params![delivery.event_seq, delivery.endpoint, worker, status, attempts, next],
        )?;
        Ok(n == 1)
    }

    /// Frees deliveries claimed by relays that `is_dead` says are gone (a
    /// crash on this host), so they go out at once after a restart.
    pub fn release_dead_claims(&self, is_dead: impl Fn(&str) -> bool) -> Result<usize, DbError> {
        let holders: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_by IS NOT NULL AND status = 'pending'",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut freed = 0;
        for holder in holders.into_iter().filter(|h| is_dead(h)) {
            freed += self.conn.execute(
                "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?1",
                params![holder],
            )?;
        }
        Ok(freed)
    }

    /// Sends an event again: its failed (or waiting) deliveries are due now.
    /// Returns how many deliveries that touched (0: no such event).
    pub fn retry_event(&self, event_id: &str, now_ms: i64) -> Result<usize, DbError> {
        Ok(self.conn.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2
              WHERE event_seq = (SELECT seq FROM outbox WHERE id = ?1) AND status != 'delivered'",
            params![event_id, now_ms],
        )?)
    }
}

impl Read<'_> {
    /// Deliveries, newest event first, optionally of one status.
    pub fn deliveries(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.id, o.type, d.endpoint, d.status, d.attempts, o.created_at, o.asset_id
               FROM deliveries d JOIN outbox o ON o.seq = d.event_seq
              WHERE (?1 IS NULL OR d.status = ?1)
              ORDER BY d.event_seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![status, limit], |r| {
            let attempts: String = r.get(4)?;
            Ok(DeliveryRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                endpoint: r.get(2)?,
                status: r.get(3)?,
                attempts: serde_json::from_str(&attempts).unwrap_or(serde_json::Value::Null),
                created_at: (r.get::<_, i64>(5)? / 1000).to_string(),
                asset_id: r.get(6)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(DbError::from)
    }

    /// Pending deliveries due by `now_ms` (what a flush still has to send).
    pub fn due_deliveries(&self, now_ms: i64) -> Result<usize, DbError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1",
            params![now_ms],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }
}
