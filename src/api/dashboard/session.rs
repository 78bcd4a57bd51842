//! Signing in to the dashboard: an API token's id and secret are exchanged
//! once for a session cookie, so the browser never keeps the secret (not in
//! `localStorage`, not in a Basic-auth cache).
//!
//! - `POST /ui/session` `{"token_id", "token_secret"}` signs in. It checks
//!   the pair the way the API does (constant time, every token), and sets
//!   `reeld_session`: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when
//!   the API's base URL is `https://`. The answer carries the session's CSRF
//!   token.
//! - `GET /ui/session` says who is signed in, with the CSRF token again (a
//!   reloaded page has lost it).
//! - `DELETE /ui/session` signs out.
//!
//! A request carrying the cookie is authenticated by [`from_cookie`] for
//! every API route. One that changes state (anything but GET and HEAD) must
//! also send the CSRF token in `X-CSRF-Token`: `SameSite=Strict` already
//! keeps the cookie off other sites' requests, and the token keeps a
//! request the page did not make from passing where a browser gets that
//! wrong.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::info;

use crate::api::body::JsonObject;
use crate::api::{ApiError, ApiState, blocking};
use crate::db::SessionRow;
use crate::jobs::now_ms;

/// The cookie's name.
pub const COOKIE: &str = "reeld_session";
/// The header the CSRF token comes back in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The value of the `reeld_session` cookie among `headers`' cookies.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Whether the request came from another site's page (the browser says so
/// in `Sec-Fetch-Site`; clients that do not send it are not browsers).
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}

/// The session of a request that carries the cookie and no `Authorization`
/// header: `Ok(None)` when there is no cookie. A cookie of no live session,
/// or a state-changing request without the session's CSRF token, is
/// refused.
pub async fn from_cookie(
    method: &Method,
    headers: &HeaderMap,
    state: &ApiState,
) -> Result<Option<SessionRow>, ApiError> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let key = digest(value);
    let now = now_ms();
    let found = blocking(state, move |db| Ok(db.read(|r| r.session(&key, now))?)).await?;
    // A session made with a token since removed from the config ends with it.
    let session = found
        .filter(|s| state.tokens.has_id(&s.token_id))
        .ok_or(ApiError::SignInNeeded)?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf.as_bytes())) || cross_site(headers) {
            return Err(ApiError::Forbidden(
                "This request needs the dashboard's CSRF token in X-CSRF-Token".into(),
            ));
        }
    }
    Ok(Some(session))
}

fn session_json(session: &SessionRow) -> Value {
    json!({"data": {
        "token_id": session.token_id,
        "csrf_token": session.csrf,
        "expires_at": session.expires_at_ms.div_euclid(1000).to_string(),
    }})
}

/// `Set-Cookie` for `value`, living `max_age_s`.
fn set_cookie(state: &ApiState, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if state.ctx.links.base_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    // The value is base64url (or empty): nothing in it can end the header.
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a cookie of base64url characters is a valid header")
}

/// `POST /ui/session`: signs in with a token id and secret.
pub async fn sign_in(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A form on another site cannot send JSON without a preflight, which
    // reeld does not answer for this route.
    if !json_body || cross_site(&headers) {
        return Err(ApiError::Forbidden(
            "Sign in from the dashboard's own page, with a JSON body".into(),
        ));
    }
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    let Some(token_id) = state.tokens.check(field("token_id"), field("token_secret")) else {
        info!("Dashboard sign-in refused: wrong token id or secret.");
        return Err(ApiError::SignInNeeded);
    };
    let cookie = crate::keys::random_secret();
    let now = now_ms();
    let session = SessionRow {
        token_id,
        csrf: crate::keys::random_secret(),
        expires_at_ms: now + SESSION_TTL_MS,
    };
    let (key, row) = (digest(&cookie), session.clone());
    blocking(&state, move |db| {
        Ok(db.write(|tx| tx.insert_session(&key, &row, now))?)
    })
    .await?;
    info!(token.id = %session.token_id, "Dashboard sign-in.");
    let mut response = (StatusCode::CREATED, Json(session_json(&session))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, &cookie, SESSION_TTL_MS / 1000),
    );
    Ok(response)
}

/// `GET /ui/session`: the signed-in token and the CSRF token.
pub async fn current(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match from_cookie(&method, &headers, &state).await? {
        Some(session) => Ok(Json(session_json(&session)).into_response()),
        None => Err(ApiError::SignInNeeded),
    }
}

/// `DELETE /ui/session`: signs out (needs the CSRF token).
pub async fn sign_out(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if from_cookie(&method, &headers, &state).await?.is_none() {
        return Err(ApiError::SignInNeeded);
    }
    let key = digest(cookie_value(&headers).unwrap_or_default());
    blocking(
        &state,
        move |db| Ok(db.write(|tx| tx.delete_session(&key))?),
    )
    .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, "", 0));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; reeld_session=xyz; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("xyz"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("not_reeld_session=xyz"),
        );
        assert_eq!(cookie_value(&headers), None);
    }
}
