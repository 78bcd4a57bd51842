//! The web dashboard, served by `reeld run` on the API's listener: `/` is
//! its page, `/ui/…` its scripts, styles and session routes. The files are
//! compiled into the binary (plain HTML, CSS and ES modules, with UpChunk
//! vendored), so nothing is built with Node and nothing is read from disk.
//!
//! The page is a client of the API: it reads and changes assets, uploads,
//! jobs and webhook deliveries through the same `/video/v1` routes and JSON
//! as any other client, signed in with a session cookie (`session.rs`).
//!
//! Every answer here carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, nothing inline, no framing, and Trusted
//! Types with no policy, so the browser itself refuses any string assigned
//! as HTML), and the scripts only ever put text into the page.

mod session;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use session::from_cookie;

use super::{ApiError, ApiState};
use crate::config::StorageConfig;

/// One embedded file: its name under `/ui/`, type and bytes.
struct StaticFile {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! static_file {
    ($name:literal, $type:expr) => {
        StaticFile {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("static/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything the page loads. A name not listed here is not served, so no
/// request path can reach another file.
const FILES: &[StaticFile] = &[
    static_file!("index.html", "text/html; charset=utf-8"),
    static_file!("app.css", "text/css; charset=utf-8"),
    static_file!("app.js", JS),
    static_file!("api.js", JS),
    static_file!("dom.js", JS),
    static_file!("assets.js", JS),
    static_file!("asset.js", JS),
    static_file!("queue.js", JS),
    static_file!("upload.js", JS),
    static_file!("words.js", JS),
    static_file!("favicon.svg", "image/svg+xml"),
    static_file!("vendor/upchunk.mjs", JS),
];

/// The dashboard's routes, merged into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/ui/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/ui/{*file}", get(file))
}

/// `GET /`: the page.
async fn index(State(state): State<ApiState>) -> Response {
    serve(&state, &FILES[0])
}

/// `GET /ui/{file}`: one of the page's files.
async fn file(State(state): State<ApiState>, UrlPath(name): UrlPath<String>) -> Response {
    match FILES.iter().find(|f| f.name == name) {
        Some(f) => serve(&state, f),
        None => ApiError::NotFound("No dashboard file has this name".into()).into_response(),
    }
}

fn serve(state: &ApiState, file: &StaticFile) -> Response {
    let mut response = (StatusCode::OK, file.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    // The files change with the binary; the browser asks again each time
    // (a 200 of a few kilobytes on the same connection).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&content_security_policy(state))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The policy: everything from this origin, except that videos may also
/// come from the S3 endpoint downloads are redirected to.
fn content_security_policy(state: &ApiState) -> String {
    let mut media = vec!["'self'".to_owned()];
    let playback_origin = origin_of(&state.playback.stream_base);
    media.extend(playback_origin);
    if let StorageConfig::S3(s3) = &state.ctx.config.storage {
        match s3.public_endpoint.as_deref().or(s3.endpoint.as_deref()) {
            Some(endpoint) => media.extend(origin_of(endpoint)),
            // AWS: the bucket's own hosts, path-style and virtual-hosted.
            None => media.push(format!(
                "https://s3.{region}.amazonaws.com https://{bucket}.s3.{region}.amazonaws.com",
                region = s3.region,
                bucket = s3.bucket
            )),
        }
    }
    let media = media.join(" ");
    // Direct uploads go to the API's public base URL, which is this origin
    // unless a proxy in front names it otherwise.
    let connect = std::iter::once("'self'".to_owned())
        .chain(origin_of(state.ctx.links.base_url()))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src {media}; connect-src {connect}; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    )
}

/// `scheme://host[:port]` of a URL, if it has one (and is not this origin).
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}
