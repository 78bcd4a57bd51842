//! `/video/v1/uploads…`: Mux's direct uploads. Create one (it answers with
//! a signed, expiring `url` that takes the file's bytes, see
//! `upload_bytes.rs`), list, retrieve and cancel them.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::assets::PageQuery;
use super::auth::Authenticated;
use super::body::JsonObject;
use super::{ApiError, ApiState, blocking};
use crate::asset::AssetSettings;
use crate::db::{NewUpload, UploadRecord};
use crate::jobs::now_ms;

/// Mux's bounds and default for `timeout`, in seconds.
const TIMEOUT_MIN_S: i64 = 60;
const TIMEOUT_MAX_S: i64 = 604_800;
const TIMEOUT_DEFAULT_S: i64 = 3600;

/// Where an upload's bytes are kept until its asset is made from them.
pub fn upload_file(spool_dir: &Path, upload_id: &str) -> PathBuf {
    spool_dir
        .join(crate::jobs::spool::UPLOADS_FOLDER)
        .join(upload_id)
}

/// Our upload ids are letters and digits; anything else cannot name one.
pub(super) fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn not_found() -> ApiError {
    ApiError::NotFound("The requested upload does not exist".into())
}

fn view(state: &ApiState, record: &UploadRecord) -> Value {
    crate::view::upload(record, Some(&state.ctx.links), true)
}

/// `cors_origin`: `*`, or one `http(s)://host[:port]` origin (stored in its
/// serialised form, so it is always a safe header value).
fn cors_origin(body: &Map<String, Value>) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::InvalidParameters(format!("cors_origin: {why}"));
    let text = match body.get("cors_origin") {
        Some(Value::String(s)) => s.trim(),
        None | Some(Value::Null) => {
            return Err(bad(
                "is required: the origin browsers upload from, such as \"https://app.example.com\", or \"*\"",
            ));
        }
        Some(_) => return Err(bad("must be a string")),
    };
    if text == "*" {
        return Ok("*".into());
    }
    let url = url::Url::parse(text).map_err(|_| {
        bad(&format!(
            "{text:?} is not an origin such as \"https://app.example.com\""
        ))
    })?;
    let only_origin = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty();
    if !only_origin {
        return Err(bad(&format!(
            "{text:?} must be \"*\" or a scheme, host and optional port only, such as \"https://app.example.com\""
        )));
    }
    Ok(url.origin().ascii_serialization())
}

fn timeout(body: &Map<String, Value>) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::InvalidParameters(format!(
            "timeout must be a whole number of seconds from {TIMEOUT_MIN_S} to {TIMEOUT_MAX_S}"
        ))
    };
    match body.get("timeout") {
        None | Some(Value::Null) => Ok(TIMEOUT_DEFAULT_S as u32),
        Some(v) => match v.as_i64() {
            Some(n) if (TIMEOUT_MIN_S..=TIMEOUT_MAX_S).contains(&n) => Ok(n as u32),
            _ => Err(bad()),
        },
    }
}

/// The asset settings an upload's `new_asset_settings` (and `test`) give,
/// over the configured defaults. Checked when the upload is created, and
/// applied again when its asset is.
pub fn asset_settings(
    defaults: AssetSettings,
    new_asset_settings: Option<&Value>,
    test: bool,
) -> Result<AssetSettings, ApiError> {
    let mut settings = defaults;
    if let Some(given) = new_asset_settings {
        let Some(object) = given.as_object() else {
            return Err(ApiError::InvalidParameters(
                "new_asset_settings must be an object".into(),
            ));
        };
        // Mux ignores fields it does not know, and for an upload `inputs`
        // describes the uploaded file rather than naming one.
        let known: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| crate::settings::is_request_field(k) && k.as_str() != "inputs")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::settings::apply_request(&mut settings, &Value::Object(known), "new_asset_settings")
            .map_err(|e| {
                ApiError::InvalidParameters(format!(
                    "new_asset_settings.{}: {}",
                    e.field, e.problem
                ))
            })?;
    }
    if test {
        settings.test = true;
    }
    Ok(settings)
}

/// `POST /video/v1/uploads`: 201 with a waiting upload and its `url`.
pub async fn create(
    auth: Authenticated,
    State(state): State<ApiState>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let cors_origin = cors_origin(&body)?;
    let timeout_s = timeout(&body)?;
    let test = match body.get("test") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::InvalidParameters(
                "test must be true or false".into(),
            ));
        }
    };
    let new_asset_settings = match body.get("new_asset_settings") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    asset_settings(
        state.ctx.settings_for(Path::new("")),
        new_asset_settings.as_ref(),
        test,
    )?;
    let upload = NewUpload {
        id: crate::asset::new_asset_id(),
        created_at_ms: now_ms(),
        cors_origin,
        timeout_s,
        new_asset_settings,
        test,
    };
    let record = blocking(&state, move |db| {
        Ok(db.write(|tx| tx.create_upload(&upload))?)
    })
    .await?;
    tracing::info!(upload.id = %record.id, token.id = %auth.token_id, "Direct upload created.");
    Ok((
        StatusCode::CREATED,
        Json(json!({"data": view(&state, &record)})),
    )
        .into_response())
}

/// `GET /video/v1/uploads`: newest first; a page past the end is
/// `{"data": []}` (Mux's Node SDK pages until it gets one).
pub async fn list(
    _auth: Authenticated,
    State(state): State<ApiState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = q.limit_and_offset()?;
    let records = blocking(&state, move |db| {
        Ok(db.read(|r| r.list_uploads(limit, offset))?)
    })
    .await?;
    let data: Vec<Value> = records.iter().map(|r| view(&state, r)).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

async fn load(state: &ApiState, id: &str) -> Result<UploadRecord, ApiError> {
    if !valid_upload_id(id) {
        return Err(not_found());
    }
    let id = id.to_owned();
    blocking(state, move |db| Ok(db.read(|r| r.upload(&id))?))
        .await?
        .ok_or_else(not_found)
}

/// `GET /video/v1/uploads/{id}`.
pub async fn retrieve(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &id).await?;
    Ok(Json(json!({"data": view(&state, &record)})).into_response())
}

/// `PUT /video/v1/uploads/{id}/cancel`: 200 with the cancelled upload, or
/// 403 when it is no longer waiting. Bytes already received are removed; a
/// chunk still arriving creates no asset.
pub async fn cancel(
    auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !valid_upload_id(&id) {
        return Err(not_found());
    }
    let upload = id.clone();
    let (record, cancelled) = blocking(&state, move |db| {
        Ok(db.write(|tx| tx.cancel_upload(&upload))?)
    })
    .await?
    .ok_or_else(not_found)?;
    if !cancelled {
        return Err(ApiError::Forbidden(format!(
            "Cancellation no longer possible: the upload is {}, not waiting",
            serde_json::to_value(record.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )));
    }
    remove_bytes(&state, &id).await;
    tracing::info!(upload.id = %id, token.id = %auth.token_id, "Direct upload cancelled.");
    Ok(Json(json!({"data": view(&state, &record)})).into_response())
}

/// Removes an upload's bytes (cancelled, timed out, or never to be used).
pub async fn remove_bytes(state: &ApiState, id: &str) {
    let path = upload_file(&state.ctx.config.spool_dir, id);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(upload.id = %id, error = %e, "Cannot remove an upload's bytes."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(v: Value) -> Result<String, ApiError> {
        let mut body = Map::new();
        body.insert("cors_origin".into(), v);
        cors_origin(&body)
    }

    #[test]
    fn cors_origins_are_star_or_one_origin() {
        assert_eq!(origin(json!("*")).unwrap(), "*");
        assert_eq!(
            origin(json!("https://App.example.com")).unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            origin(json!("http://localhost:3000/")).unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            json!("https://a.example/path"),
            json!("https://a.example\r\nX-Evil: 1"),
            json!("ftp://a.example"),
            json!("example.com"),
            json!(5),
        ] {
            assert!(origin(bad.clone()).is_err(), "{bad}");
        }
        assert!(cors_origin(&Map::new()).is_err());
    }

    #[test]
    fn timeouts_keep_to_mux_bounds() {
        let t = |v: Value| {
            let mut body = Map::new();
            body.insert("timeout".into(), v);
            timeout(&body)
        };
        assert_eq!(timeout(&Map::new()).unwrap(), 3600);
        assert_eq!(t(json!(60)).unwrap(), 60);
        assert!(t(json!(59)).is_err());
        assert!(t(json!(604_801)).is_err());
        assert!(t(json!("600")).is_err());
    }
}
