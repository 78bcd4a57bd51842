//! The one HTTP client webhooks go out through: a time limit, no redirects,
//! and an address guard on every connection, so that an endpoint name that
//! resolves to loopback, a private network or a cloud metadata address is
//! refused unless `[webhooks] allow_private_addresses` says otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Longest part of a receiver's answer kept in `attempts[]`, in bytes.
const KEPT_RESPONSE_BYTES: usize = 1024;

/// What one POST came to.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status, if the receiver answered.
    pub status: Option<u16>,
    /// The start of its body.
    pub body: Option<String>,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl Answer {
    /// A 2xx.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Whether `ip` may be delivered to.
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if allow_private {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80)
        }
    }
}

struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| address_allowed(a.ip(), allow_private))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses webhooks may not reach ({found:?}); \
                     set [webhooks] allow_private_addresses to allow them"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Sends signed events.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    /// A client with `timeout` per request.
    pub fn new(timeout: Duration, allow_private: bool) -> Sender {
        let client = reqwest::Client::builder()
            // A proxy would resolve names itself, out of the guard's sight.
            .no_proxy()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("reeld/", env!("CARGO_PKG_VERSION"), " webhooks"))
            .build()
            .expect("the webhook client builds");
        Sender {
            client,
            allow_private,
        }
    }

    /// POSTs `body` with its signature header to `url`.
    pub async fn post(&self, url: &str, body: String, signature: String) -> Answer {
        let refused = |why: String| Answer {
            status: None,
            body: None,
            error: Some(why),
        };
        // A literal address never reaches the resolver: check it here.
        if let Ok(parsed) = url::Url::parse(url)
            && let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = parsed.host()
            && let Some(ip) = parsed
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            && !address_allowed(ip, self.allow_private)
        {
            return refused(format!(
                "{ip} is an address webhooks may not reach; set [webhooks] allow_private_addresses to allow it"
            ));
        }
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Mux-Signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let mut end = text.len().min(KEPT_RESPONSE_BYTES);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                Answer {
                    status: Some(status),
                    body: Some(text[..end].to_owned()),
                    error: None,
                }
            }
            Err(e) => refused(if e.is_timeout() {
                "no answer within the time limit".to_owned()
            } else {
                format!("{e}")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_refused_unless_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(!address_allowed(ip, false), "{bad}");
            assert!(address_allowed(ip, true), "{bad}");
        }
        assert!(address_allowed("93.184.216.34".parse().unwrap(), false));
        assert!(!address_allowed("0.0.0.0".parse().unwrap(), true));
        assert!(!address_allowed("224.0.0.1".parse().unwrap(), true));
    }
}
