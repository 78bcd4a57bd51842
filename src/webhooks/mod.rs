//! Webhooks, as Mux sends them: events worked out from each committed change
//! (`Observer`, called by the database inside the change's transaction),
//! kept in the outbox, and delivered with Mux's signature by the relay
//! (`relay.rs`), with retries across restarts.

mod delivery;
pub mod events;
pub mod relay;
pub mod signature;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::WebhooksConfig;
use crate::db::{AssetRecord, ChangeObserver, OutboxEvent, UploadRecord};
use crate::links::Links;

/// Turns asset changes into outbox events for the configured endpoints.
pub struct Observer {
    config: WebhooksConfig,
    links: Links,
    /// Wakes the relay when new events commit.
    pub signal: Arc<tokio::sync::Notify>,
}

impl Observer {
    /// An observer for `config`'s endpoints; `links` signs the URLs in `data`.
    pub fn new(config: WebhooksConfig, links: Links) -> Observer {
        Observer {
            config,
            links,
            signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn json(&self, record: Option<&AssetRecord>, now_s: i64) -> Option<Value> {
        let record = record?.clone();
        crate::view::asset(record, Some(&self.links), now_s)
            .ok()
            .and_then(|a| serde_json::to_value(a).ok())
    }
}

impl ChangeObserver for Observer {
    fn events(
        &self,
        before: Option<&AssetRecord>,
        after: Option<&AssetRecord>,
    ) -> Vec<OutboxEvent> {
        if self.config.endpoints.is_empty() {
            return Vec::new();
        }
        let now_s = crate::clock::now_s();
        let now_ms = crate::jobs::now_ms();
        let (b, a) = (self.json(before, now_s), self.json(after, now_s));
        events::derive(b.as_ref(), a.as_ref())
            .into_iter()
            .filter_map(|e| {
                let endpoints = self.endpoints_for(e.kind);
                if endpoints.is_empty() {
                    return None;
                }
                let asset_id = match e.object_type {
                    "asset" => e.object_id.clone(),
                    _ => e.data["asset_id"].as_str().unwrap_or_default().to_owned(),
                };
                Some(self.envelope(
                    e.kind,
                    e.object_type,
                    &e.object_id,
                    &asset_id,
                    e.data,
                    now_ms,
                    endpoints,
                ))
            })
            .collect()
    }

    fn upload_events(&self, kind: &'static str, upload: &UploadRecord) -> Vec<OutboxEvent> {
        let endpoints = self.endpoints_for(kind);
        if endpoints.is_empty() {
            return Vec::new();
        }
        let data = crate::view::upload(upload, Some(&self.links), false);
        // An upload's events go out in order among themselves.
        vec![self.envelope(
            kind,
            "upload",
            &upload.id,
            &upload.id,
            data,
            crate::jobs::now_ms(),
            endpoints,
        )]
    }

    fn committed(&self) {
        self.signal.notify_one();
    }
}

impl Observer {
    fn endpoints_for(&self, kind: &str) -> Vec<String> {
        self.config
            .endpoints
            .iter()
            .filter(|ep| ep.wants(kind))
            .map(|ep| ep.url.clone())
            .collect()
    }

    /// Mux's event envelope (without `attempts`, added per delivery).
    #[allow(clippy::too_many_arguments)]
    fn envelope(
        &self,
        kind: &str,
        object_type: &str,
        object_id: &str,
        order_key: &str,
        data: Value,
        now_ms: i64,
        endpoints: Vec<String>,
    ) -> OutboxEvent {
        let id = uuid_v4();
        let body = json!({
            "type": kind,
            "id": id,
            "created_at": rfc3339(now_ms),
            "object": {"type": object_type, "id": object_id},
            "environment": {
                "name": self.config.environment_name,
                "id": self.config.environment_id,
            },
            "data": data,
        });
        OutboxEvent {
            id,
            kind: kind.to_owned(),
            asset_id: Some(order_key.to_owned()),
            created_at_ms: now_ms,
            body: body.to_string(),
            endpoints,
        }
    }
}

/// A random (version 4) UUID.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Unix ms as RFC 3339 UTC with milliseconds (`2026-12-02T04:05:06.789Z`).
pub fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ids() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_270_706_789), "2026-12-03T04:05:06.789Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, uuid_v4());
    }
}
