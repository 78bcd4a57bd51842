//! The stream routes: static renditions by playback ID, as Mux serves them
//! (`/stream/{PLAYBACK_ID}/{file}?token=…`), and Cloudflare Stream's
//! download URLs (`/stream/{VIDEO_UID or TOKEN}/downloads/{default.mp4|
//! audio.m4a}`). `[playback] stream_base_url` is what URLs handed out
//! begin with; a proxy may map another host's root onto `/stream`.
//!
//! A public playback ID, or a video without `requireSignedURLs`, needs no
//! token. Otherwise the token is checked (`playback::tokens`) before the
//! database is asked whether the file is ready; then the bytes are served as
//! `/downloads` serves them (ranges, validators, S3 redirects). Refusals are
//! 403 in the envelope of the API the URL belongs to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use super::cloudflare::CfError;
use super::downloads::{Wanted, serve_stored};
use super::{ApiError, ApiState, blocking};
use crate::asset::RenditionStatus;
use crate::playback::tokens::{self, Expect, Flavor, TokenError};
use crate::playback::{DownloadKind, PlaybackPolicy, is_id};

/// How long a presigned store URL for a stream file lives at most, in s.
const PRESIGNED_FOR_S: i64 = 15 * 60;

/// `GET`/`HEAD /stream/{playback_id}/{file}`: Mux's static rendition URLs.
pub async fn mux_file(
    State(state): State<ApiState>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath((playback_id, file)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let missing = || ApiError::NotFound("The playback ID does not exist.".into());
    if !is_id(&playback_id) || !is_file_name(&file) {
        return Err(missing());
    }
    let pid = playback_id.clone();
    let (asset_id, policy) = blocking(&state, move |db| Ok(db.read(|r| r.playback_target(&pid))?))
        .await?
        .ok_or_else(missing)?;
    let now_s = crate::clock::now_s();
    let mut usable_until_s = now_s + PRESIGNED_FOR_S;
    if policy == PlaybackPolicy::Signed {
        let token = query.get("token").ok_or_else(|| {
            ApiError::Forbidden(
                "This playback ID is signed: add ?token= with a JWT made with a signing key."
                    .into(),
            )
        })?;
        let expect = Expect {
            flavor: Flavor::Mux,
            subject: Some(&playback_id),
            viewer: viewer(&state, peer, &headers),
            geoip: state.playback.geoip.as_ref(),
            now_s,
        };
        let claims = check_token(&state, token, &expect)
            .await
            .map_err(|e| ApiError::Forbidden(format!("The token was refused: {e}.")))?;
        usable_until_s = usable_until_s.min(claims.exp.max(now_s + 1));
    }
    ready_rendition(&state, &asset_id, &file).await?;
    let wanted = Wanted {
        method: &method,
        asset_id: &asset_id,
        file: &file,
        headers: &headers,
        download_name: query.get("download").map(String::as_str),
        usable_until_s,
    };
    serve_stored(&state, &wanted).await
}

/// `GET`/`HEAD /stream/{uid or token}/downloads/{default.mp4|audio.m4a}`:
/// Cloudflare Stream's download URLs.
pub async fn cloudflare_file(
    State(state): State<ApiState>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath((video, file)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, CfError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed.into());
    }
    let missing = || CfError::from(ApiError::NotFound("The video does not exist.".into()));
    let kind = DownloadKind::from_url_file(&file).ok_or_else(missing)?;
    let now_s = crate::clock::now_s();
    let mut usable_until_s = now_s + PRESIGNED_FOR_S;
    let (asset_id, signed) = if video.contains('.') {
        let expect = Expect {
            flavor: Flavor::Cloudflare,
            subject: None,
            viewer: viewer(&state, peer, &headers),
            geoip: state.playback.geoip.as_ref(),
            now_s,
        };
        let claims = check_token(&state, &video, &expect)
            .await
            .map_err(|e| CfError::forbidden(format!("The token was refused: {e}.")))?;
        usable_until_s = usable_until_s.min(claims.exp.max(now_s + 1));
        (claims.sub, true)
    } else {
        (video, false)
    };
    if !is_id(&asset_id) {
        return Err(missing());
    }
    let id = asset_id.clone();
    let record = blocking(&state, move |db| Ok(db.read(|r| r.asset(&id))?))
        .await?
        .ok_or_else(missing)?;
    if record.require_signed_urls && !signed {
        return Err(CfError::forbidden(
            "This video requires signed URLs: use a token in place of the video uid.".into(),
        ));
    }
    let name = crate::plan::rendition_name(kind.resolution());
    ready_rendition(&state, &asset_id, &name).await?;
    let wanted = Wanted {
        method: &method,
        asset_id: &asset_id,
        file: &name,
        headers: &headers,
        download_name: None,
        usable_until_s,
    };
    Ok(serve_stored(&state, &wanted).await?.into_response())
}

/// A token's checks, with the public key its `kid` names: reeld's own
/// token key, or one of the signing keys.
pub(super) async fn check_token(
    state: &ApiState,
    token: &str,
    expect: &Expect<'_>,
) -> Result<tokens::Claims, TokenError> {
    let kid = tokens::key_id(token)?;
    let key = if kid == state.playback.own_key_id {
        state.playback.own_public.clone()
    } else {
        if !is_id(&kid) {
            return Err(TokenError::UnknownKey);
        }
        let found = blocking(state, move |db| Ok(db.read(|r| r.signing_key(&kid))?))
            .await
            .map_err(|_| TokenError::UnknownKey)?
            .ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::DecodingKey::from_rsa_pem(found.public_key.as_bytes())
            .map_err(|_| TokenError::UnknownKey)?
    };
    tokens::verify(token, &key, expect)
}

/// The viewer's address: the peer, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not one.
fn viewer(state: &ApiState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = &state.ctx.config.playback.trusted_proxies;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.matches_ip(ip));
    let mut ip = peer.ip();
    if !is_trusted(ip) {
        return ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.into_iter().rev() {
        let Ok(hop) = hop.parse::<IpAddr>() else {
            break;
        };
        ip = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    ip
}

/// Letters, digits, `-`, `_` and one `.mp4`/`.m4a` ending: a rendition name.
fn is_file_name(file: &str) -> bool {
    let Some(stem) = file
        .strip_suffix(".mp4")
        .or_else(|| file.strip_suffix(".m4a"))
    else {
        return false;
    };
    !stem.is_empty()
        && stem.len() <= 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The asset's rendition `file` exists and is ready.
async fn ready_rendition(state: &ApiState, asset_id: &str, file: &str) -> Result<(), ApiError> {
    let (id, name) = (asset_id.to_owned(), file.to_owned());
    let row = blocking(state, move |db| Ok(db.read(|r| r.rendition(&id, &name))?)).await?;
    match row {
        Some(r) if r.status == RenditionStatus::Ready.as_str() => Ok(()),
        _ => Err(ApiError::NotFound(
            "The requested static rendition is not ready or does not exist.".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rendition_names_are_files() {
        assert!(is_file_name("highest.mp4"));
        assert!(is_file_name("capped-1080p.mp4"));
        assert!(is_file_name("audio.m4a"));
        assert!(!is_file_name("../master.mp4"));
        assert!(!is_file_name(".mp4"));
        assert!(!is_file_name("x.mov"));
        assert!(!is_file_name("a.b.mp4"));
    }
}
