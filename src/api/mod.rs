//! The HTTP API: Mux's `/video/v1` asset routes and `/system/v1` signing
//! keys, Cloudflare Stream's `/client/v4` video, downloads and keys routes,
//! signed downloads of stored files, stream URLs by playback ID or video
//! uid, `/healthz`, and the web dashboard at `/`. Served by `reeld run`
//! with axum.
//!
//! Handlers are thin: they parse and validate the request into typed values,
//! call the database (`db.write(|tx| …)`) and the view, and answer in Mux's
//! JSON. Every failure is an [`ApiError`], sent as Mux's error envelope.

mod assets;
mod auth;
mod body;
mod cloudflare;
mod dashboard;
mod downloads;
mod error;
mod inputs;
mod jobs;
mod playback_ids;
mod signing_keys;
mod stream;
mod upload_bytes;
pub mod uploads;
mod webhook_events;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

pub use error::ApiError;

use crate::config::{ApiToken, Config, Secret};
use crate::jobs::Context;

/// How long in-flight requests (downloads, mostly) may run on after the
/// daemon is told to stop.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// What every handler gets.
#[derive(Clone)]
pub struct ApiState {
    /// The daemon's shared context.
    pub ctx: Arc<Context>,
    /// The access tokens.
    pub tokens: Arc<auth::TokenSet>,
    /// One permit per download being served.
    pub downloads: Arc<tokio::sync::Semaphore>,
    /// Direct uploads with a request in flight.
    pub upload_locks: Arc<upload_bytes::UploadLocks>,
    /// Stream URLs and token checks.
    pub playback: Arc<PlaybackState>,
}

/// What the stream routes and token endpoint need besides the context.
pub struct PlaybackState {
    /// The id (`kid`) of reeld's own token key.
    pub own_key_id: String,
    /// Its private half, PEM (for Cloudflare's token endpoint).
    pub own_private_pem: String,
    /// Its public half.
    pub own_public: jsonwebtoken::DecodingKey,
    /// The country database, when configured.
    pub geoip: Option<crate::playback::rules::GeoIp>,
    /// What stream URLs begin with, without a trailing slash.
    pub stream_base: String,
}

impl std::fmt::Debug for PlaybackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackState")
            .field("own_key_id", &self.own_key_id)
            .field("stream_base", &self.stream_base)
            .finish_non_exhaustive()
    }
}

/// The playback state for `ctx`: reeld's token key (made once, kept in
/// `stream-token.key` beside the database, mode 0600), the GeoIP database,
/// and the stream base URL.
pub fn playback_for(ctx: &Context) -> Result<PlaybackState, crate::daemon::StartError> {
    let config = &ctx.config;
    let path = crate::daemon::data_dir(config).join("stream-token.key");
    let (own_key_id, own_private_pem) = crate::playback::keys::own_token_key(&path)?;
    let (_, public) = crate::playback::keys::public_of(&own_private_pem)
        .map_err(|e| crate::daemon::StartError::GeoIp(format!("{}: {e}", path.display())))?;
    let own_public = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes())
        .map_err(|e| crate::daemon::StartError::GeoIp(format!("{}: {e}", path.display())))?;
    let geoip = match &config.playback.geoip_database {
        Some(p) => {
            Some(crate::playback::rules::GeoIp::open(p).map_err(crate::daemon::StartError::GeoIp)?)
        }
        None => None,
    };
    let stream_base = config
        .playback
        .stream_base_url
        .clone()
        .unwrap_or_else(|| format!("{}/stream", ctx.links.base_url()));
    Ok(PlaybackState {
        own_key_id,
        own_private_pem,
        own_public,
        geoip,
        stream_base,
    })
}

/// The access tokens the API accepts: the configured ones, or, when the
/// config lists none, one generated once and kept beside the database in
/// `api-token` (`ID:SECRET`, mode 0600).
pub fn tokens_for(config: &Config) -> Result<Vec<ApiToken>, crate::keys::KeyFileError> {
    if !config.api.tokens.is_empty() {
        return Ok(config.api.tokens.clone());
    }
    let path = crate::daemon::data_dir(config).join("api-token");
    let text = crate::keys::load_or_create(&path, || {
        format!(
            "reeld-{}:{}",
            &crate::asset::new_asset_id()[..8].to_ascii_lowercase(),
            crate::keys::random_secret()
        )
    })?;
    let (id, secret) = text.split_once(':').unwrap_or(("reeld", text.as_str()));
    info!(
        token.id = id,
        file = %path.display(),
        "No [[api.tokens]] in the config: the API accepts the token kept in this file."
    );
    Ok(vec![ApiToken {
        id: id.to_owned(),
        secret: Secret(secret.to_owned()),
    }])
}

/// The router, with every route and limit.
pub fn router(state: ApiState) -> Router {
    let json_limit = state.ctx.config.api.max_json_body_bytes;
    let video = Router::new()
        .route("/assets", get(assets::list).post(assets::create))
        .route(
            "/assets/{asset_id}",
            get(assets::retrieve)
                .patch(assets::update)
                .delete(assets::delete),
        )
        .route(
            "/assets/{asset_id}/master-access",
            put(assets::master_access),
        )
        .route("/assets/{asset_id}/mp4-support", put(assets::mp4_support))
        .route(
            "/assets/{asset_id}/static-renditions",
            post(assets::create_static_rendition),
        )
        .route(
            "/assets/{asset_id}/static-renditions/{rendition_id}",
            axum::routing::delete(assets::delete_static_rendition),
        )
        .route("/uploads", get(uploads::list).post(uploads::create))
        .route("/uploads/{upload_id}", get(uploads::retrieve))
        .route("/uploads/{upload_id}/cancel", put(uploads::cancel))
        .route(
            "/assets/{asset_id}/playback-ids",
            post(playback_ids::create),
        )
        .route(
            "/assets/{asset_id}/playback-ids/{playback_id}",
            get(playback_ids::retrieve).delete(playback_ids::delete),
        )
        .route("/playback-ids/{playback_id}", get(playback_ids::lookup))
        .route("/jobs", get(jobs::list))
        .route("/webhook-events", get(webhook_events::list))
        .route(
            "/webhook-events/{event_id}/retry",
            post(webhook_events::retry),
        )
        .layer(DefaultBodyLimit::max(json_limit));
    let system = Router::new()
        .route(
            "/signing-keys",
            get(signing_keys::list).post(signing_keys::create),
        )
        .route(
            "/signing-keys/{key_id}",
            get(signing_keys::retrieve).delete(signing_keys::delete),
        )
        .layer(DefaultBodyLimit::max(json_limit));
    Router::new()
        .nest("/video/v1", video)
        .nest("/system/v1", system)
        .nest("/client/v4", cloudflare::routes())
        .route("/stream/{playback_id}/{file}", get(stream::mux_file))
        .route(
            "/stream/{video}/downloads/{file}",
            get(stream::cloudflare_file),
        )
        .route("/healthz", get(healthz))
        .merge(dashboard::routes().layer(DefaultBodyLimit::max(json_limit)))
        .route("/downloads/{asset_id}/{file}", get(downloads::download))
        // Streamed to the spool, not buffered: the handler enforces its own
        // limits (500 MiB a request, [api] max_upload_bytes a file).
        .route(
            "/uploads/{upload_id}",
            put(upload_bytes::put)
                .options(upload_bytes::preflight)
                .layer(DefaultBodyLimit::disable()),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, then lets requests in
/// flight finish for a few seconds.
pub async fn serve(
    ctx: Arc<Context>,
    tokens: Vec<ApiToken>,
    playback: PlaybackState,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let state = ApiState {
        tokens: Arc::new(auth::TokenSet::new(&tokens)),
        downloads: Arc::new(tokio::sync::Semaphore::new(
            ctx.config.api.max_concurrent_downloads,
        )),
        upload_locks: Default::default(),
        playback: Arc::new(playback),
        ctx,
    };
    let app = router(state);
    info!(address = %address, "API listening.");
    let stopping = shutdown.clone();
    // The peer address is the viewer a token's IP rules are checked against.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopping.cancelled_owned());
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                warn!(error = %e, "The API server stopped with an error.");
            }
        }
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_DRAIN).await;
        } => {
            info!("API: requests still running after the drain period were cut off.");
        }
    }
    info!("API stopped.");
}

async fn request_span(request: Request<axum::body::Body>, next: Next) -> Response {
    let method = request.method().clone();
    // The path only: query strings carry download signatures.
    let path = request.uri().path().to_owned();
    let span = info_span!("request", %method, %path);
    async move {
        let response = next.run(request).await;
        debug!(status = response.status().as_u16(), "Request answered.");
        response
    }
    .instrument(span)
    .await
}

/// `GET /healthz`: no auth; answers 200 while the database answers.
async fn healthz(State(state): State<ApiState>) -> Response {
    let db = state.ctx.db.clone();
    let ok = tokio::task::spawn_blocking(move || db.read(|r| r.unfinished_transcodes()))
        .await
        .ok()
        .and_then(Result::ok);
    match ok {
        Some(queued) => {
            axum::Json(serde_json::json!({"status": "ok", "queued_jobs": queued})).into_response()
        }
        None => ApiError::Unavailable("the database does not answer".into()).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Runs a database call off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&crate::db::Db) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let db = state.ctx.db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| ApiError::Internal(format!("a database task failed: {e}")))?
}
