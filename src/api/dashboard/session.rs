//! Signing in to the dashboard: an API token's id and secret are exchanged
//! once for a session cookie, so the browser never keeps the secret (not in
//! `localStorage`, not in a Basic-auth cache).
//!
//! - `POST /ui/session` `{"token_id", "token_secret"}` signs in. It checks
//!   the pair the way the API does (constant time, every token), and sets
//!   `reeld_session` (`HttpOnly`, `SameSite=Strict`, `Path=/`), or
//!   `__Host-reeld_session` with `Secure` when the API's base URL is
//!   `https://`. The answer carries the session's CSRF token. A wrong pair
//!   is answered after half a second, one at a time.
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

use crate::api::auth::from_another_site;
use crate::api::body::JsonObject;
use crate::api::{ApiError, ApiState, blocking};
use crate::db::SessionRow;
use crate::jobs::now_ms;

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "reeld_session";
/// Its name over HTTPS: the `__Host-` prefix makes the browser refuse it
/// unless it is `Secure`, for this host only and for every path, so no
/// other host (a sibling subdomain) can plant one that shadows it.
pub const SECURE_COOKIE: &str = "__Host-reeld_session";
/// The header the CSRF token comes back in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a failed sign-in is held before it is answered.
const FAILED_SIGN_IN_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// Held while a failed sign-in pauses.
static FAILED_SIGN_INS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the API is served over HTTPS (its public base URL says so).
fn https(state: &ApiState) -> bool {
    state
        .ctx
        .links
        .base_url()
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

fn cookie_name(state: &ApiState) -> &'static str {
    if https(state) { SECURE_COOKIE } else { COOKIE }
}

/// What the request's cookies say of the session cookie `name`.
#[derive(Debug, PartialEq, Eq)]
enum SessionCookie<'a> {
    /// There is none.
    Absent,
    /// There is one, with this value.
    One(&'a str),
    /// There are several (one planted to shadow the other): none is used.
    Several,
}

fn session_cookie<'a>(headers: &'a HeaderMap, name: &str) -> SessionCookie<'a> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value);
    match (values.next(), values.next()) {
        (None, _) => SessionCookie::Absent,
        (Some(value), None) => SessionCookie::One(value),
        (Some(_), Some(_)) => SessionCookie::Several,
    }
}

fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
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
    let value = match session_cookie(headers, cookie_name(state)) {
        SessionCookie::Absent => return Ok(None),
        SessionCookie::Several => return Err(ApiError::SignInNeeded),
        SessionCookie::One(value) => value,
    };
    let key = digest(value);
    let now = now_ms();
    let found = blocking(state, move |db| Ok(db.read(|r| r.session(&key, now))?)).await?;
    // A session ends with its token: removed from the config, or given a
    // new secret.
    let session = found
        .filter(|s| {
            state
                .tokens
                .session_check(&s.token_id)
                .is_some_and(|check| bool::from(check.as_slice().ct_eq(&s.token_check)))
        })
        .ok_or(ApiError::SignInNeeded)?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf.as_bytes())) || from_another_site(headers) {
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
    let secure = if https(state) { "; Secure" } else { "" };
    let name = cookie_name(state);
    // The value is base64url (or empty): nothing in it can end the header.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}"
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
    if !json_body || from_another_site(&headers) {
        return Err(ApiError::Forbidden(
            "Sign in from the dashboard's own page, with a JSON body".into(),
        ));
    }
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    let checked = state
        .tokens
        .check(field("token_id"), field("token_secret"))
        .and_then(|id| state.tokens.session_check(&id).map(|check| (id, check)));
    let Some((token_id, token_check)) = checked else {
        info!("Dashboard sign-in refused: wrong token id or secret.");
        // Failed attempts are answered one at a time, each after a pause:
        // a few guesses a second, however many connections ask.
        let _one_at_a_time = FAILED_SIGN_INS.lock().await;
        tokio::time::sleep(FAILED_SIGN_IN_PAUSE).await;
        return Err(ApiError::SignInNeeded);
    };
    let cookie = crate::keys::random_secret();
    let now = now_ms();
    let session = SessionRow {
        token_id,
        csrf: crate::keys::random_secret(),
        token_check: token_check.to_vec(),
        expires_at_ms: now + SESSION_TTL_MS,
    };
    // A session the browser already held ends: one sign-in, one session.
    let previous = match session_cookie(&headers, cookie_name(&state)) {
        SessionCookie::One(value) => Some(digest(value)),
        _ => None,
    };
    let (key, row) = (digest(&cookie), session.clone());
    blocking(&state, move |db| {
        Ok(db.write(|tx| {
            if let Some(previous) = &previous {
                tx.delete_session(previous)?;
            }
            tx.insert_session(&key, &row, now)
        })?)
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
    let SessionCookie::One(value) = session_cookie(&headers, cookie_name(&state)) else {
        return Err(ApiError::SignInNeeded);
    };
    let key = digest(value);
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
    fn the_session_cookie_is_found_among_others_and_not_when_shadowed() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_static(value));
            headers
        };
        let headers = with("a=1; reeld_session=xyz; b=2");
        assert_eq!(session_cookie(&headers, COOKIE), SessionCookie::One("xyz"));
        let headers = with("not_reeld_session=xyz");
        assert_eq!(session_cookie(&headers, COOKIE), SessionCookie::Absent);
        let headers = with("reeld_session=planted; reeld_session=xyz");
        assert_eq!(session_cookie(&headers, COOKIE), SessionCookie::Several);
        let headers = with("reeld_session=xyz");
        assert_eq!(
            session_cookie(&headers, SECURE_COOKIE),
            SessionCookie::Absent
        );
    }
}
