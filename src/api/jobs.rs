//! reeld's addition to Mux's API for the job queue (Mux has no such route):
//! `GET /video/v1/jobs` lists running jobs, then queued ones in the order
//! they will be claimed, with their worker, attempt, the asset's step and
//! progress, and when the attempt began.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Authenticated;
use super::{ApiError, ApiState, blocking};

/// `limit`.
#[derive(Debug, serde::Deserialize)]
pub struct JobQuery {
    limit: Option<u32>,
}

/// `GET /video/v1/jobs`.
pub async fn list(
    _auth: Authenticated,
    State(state): State<ApiState>,
    Query(q): Query<JobQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let jobs = blocking(&state, move |db| Ok(db.read(|r| r.unfinished_jobs(limit))?)).await?;
    Ok(Json(json!({ "data": jobs, "now_ms": crate::jobs::now_ms() })).into_response())
}
