//! Cloudflare Stream's API, for the parts reeld does: a video's state and
//! `requireSignedURLs` (`/stream/{uid}`), MP4 downloads (`/downloads`),
//! signing keys (`/stream/keys`) and signed tokens (`/stream/{uid}/token`),
//! under `/client/v4/accounts/{account_id}/stream`. The video uid is the
//! asset id.
//!
//! Every answer is Cloudflare's envelope, `{result, success, errors,
//! messages}`. Requests carry `Authorization: Bearer [cloudflare] api_token`,
//! compared in constant time; the routes answer 404 while `[cloudflare]` is
//! not configured.

mod keys;
mod videos;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};

/// The routes below `/client/v4`.
pub fn routes() -> Router<ApiState> {
    let stream = "/accounts/{account_id}/stream";
    Router::new()
        .route(
            &format!("{stream}/keys"),
            get(keys::list).post(keys::create),
        )
        .route(
            &format!("{stream}/keys/{{key_id}}"),
            axum::routing::delete(keys::delete),
        )
        .route(
            &format!("{stream}/{{video}}"),
            get(videos::retrieve).post(videos::edit),
        )
        .route(
            &format!("{stream}/{{video}}/downloads"),
            get(videos::downloads)
                .post(videos::create_downloads)
                .delete(videos::delete_downloads),
        )
        .route(
            &format!("{stream}/{{video}}/downloads/{{kind}}"),
            post(videos::create_download).delete(videos::delete_download),
        )
        .route(&format!("{stream}/{{video}}/token"), post(videos::token))
}

/// An error in Cloudflare's envelope.
#[derive(Debug)]
pub struct CfError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl CfError {
    /// 403: a token or URL refused; the message says which check failed.
    pub fn forbidden(message: String) -> CfError {
        CfError {
            status: StatusCode::FORBIDDEN,
            code: 10000,
            message,
        }
    }

    fn bad_request(message: String) -> CfError {
        CfError {
            status: StatusCode::BAD_REQUEST,
            code: 10005,
            message,
        }
    }
}

impl From<ApiError> for CfError {
    fn from(e: ApiError) -> CfError {
        let (status, message) = e.status_and_message();
        let code = match status.as_u16() {
            401 | 403 => 10000,
            404 => 10003,
            400 | 413 => 10005,
            _ if status.is_server_error() => 10002,
            _ => 10001,
        };
        CfError {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for CfError {
    fn into_response(self) -> Response {
        let body = json!({
            "result": null,
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"reeld\""),
            );
        }
        response
    }
}

/// A success in Cloudflare's envelope.
fn ok(result: Value) -> Response {
    Json(json!({"result": result, "success": true, "errors": [], "messages": []})).into_response()
}

/// A request with the configured API token, for the configured account.
pub struct CfAuth;

impl FromRequestParts<ApiState> for CfAuth {
    type Rejection = CfError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, CfError> {
        let Some(config) = &state.ctx.config.cloudflare else {
            return Err(ApiError::NotFound(
                "The Cloudflare Stream routes are off: set [cloudflare] account_id and api_token."
                    .into(),
            )
            .into());
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let unauthorized = || CfError {
            status: StatusCode::UNAUTHORIZED,
            code: 10000,
            message: "Authentication error".into(),
        };
        let given = given.ok_or_else(unauthorized)?;
        let same =
            Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(config.api_token.0.as_bytes()));
        if !bool::from(same) {
            return Err(unauthorized());
        }
        // `…/accounts/{account_id}/stream…` (nesting strips `/client/v4`).
        let mut segments = parts.uri.path().split('/');
        let account = segments
            .by_ref()
            .find(|s| *s == "accounts")
            .and_then(|_| segments.next())
            .unwrap_or_default();
        if account != config.account_id {
            return Err(CfError::forbidden(
                "The API token does not grant access to this account.".into(),
            ));
        }
        Ok(CfAuth)
    }
}

/// A JSON object body (empty: `{}`) of at most `[api] max_json_body_bytes`,
/// in Cloudflare's envelope on failure.
async fn object_body(
    body: axum::body::Body,
    state: &ApiState,
) -> Result<serde_json::Map<String, Value>, CfError> {
    let limit = state.ctx.config.api.max_json_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| CfError::from(ApiError::PayloadTooLarge(limit)))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CfError::bad_request(
            "The request body must be a JSON object.".into(),
        )),
    }
}
