//! `/stream/keys`: Cloudflare's signing keys, made by the same code as
//! Mux's. The answer to a create holds `pem` and `jwk` (both base64), once.

use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use serde_json::json;

use super::{CfAuth, CfError, ok};
use crate::api::signing_keys::{forget_key, make_key};
use crate::api::{ApiError, ApiState, blocking};

/// `POST /stream/keys`.
pub async fn create(_auth: CfAuth, State(state): State<ApiState>) -> Result<Response, CfError> {
    let (key, created_at) = make_key(&state, "cloudflare").await?;
    Ok(ok(json!({
        "id": key.id,
        "pem": key.private_pem_base64(),
        "jwk": key.private_jwk_base64(),
        "created": crate::webhooks::rfc3339(created_at * 1000),
    })))
}

/// `GET /stream/keys`: every key's id and creation time.
pub async fn list(_auth: CfAuth, State(state): State<ApiState>) -> Result<Response, CfError> {
    let rows = blocking(&state, |db| Ok(db.read(|r| r.signing_keys(1000, 0))?)).await?;
    let keys: Vec<_> = rows
        .iter()
        .map(|k| json!({"id": k.id, "created": crate::webhooks::rfc3339(k.created_at * 1000)}))
        .collect();
    Ok(ok(json!(keys)))
}

/// `DELETE /stream/keys/{id}`.
pub async fn delete(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, id)): UrlPath<(String, String)>,
) -> Result<Response, CfError> {
    if !forget_key(&state, &id).await? {
        return Err(ApiError::NotFound("The signing key does not exist.".into()).into());
    }
    Ok(ok(json!("ok")))
}
