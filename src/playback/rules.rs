//! Cloudflare's `accessRules` in a token: a list checked first to last
//! against the viewer, where the first rule that matches decides (`allow`
//! or `block`), and a viewer no rule matches is allowed.
//!
//! - `{"type": "ip.src", "ip": ["93.184.216.0/24", "2001:db8::/32"], "action": …}`
//! - `{"type": "ip.geoip.country", "country": ["US", "MX"], "action": …}`:
//!   needs `[api] geoip_database` (a MaxMind GeoLite2 or GeoIP2 Country or
//!   City file); without one, a token holding such a rule is refused rather
//!   than guessed at.
//! - `{"type": "any", "action": …}`

use std::net::IpAddr;

use serde::Deserialize;

/// One rule, as written in the token.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessRule {
    /// `ip.src`, `ip.geoip.country` or `any`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `allow` or `block`.
    pub action: String,
    /// Addresses or networks, for `ip.src`.
    #[serde(default)]
    pub ip: Vec<String>,
    /// ISO 3166-1 alpha-2 codes, for `ip.geoip.country`.
    #[serde(default)]
    pub country: Vec<String>,
}

/// A country database (MaxMind's format), opened once.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeoIp")
    }
}

impl GeoIp {
    /// Opens the database at `path`.
    pub fn open(path: &std::path::Path) -> Result<GeoIp, String> {
        maxminddb::Reader::open_readfile(path)
            .map(|reader| GeoIp { reader })
            .map_err(|e| format!("cannot open the GeoIP database {}: {e}", path.display()))
    }

    /// The ISO country code of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        #[derive(Deserialize)]
        struct Country {
            iso_code: Option<String>,
        }
        #[derive(Deserialize)]
        struct Record {
            country: Option<Country>,
        }
        let result = self.reader.lookup(ip).ok()?;
        let record: Record = result.decode().ok()??;
        record.country?.iso_code
    }
}

/// Why the rules refused the viewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleRefusal {
    /// A rule matched and says `block`.
    #[error("access rule {index} ({kind}) blocks this viewer")]
    Blocked {
        /// Which rule (from 0).
        index: usize,
        /// Its type.
        kind: String,
    },
    /// A rule reeld cannot apply.
    #[error("access rule {index} is invalid: {why}")]
    Invalid {
        /// Which rule (from 0).
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A country rule, and no GeoIP database to apply it with.
    #[error(
        "access rule {index} is by country, and this server has no GeoIP database ([api] geoip_database) to apply it"
    )]
    NoGeoIp {
        /// Which rule (from 0).
        index: usize,
    },
}

/// Applies `rules` to a viewer at `ip`: `Ok` if allowed.
pub fn check(rules: &[AccessRule], ip: IpAddr, geoip: Option<&GeoIp>) -> Result<(), RuleRefusal> {
    for (index, rule) in rules.iter().enumerate() {
        let invalid = |why: String| RuleRefusal::Invalid { index, why };
        let block = match rule.action.as_str() {
            "allow" => false,
            "block" => true,
            other => return Err(invalid(format!("action {other:?} is not allow or block"))),
        };
        let matches = match rule.kind.as_str() {
            "any" => true,
            "ip.src" => {
                if rule.ip.is_empty() {
                    return Err(invalid("an ip.src rule needs a list of ip ranges".into()));
                }
                let mut hit = false;
                for entry in &rule.ip {
                    match crate::netpolicy::Rule::parse(entry) {
                        Ok(net @ crate::netpolicy::Rule::Network { .. }) => {
                            hit |= net.matches_ip(ip);
                        }
                        _ => return Err(invalid(format!("{entry:?} is not an address or CIDR"))),
                    }
                }
                hit
            }
            "ip.geoip.country" => {
                let Some(db) = geoip else {
                    return Err(RuleRefusal::NoGeoIp { index });
                };
                match db.country(ip) {
                    Some(code) => rule.country.iter().any(|c| c.eq_ignore_ascii_case(&code)),
                    None => false,
                }
            }
            other => return Err(invalid(format!("type {other:?} is unknown"))),
        };
        if matches {
            return if block {
                Err(RuleRefusal::Blocked {
                    index,
                    kind: rule.kind.clone(),
                })
            } else {
                Ok(())
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<AccessRule> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn first_match_decides() {
        let r = rules(
            r#"[{"type":"ip.src","action":"allow","ip":["10.0.0.0/8","2001:db8::/32"]},
                {"type":"any","action":"block"}]"#,
        );
        assert_eq!(check(&r, "10.1.2.3".parse().unwrap(), None), Ok(()));
        assert_eq!(check(&r, "2001:db8::1".parse().unwrap(), None), Ok(()));
        assert!(matches!(
            check(&r, "192.0.2.1".parse().unwrap(), None),
            Err(RuleRefusal::Blocked { index: 1, .. })
        ));
        let r = rules(r#"[{"type":"ip.src","action":"block","ip":["192.0.2.1"]}]"#);
        assert!(check(&r, "192.0.2.1".parse().unwrap(), None).is_err());
        // No rule matches: allowed.
        assert_eq!(check(&r, "192.0.2.2".parse().unwrap(), None), Ok(()));
    }

    #[test]
    fn rules_that_cannot_be_applied_refuse() {
        let ip = "192.0.2.1".parse().unwrap();
        let r = rules(r#"[{"type":"ip.geoip.country","action":"allow","country":["US"]}]"#);
        assert_eq!(check(&r, ip, None), Err(RuleRefusal::NoGeoIp { index: 0 }));
        let r = rules(r#"[{"type":"ip.src","action":"allow","ip":["example.com"]}]"#);
        assert!(matches!(
            check(&r, ip, None),
            Err(RuleRefusal::Invalid { .. })
        ));
        let r = rules(r#"[{"type":"any","action":"maybe"}]"#);
        assert!(matches!(
            check(&r, ip, None),
            Err(RuleRefusal::Invalid { .. })
        ));
        let r = rules(r#"[{"type":"ip.asn","action":"allow"}]"#);
        assert!(matches!(
            check(&r, ip, None),
            Err(RuleRefusal::Invalid { .. })
        ));
    }
}
