//! Which hosts and addresses reeld may fetch `http(s)://` inputs from: the
//! guard against server-side request forgery.
//!
//! A URL input makes reeld open a connection on the caller's behalf, so a
//! caller must not be able to point it at the machine itself, the LAN, or a
//! cloud metadata service (169.254.169.254, fd00:ec2::254), which hands out
//! credentials. The check runs on the addresses a name resolves to (the
//! connection goes to a checked address, never to a second lookup), on
//! literal addresses, and again on every redirect.
//!
//! Order: `deny` (hosts or networks) refuses; then `allow` admits; then the
//! built-in refusals (loopback, link-local and metadata, private and
//! shared networks, unspecified, multicast) refuse; anything else is allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host name or a network, as written in `allow` / `deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `nas.lan` (exactly), or `*.lan` (any name below it).
    Host(String),
    /// `192.168.1.0/24`, `10.0.0.5` (a /32), `fd00::/8`.
    Network { base: IpAddr, prefix: u8 },
}

impl Rule {
    /// Parses one entry; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty entry".into());
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
            };
            // A rule written as mapped IPv6 (`::ffff:10.0.0.0/104`) is the
            // IPv4 network, as addresses are compared in their IPv4 form.
            if let (IpAddr::V6(v6), true) = (ip, prefix >= 96)
                && let Some(v4) = v6.to_ipv4_mapped()
            {
                return Ok(Rule::Network {
                    base: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
            return Ok(Rule::Network { base: ip, prefix });
        }
        if prefix.is_some() {
            return Err(format!(
                "{text:?} is neither an address/prefix nor a host name"
            ));
        }
        let name = text.to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let valid = !bare.is_empty()
            && bare.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "{text:?} is not a host name, an address or a network"
            ));
        }
        Ok(Rule::Host(name))
    }

    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Host(pattern) => match pattern.strip_prefix("*.") {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
                None => pattern == host,
            },
            Rule::Network { .. } => false,
        }
    }

    /// Whether `ip` lies in this network (a host rule matches no address).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let Rule::Network { base, prefix } = self else {
            return false;
        };
        match (base, canonical(ip)) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*b) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*b) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address carried in an IPv6 one is the IPv4 one: mapped
/// (`::ffff:a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`)
/// and 6to4 (`2002:AABB:CCDD::`), since each reaches that IPv4 host.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let seg = v6.segments();
    if bits >> 32 == 0xffff_0000 || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return IpAddr::V4(low32);
    }
    if seg[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    IpAddr::V6(v6)
}

/// Why an address is refused by default, if it is.
fn built_in_refusal(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address (where cloud metadata services answer)")
            } else if v4.is_private() {
                Some("a private network address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if v4.is_multicast() || v4.is_broadcast() || a >= 240 {
                Some("a multicast, broadcast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("a link-local or site-local address")
            } else if first == 0x2001 && v6.segments()[1] == 0 {
                Some("a Teredo tunnel address")
            } else if first == 0x0064 && v6.segments()[1] == 0xff9b {
                Some("a local-use NAT64 address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if v6.to_ipv4().is_some_and(|v4| v4 != Ipv4Addr::UNSPECIFIED) && first == 0 {
                Some("an IPv4-compatible address")
            } else {
                None
            }
        }
    }
}

/// The allow and deny lists of `[api.url_inputs]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// Refused whatever else says.
    pub deny: Vec<Rule>,
    /// Admitted despite the built-in refusals.
    pub allow: Vec<Rule>,
}

impl NetPolicy {
    /// Whether the host name may be looked up at all (`deny` only; the
    /// addresses it resolves to are checked with [`NetPolicy::check_ip`]).
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.deny.iter().any(|r| r.matches_host(&host)) {
            return Err(format!("{host} is refused by [api.url_inputs] deny"));
        }
        Ok(())
    }

    /// Whether `ip`, which `host` resolved to (or which is the URL's literal
    /// address), may be connected to.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self
            .deny
            .iter()
            .any(|r| r.matches_ip(ip) || r.matches_host(&host))
        {
            return Err(format!("{ip} is refused by [api.url_inputs] deny"));
        }
        if self
            .allow
            .iter()
            .any(|r| r.matches_ip(ip) || r.matches_host(&host))
        {
            return Ok(());
        }
        let Some(why) = built_in_refusal(ip) else {
            return Ok(());
        };
        let what = if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            format!("{ip} is {why}")
        } else {
            format!("{host} is {ip}, {why}")
        };
        Err(format!(
            "{what}; inputs may not be fetched from there unless [api.url_inputs] allow lists it"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_refuses_the_machine_the_lan_and_metadata() {
        let p = NetPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.20",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:10.0.0.5",
            "64:ff9b::a00:5",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "224.0.0.1",
        ] {
            assert!(p.check_ip("h", ip(bad)).is_err(), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(p.check_ip("h", ip(good)).is_ok(), "{good}");
        }
        let why = p.check_ip("meta", ip("169.254.169.254")).unwrap_err();
        assert!(why.contains("link-local"), "{why}");
    }

    #[test]
    fn allow_admits_and_deny_wins() {
        let p = NetPolicy {
            allow: vec![
                Rule::parse("192.168.1.0/24").unwrap(),
                Rule::parse("nas.lan").unwrap(),
                Rule::parse("*.media.internal").unwrap(),
            ],
            deny: vec![
                Rule::parse("192.168.1.1").unwrap(),
                Rule::parse("evil.example").unwrap(),
            ],
        };
        assert!(p.check_ip("x", ip("192.168.1.20")).is_ok());
        assert!(p.check_ip("x", ip("192.168.1.1")).is_err());
        assert!(p.check_ip("x", ip("192.168.2.1")).is_err());
        assert!(p.check_ip("NAS.lan.", ip("10.0.0.9")).is_ok());
        assert!(p.check_ip("a.media.internal", ip("10.0.0.9")).is_ok());
        assert!(p.check_ip("media.internal", ip("10.0.0.9")).is_err());
        assert!(p.check_host("evil.example").is_err());
        assert!(p.check_ip("evil.example", ip("8.8.8.8")).is_err());
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        assert_eq!(
            Rule::parse("10.0.0.0/8").unwrap(),
            Rule::Network {
                base: ip("10.0.0.0"),
                prefix: 8
            }
        );
        assert_eq!(
            Rule::parse("[fd00::1]").unwrap(),
            Rule::Network {
                base: ip("fd00::1"),
                prefix: 128
            }
        );
        for bad in ["", "10.0.0.0/33", "a b", "x/8", "http://nas", "*."] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        let all = NetPolicy {
            allow: vec![Rule::parse("0.0.0.0/0").unwrap()],
            deny: vec![],
        };
        assert!(all.check_ip("x", ip("127.0.0.1")).is_ok());
        let mapped = NetPolicy {
            allow: vec![Rule::parse("::ffff:10.0.0.0/104").unwrap()],
            deny: vec![],
        };
        assert!(mapped.check_ip("x", ip("10.9.9.9")).is_ok());
    }
}
