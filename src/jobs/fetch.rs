//! Fetching an `http(s)://` input (`POST /video/v1/assets` with
//! `inputs[0].url`) into the job's spool, after which the job goes on as for
//! any other source file.
//!
//! - Every address is checked against `[api.url_inputs]` (`netpolicy`):
//!   names after DNS resolution (the connection goes to a checked address),
//!   literal addresses, and every redirect, of which at most `max_redirects`
//!   are followed.
//! - Limits: `max_bytes` (by `Content-Length` when given, and by count),
//!   `connect_timeout_seconds`, and `total_timeout_seconds` for the whole
//!   download, however slowly the server sends.
//! - A 5xx, 408 or 429 answer, or a connection that fails or breaks off, is
//!   retried here a few times with backoff; then the job's own retry takes
//!   over. Any other 4xx is the input's fault: the asset errors with the
//!   status in the message.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;

use crate::config::UrlInputsConfig;
use crate::netpolicy::NetPolicy;

/// Attempts at one download before the job's retry takes over.
const TRIES: u32 = 4;
/// How often, in bytes written, the spool's free space is checked again.
const ROOM_CHECK_EVERY: u64 = 256 << 20;
/// The wait after the first failed try; doubled after each.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The input is at fault (refused address, 4xx, too large, too slow).
    Permanent(String),
    /// The server or network may recover.
    Transient(String),
}

/// A refusal by the address policy, carried through reqwest's errors.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves names, and keeps only the addresses the policy allows.
struct PolicyResolver {
    policy: NetPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            policy.check_host(&host).map_err(Refused)?;
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(&host, a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refusals.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusals
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| format!("{host} resolves to no address"));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `url` may be requested at all: http(s), a host, and (for a
/// literal address, which never reaches the resolver) an allowed address.
pub fn check_url(policy: &NetPolicy, url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the {}:// scheme is not fetched; use http:// or https://",
            url.scheme()
        ));
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
    match literal {
        Some(ip) => policy.check_ip(host, ip),
        None => policy.check_host(host),
    }
}

/// The URL without user name, password or query, for logs and messages:
/// signed URLs carry their credentials there.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

fn client(config: &UrlInputsConfig) -> reqwest::Client {
    let policy = config.policy.clone();
    let max_redirects = config.max_redirects;
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            let why = format!("the URL redirected more than {max_redirects} times");
            return attempt.error(Refused(why));
        }
        match check_url(&policy, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let why = format!("a redirect to {}: {why}", redacted(attempt.url().as_str()));
                attempt.error(Refused(why))
            }
        }
    });
    reqwest::Client::builder()
        // A proxy would resolve names itself, out of the policy's sight.
        .no_proxy()
        .connect_timeout(config.connect_timeout)
        .redirect(redirects)
        .dns_resolver(Arc::new(PolicyResolver {
            policy: config.policy.clone(),
        }))
        .user_agent(concat!("reeld/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the input client builds")
}

/// The policy refusal inside a reqwest error, if that is what it is.
fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cause = c.source();
    }
    None
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    // reqwest names the URL, with its query; keep that out.
    text.split(" for url (").next().unwrap_or(&text).to_owned()
}

/// Downloads `url` to `dest` within the configured limits, calling
/// `progress` with the percentage done when the length is known. Returns
/// the bytes written.
pub async fn fetch(
    config: &UrlInputsConfig,
    url: &str,
    dest: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<u64, FetchError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| FetchError::Permanent(format!("The input URL is not a URL: {e}.")))?;
    check_url(&config.policy, &parsed)
        .map_err(|why| FetchError::Permanent(format!("The input URL is refused: {why}.")))?;
    let client = client(config);
    let deadline = Instant::now() + config.total_timeout;
    let mut delay = FIRST_RETRY_DELAY;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(left, once(&client, config, url, dest, progress)).await;
        match outcome {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(FetchError::Permanent(why))) => return Err(FetchError::Permanent(why)),
            Ok(Err(FetchError::Transient(why))) => last = why,
            Err(_) => {
                return Err(FetchError::Permanent(format!(
                    "The input URL did not finish downloading within {} s ([api.url_inputs] total_timeout_seconds).",
                    config.total_timeout.as_secs_f64()
                )));
            }
        }
        if attempt < TRIES && Instant::now() + delay < deadline {
            tracing::info!(url = %redacted(url), attempt, error = %last, "Input download failed; retrying.");
            tokio::time::sleep(delay).await;
            delay *= 2;
        } else {
            break;
        }
    }
    Err(FetchError::Transient(last))
}

/// One try: the request, then the body streamed to `dest`.
async fn once(
    client: &reqwest::Client,
    config: &UrlInputsConfig,
    url: &str,
    dest: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<u64, FetchError> {
    let transient_or_refused = |e: reqwest::Error| match refusal(&e) {
        Some(why) => FetchError::Permanent(format!("The input URL is refused: {why}.")),
        None => FetchError::Transient(format!("Cannot download the input URL: {}.", describe(&e))),
    };
    let mut response = client.get(url).send().await.map_err(transient_or_refused)?;
    let status = response.status();
    if !status.is_success() {
        let text = format!(
            "The input URL answered {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let retry = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        return Err(if retry {
            FetchError::Transient(format!("{}.", text.trim_end()))
        } else {
            FetchError::Permanent(format!("{}.", text.trim_end()))
        });
    }
    let length = response.content_length();
    if let Some(n) = length
        && n > config.max_bytes
    {
        return Err(FetchError::Permanent(format!(
            "The input is {n} bytes; the most reeld fetches is {} ([api.url_inputs] max_bytes).",
            config.max_bytes
        )));
    }
    let folder = dest.parent().unwrap_or(Path::new("."));
    crate::disk::ensure_room(folder, "spool folder", length.unwrap_or(0))
        .map_err(FetchError::Transient)?;
    let mut next_room_check = ROOM_CHECK_EVERY;
    let io = |e: std::io::Error| {
        FetchError::Transient(format!(
            "Cannot write the input to {}: {e}.",
            dest.display()
        ))
    };
    let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
    let mut written: u64 = 0;
    let mut reported = Instant::now();
    while let Some(chunk) = response.chunk().await.map_err(transient_or_refused)? {
        written += chunk.len() as u64;
        if written > config.max_bytes {
            return Err(FetchError::Permanent(format!(
                "The input is larger than {} bytes, the most reeld fetches ([api.url_inputs] max_bytes).",
                config.max_bytes
            )));
        }
        if written >= next_room_check {
            // The length may be unknown: the room is checked as bytes come.
            next_room_check += ROOM_CHECK_EVERY;
            crate::disk::ensure_room(folder, "spool folder", ROOM_CHECK_EVERY)
                .map_err(FetchError::Transient)?;
        }
        file.write_all(&chunk).await.map_err(io)?;
        if let Some(total) = length.filter(|t| *t > 0)
            && reported.elapsed() >= Duration::from_millis(500)
        {
            progress((written as f64 * 100.0 / total as f64).min(100.0));
            reported = Instant::now();
        }
    }
    if let Some(total) = length
        && written < total
    {
        return Err(FetchError::Transient(format!(
            "The input URL's answer ended after {written} of {total} bytes."
        )));
    }
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    progress(100.0);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_request() {
        let policy = NetPolicy::default();
        let check = |u: &str| check_url(&policy, &url::Url::parse(u).unwrap());
        assert!(check("https://media.example.com/a.mp4").is_ok());
        assert!(check("http://169.254.169.254/latest/meta-data/").is_err());
        assert!(check("http://[::1]:8080/a.mp4").is_err());
        assert!(check("http://127.0.0.1/a.mp4").is_err());
        assert!(check("ftp://media.example.com/a.mp4").is_err());
    }

    #[test]
    fn logged_urls_lose_their_credentials() {
        assert_eq!(
            redacted("https://u:p@h.example/a.mp4?X-Amz-Signature=s#f"),
            "https://h.example/a.mp4"
        );
    }
}
