//! `GET`/`HEAD /downloads/{asset_id}/{file}?expires=…&signature=…`: stored
//! files served as a static file server serves them.
//!
//! The signature is checked first (403 if expired, altered or foreign), then
//! the database: the asset must exist, the master needs master access on,
//! a rendition must be ready. Then `Range` (206, 416), `ETag`,
//! `Last-Modified`, `If-None-Match`, `If-Modified-Since` and `If-Range`, and
//! `download=NAME` for `Content-Disposition`. The body streams from the
//! file; nothing is read whole into memory.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, blocking};
use crate::asset::{AssetStatus, RenditionStatus};
use crate::links::download_path;
use crate::plan::MASTER_NAME;

/// Bytes read from the file per chunk of the response body.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks read ahead of the client, per download.
const READ_AHEAD_CHUNKS: usize = 4;
/// The longest a presigned store URL lives, in seconds.
const PRESIGNED_FOR_S: u64 = 15 * 60;
/// Longest saved-file name kept from `download=`, in characters.
const MAX_FILENAME_CHARS: usize = 200;

/// The file download route.
pub async fn download(
    State(state): State<ApiState>,
    method: Method,
    UrlPath((asset_id, file)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let expires_s = state
        .ctx
        .links
        .verify(
            &download_path(&asset_id, &file),
            query.get("expires").map(String::as_str),
            query.get("signature").map(String::as_str),
            crate::clock::now_s(),
        )
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    check_still_allowed(&state, &asset_id, &file).await?;
    let wanted = Wanted {
        method: &method,
        asset_id: &asset_id,
        file: &file,
        headers: &headers,
        download_name: query.get("download").map(String::as_str),
        usable_until_s: expires_s,
    };
    serve_stored(&state, &wanted).await
}

/// A stored file a request has been allowed to fetch.
pub(super) struct Wanted<'a> {
    /// GET or HEAD.
    pub method: &'a Method,
    /// Its asset.
    pub asset_id: &'a str,
    /// Its name in the store.
    pub file: &'a str,
    /// The request's headers (ranges, validators).
    pub headers: &'a HeaderMap,
    /// `download=NAME`: the saved file's name.
    pub download_name: Option<&'a str>,
    /// Unix s until which the request's permission lasts (a presigned store
    /// URL lives no longer).
    pub usable_until_s: i64,
}

/// Serves a file the caller may have: from the local store with ranges and
/// validators, or as a redirect to the S3 store's presigned URL.
pub(super) async fn serve_stored(
    state: &ApiState,
    wanted: &Wanted<'_>,
) -> Result<Response, ApiError> {
    let (method, asset_id, file, headers) =
        (wanted.method, wanted.asset_id, wanted.file, wanted.headers);
    let Some(root) = state.ctx.store.local_root() else {
        return presigned_redirect(state, wanted).await;
    };
    // Held until the body is sent (or the client goes away).
    let permit = state
        .downloads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyDownloads)?;

    let path = root.join(crate::store::asset_key(asset_id, file).to_string());
    let handle = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound("The file does not exist.".into()))?;
    let meta = handle
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot stat {}: {e}", path.display())))?;
    let size = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let etag = entity_tag(size, modified);
    let last_modified = httpdate::fmt_http_date(modified);

    let mut response_headers = HeaderMap::new();
    let content_type = if file.ends_with(".m4a") {
        "audio/mp4"
    } else {
        "video/mp4"
    };
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::ETAG, header_value(&etag));
    response_headers.insert(header::LAST_MODIFIED, header_value(&last_modified));
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Some(name) = wanted.download_name {
        response_headers.insert(
            header::CONTENT_DISPOSITION,
            header_value(&content_disposition(name, file)),
        );
    }

    if not_modified(headers, &etag, modified) {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }
    let range_applies = if_range_holds(headers, &etag, &last_modified);
    let requested = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_applies)
        .map(|r| parse_range(r, size));
    let (status, start, len) = match requested {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, size),
        Some(RangeRequest::Unsatisfiable) => {
            response_headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response());
        }
        Some(RangeRequest::One { start, end }) => {
            response_headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    response_headers.insert(header::CONTENT_LENGTH, header_value(&len.to_string()));
    if *method == Method::HEAD {
        return Ok((status, response_headers).into_response());
    }
    // The file served is the one just looked at, even if a new one took its
    // name since.
    let file = handle.into_std().await;
    let body = Body::from_stream(read_range(file, start, len, permit));
    Ok((status, response_headers, body).into_response())
}

/// The bytes `start..start + len` of `file` (holding `permit` until the
/// stream ends), as a stream of
/// chunks. One blocking thread reads them with `pread` and hands them over
/// through a channel of `READ_AHEAD_CHUNKS`, so memory per download stays
/// bounded, and a client that goes away stops the reads.
fn read_range(
    file: std::fs::File,
    start: u64,
    len: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD_CHUNKS);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let (mut at, end) = (start, start + len);
        while at < end {
            let want = CHUNK_BYTES.min((end - at) as usize);
            let mut buf = vec![0u8; want];
            let result = file.read_at(&mut buf, at).and_then(|n| {
                if n == 0 {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early",
                    ))
                } else {
                    Ok(n)
                }
            });
            let item = result.map(|n| {
                buf.truncate(n);
                at += n as u64;
                bytes::Bytes::from(buf)
            });
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    // The permit lives as long as the body: until the last byte is handed
    // to the connection, or the client goes away.
    futures::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        rx.recv().await.map(|item| (item, (rx, permit)))
    })
}

/// The URL is genuine; is the file still meant to be downloadable?
async fn check_still_allowed(state: &ApiState, asset_id: &str, file: &str) -> Result<(), ApiError> {
    let id = asset_id.to_owned();
    let record = blocking(state, move |db| Ok(db.read(|r| r.asset(&id))?))
        .await?
        .ok_or_else(|| ApiError::NotFound("The requested asset does not exist".into()))?;
    if file == MASTER_NAME {
        if record.status == AssetStatus::Ready
            && crate::view::master_access_on(&record, crate::clock::now_s())
        {
            return Ok(());
        }
        return Err(ApiError::Forbidden(
            "Master access is not enabled for this asset.".into(),
        ));
    }
    match record.renditions.iter().find(|r| r.name == file) {
        Some(r) if r.status == RenditionStatus::Ready.as_str() => Ok(()),
        _ => Err(ApiError::NotFound(
            "The requested static rendition is not ready or does not exist.".into(),
        )),
    }
}

fn header_value(s: &str) -> HeaderValue {
    // Every value built here is printable ASCII.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A strong tag from size and modification time (files are never rewritten
/// in place: a new upload is a new file, with a new mtime).
fn entity_tag(size: u64, modified: SystemTime) -> String {
    let ns = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{size:x}-{ns:x}\"")
}

/// `If-None-Match` (weak comparison), else `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        // HTTP dates have whole seconds.
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(modified) <= secs(since);
    }
    false
}

/// `If-Range`: a `Range` counts only if the validator still matches (a
/// strong ETag, or exactly the `Last-Modified` date).
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => {
            let v = v.trim();
            v == etag || v == last_modified
        }
    }
}

/// What a `Range` header asks for, judged against the file size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Unparseable, or several ranges: served whole with 200, as RFC 9110
    /// allows.
    Ignored,
    /// No range overlaps the file: 416.
    Unsatisfiable,
    /// One range, inclusive bounds.
    One {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
}

fn parse_range(header: &str, size: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    let ranges: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut satisfiable = Vec::new();
    for r in &ranges {
        let Some((first, last)) = r.split_once('-') else {
            return RangeRequest::Ignored;
        };
        let num = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        let bounds = match (first.trim(), last.trim()) {
            ("", suffix) => match num(suffix) {
                Some(0) => None,
                Some(n) if size > 0 => Some((size.saturating_sub(n), size - 1)),
                Some(_) => None,
                None => return RangeRequest::Ignored,
            },
            (start, "") => match num(start) {
                Some(s) if s < size => Some((s, size - 1)),
                Some(_) => None,
                None => return RangeRequest::Ignored,
            },
            (start, end) => match (num(start), num(end)) {
                (Some(s), Some(e)) if s > e => return RangeRequest::Ignored,
                (Some(s), Some(e)) if s < size => Some((s, e.min(size - 1))),
                (Some(_), Some(_)) => None,
                _ => return RangeRequest::Ignored,
            },
        };
        satisfiable.extend(bounds);
    }
    match satisfiable.as_slice() {
        [] if ranges.is_empty() => RangeRequest::Ignored,
        [] => RangeRequest::Unsatisfiable,
        [(start, end)] if ranges.len() == 1 => RangeRequest::One {
            start: *start,
            end: *end,
        },
        _ => RangeRequest::Ignored,
    }
}

/// An S3-backed file: a redirect to the store's own presigned URL, which
/// expires with this signed URL or in 15 minutes, whichever is sooner, and names
/// the same saved file through `response-content-disposition`. The bytes,
/// ranges and validators are then the store's.
async fn presigned_redirect(state: &ApiState, wanted: &Wanted<'_>) -> Result<Response, ApiError> {
    let (method, asset_id, file) = (wanted.method, wanted.asset_id, wanted.file);
    let expires_s = wanted.usable_until_s;
    // Never past reeld's own expiry, and short: the store cannot know that
    // master access was turned off or the asset deleted since, so a client
    // comes back through this check at least every `PRESIGNED_FOR`.
    let left = expires_s.saturating_sub(crate::clock::now_s()).max(1) as u64;
    let lifetime = std::time::Duration::from_secs(left.min(PRESIGNED_FOR_S));
    let disposition = wanted
        .download_name
        .map(|name| content_disposition(name, file));
    let key = crate::store::asset_key(asset_id, file);
    let url = state
        .ctx
        .store
        .presigned_get(method, &key, lifetime, disposition.as_deref())
        .await
        .map_err(|e| ApiError::Internal(format!("cannot presign {key}: {}", e.chain())))?
        .ok_or_else(|| ApiError::Internal("the store cannot presign URLs".into()))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, header_value(&url));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::FOUND, headers).into_response())
}

/// `Content-Disposition: attachment` for a client-chosen name: an ASCII
/// `filename` with anything unsafe replaced (path separators, quotes,
/// control characters, …), plus RFC 6266's `filename*` for non-ASCII names.
fn content_disposition(requested: &str, stored: &str) -> String {
    let cleaned: String = requested
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '/' | '\\' | '"' | ';' | ':' | '*' | '?' | '<' | '>' | '|' | '%' => '_',
            c => c,
        })
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    let name = if cleaned.is_empty() {
        stored.to_owned()
    } else {
        cleaned
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        format!("attachment; filename=\"{ascii}\"")
    } else {
        let encoded = percent_encoding::utf8_percent_encode(&name, RFC5987).to_string();
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    }
}

/// Everything but RFC 5987's `attr-char` is percent-encoded.
const RFC5987: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let size = 1000;
        assert_eq!(parse_range("bytes=0-99", size), One { start: 0, end: 99 });
        assert_eq!(
            parse_range("bytes=900-", size),
            One {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse_range("bytes=-100", size),
            One {
                start: 900,
                end: 999
            }
        );
        assert_eq!(parse_range("bytes=-5000", size), One { start: 0, end: 999 });
        assert_eq!(
            parse_range("bytes=990-5000", size),
            One {
                start: 990,
                end: 999
            }
        );
        assert_eq!(parse_range("bytes=1000-", size), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", size), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", size), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", size), Ignored);
        assert_eq!(parse_range("bytes=5-1", size), Ignored);
        assert_eq!(parse_range("items=0-1", size), Ignored);
        assert_eq!(parse_range("bytes=a-b", size), Ignored);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
    }

    #[test]
    fn hostile_download_names_are_made_safe() {
        assert_eq!(
            content_disposition("../x", "master.mp4"),
            "attachment; filename=\"_x\""
        );
        assert_eq!(
            content_disposition("a\"b.mp4", "master.mp4"),
            "attachment; filename=\"a_b.mp4\""
        );
        assert_eq!(
            content_disposition("a\r\nSet-Cookie: x=1", "master.mp4"),
            "attachment; filename=\"aSet-Cookie_ x=1\""
        );
        assert_eq!(
            content_disposition("", "720p.mp4"),
            "attachment; filename=\"720p.mp4\""
        );
        assert_eq!(
            content_disposition("été.mp4", "master.mp4"),
            "attachment; filename=\"_t_.mp4\"; filename*=UTF-8''%C3%A9t%C3%A9.mp4"
        );
    }
}
