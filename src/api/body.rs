//! Request bodies: JSON objects read under the body limit, with every
//! failure turned into Mux's error envelope (axum's own rejections are plain
//! text). Any `Content-Type` is accepted, as Mux accepts `curl -d`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value};

use super::{ApiError, ApiState};

/// A request body that is a JSON object.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<ApiState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let limit = state.ctx.config.api.max_json_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.into_response().status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::InvalidParameters("The request body could not be read.".into())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::InvalidParameters(
                "The request body must be a JSON object.".into(),
            )),
            Err(e) => Err(ApiError::InvalidParameters(format!(
                "The request body is not valid JSON: {e}."
            ))),
        }
    }
}
