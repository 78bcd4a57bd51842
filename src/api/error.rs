//! The API's one error type, sent as Mux's envelope:
//! `{"error": {"type": "…", "messages": ["…"]}}`. Internal failures are
//! logged once, here, and reach the client only as a stable type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field or parameter is missing or invalid; the message names it.
    #[error("{0}")]
    InvalidParameters(String),
    /// No credentials, or wrong ones.
    #[error("Unauthorized request")]
    Unauthorized,
    /// No valid credentials on a browser's request (the dashboard's): like
    /// `Unauthorized`, without the Basic challenge that would pop up the
    /// browser's own password dialog.
    #[error("Sign in to the dashboard with an API token")]
    SignInNeeded,
    /// No such asset (or rendition, or route).
    #[error("{0}")]
    NotFound(String),
    /// The asset is not in a state that allows this (not ready yet).
    #[error("{0}")]
    FailedRequest(String),
    /// A download URL that is expired, altered or not ours.
    #[error("{0}")]
    Forbidden(String),
    /// The method is not served on this path.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the limit.
    #[error("The request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A request body that stalled; clients retry a 408.
    #[error("{0}")]
    RequestTimeout(String),
    /// An upload or chunk larger than a limit; the message names it.
    #[error("{0}")]
    TooLarge(String),
    /// Something failed inside reeld; details are in the log only.
    #[error("internal error")]
    Internal(String),
    /// The database failed or is busy; the client may retry.
    #[error("The service is busy; try again")]
    Unavailable(String),
    /// Not now (the spool is full, another request holds the upload's
    /// turn); the client may retry later.
    #[error("{0}")]
    RetryLater(String),
    /// Too many downloads at once; the client may retry shortly.
    #[error("Too many downloads at once; try again shortly")]
    TooManyDownloads,
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        ApiError::Unavailable(e.to_string())
    }
}

impl ApiError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidParameters(_) => (StatusCode::BAD_REQUEST, "invalid_parameters"),
            ApiError::Unauthorized | ApiError::SignInNeeded => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::FailedRequest(_) => (StatusCode::PRECONDITION_FAILED, "failed_request"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::PayloadTooLarge(_) | ApiError::TooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_parameters")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            ApiError::Unavailable(_) | ApiError::TooManyDownloads | ApiError::RetryLater(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
        }
    }

    /// Whether a retry of the same request can succeed.
    fn retry_can_help(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable(_)
                | ApiError::Internal(_)
                | ApiError::TooManyDownloads
                | ApiError::RetryLater(_)
                | ApiError::RequestTimeout(_)
        )
    }
}

impl ApiError {
    /// The status and the sentence a client may see; a failure inside reeld
    /// is logged here, once, and shows only as a stable sentence.
    pub(super) fn status_and_message(&self) -> (StatusCode, String) {
        let message = match self {
            ApiError::Internal(detail) | ApiError::Unavailable(detail) => {
                error!(error = %detail, "Request failed inside reeld.");
                self.to_string()
            }
            other => other.to_string(),
        };
        (self.status_and_type().0, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        let kind = self.status_and_type().1;
        let body = json!({"error": {"type": kind, "messages": [message]}});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if !self.retry_can_help() {
            // Mux's Node SDK retries some statuses (408, 409, 429, 5xx)
            // unless told not to.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if matches!(self, ApiError::TooManyDownloads) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::RetryLater(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"reeld\""),
            );
        }
        response
    }
}
