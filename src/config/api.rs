//! `[api]`: the HTTP listener, its access tokens, the folders `file://`
//! inputs may come from, the key that signs download URLs, the upload
//! limit, and `[api.url_inputs]` (what `http(s)://` inputs may reach).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Secret;

/// `[api]` as written (over the embedded default, which sets every key
/// that has a default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// `HOST:PORT` to listen on; port 0 picks a free one.
    pub listen: String,
    /// The scheme, host and port applications reach reeld at, for the URLs
    /// reeld hands out (`master.url`, rendition `url`). Defaults to
    /// `http://` + `listen`.
    pub public_base_url: Option<String>,
    /// The same setting as `[playback] stream_base_url`, accepted here too
    /// because Mux's model keeps stream URLs beside the API's.
    pub stream_base_url: Option<String>,
    /// Access tokens: HTTP Basic user (`id`) and password (`secret`).
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// Folders below which `file://` inputs of `POST /video/v1/assets` may lie.
    pub allowed_input_dirs: Vec<PathBuf>,
    /// Key for signing download URLs (at least 32 characters). Without it,
    /// reeld generates one and keeps it beside the database.
    pub url_signing_key: Option<String>,
    /// Lifetime of a rendition download URL, in seconds.
    pub download_url_ttl_seconds: u64,
    /// Largest JSON request body, in bytes.
    pub max_json_body_bytes: usize,
    /// Downloads served at once; more get 503 with `Retry-After`.
    pub max_concurrent_downloads: usize,
    /// The largest file a direct upload may send, in bytes.
    pub max_upload_bytes: u64,
    /// `[api.url_inputs]`: fetching `http(s)://` inputs.
    pub url_inputs: RawUrlInputs,
}

/// `[api.url_inputs]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlInputs {
    /// Hosts and networks fetched despite the built-in refusals.
    pub allow: Vec<String>,
    /// Hosts and networks never fetched.
    pub deny: Vec<String>,
    /// The largest input file, in bytes.
    pub max_bytes: u64,
    /// Time to connect, in seconds.
    pub connect_timeout_seconds: f64,
    /// Time for the whole download, in seconds.
    pub total_timeout_seconds: f64,
    /// Redirects followed.
    pub max_redirects: usize,
}

/// `[api.url_inputs]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlInputsConfig {
    /// Which hosts and addresses may be fetched.
    pub policy: crate::netpolicy::NetPolicy,
    /// The largest input file.
    pub max_bytes: u64,
    /// Time to connect.
    pub connect_timeout: std::time::Duration,
    /// Time for the whole download.
    pub total_timeout: std::time::Duration,
    /// Redirects followed.
    pub max_redirects: usize,
}

impl RawUrlInputs {
    fn validate(self, problems: &mut Vec<String>) -> UrlInputsConfig {
        let mut rules = |list: &[String], name: &str| {
            list.iter()
                .filter_map(|entry| match crate::netpolicy::Rule::parse(entry) {
                    Ok(rule) => Some(rule),
                    Err(why) => {
                        problems.push(format!("api.url_inputs.{name}: {why}"));
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let policy = crate::netpolicy::NetPolicy {
            allow: rules(&self.allow, "allow"),
            deny: rules(&self.deny, "deny"),
        };
        let seconds = |value: f64, name: &str, problems: &mut Vec<String>| {
            if value.is_finite() && value > 0.0 {
                std::time::Duration::from_secs_f64(value)
            } else {
                problems.push(format!(
                    "api.url_inputs.{name} must be a positive number of seconds"
                ));
                std::time::Duration::from_secs(1)
            }
        };
        let connect_timeout = seconds(
            self.connect_timeout_seconds,
            "connect_timeout_seconds",
            problems,
        );
        let total_timeout = seconds(
            self.total_timeout_seconds,
            "total_timeout_seconds",
            problems,
        );
        if self.max_bytes == 0 {
            problems.push("api.url_inputs.max_bytes must be at least 1".to_owned());
        }
        if self.max_redirects > 20 {
            problems.push("api.url_inputs.max_redirects must be at most 20".to_owned());
        }
        UrlInputsConfig {
            policy,
            max_bytes: self.max_bytes,
            connect_timeout,
            total_timeout,
            max_redirects: self.max_redirects,
        }
    }
}

/// `[[api.tokens]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// The token id (Basic auth user name).
    pub id: String,
    /// The token secret (Basic auth password).
    pub secret: String,
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An access token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    /// Its id.
    pub id: String,
    /// Its secret.
    pub secret: Secret,
}

/// `[api]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The base of URLs handed out, without a trailing slash; `None` means
    /// `http://` + the address actually bound.
    pub public_base_url: Option<String>,
    /// Access tokens (none configured: one is generated beside the database).
    pub tokens: Vec<ApiToken>,
    /// Canonical folders `file://` inputs may lie below.
    pub allowed_input_dirs: Vec<PathBuf>,
    /// The download URL signing key, if configured.
    pub url_signing_key: Option<Secret>,
    /// Lifetime of a rendition download URL, in seconds.
    pub download_url_ttl_seconds: u64,
    /// Largest JSON request body.
    pub max_json_body_bytes: usize,
    /// Downloads served at once.
    pub max_concurrent_downloads: usize,
    /// The largest file a direct upload may send.
    pub max_upload_bytes: u64,
    /// Fetching `http(s)://` inputs.
    pub url_inputs: UrlInputsConfig,
}

/// A base for URLs reeld hands out, without its trailing slash; a value
/// that is not an http(s) URL with a host and no query is a problem.
pub(super) fn base_url(key: &str, value: &str, problems: &mut Vec<String>) -> String {
    let trimmed = value.trim_end_matches('/').to_owned();
    match url::Url::parse(&trimmed) {
        Ok(parsed)
            if matches!(parsed.scheme(), "http" | "https")
                && parsed.query().is_none()
                && parsed.host().is_some() => {}
        _ => problems.push(format!(
            "{key} {trimmed:?} must be an http:// or https:// URL with no query"
        )),
    }
    trimmed
}

impl RawApi {
    /// Checks every value, pushing one sentence per problem.
    pub fn validate(
        self,
        resolve: &dyn Fn(&Path) -> PathBuf,
        problems: &mut Vec<String>,
    ) -> Option<ApiConfig> {
        let before = problems.len();
        let listen = match self.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "api.listen {:?} must be HOST:PORT with a numeric address, e.g. \"127.0.0.1:8080\"",
                    self.listen
                ));
                None
            }
        };
        let public_base_url = self
            .public_base_url
            .map(|u| base_url("api.public_base_url", &u, problems));
        let mut ids = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.id.is_empty() || t.id.contains(':') {
                problems.push(format!(
                    "api.tokens[{i}].id must be non-empty and contain no ':'"
                ));
            }
            if t.secret.len() < 16 {
                problems.push(format!(
                    "api.tokens[{i}].secret must be at least 16 characters"
                ));
            }
            if !ids.insert(t.id.as_str()) {
                problems.push(format!("api.tokens[{i}].id {:?} is listed twice", t.id));
            }
        }
        if let Some(k) = &self.url_signing_key
            && k.len() < 32
        {
            problems.push("api.url_signing_key must be at least 32 characters".to_owned());
        }
        if self.download_url_ttl_seconds == 0 {
            problems.push("api.download_url_ttl_seconds must be at least 1".to_owned());
        }
        if self.max_json_body_bytes < 1024 {
            problems.push("api.max_json_body_bytes must be at least 1024".to_owned());
        }
        if self.max_concurrent_downloads == 0 {
            problems.push("api.max_concurrent_downloads must be at least 1".to_owned());
        }
        if self.max_upload_bytes == 0 {
            problems.push("api.max_upload_bytes must be at least 1".to_owned());
        }
        let url_inputs = self.url_inputs.validate(problems);
        if problems.len() > before {
            return None;
        }
        Some(ApiConfig {
            listen: listen.expect("checked above"),
            public_base_url,
            tokens: self
                .tokens
                .into_iter()
                .map(|t| ApiToken {
                    id: t.id,
                    secret: Secret(t.secret),
                })
                .collect(),
            // Canonical where they exist, so that a symlink in the configured
            // path cannot widen what is allowed; checked again per request.
            allowed_input_dirs: self
                .allowed_input_dirs
                .iter()
                .map(|d| {
                    let p = resolve(d);
                    p.canonicalize().unwrap_or(p)
                })
                .collect(),
            url_signing_key: self.url_signing_key.map(Secret),
            download_url_ttl_seconds: self.download_url_ttl_seconds,
            max_json_body_bytes: self.max_json_body_bytes,
            max_concurrent_downloads: self.max_concurrent_downloads,
            max_upload_bytes: self.max_upload_bytes,
            url_inputs,
        })
    }
}
