//! `/video/v1/assets…`: list, create, retrieve, update, delete, master
//! access, `mp4_support` and static renditions, with Mux's paths, bodies,
//! status codes and error types.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::auth::Authenticated;
use super::body::JsonObject;
use super::inputs::{Input, input, input_url};
use super::{ApiError, ApiState, blocking};
use crate::asset::{
    Asset, AssetStatus, IngestType, MasterAccess, Meta, Mp4Support, RenditionRequest,
    RenditionResolution, RenditionType, TrackKind,
};
use crate::db::{
    AssetRecord, MASTER_ACCESS_TTL_S, NewAsset, NewSource, Page, RenditionRow, SourceIdentity,
    SourceOrigin,
};
use crate::jobs::now_ms;
use crate::jobs::renditions::AddRenditionError;

/// Assets per page unless `limit` says otherwise (Mux's default).
pub(super) const DEFAULT_LIMIT: u32 = 25;
/// The largest `limit` (Mux's).
pub(super) const MAX_LIMIT: u32 = 100;
/// The longest `search` a list takes.
const MAX_SEARCH_BYTES: usize = 200;

pub(super) fn data<T: serde::Serialize>(status: StatusCode, value: T) -> Response {
    (status, Json(json!({ "data": value }))).into_response()
}

/// Our asset ids are 32 letters and digits; anything else cannot name one.
pub(super) fn check_asset_id(id: &str) -> Result<(), ApiError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ApiError::InvalidParameters(format!(
            "Asset id {id:?} was invalid"
        )))
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("The requested asset does not exist".into())
}

fn view(state: &ApiState, record: AssetRecord) -> Result<Asset, ApiError> {
    let mut asset = crate::view::asset(record, Some(&state.ctx.links), crate::clock::now_s())?;
    // While the queue is paused, a preparing asset says why it waits.
    if asset.status == crate::asset::AssetStatus::Preparing
        && asset.progress.reason.is_none()
        && let Some(why) = state.ctx.store.health().paused()
    {
        asset.progress.reason = Some(format!("Queued until the store can be used: {why}"));
    }
    Ok(asset)
}

pub(super) async fn load(state: &ApiState, id: &str) -> Result<AssetRecord, ApiError> {
    check_asset_id(id)?;
    let id = id.to_owned();
    blocking(state, move |db| {
        db.read(|r| r.asset(&id)).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(not_found)
}

/// `limit`, `page` and `cursor` of `GET /video/v1/assets`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    page: Option<String>,
    cursor: Option<String>,
    upload_id: Option<String>,
    /// reeld's addition: only assets with this status.
    status: Option<String>,
    /// reeld's addition: by id, or part of `meta.title` or `passthrough`.
    search: Option<String>,
}

/// `limit` and `page` of a list that pages by number only.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    page: Option<String>,
}

impl PageQuery {
    /// The page size, and how many rows come before the page.
    pub(super) fn limit_and_offset(&self) -> Result<(u32, u64), ApiError> {
        let limit = positive("limit", self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let page = positive("page", self.page.as_deref(), 1, u32::MAX)?;
        Ok((limit, u64::from(page - 1) * u64::from(limit)))
    }
}

/// A `limit` or `page` query value: a whole number of at least 1, capped at
/// `max`, or `default` when absent.
pub(super) fn positive(
    name: &str,
    value: Option<&str>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let Some(v) = value else { return Ok(default) };
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n.min(max)),
        _ => Err(ApiError::InvalidParameters(format!(
            "{name} must be a whole number of at least 1, not {v:?}"
        ))),
    }
}

fn encode_cursor(record: &AssetRecord) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}", record.created_at, record.id))
}

fn decode_cursor(cursor: &str) -> Result<Page, ApiError> {
    let bad = || {
        ApiError::InvalidParameters(format!(
            "cursor {cursor:?} is not a cursor this API returned"
        ))
    };
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (created, id) = text.split_once(':').ok_or_else(bad)?;
    let created_at = created.parse().map_err(|_| bad())?;
    check_asset_id(id).map_err(|_| bad())?;
    Ok(Page::After {
        created_at,
        id: id.to_owned(),
    })
}

/// `GET /video/v1/assets`: newest first.
pub async fn list(
    _auth: Authenticated,
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if let Some(upload_id) = q.upload_id.filter(|u| !u.is_empty()) {
        // The one asset a direct upload made, if it has made it yet.
        let found = blocking(&state, move |db| {
            Ok(db.read(|r| r.asset_of_upload(&upload_id))?)
        })
        .await?;
        let assets = found
            .into_iter()
            .map(|r| view(&state, r))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Json(json!({ "data": assets, "next_cursor": null })).into_response());
    }
    let limit = positive("limit", q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let page = match (&q.cursor, &q.page) {
        (Some(c), _) if !c.is_empty() => decode_cursor(c)?,
        (_, page) => {
            let n = positive("page", page.as_deref(), 1, u32::MAX)?;
            Page::Offset(u64::from(n - 1) * u64::from(limit))
        }
    };
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !matches!(s.as_str(), "preparing" | "ready" | "errored")
    {
        return Err(ApiError::InvalidParameters(
            "status must be one of \"preparing\", \"ready\", \"errored\"".into(),
        ));
    }
    let search = q
        .search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.len() > MAX_SEARCH_BYTES) {
        return Err(ApiError::InvalidParameters(format!(
            "search is longer than {MAX_SEARCH_BYTES} bytes"
        )));
    }
    let filter = crate::db::AssetFilter { status, search };
    let (records, more) = blocking(&state, move |db| {
        Ok(db.read(|r| r.list_assets_where(limit, &page, &filter))?)
    })
    .await?;
    let next_cursor = if more {
        records.last().map(encode_cursor)
    } else {
        None
    };
    let assets = records
        .into_iter()
        .map(|r| view(&state, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "data": assets, "next_cursor": next_cursor })).into_response())
}

/// `POST /video/v1/assets`: an asset from an `http(s)://` or `file://` input.
pub async fn create(
    auth: Authenticated,
    State(state): State<ApiState>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let url = input_url(&body)?;
    // Mux ignores fields it does not know; so does the API.
    let known: Map<String, Value> = body
        .into_iter()
        .filter(|(k, _)| crate::settings::is_request_field(k))
        .collect();
    let mut settings = state.ctx.settings_for(Path::new(""));
    crate::settings::apply_request(&mut settings, &Value::Object(known), "request")
        .map_err(|e| ApiError::InvalidParameters(format!("{}: {}", e.field, e.problem)))?;
    let allowed = state.ctx.config.api.allowed_input_dirs.clone();
    let policy = state.ctx.config.api.url_inputs.policy.clone();
    let max_attempts = state.ctx.config.max_attempts;
    let record = blocking(&state, move |db| {
        let source = match input(&url, &allowed, &policy)? {
            Input::File(path) => NewSource {
                identity: SourceIdentity::of(&path)
                    .map_err(|e| ApiError::InvalidParameters(format!("inputs[0].url: {e}")))?,
                path,
                origin: SourceOrigin::Api,
                sidecar: None,
            },
            Input::Url(url) => NewSource {
                path: PathBuf::from(url),
                origin: SourceOrigin::Url,
                identity: SourceIdentity {
                    device: 0,
                    inode: 0,
                    size: 0,
                    mtime_ns: 0,
                },
                sidecar: None,
            },
        };
        let asset = NewAsset::now(settings, IngestType::OnDemandUrl);
        db.write(|tx| {
            tx.create_asset(&asset, Some(&source), max_attempts, now_ms(), None, None)?;
            tx.read().asset(&asset.id)
        })?
        .ok_or_else(|| ApiError::Internal("a new asset could not be read back".into()))
    })
    .await?;
    tracing::info!(asset.id = %record.id, token.id = %auth.token_id, "Asset created over the API.");
    state.ctx.queue_signal.notify_one();
    Ok(data(StatusCode::CREATED, view(&state, record)?))
}

/// `GET /video/v1/assets/{id}`.
pub async fn retrieve(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &id).await?;
    Ok(data(StatusCode::OK, view(&state, record)?))
}

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<Option<String>>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::InvalidParameters(format!(
            "{field} must be a string"
        ))),
    }
}

/// `PATCH /video/v1/assets/{id}`: `passthrough` and `meta`.
pub async fn update(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let record = load(&state, &id).await?;
    let mut settings = record.settings;
    if let Some(p) = optional_string(&body, "passthrough")? {
        settings.passthrough = p;
    }
    match body.get("meta") {
        None => {}
        Some(Value::Null) => settings.meta = None,
        Some(Value::Object(m)) => {
            let mut meta = Meta::default();
            for field in ["title", "creator_id", "external_id"] {
                let value = optional_string(m, field)
                    .map_err(|_| {
                        ApiError::InvalidParameters(format!("meta.{field} must be a string"))
                    })?
                    .flatten();
                match field {
                    "title" => meta.title = value,
                    "creator_id" => meta.creator_id = value,
                    _ => meta.external_id = value,
                }
            }
            settings.meta = Some(meta);
        }
        Some(_) => return Err(ApiError::InvalidParameters("meta must be an object".into())),
    }
    settings
        .check_limits()
        .map_err(|e| ApiError::InvalidParameters(e.to_string()))?;
    let record = save_settings(&state, &id, settings, None).await?;
    Ok(data(StatusCode::OK, view(&state, record)?))
}

/// Stores new settings (and, with `master_expiry`, when master access ends)
/// and reads the asset back, in one transaction.
async fn save_settings(
    state: &ApiState,
    id: &str,
    settings: crate::asset::AssetSettings,
    master_expiry: Option<Option<i64>>,
) -> Result<AssetRecord, ApiError> {
    let id = id.to_owned();
    blocking(state, move |db| {
        db.write(|tx| {
            if !tx.set_settings(&id, &settings, now_ms())? {
                return Ok(None);
            }
            if let Some(expiry) = master_expiry {
                tx.set_master_expiry(&id, expiry)?;
            }
            tx.read().asset(&id)
        })?
        .ok_or_else(not_found)
    })
    .await
}

/// `DELETE /video/v1/assets/{id}`: 204. The asset disappears at once, its
/// running job stops, and its files are purged once the job has stopped.
pub async fn delete(
    auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    check_asset_id(&id)?;
    let asset = id.clone();
    let existed = blocking(&state, move |db| {
        Ok(db.write(|tx| tx.delete_asset(&asset, now_ms()))?)
    })
    .await?;
    if !existed {
        return Err(not_found());
    }
    state.ctx.stop_deleted(&id);
    state.ctx.purge_signal.notify_one();
    tracing::info!(asset.id = %id, token.id = %auth.token_id, "Asset deleted over the API.");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn require_ready(record: &AssetRecord) -> Result<(), ApiError> {
    if record.status == AssetStatus::Ready {
        Ok(())
    } else {
        Err(ApiError::FailedRequest("Asset is not ready".into()))
    }
}

fn enum_field<T: serde::de::DeserializeOwned>(
    body: &Map<String, Value>,
    field: &str,
    allowed: &str,
) -> Result<T, ApiError> {
    let bad = || ApiError::InvalidParameters(format!("{field} must be one of {allowed}"));
    let value = body.get(field).ok_or_else(bad)?;
    serde_json::from_value(value.clone()).map_err(|_| bad())
}

/// `PUT /video/v1/assets/{id}/master-access`: `temporary` or `none`.
pub async fn master_access(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let access: MasterAccess = enum_field(&body, "master_access", "\"temporary\", \"none\"")?;
    let record = load(&state, &id).await?;
    require_ready(&record)?;
    let mut settings = record.settings;
    settings.master_access = access;
    let expiry = match access {
        MasterAccess::Temporary => Some(crate::clock::now_s() + MASTER_ACCESS_TTL_S),
        MasterAccess::None => None,
    };
    let record = save_settings(&state, &id, settings, Some(expiry)).await?;
    Ok(data(StatusCode::OK, view(&state, record)?))
}

/// `PUT /video/v1/assets/{id}/mp4-support` (Mux's legacy MP4 files).
pub async fn mp4_support(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let wanted: Mp4Support = enum_field(
        &body,
        "mp4_support",
        "\"none\", \"standard\", \"capped-1080p\", \"audio-only\", \"audio-only,capped-1080p\"",
    )?;
    let record = load(&state, &id).await?;
    require_ready(&record)?;
    if !record.settings.static_renditions.is_empty() && wanted != Mp4Support::None {
        return Err(ApiError::InvalidParameters(
            "mp4_support cannot be combined with static_renditions (Mux allows one or the other)"
                .into(),
        ));
    }
    let has_video = record
        .summary
        .tracks
        .iter()
        .any(|t| t.kind == TrackKind::Video);
    let mut settings = record.settings.clone();
    settings.mp4_support = (wanted != Mp4Support::None).then_some(wanted);
    let names: Vec<String> = crate::plan::requested_names_for(&settings, has_video)
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    // Legacy files no longer asked for go; new ones are made.
    let dropped: Vec<RenditionRow> = record
        .renditions
        .iter()
        .filter(|r| r.resolution.is_none() && !names.contains(&r.name))
        .cloned()
        .collect();
    let max_attempts = state.ctx.config.max_attempts;
    let asset = id.clone();
    let gone = dropped.clone();
    let record = blocking(&state, move |db| {
        db.write(|tx| {
            tx.set_settings(&asset, &settings, now_ms())?;
            for row in &gone {
                tx.delete_rendition(&asset, &row.id)?;
            }
            for name in &names {
                let row = legacy_row(name);
                tx.add_rendition(&asset, &row, &settings, max_attempts, now_ms(), None)?;
            }
            tx.read().asset(&asset)
        })?
        .ok_or_else(not_found)
    })
    .await?;
    for row in &dropped {
        remove_stored(&state, &id, &row.name).await;
    }
    state.ctx.queue_signal.notify_one();
    Ok(data(StatusCode::OK, view(&state, record)?))
}

fn legacy_row(name: &str) -> RenditionRow {
    RenditionRow::new(
        name,
        None,
        RenditionType::Standard.as_str(),
        None,
        "preparing",
    )
}

async fn remove_stored(state: &ApiState, asset_id: &str, name: &str) {
    let key = crate::store::asset_key(asset_id, name);
    if let Err(e) = state.ctx.store.delete(&key).await {
        tracing::warn!(asset.id = %asset_id, file = name, error = %e, "Cannot delete a rendition file.");
    }
}

/// `POST /video/v1/assets/{id}/static-renditions`: 201 with the new file,
/// `preparing`; it is made from the stored master.
pub async fn create_static_rendition(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    check_asset_id(&id)?;
    let allowed = RenditionResolution::ALL
        .map(|r| format!("{:?}", r.as_str()))
        .join(", ");
    let resolution: RenditionResolution = enum_field(&body, "resolution", &allowed)?;
    let passthrough = optional_string(&body, "passthrough")?.flatten();
    if let Some(p) = &passthrough
        && p.chars().count() > 255
    {
        return Err(ApiError::InvalidParameters(format!(
            "passthrough is {} characters long; the limit is 255",
            p.chars().count()
        )));
    }
    let max_attempts = state.ctx.config.max_attempts;
    let asset = id.clone();
    let (row, _job) = blocking(&state, move |db| {
        crate::jobs::renditions::add(
            db,
            &asset,
            RenditionRequest {
                resolution,
                passthrough,
            },
            max_attempts,
            None,
        )
        .map_err(add_rendition_error)
    })
    .await?;
    state.ctx.queue_signal.notify_one();
    Ok(data(
        StatusCode::CREATED,
        crate::view::rendition_file(&row)?,
    ))
}

/// Why a rendition could not be added, as the API says it.
pub(super) fn add_rendition_error(e: AddRenditionError) -> ApiError {
    match e {
        AddRenditionError::NotFound(_) => not_found(),
        AddRenditionError::NotReady(_) => ApiError::FailedRequest("Asset is not ready".into()),
        AddRenditionError::LegacyMp4Support(_) => ApiError::InvalidParameters(
            "static renditions cannot be added to an asset that uses mp4_support".into(),
        ),
        AddRenditionError::Db(e) => e.into(),
    }
}

/// `DELETE /video/v1/assets/{id}/static-renditions/{rendition_id}`: 204,
/// the file removed.
pub async fn delete_static_rendition(
    _auth: Authenticated,
    State(state): State<ApiState>,
    UrlPath((id, rendition_id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let record = load(&state, &id).await?;
    let Some(row) = record
        .renditions
        .iter()
        .find(|r| r.id == rendition_id)
        .cloned()
    else {
        return Err(ApiError::NotFound(
            "The requested static rendition does not exist".into(),
        ));
    };
    remove_rendition(&state, record.settings, &id, &row).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes one rendition file of an asset: its row, its request in the
/// asset's settings, and the stored file.
pub(super) async fn remove_rendition(
    state: &ApiState,
    mut settings: crate::asset::AssetSettings,
    asset_id: &str,
    row: &RenditionRow,
) -> Result<(), ApiError> {
    settings
        .static_renditions
        .retain(|r| crate::plan::rendition_name(r.resolution) != row.name);
    let asset = asset_id.to_owned();
    let rid = row.id.clone();
    blocking(state, move |db| {
        Ok(db.write(|tx| {
            tx.delete_rendition(&asset, &rid)?;
            tx.set_settings(&asset, &settings, now_ms())
        })?)
    })
    .await?;
    remove_stored(state, asset_id, &row.name).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let page = decode_cursor(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1700000000:abc123"),
        )
        .unwrap();
        assert_eq!(
            page,
            Page::After {
                created_at: 1_700_000_000,
                id: "abc123".into()
            }
        );
        assert!(decode_cursor("!!").is_err());
        assert!(
            decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:y'"))
                .is_err()
        );
    }
}
