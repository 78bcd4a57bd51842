//! `PUT /uploads/{id}`: the signed URL of a direct upload, taking the file's
//! bytes as Mux's upload URLs (and UpChunk) expect them.
//!
//! - A whole-file `PUT` (`curl -T`) is the whole file: 200.
//! - Chunked `PUT`s carry `Content-Range: bytes a-b/total`. A chunk that is
//!   not the last gets 308 with `Range: bytes=0-N` (and no `Location`, so a
//!   browser hands it to the script instead of following it); the last gets
//!   200. A chunk that starts below what has arrived is accepted and the
//!   overlap skipped (UpChunk re-sends a whole chunk after a short `Range`); one
//!   that would leave a gap is refused.
//! - Bytes stream to `SPOOL/uploads/ID` and are synced before the count in
//!   the database moves, so an upload resumes where it was after a restart.
//! - The last byte creates the asset, in the transaction that moves the
//!   upload to `asset_created`.
//! - `OPTIONS` answers the CORS preflight for the upload's `cors_origin`,
//!   and every answer (errors too) carries `Access-Control-Allow-Origin` and
//!   `Access-Control-Expose-Headers: Range`: without them a browser shows
//!   UpChunk status 0, which it treats as fatal.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::uploads::{asset_settings, upload_file, valid_upload_id};
use super::{ApiError, ApiState, blocking};
use crate::asset::IngestType;
use crate::db::{NewAsset, NewSource, SourceIdentity, SourceOrigin, UploadRecord, UploadStatus};
use crate::jobs::now_ms;

/// The largest request: UpChunk's largest chunk (500 MiB).
pub const MAX_REQUEST_BYTES: u64 = 500 * 1024 * 1024;
/// How long a request waits for another request of the same upload to end.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

mod chunk;

/// One lock per upload with a request in flight, so that two requests for
/// the same upload (a client retrying while its first request still runs)
/// take turns instead of writing the file at once.
#[derive(Default)]
pub struct UploadLocks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl UploadLocks {
    async fn lock(&self, id: &str) -> LockGuard<'_> {
        let lock = self
            .held
            .lock()
            .expect("upload locks")
            .entry(id.to_owned())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        LockGuard {
            locks: self,
            id: id.to_owned(),
            _guard: guard,
        }
    }
}

struct LockGuard<'a> {
    locks: &'a UploadLocks,
    id: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().expect("upload locks");
        // Two references: the map's and this guard's; no one else waits.
        if held
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            held.remove(&self.id);
        }
    }
}

/// `expires` and `signature` of the upload URL. Read by hand, not by
/// axum's `Query`, so that a malformed query is refused with the CORS
/// headers a browser needs to show the refusal.
#[derive(Debug, Default)]
pub struct Signed {
    expires: Option<String>,
    signature: Option<String>,
}

impl Signed {
    fn parse(query: Option<&str>) -> Signed {
        let mut signed = Signed::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "expires" if signed.expires.is_none() => signed.expires = Some(value.into_owned()),
                "signature" if signed.signature.is_none() => {
                    signed.signature = Some(value.into_owned());
                }
                _ => {}
            }
        }
        signed
    }
}

/// What a `Content-Range` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Bytes `first..=last` of a file of `total`.
    Bytes { first: u64, last: u64, total: u64 },
    /// `bytes */total`: how much has arrived?
    Query { total: u64 },
    /// No `Content-Range`: the whole file, of this length if known.
    Whole { length: Option<u64> },
}

fn parse_chunk(headers: &HeaderMap) -> Result<Chunk, ApiError> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(range) = headers.get(header::CONTENT_RANGE) else {
        return Ok(Chunk::Whole { length });
    };
    let bad = || {
        ApiError::InvalidParameters(format!(
            "Content-Range {:?} must be \"bytes FIRST-LAST/TOTAL\" (inclusive, e.g. \"bytes 0-262143/614400\")",
            String::from_utf8_lossy(range.as_bytes())
        ))
    };
    let text = range.to_str().map_err(|_| bad())?.trim();
    let spec = text.strip_prefix("bytes ").ok_or_else(bad)?;
    let (span, total) = spec.split_once('/').ok_or_else(bad)?;
    let number = |s: &str| -> Result<u64, ApiError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let total = number(total)?;
    if span == "*" {
        return Ok(Chunk::Query { total });
    }
    let (first, last) = span.split_once('-').ok_or_else(bad)?;
    let (first, last) = (number(first)?, number(last)?);
    if first > last || last >= total {
        return Err(ApiError::InvalidParameters(format!(
            "Content-Range {text:?}: the first byte must not be after the last, and the last must be below the total"
        )));
    }
    if let Some(length) = length
        && length != last - first + 1
    {
        return Err(ApiError::InvalidParameters(format!(
            "Content-Range {text:?} announces {} bytes but Content-Length is {length}",
            last - first + 1
        )));
    }
    Ok(Chunk::Bytes { first, last, total })
}

/// `Range: bytes=0-N` for `received` bytes (none when nothing arrived).
fn range_header(received: u64) -> Option<HeaderValue> {
    (received > 0)
        .then(|| HeaderValue::from_str(&format!("bytes=0-{}", received - 1)).expect("ASCII digits"))
}

fn with_cors(mut response: Response, origin: &str) -> Response {
    let headers = response.headers_mut();
    let origin = HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Range"),
    );
    response
}

async fn record_of(state: &ApiState, id: &str) -> Result<Option<UploadRecord>, ApiError> {
    let id = id.to_owned();
    blocking(state, move |db| Ok(db.read(|r| r.upload(&id))?)).await
}

/// `OPTIONS /uploads/{id}`: the CORS preflight.
pub async fn preflight(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let origin = match valid_upload_id(&id) {
        true => record_of(&state, &id).await.ok().flatten(),
        false => None,
    }
    .map(|r| r.cors_origin)
    .unwrap_or_else(|| "*".into());
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("PUT, OPTIONS"),
    );
    // Echoing the asked-for header names is what every upload server does;
    // they are only names, and a browser sends no credentials here.
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| {
            v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ')
        })
        .cloned()
        .unwrap_or(HeaderValue::from_static("content-range, content-type"));
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    with_cors(response, &origin)
}

/// `PUT /uploads/{id}?expires=…&signature=…`: one chunk, or the whole file.
pub async fn put(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let signed = Signed::parse(query.as_deref());
    let mut origin = "*".to_owned();
    let result = receive(&state, &id, &signed, &headers, body, &mut origin).await;
    let response = match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    with_cors(response, &origin)
}

async fn receive(
    state: &ApiState,
    id: &str,
    signed: &Signed,
    headers: &HeaderMap,
    body: Body,
    origin: &mut String,
) -> Result<Response, ApiError> {
    if !valid_upload_id(id) {
        return Err(ApiError::NotFound(
            "The requested upload does not exist".into(),
        ));
    }
    state
        .ctx
        .links
        .verify_upload(
            id,
            signed.expires.as_deref(),
            signed.signature.as_deref(),
            crate::clock::now_s(),
        )
        .map_err(|e| ApiError::Forbidden(format!("{e} Create a new upload for a new URL.")))?;
    let _turn = tokio::time::timeout(TURN_WAIT, state.upload_locks.lock(id))
        .await
        .map_err(|_| {
            ApiError::RetryLater(
                "Another request for this upload is still running; try again shortly.".into(),
            )
        })?;
    let record = record_of(state, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("The requested upload does not exist".into()))?;
    origin.clone_from(&record.cors_origin);
    let chunk = parse_chunk(headers)?;
    match record.status {
        UploadStatus::Waiting if now_ms() < record.expires_at_ms => {}
        UploadStatus::Waiting | UploadStatus::TimedOut => {
            return Err(ApiError::Forbidden("The upload has timed out.".into()));
        }
        UploadStatus::Cancelled => {
            return Err(ApiError::Forbidden(
                "The upload was cancelled; no asset is made from it.".into(),
            ));
        }
        UploadStatus::AssetCreated | UploadStatus::Errored => {
            // The last chunk again (its answer was lost): it is done.
            let total = record.total_size.unwrap_or(record.received);
            return match chunk {
                Chunk::Bytes { last, total: t, .. } if t == total && last + 1 == total => {
                    Ok(StatusCode::OK.into_response())
                }
                Chunk::Query { total: t } | Chunk::Whole { length: Some(t) } if t == total => {
                    Ok(StatusCode::OK.into_response())
                }
                _ => Err(ApiError::Forbidden(format!(
                    "The upload is complete; it made asset {}.",
                    record.asset_id.as_deref().unwrap_or("?")
                ))),
            };
        }
    }
    let max = state.ctx.config.api.max_upload_bytes;
    let declared_total = match chunk {
        Chunk::Bytes { total, .. } | Chunk::Query { total } => Some(total),
        Chunk::Whole { length } => length,
    };
    if let Some(total) = declared_total {
        if total > max {
            return Err(ApiError::TooLarge(format!(
                "The file is {total} bytes; this server takes uploads of at most {max} bytes ([api] max_upload_bytes)."
            )));
        }
        if let (Chunk::Bytes { .. } | Chunk::Query { .. }, Some(known)) = (chunk, record.total_size)
            && known != total
        {
            return Err(ApiError::InvalidParameters(format!(
                "Content-Range says the file is {total} bytes, but earlier chunks said {known}."
            )));
        }
    }
    let (first, expected, total) = match chunk {
        Chunk::Query { total } => {
            return Ok(progress_response(record.received, Some(total)));
        }
        Chunk::Bytes { first, last, total } => {
            if last - first + 1 > MAX_REQUEST_BYTES {
                return Err(ApiError::TooLarge(format!(
                    "A chunk may be at most {MAX_REQUEST_BYTES} bytes; this one is {}.",
                    last - first + 1
                )));
            }
            if first > record.received {
                return Ok(gap(first, record.received));
            }
            (first, Some(last - first + 1), Some(total))
        }
        // A whole-file PUT starts the file again.
        Chunk::Whole { length } => (0, length, length),
    };
    let whole = matches!(chunk, Chunk::Whole { .. });
    if whole && record.received > 0 {
        // A whole-file PUT starts again: the database forgets the old bytes
        // before the file does.
        set_received(state, id, 0, None).await?;
    }
    let recorded = if whole { 0 } else { record.received };
    let path = upload_file(&state.ctx.config.spool_dir, id);
    let folder = path
        .parent()
        .expect("an upload file has a folder")
        .to_owned();
    tokio::fs::create_dir_all(&folder)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot create {}: {e}", folder.display())))?;
    let needed = expected
        .unwrap_or(0)
        .saturating_sub(recorded.saturating_sub(first));
    crate::disk::ensure_room(&folder, "spool folder", needed).map_err(|why| {
        tracing::warn!(upload.id = %id, "{why}");
        ApiError::RetryLater(format!("{why} Try again later."))
    })?;
    let open = chunk::open(&path, recorded)
        .await
        .map_err(|e| chunk_error(id, e))?;
    let start = open.good;
    if start < recorded {
        // The file lost bytes the database counted (a crash before they
        // reached the disk): the count follows the file.
        tracing::warn!(upload.id = %id, recorded, on_disk = start, "An upload's file is shorter than recorded; going on from what it has.");
        set_received(state, id, start, None).await?;
    }
    if first > start {
        return Ok(gap(first, start));
    }
    let request = chunk::Request {
        first,
        expected,
        max_total: max,
        deadline: std::time::Instant::now()
            + std::time::Duration::from_millis(
                record.expires_at_ms.saturating_sub(now_ms()).max(0) as u64,
            ),
    };
    let outcome = chunk::write(open, &folder, &request, body).await;
    let received = match &outcome {
        Ok(end)
        | Err(chunk::ChunkError::Short { end, .. } | chunk::ChunkError::Idle { end, .. }) => *end,
        Err(_) => start,
    };
    let total_known = total.or(match (&outcome, chunk) {
        (Ok(end), Chunk::Whole { length: None }) => Some(*end),
        _ => None,
    });
    if outcome.is_ok() && total_known.is_some_and(|t| received >= t) {
        // The count and the asset commit together.
        return complete(state, id, &record, &path).await;
    }
    let still_waiting = set_received(state, id, received, total).await?;
    outcome.map_err(|e| chunk_error(id, e))?;
    if !still_waiting {
        // Cancelled or timed out while this chunk arrived: its bytes (and a
        // file this request may have made anew) go.
        super::uploads::remove_bytes(state, id).await;
        return Err(ApiError::Forbidden(
            "The upload was cancelled; no asset is made from it.".into(),
        ));
    }
    Ok(progress_response(received, total_known))
}

async fn set_received(
    state: &ApiState,
    id: &str,
    received: u64,
    total: Option<u64>,
) -> Result<bool, ApiError> {
    let upload = id.to_owned();
    blocking(state, move |db| {
        Ok(db.write(|tx| tx.set_upload_received(&upload, received, total))?)
    })
    .await
}

/// The 400 for a chunk that would leave a gap, with how far the file got.
fn gap(first: u64, have: u64) -> Response {
    let mut response = ApiError::InvalidParameters(format!(
        "This chunk starts at byte {first}, but only {have} bytes have arrived; send the bytes from {have} on (no gaps)."
    ))
    .into_response();
    if let Some(range) = range_header(have) {
        response.headers_mut().insert(header::RANGE, range);
    }
    response
}

fn chunk_error(id: &str, e: chunk::ChunkError) -> ApiError {
    match e {
        chunk::ChunkError::Short { message, .. } => ApiError::InvalidParameters(message),
        // UpChunk and Mux's SDK retry a 408.
        chunk::ChunkError::Idle { message, .. } => ApiError::RequestTimeout(message),
        chunk::ChunkError::Oversized(message) => ApiError::TooLarge(message),
        chunk::ChunkError::NoRoom(why) => ApiError::RetryLater(format!("{why} Try again later.")),
        chunk::ChunkError::Io(e) => ApiError::Internal(format!("cannot write upload {id}: {e}")),
    }
}

/// 308 with how far the upload has got, or 200 once it is whole.
fn progress_response(received: u64, total: Option<u64>) -> Response {
    if total.is_some_and(|t| received >= t) {
        return StatusCode::OK.into_response();
    }
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    if let Some(range) = range_header(received) {
        response.headers_mut().insert(header::RANGE, range);
    }
    response
}

/// The last byte arrived (and is synced): the asset is created (with its job
/// and source) in the transaction that moves the upload to `asset_created`
/// and records its size, so no crash can leave a whole upload waiting.
async fn complete(
    state: &ApiState,
    id: &str,
    record: &UploadRecord,
    path: &Path,
) -> Result<Response, ApiError> {
    let identity = SourceIdentity::of(path).map_err(|e| {
        ApiError::Internal(format!(
            "cannot read upload {id} at {}: {e}",
            path.display()
        ))
    })?;
    // Settings that were fine when the upload was created may not be any
    // more (a profile changed): the asset is then born errored, so that the
    // upload still ends and says why.
    let defaults = state.ctx.settings_for(Path::new(""));
    let (settings, born_errored) = match asset_settings(
        defaults.clone(),
        record.new_asset_settings.as_ref(),
        record.test,
    ) {
        Ok(settings) => (settings, None),
        Err(e) => (
            defaults,
            Some(crate::asset::AssetErrors {
                kind: crate::jobs::outcome::INVALID_INPUT.into(),
                messages: vec![e.to_string()],
            }),
        ),
    };
    let asset = NewAsset::now(settings, IngestType::OnDemandDirectUpload);
    let source = NewSource {
        path: path.to_owned(),
        origin: SourceOrigin::Upload,
        identity,
        sidecar: None,
    };
    let max_attempts = state.ctx.config.max_attempts;
    let upload = id.to_owned();
    let made = blocking(state, move |db| {
        Ok(db.write(|tx| {
            tx.complete_upload(
                &upload,
                &asset,
                &source,
                max_attempts,
                now_ms(),
                born_errored.as_ref(),
            )
        })?)
    })
    .await?;
    let Some(done) = made else {
        super::uploads::remove_bytes(state, id).await;
        return Err(ApiError::Forbidden(
            "The upload was cancelled; no asset is made from it.".into(),
        ));
    };
    tracing::info!(
        upload.id = %id,
        asset.id = done.asset_id.as_deref().unwrap_or_default(),
        bytes = identity.size,
        "Direct upload complete; asset created."
    );
    state.ctx.queue_signal.notify_one();
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(range: Option<&str>, length: Option<&str>) -> Result<Chunk, ApiError> {
        let mut h = HeaderMap::new();
        if let Some(r) = range {
            h.insert(header::CONTENT_RANGE, HeaderValue::from_str(r).unwrap());
        }
        if let Some(l) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_str(l).unwrap());
        }
        parse_chunk(&h)
    }

    #[test]
    fn content_ranges_as_upchunk_sends_them() {
        assert_eq!(
            chunk(Some("bytes 0-262143/614400"), Some("262144")).unwrap(),
            Chunk::Bytes {
                first: 0,
                last: 262_143,
                total: 614_400
            }
        );
        assert_eq!(
            chunk(Some("bytes */614400"), None).unwrap(),
            Chunk::Query { total: 614_400 }
        );
        assert_eq!(
            chunk(None, Some("10")).unwrap(),
            Chunk::Whole { length: Some(10) }
        );
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes 0-1/*",
            "items 0-1/2",
            "bytes -1/2",
            "bytes 0-1",
            "bytes +0-1/2",
        ] {
            assert!(chunk(Some(bad), None).is_err(), "{bad}");
        }
        assert!(chunk(Some("bytes 0-9/100"), Some("11")).is_err());
    }

    #[test]
    fn progress_is_a_308_with_range_until_whole() {
        let r = progress_response(262_144, Some(614_400));
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::RANGE], "bytes=0-262143");
        assert!(r.headers().get(header::LOCATION).is_none());
        assert_eq!(progress_response(10, Some(10)).status(), StatusCode::OK);
        assert!(
            progress_response(0, Some(10))
                .headers()
                .get(header::RANGE)
                .is_none()
        );
    }
}
