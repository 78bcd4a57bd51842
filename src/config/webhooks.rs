//! `[webhooks]`: where events are delivered, which ones, and how hard reeld
//! tries.

use std::fmt;

use serde::Deserialize;

use super::Secret;

/// `[webhooks]` as written (over the embedded default, which sets every key
/// but the endpoints).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    /// The receivers.
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
    /// Seconds one delivery may take before it counts as failed.
    pub timeout_seconds: f64,
    /// Requests in flight per endpoint, at most.
    pub max_in_flight_per_endpoint: usize,
    /// How long an event is retried before it is marked failed, in hours.
    pub retry_for_hours: f64,
    /// The first retry's delay in seconds; it doubles per failure, up to an hour.
    pub retry_base_seconds: f64,
    /// Allow endpoints on loopback, private and link-local addresses.
    pub allow_private_addresses: bool,
    /// `environment.name` and `environment.id` in every event.
    pub environment_name: String,
    /// See `environment_name`.
    pub environment_id: String,
}

/// `[[webhooks.endpoints]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// `http(s)://…` to POST events to.
    pub url: String,
    /// The signing secret (Mux-Signature).
    pub secret: String,
    /// Event type patterns (`*` matches any run of characters); all events
    /// when left out.
    #[serde(default)]
    pub events: Vec<String>,
}

impl fmt::Debug for RawEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEndpoint")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .finish()
    }
}

/// One receiver, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Where to POST; also the endpoint's key in the outbox.
    pub url: String,
    /// The signing secret.
    pub secret: Secret,
    /// Event type patterns; empty means every event.
    pub events: Vec<String>,
}

impl Endpoint {
    /// Whether events of `kind` go to this endpoint.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|p| glob_match(p, kind))
    }
}

/// `[webhooks]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhooksConfig {
    /// The receivers.
    pub endpoints: Vec<Endpoint>,
    /// Time limit of one delivery.
    pub timeout: std::time::Duration,
    /// Requests in flight per endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// How long an event is retried.
    pub retry_for: std::time::Duration,
    /// The first retry's delay.
    pub retry_base: std::time::Duration,
    /// Whether loopback and private addresses may be delivered to.
    pub allow_private_addresses: bool,
    /// `environment.name`.
    pub environment_name: String,
    /// `environment.id`.
    pub environment_id: String,
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

impl RawWebhooks {
    /// Checks every value, pushing one sentence per problem.
    pub fn validate(self, problems: &mut Vec<String>) -> Option<WebhooksConfig> {
        let before = problems.len();
        let mut urls = std::collections::BTreeSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            match url::Url::parse(&e.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => problems.push(format!(
                    "webhooks.endpoints[{i}].url {:?} must be an http:// or https:// URL",
                    e.url
                )),
            }
            if e.secret.is_empty() {
                problems.push(format!("webhooks.endpoints[{i}].secret must not be empty"));
            }
            if e.events.iter().any(|p| p.is_empty()) {
                problems.push(format!(
                    "webhooks.endpoints[{i}].events has an empty pattern"
                ));
            }
            if !urls.insert(e.url.as_str()) {
                problems.push(format!(
                    "webhooks.endpoints[{i}].url {:?} is listed twice",
                    e.url
                ));
            }
        }
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds > 0.0) {
            problems.push("webhooks.timeout_seconds must be > 0".to_owned());
        }
        if self.max_in_flight_per_endpoint == 0 {
            problems.push("webhooks.max_in_flight_per_endpoint must be at least 1".to_owned());
        }
        if !(self.retry_for_hours.is_finite() && self.retry_for_hours > 0.0) {
            problems.push("webhooks.retry_for_hours must be > 0".to_owned());
        }
        if !(self.retry_base_seconds.is_finite() && self.retry_base_seconds > 0.0) {
            problems.push("webhooks.retry_base_seconds must be > 0".to_owned());
        }
        if problems.len() > before {
            return None;
        }
        Some(WebhooksConfig {
            endpoints: self
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    url: e.url,
                    secret: Secret(e.secret),
                    events: e.events,
                })
                .collect(),
            timeout: std::time::Duration::from_secs_f64(self.timeout_seconds),
            max_in_flight_per_endpoint: self.max_in_flight_per_endpoint,
            retry_for: std::time::Duration::from_secs_f64(self.retry_for_hours * 3600.0),
            retry_base: std::time::Duration::from_secs_f64(self.retry_base_seconds),
            allow_private_addresses: self.allow_private_addresses,
            environment_name: self.environment_name,
            environment_id: self.environment_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("video.asset.*", "video.asset.ready"));
        assert!(glob_match("video.asset.*", "video.asset.master.ready"));
        assert!(glob_match("*.ready", "video.asset.master.ready"));
        assert!(glob_match("video.asset.ready", "video.asset.ready"));
        assert!(!glob_match("video.asset.ready", "video.asset.readyx"));
        assert!(!glob_match("video.upload.*", "video.asset.ready"));
        assert!(glob_match("*", "anything"));
    }
}
