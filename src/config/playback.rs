//! `[playback]` (where stream URLs point, whose `X-Forwarded-For` to trust,
//! the GeoIP database for token country rules) and `[cloudflare]` (the
//! account id and API token of the Cloudflare Stream-compatible routes).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Secret;
use crate::netpolicy::Rule;

/// `[playback]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlayback {
    /// The base of stream URLs handed out (`{base}/{PLAYBACK_ID}/highest.mp4`);
    /// defaults to the API's base URL + `/stream`.
    pub stream_base_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the viewer (addresses or CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// A MaxMind Country or City database, for `ip.geoip.country` rules.
    pub geoip_database: Option<PathBuf>,
}

/// `[playback]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackConfig {
    /// The base of stream URLs, without a trailing slash (`None`: the API's
    /// base + `/stream`).
    pub stream_base_url: Option<String>,
    /// Proxies trusted to name the viewer.
    pub trusted_proxies: Vec<Rule>,
    /// The GeoIP database file.
    pub geoip_database: Option<PathBuf>,
}

impl RawPlayback {
    /// Checks every value, pushing one sentence per problem.
    pub fn validate(
        self,
        resolve: &dyn Fn(&Path) -> PathBuf,
        problems: &mut Vec<String>,
    ) -> PlaybackConfig {
        let stream_base_url = self
            .stream_base_url
            .map(|u| super::api::base_url("playback.stream_base_url", &u, problems));
        let mut trusted_proxies = Vec::new();
        for entry in &self.trusted_proxies {
            match Rule::parse(entry) {
                Ok(rule @ Rule::Network { .. }) => trusted_proxies.push(rule),
                _ => problems.push(format!(
                    "playback.trusted_proxies: {entry:?} is not an address or CIDR"
                )),
            }
        }
        PlaybackConfig {
            stream_base_url,
            trusted_proxies,
            geoip_database: self.geoip_database.map(|p| resolve(&p)),
        }
    }
}

/// `[cloudflare]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCloudflare {
    /// The account id in `/client/v4/accounts/{account_id}/stream/…`.
    pub account_id: Option<String>,
    /// The API token (`Authorization: Bearer …`).
    pub api_token: Option<String>,
}

impl fmt::Debug for RawCloudflare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCloudflare")
            .field("account_id", &self.account_id)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[cloudflare]`, validated: both set, or the routes are off.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudflareConfig {
    /// The account id.
    pub account_id: String,
    /// The API token.
    pub api_token: Secret,
}

impl RawCloudflare {
    /// Checks every value, pushing one sentence per problem.
    pub fn validate(self, problems: &mut Vec<String>) -> Option<CloudflareConfig> {
        match (self.account_id, self.api_token) {
            (None, None) => None,
            (Some(account_id), Some(api_token)) => {
                let mut ok = true;
                if !crate::playback::is_id(&account_id) {
                    problems.push(
                        "cloudflare.account_id must be 1 to 64 letters and digits".to_owned(),
                    );
                    ok = false;
                }
                if api_token.len() < 16 {
                    problems.push("cloudflare.api_token must be at least 16 characters".to_owned());
                    ok = false;
                }
                ok.then_some(CloudflareConfig {
                    account_id,
                    api_token: Secret(api_token),
                })
            }
            _ => {
                problems.push(
                    "cloudflare.account_id and cloudflare.api_token are set together, or neither"
                        .to_owned(),
                );
                None
            }
        }
    }
}
