//! Mux's `/system/v1/signing-keys`: create (the private key is in the
//! answer, once), list, retrieve and delete. Cloudflare's `/stream/keys`
//! share [`make_key`]. Only the public half is kept; a deleted key's tokens
//! stop working at once.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::assets::{PageQuery, data};
use super::auth::Authenticated;
use super::{ApiError, ApiState, blocking};
use crate::db::SigningKeyRow;
use crate::playback::keys::NewKey;

/// Makes a key pair and keeps its public half, noting which API made it.
pub(super) async fn make_key(
    state: &ApiState,
    origin: &'static str,
) -> Result<(NewKey, i64), ApiError> {
    let key = tokio::task::spawn_blocking(|| {
        crate::playback::keys::generate(crate::playback::new_playback_id())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the key task failed: {e}")))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = SigningKeyRow {
        id: key.id.clone(),
        public_key: key.public_pem.clone(),
        origin: origin.to_owned(),
        created_at: crate::clock::now_s(),
    };
    let created_at = row.created_at;
    blocking(
        state,
        move |db| Ok(db.write(|tx| tx.add_signing_key(&row))?),
    )
    .await?;
    tracing::info!(key.id = %key.id, origin, "Signing key created.");
    Ok((key, created_at))
}

/// Forgets a key; `false` if there was none.
pub(super) async fn forget_key(state: &ApiState, id: &str) -> Result<bool, ApiError> {
    if !crate::playback::is_id(id) {
        return Ok(false);
    }
    let id = id.to_owned();
    let gone = blocking(state, move |db| {
        Ok(db.write(|tx| tx.delete_signing_key(&id))?)
    })
    .await?;
    Ok(gone)
}

fn key_json(row: &SigningKeyRow) -> serde_json::Value {
    json!({"id": row.id, "created_at": row.created_at.to_string()})
}

fn not_found() -> ApiError {
    ApiError::NotFound("The requested signing key does not exist".into())
}

/// `POST /system/v1/signing-keys`: 201 with `private_key` (base64 PEM).
pub async fn create(
    _auth: Authenticated,
    State(state): State<ApiState>,
) -> Result<Response, ApiError> {
    let (key, created_at) = make_key(&state, "mux").await?;
    Ok(data(
        StatusCode::CREATED,
        json!({
            "id": key.id,
            "private_key": key.private_pem_base64(),
            "created_at": created_at.to_string(),
        }),
    ))
}

/// `GET /system/v1/signing-keys`: newest first.
pub async fn list(
    _auth: Authenticated,
    State(state): State<ApiState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = q.limit_and_offset()?;
    let rows = blocking(&state, move |db| {
        Ok(db.read(|r| r.signing_keys(limit, offset))?)
    })
    .await?;
    Ok(data(
        StatusCode::OK,
        rows.iter().map(key_json).collect::<Vec<_>>(),
    ))
}

/// `GET /system/v1/signing-keys/{id}`.
pub async fn retrieve(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !crate::playback::is_id(&id) {
        return Err(not_found());
    }
    let row = blocking(&state, move |db| Ok(db.read(|r| r.signing_key(&id))?))
        .await?
        .ok_or_else(not_found)?;
    Ok(data(StatusCode::OK, key_json(&row)))
}

/// `DELETE /system/v1/signing-keys/{id}`: 204.
pub async fn delete(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !forget_key(&state, &id).await? {
        return Err(not_found());
    }
    tracing::info!(key.id = %id, "Signing key deleted.");
    Ok(StatusCode::NO_CONTENT.into_response())
}
