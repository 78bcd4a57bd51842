//! Mux's playback ID routes: `POST`, `GET` and `DELETE
//! /video/v1/assets/{id}/playback-ids[/{playback_id}]`, and `GET
//! /video/v1/playback-ids/{playback_id}` (which asset an ID opens).

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::assets::{data, load};
use super::auth::Authenticated;
use super::body::JsonObject;
use super::{ApiError, ApiState, blocking};
use crate::playback::{PlaybackId, PlaybackPolicy, is_id, new_playback_id};

fn not_found() -> ApiError {
    ApiError::NotFound("The requested playback ID does not exist".into())
}

/// `POST /video/v1/assets/{id}/playback-ids`: 201 with `{id, policy}`.
pub async fn create(
    auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(asset_id): UrlPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let policy = match body.get("policy").and_then(|p| p.as_str()) {
        None => PlaybackPolicy::Public,
        Some(text) => PlaybackPolicy::parse(text).ok_or_else(|| {
            ApiError::InvalidParameters(format!(
                "policy must be \"public\" or \"signed\", not {text:?}"
            ))
        })?,
    };
    load(&state, &asset_id).await?;
    let playback = PlaybackId {
        id: new_playback_id(),
        policy,
    };
    let (asset, pid) = (asset_id.clone(), playback.id.clone());
    blocking(&state, move |db| {
        Ok(db.write(|tx| tx.add_playback_id(&asset, &pid, policy, crate::jobs::now_ms()))?)
    })
    .await?;
    tracing::info!(asset.id = %asset_id, playback.id = %playback.id, policy = policy.as_str(),
        token.id = %auth.token_id, "Playback ID created.");
    Ok(data(StatusCode::CREATED, playback))
}

/// `GET /video/v1/assets/{id}/playback-ids/{playback_id}`.
pub async fn retrieve(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath((asset_id, playback_id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let record = load(&state, &asset_id).await?;
    let found = record
        .playback_ids
        .into_iter()
        .find(|p| p.id == playback_id)
        .ok_or_else(not_found)?;
    Ok(data(StatusCode::OK, found))
}

/// `DELETE /video/v1/assets/{id}/playback-ids/{playback_id}`: 204; the
/// stream URLs under it stop working at once.
pub async fn delete(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath((asset_id, playback_id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    load(&state, &asset_id).await?;
    let (asset, pid) = (asset_id.clone(), playback_id.clone());
    let existed = blocking(&state, move |db| {
        Ok(db.write(|tx| tx.delete_playback_id(&asset, &pid))?)
    })
    .await?;
    if !existed {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /video/v1/playback-ids/{playback_id}`: the asset it belongs to.
pub async fn lookup(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(playback_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !is_id(&playback_id) {
        return Err(not_found());
    }
    let pid = playback_id.clone();
    let (asset_id, policy) = blocking(&state, move |db| Ok(db.read(|r| r.playback_target(&pid))?))
        .await?
        .ok_or_else(not_found)?;
    Ok(data(
        StatusCode::OK,
        json!({
            "id": playback_id,
            "policy": policy,
            "object": {"type": "asset", "id": asset_id},
        }),
    ))
}
