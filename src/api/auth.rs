//! HTTP Basic authentication with the configured access tokens, as an
//! extractor: a handler that takes [`Authenticated`] only runs for a caller
//! with a valid token id and secret, or with a dashboard session made from
//! one (see `dashboard::session`).
//!
//! Secrets are compared as SHA-256 digests with `subtle`'s constant-time
//! equality, against every token, so neither the position of a mismatch nor
//! which token id exists shows in the response time. Secrets are never logged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::config::ApiToken;

/// A request made with a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token's id (for logs).
    pub token_id: String,
}

/// The tokens requests are checked against, with their secrets hashed once.
pub struct TokenSet {
    tokens: Vec<(String, [u8; 32])>,
}

impl TokenSet {
    /// Hashes the secrets of `tokens`.
    pub fn new(tokens: &[ApiToken]) -> TokenSet {
        TokenSet {
            tokens: tokens
                .iter()
                .map(|t| (t.id.clone(), digest(t.secret.0.as_bytes())))
                .collect(),
        }
    }

    /// What a dashboard session made with token `id` keeps to tell whether
    /// the token still has the secret it signed in with: a digest of the
    /// secret's digest. `None` when no such token is configured.
    pub fn session_check(&self, id: &str) -> Option<[u8; 32]> {
        self.tokens
            .iter()
            .find(|(token_id, _)| token_id == id)
            .map(|(_, secret)| {
                let mut h = Sha256::new();
                h.update(b"reeld dashboard session\0");
                h.update(secret);
                h.finalize().into()
            })
    }

    /// The id of the token matching `id` and `secret`, if any.
    pub fn check(&self, id: &str, secret: &str) -> Option<String> {
        let given_id = digest(id.as_bytes());
        let given_secret = digest(secret.as_bytes());
        let mut found = None;
        // Every token is compared, whatever matched before.
        for (token_id, secret_digest) in &self.tokens {
            let same =
                digest(token_id.as_bytes()).ct_eq(&given_id) & secret_digest.ct_eq(&given_secret);
            if bool::from(same) {
                found = Some(token_id.clone());
            }
        }
        found
    }
}

/// Whether a browser says the request comes from another site's page
/// (`Sec-Fetch-Site`; clients that do not send it are not browsers).
pub(super) fn from_another_site(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| matches!(v.as_bytes(), b"cross-site" | b"same-site"))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `(id, secret)` from an `Authorization: Basic …` header value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // A browser that holds Basic credentials for this origin sends them
        // with another site's form too: no change is made for another site.
        if from_another_site(&parts.headers) && !matches!(parts.method, Method::GET | Method::HEAD)
        {
            return Err(ApiError::Forbidden(
                "Requests from another site's page cannot change anything".into(),
            ));
        }
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            // The dashboard's requests: its session cookie and CSRF token.
            if let Some(session) =
                super::dashboard::from_cookie(&parts.method, &parts.headers, state).await?
            {
                return Ok(Authenticated {
                    token_id: session.token_id,
                });
            }
            // A browser (it names the fetch's site) gets no Basic challenge.
            return Err(if parts.headers.contains_key("sec-fetch-site") {
                ApiError::SignInNeeded
            } else {
                ApiError::Unauthorized
            });
        };
        let (id, secret) = value
            .to_str()
            .ok()
            .and_then(basic_credentials)
            .ok_or(ApiError::Unauthorized)?;
        match state.tokens.check(&id, &secret) {
            Some(token_id) => Ok(Authenticated { token_id }),
            None => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn only_the_exact_pair_passes() {
        let set = TokenSet::new(&[
            ApiToken {
                id: "a".into(),
                secret: Secret("secret-one-0123456".into()),
            },
            ApiToken {
                id: "b".into(),
                secret: Secret("secret-two-0123456".into()),
            },
        ]);
        assert_eq!(set.check("a", "secret-one-0123456").as_deref(), Some("a"));
        assert_eq!(set.check("b", "secret-two-0123456").as_deref(), Some("b"));
        assert_eq!(set.check("a", "secret-two-0123456"), None);
        assert_eq!(set.check("c", "secret-one-0123456"), None);
        assert_eq!(set.check("a", ""), None);
    }

    #[test]
    fn basic_header_parsing() {
        let enc = base64::engine::general_purpose::STANDARD.encode("id:se:cret");
        assert_eq!(
            basic_credentials(&format!("Basic {enc}")),
            Some(("id".into(), "se:cret".into()))
        );
        assert_eq!(basic_credentials(&format!("Bearer {enc}")), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }
}
