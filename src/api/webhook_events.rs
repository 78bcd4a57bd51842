//! reeld's additions to Mux's API for the webhook outbox (Mux has no such
//! routes): `GET /video/v1/webhook-events?status=pending|delivered|failed`
//! lists deliveries, newest first, with every attempt; `POST
//! /video/v1/webhook-events/{id}/retry` sends an event again.

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Authenticated;
use super::{ApiError, ApiState, blocking};
use crate::jobs::now_ms;

/// `status` and `limit`.
#[derive(Debug, serde::Deserialize)]
pub struct EventQuery {
    status: Option<String>,
    limit: Option<u32>,
}

/// `GET /video/v1/webhook-events`.
pub async fn list(
    _auth: Authenticated,
    State(state): State<ApiState>,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "pending" | "delivered" | "failed")
    {
        return Err(ApiError::InvalidParameters(
            "status must be one of \"pending\", \"delivered\", \"failed\"".into(),
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = blocking(&state, move |db| {
        Ok(db.read(|r| r.deliveries(q.status.as_deref(), limit))?)
    })
    .await?;
    Ok(Json(json!({ "data": rows })).into_response())
}

/// `POST /video/v1/webhook-events/{id}/retry`: its undelivered deliveries
/// are due now.
pub async fn retry(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let event = id.clone();
    let touched = blocking(&state, move |db| {
        Ok(db.write(|tx| tx.retry_event(&event, now_ms()))?)
    })
    .await?;
    if touched == 0 {
        return Err(ApiError::NotFound(
            "No undelivered webhook event has this id".into(),
        ));
    }
    state.ctx.webhook_signal.notify_one();
    Ok(Json(json!({ "data": { "id": id, "deliveries_requeued": touched } })).into_response())
}
