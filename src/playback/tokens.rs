//! The checks a playback token passes before a file is served: RS256 only,
//! a known `kid`, a valid signature, `exp`/`nbf` with a small clock-skew
//! allowance, a bounded lifetime, the right `sub` (and for Mux `aud`), and
//! for Cloudflare `downloadable` and `accessRules`.
//!
//! The signature check is `jsonwebtoken`'s, with the algorithm pinned to
//! RS256 (times are compared with reeld's own clock), so `alg: none` and HS256 tokens made with the public key
//! as the secret never reach a key. The header and payload are read
//! unverified only to find the `kid` (Mux's SDK puts it in the claims, other
//! signers in the header) and to name a refusal precisely.

use std::net::IpAddr;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::rules::{AccessRule, GeoIp, RuleRefusal};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: u64 = 30;
/// The longest a token may live from its `nbf` or `iat` (Cloudflare's rule).
pub const MAX_LIFETIME_S: i64 = 24 * 3600;
/// The longest a Mux token with neither `nbf` nor `iat` may live from now:
/// Mux's SDK signs without timestamps and with `exp` 7 days ahead by default.
pub const MUX_UNDATED_MAX_S: i64 = 7 * 24 * 3600;

/// Whose token rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `aud` must be `"v"` and `sub` the playback ID.
    Mux,
    /// `sub` is the video uid; `downloadable: true` is needed for MP4s, and
    /// `accessRules` apply.
    Cloudflare,
}

/// What the token must be good for.
pub struct Expect<'a> {
    /// Whose rules.
    pub flavor: Flavor,
    /// The `sub` it must name (`None`: any; the caller uses the one named).
    pub subject: Option<&'a str>,
    /// The viewer's address, for `accessRules`.
    pub viewer: IpAddr,
    /// The country database, if configured.
    pub geoip: Option<&'a GeoIp>,
    /// Unix seconds now.
    pub now_s: i64,
}

/// Why a token is refused; each names the check that failed and nothing of
/// the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `alg` other than RS256.
    #[error("the token's algorithm is {0:?}; only RS256 is accepted")]
    Algorithm(String),
    /// No `kid` in the header or claims.
    #[error("the token names no signing key (kid)")]
    NoKeyId,
    /// `kid` names no key this server holds.
    #[error("the token's signing key (kid) is not known here")]
    UnknownKey,
    /// The signature does not match the key.
    #[error("the token's signature does not match its signing key")]
    BadSignature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// A required claim is missing.
    #[error("the token has no {0} claim")]
    Missing(&'static str),
    /// `exp` too far after `nbf`/`iat`.
    #[error("the token lives {lifetime_s} s; the limit is {limit_s} s")]
    TooLong {
        /// Its lifetime.
        lifetime_s: i64,
        /// The limit.
        limit_s: i64,
    },
    /// `aud` is not `"v"`.
    #[error("the token's audience (aud) is not \"v\" (video)")]
    WrongAudience,
    /// `sub` names another playback ID or video.
    #[error("the token was signed for another playback ID or video (sub)")]
    WrongSubject,
    /// A Cloudflare token without `downloadable: true`.
    #[error("the token does not allow downloads (downloadable is not true)")]
    NotDownloadable,
    /// `accessRules` refused the viewer.
    #[error("{0}")]
    Rules(RuleRefusal),
}

/// The claims reeld reads.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// The playback ID or video uid.
    #[serde(default)]
    pub sub: String,
    /// Unix s (0 when missing, which the required-claims check refuses).
    #[serde(default)]
    pub exp: i64,
    /// Unix s.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Unix s.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Cloudflare: MP4 downloads allowed.
    #[serde(default)]
    pub downloadable: Option<bool>,
    /// Cloudflare: who may use it.
    #[serde(default, rename = "accessRules")]
    pub access_rules: Vec<AccessRule>,
}

/// A JSON part of the token, read without trusting it.
fn peek(part: Option<&str>) -> Result<serde_json::Value, TokenError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.ok_or(TokenError::Malformed)?.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// The `kid` a token names, and refuses anything but RS256 before any key
/// is looked at.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let header = peek(parts.next())?;
    let payload = peek(parts.next())?;
    if parts.next().is_none() || parts.next().is_some() {
        return Err(TokenError::Malformed);
    }
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("RS256") => {}
        Some(other) => return Err(TokenError::Algorithm(other.to_owned())),
        None => return Err(TokenError::Algorithm(String::new())),
    }
    let in_header = header.get("kid").and_then(|k| k.as_str());
    let in_claims = payload.get("kid").and_then(|k| k.as_str());
    match (in_header, in_claims) {
        (Some(h), Some(c)) if h != c => Err(TokenError::Malformed),
        (Some(k), _) | (None, Some(k)) => Ok(k.to_owned()),
        (None, None) => Err(TokenError::NoKeyId),
    }
}

/// Checks `token` against `key` (the public key its `kid` names) and
/// `expect`; returns its claims.
pub fn verify(token: &str, key: &DecodingKey, expect: &Expect<'_>) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::RS256);
    // Times are checked below against reeld's clock, the one its download
    // URLs and master access expire by.
    validation.validate_nbf = false;
    validation.validate_exp = false;
    match expect.flavor {
        Flavor::Mux => {
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            validation.set_audience(&["v"]);
        }
        Flavor::Cloudflare => {
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation.validate_aud = false;
        }
    }
    if let Some(sub) = expect.subject {
        validation.sub = Some(sub.to_owned());
    }
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm("not RS256".into()),
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidSubject => TokenError::WrongSubject,
            ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) if c == "sub" => TokenError::Missing("sub"),
            ErrorKind::MissingRequiredClaim(_) => TokenError::Missing("exp"),
            _ => TokenError::Malformed,
        })?
        .claims;
    let leeway = LEEWAY_S as i64;
    if claims.exp < expect.now_s - leeway {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > expect.now_s + leeway) {
        return Err(TokenError::NotYetValid);
    }
    check_lifetime(&claims, expect)?;
    if expect.flavor == Flavor::Cloudflare {
        if claims.downloadable != Some(true) {
            return Err(TokenError::NotDownloadable);
        }
        super::rules::check(&claims.access_rules, expect.viewer, expect.geoip)
            .map_err(TokenError::Rules)?;
    }
    Ok(claims)
}

/// `exp` at most 24 h after the later of `nbf` and `iat`; a token with
/// neither is measured from now (Mux's undated tokens get Mux's SDK default).
fn check_lifetime(claims: &Claims, expect: &Expect<'_>) -> Result<(), TokenError> {
    let dated = claims.nbf.into_iter().chain(claims.iat).max();
    let (start, limit_s) = match (dated, expect.flavor) {
        (Some(start), _) => (start, MAX_LIFETIME_S),
        (None, Flavor::Mux) => (expect.now_s, MUX_UNDATED_MAX_S),
        (None, Flavor::Cloudflare) => (expect.now_s, MAX_LIFETIME_S),
    };
    let lifetime_s = claims.exp.saturating_sub(start);
    if lifetime_s > limit_s + LEEWAY_S as i64 {
        return Err(TokenError::TooLong {
            lifetime_s,
            limit_s,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    struct Fixture {
        private: EncodingKey,
        public: DecodingKey,
        public_pem: String,
    }

    fn fixture() -> Fixture {
        let key = super::super::keys::generate("kid1".into()).unwrap();
        Fixture {
            private: EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
            public: DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap(),
            public_pem: key.public_pem,
        }
    }

    fn sign(f: &Fixture, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("kid1".into());
        jsonwebtoken::encode(&header, &claims, &f.private).unwrap()
    }

    fn expect(flavor: Flavor, subject: Option<&str>, now_s: i64) -> Expect<'_> {
        Expect {
            flavor,
            subject,
            viewer: "192.0.2.7".parse().unwrap(),
            geoip: None,
            now_s,
        }
    }

    fn now() -> i64 {
        crate::clock::now_s()
    }

    #[test]
    fn each_check_names_its_failure() {
        let f = fixture();
        let t = now();
        let mux = |claims| {
            verify(
                &sign(&f, claims),
                &f.public,
                &expect(Flavor::Mux, Some("pid"), t),
            )
        };
        assert!(mux(json!({"sub": "pid", "aud": "v", "exp": t + 600})).is_ok());
        assert_eq!(
            mux(json!({"sub": "pid", "aud": "v", "exp": t - 120})).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            mux(json!({"sub": "pid", "aud": "v", "exp": t + 600, "nbf": t + 300})).unwrap_err(),
            TokenError::NotYetValid
        );
        // Within the skew allowance.
        assert!(mux(json!({"sub": "pid", "aud": "v", "exp": t - 5, "nbf": t + 5})).is_ok());
        assert!(matches!(
            mux(json!({"sub": "pid", "aud": "v", "iat": t, "exp": t + 25 * 3600})).unwrap_err(),
            TokenError::TooLong { .. }
        ));
        assert!(mux(json!({"sub": "pid", "aud": "v", "exp": t + 7 * 86400})).is_ok());
        assert!(mux(json!({"sub": "pid", "aud": "v", "exp": t + 8 * 86400})).is_err());
        assert_eq!(
            mux(json!({"sub": "other", "aud": "v", "exp": t + 600})).unwrap_err(),
            TokenError::WrongSubject
        );
        assert_eq!(
            mux(json!({"sub": "pid", "aud": "t", "exp": t + 600})).unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            mux(json!({"sub": "pid", "exp": t + 600})).unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            mux(json!({"sub": "pid", "aud": "v"})).unwrap_err(),
            TokenError::Missing("exp")
        );
    }

    #[test]
    fn another_key_or_algorithm_never_passes() {
        let f = fixture();
        let other = fixture();
        let t = now();
        let claims = json!({"sub": "pid", "aud": "v", "exp": t + 600});
        let e = expect(Flavor::Mux, Some("pid"), t);
        let forged = sign(&other, claims.clone());
        assert_eq!(
            verify(&forged, &f.public, &e).unwrap_err(),
            TokenError::BadSignature
        );
        // HS256 with the public key's PEM as the shared secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("kid1".into());
        let confused = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(f.public_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            key_id(&confused).unwrap_err(),
            TokenError::Algorithm("HS256".into())
        );
        assert!(verify(&confused, &f.public, &e).is_err());
        // alg: none, no signature.
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": "kid1"})),
            b64(claims)
        );
        assert_eq!(
            key_id(&none).unwrap_err(),
            TokenError::Algorithm("none".into())
        );
        assert!(verify(&none, &f.public, &e).is_err());
        assert_eq!(key_id("abc").unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn cloudflare_needs_downloadable_and_obeys_rules() {
        let f = fixture();
        let t = now();
        let cf = |claims| {
            verify(
                &sign(&f, claims),
                &f.public,
                &expect(Flavor::Cloudflare, None, t),
            )
        };
        assert_eq!(
            cf(json!({"sub": "video", "exp": t + 600})).unwrap_err(),
            TokenError::NotDownloadable
        );
        assert_eq!(
            cf(json!({"sub": "video", "exp": t + 600, "downloadable": true}))
                .unwrap()
                .sub,
            "video"
        );
        let allow_mine = json!([{"type": "ip.src", "action": "allow", "ip": ["192.0.2.0/24"]},
                                {"type": "any", "action": "block"}]);
        let block_mine = json!([{"type": "ip.src", "action": "block", "ip": ["192.0.2.7"]}]);
        assert!(
            cf(
                json!({"sub": "v", "exp": t + 600, "downloadable": true, "accessRules": allow_mine})
            )
            .is_ok()
        );
        assert!(matches!(
            cf(
                json!({"sub": "v", "exp": t + 600, "downloadable": true, "accessRules": block_mine})
            )
            .unwrap_err(),
            TokenError::Rules(RuleRefusal::Blocked { index: 0, .. })
        ));
        assert!(matches!(
            cf(json!({"sub": "v", "exp": t + 25 * 3600, "downloadable": true})).unwrap_err(),
            TokenError::TooLong { .. }
        ));
    }

    #[test]
    fn kid_is_found_in_header_or_claims() {
        let f = fixture();
        let in_header = sign(&f, json!({"sub": "x", "exp": 1}));
        assert_eq!(key_id(&in_header).unwrap(), "kid1");
        let header = Header::new(Algorithm::RS256);
        let in_claims = jsonwebtoken::encode(
            &header,
            &json!({"sub": "x", "exp": 1, "kid": "k2"}),
            &f.private,
        )
        .unwrap();
        assert_eq!(key_id(&in_claims).unwrap(), "k2");
        let neither =
            jsonwebtoken::encode(&header, &json!({"sub": "x", "exp": 1}), &f.private).unwrap();
        assert_eq!(key_id(&neither).unwrap_err(), TokenError::NoKeyId);
    }
}
