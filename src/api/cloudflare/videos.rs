//! `/stream/{uid}`, `/stream/{uid}/downloads…` and `/stream/{uid}/token`.

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{CfAuth, CfError, object_body, ok};
use crate::api::assets::{add_rendition_error, check_asset_id, load, remove_rendition};
use crate::api::{ApiError, ApiState, blocking};
use crate::asset::{AssetStatus, ProgressState, RenditionRequest, RenditionStatus, TrackKind};
use crate::db::AssetRecord;
use crate::playback::DownloadKind;
use crate::playback::tokens::MAX_LIFETIME_S;

/// How long a token from the token endpoint lives unless `exp` says.
const DEFAULT_TOKEN_S: i64 = 3600;

async fn video_record(state: &ApiState, uid: &str) -> Result<AssetRecord, CfError> {
    check_asset_id(uid).map_err(|_| not_found())?;
    load(state, uid).await.map_err(|e| match e {
        ApiError::NotFound(_) => not_found(),
        e => e.into(),
    })
}

fn not_found() -> CfError {
    ApiError::NotFound("The video does not exist.".into()).into()
}

/// Cloudflare's video object for an asset.
fn video(record: &AssetRecord) -> Value {
    let (state, pct) = match record.status {
        AssetStatus::Ready => ("ready", 100.0),
        AssetStatus::Errored => ("error", 0.0),
        AssetStatus::Preparing => match record.progress.state {
            ProgressState::Ingesting if record.progress.progress <= 0.0 => ("queued", 0.0),
            ProgressState::Ingesting => ("downloading", record.progress.progress),
            _ => ("inprogress", record.progress.progress.max(0.0)),
        },
    };
    let (error_code, error_text) = match &record.errors {
        Some(e) => (e.kind.clone(), e.messages.join(" ")),
        None => (String::new(), String::new()),
    };
    let video_track = record
        .summary
        .tracks
        .iter()
        .find(|t| t.kind == TrackKind::Video);
    let dimension = |d: Option<u32>| d.map_or(-1, i64::from);
    let created = crate::webhooks::rfc3339(record.created_at * 1000);
    let mut meta = Map::new();
    if let Some(m) = &record.settings.meta {
        if let Some(title) = &m.title {
            meta.insert("name".into(), json!(title));
        }
        if let Some(c) = &m.creator_id {
            meta.insert("creator_id".into(), json!(c));
        }
        if let Some(x) = &m.external_id {
            meta.insert("external_id".into(), json!(x));
        }
    }
    json!({
        "uid": record.id,
        "created": created,
        "uploaded": created,
        "readyToStream": record.status == AssetStatus::Ready,
        "status": {
            "state": state,
            "pctComplete": format!("{pct:.1}"),
            "errorReasonCode": error_code,
            "errorReasonText": error_text,
        },
        "requireSignedURLs": record.require_signed_urls,
        "duration": record.summary.duration.unwrap_or(-1.0),
        "input": {
            "width": dimension(video_track.and_then(|t| t.max_width)),
            "height": dimension(video_track.and_then(|t| t.max_height)),
        },
        "meta": meta,
        "creator": record.settings.meta.as_ref().and_then(|m| m.creator_id.clone()),
    })
}

/// `GET /stream/{uid}`.
pub async fn retrieve(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
) -> Result<Response, CfError> {
    Ok(ok(video(&video_record(&state, &uid).await?)))
}

/// `POST /stream/{uid}`: `requireSignedURLs` and `meta.name`.
pub async fn edit(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
    body: Body,
) -> Result<Response, CfError> {
    let body = object_body(body, &state).await?;
    let record = video_record(&state, &uid).await?;
    let require = match body.get("requireSignedURLs") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(CfError::bad_request(
                "requireSignedURLs must be true or false".into(),
            ));
        }
    };
    let mut settings = record.settings.clone();
    if let Some(meta) = body.get("meta") {
        let name = match meta.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(CfError::bad_request("meta.name must be a string".into())),
        };
        settings.meta.get_or_insert_with(Default::default).title = name;
        settings
            .check_limits()
            .map_err(|e| CfError::bad_request(e.to_string()))?;
    }
    let id = uid.clone();
    let record = blocking(&state, move |db| {
        db.write(|tx| {
            tx.set_settings(&id, &settings, crate::jobs::now_ms())?;
            if let Some(on) = require {
                tx.set_require_signed_urls(&id, on)?;
            }
            tx.read().asset(&id)
        })?
        .ok_or_else(|| ApiError::NotFound("The video does not exist.".into()))
    })
    .await?;
    Ok(ok(video(&record)))
}

/// The `downloads` object: each kind that was asked for, with its state.
async fn downloads_of(state: &ApiState, record: &AssetRecord) -> Result<Value, CfError> {
    let id = record.id.clone();
    let progress = blocking(state, move |db| Ok(db.read(|r| r.rendition_progress(&id))?)).await?;
    let base = &state.playback.stream_base;
    let mut out = Map::new();
    for kind in DownloadKind::ALL {
        let name = crate::plan::rendition_name(kind.resolution());
        let Some(row) = record.renditions.iter().find(|r| r.name == name) else {
            continue;
        };
        let (status, pct) = match row.status.as_str() {
            s if s == RenditionStatus::Ready.as_str() => ("ready", 100.0),
            s if s == RenditionStatus::Preparing.as_str() => {
                ("inprogress", progress.get(&name).copied().unwrap_or(0.0))
            }
            _ => ("error", 0.0),
        };
        out.insert(
            kind.as_str().into(),
            json!({
                "status": status,
                "url": format!("{base}/{}/downloads/{}", record.id, kind.url_file()),
                "percentComplete": pct,
            }),
        );
    }
    Ok(Value::Object(out))
}

/// `GET /stream/{uid}/downloads`.
pub async fn downloads(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
) -> Result<Response, CfError> {
    let record = video_record(&state, &uid).await?;
    Ok(ok(downloads_of(&state, &record).await?))
}

async fn create(state: &ApiState, uid: &str, kind: DownloadKind) -> Result<Response, CfError> {
    video_record(state, uid).await?;
    let max_attempts = state.ctx.config.max_attempts;
    let id = uid.to_owned();
    blocking(state, move |db| {
        crate::jobs::renditions::add(
            db,
            &id,
            RenditionRequest {
                resolution: kind.resolution(),
                passthrough: None,
            },
            max_attempts,
            None,
        )
        .map_err(add_rendition_error)
    })
    .await?;
    state.ctx.queue_signal.notify_one();
    let record = video_record(state, uid).await?;
    Ok(ok(downloads_of(state, &record).await?))
}

fn kind_of(text: &str) -> Result<DownloadKind, CfError> {
    DownloadKind::parse(text).ok_or_else(|| {
        CfError::bad_request(format!(
            "{text:?} is not a download type: use default or audio"
        ))
    })
}

/// `POST /stream/{uid}/downloads`: the default (video) download.
pub async fn create_downloads(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
) -> Result<Response, CfError> {
    create(&state, &uid, DownloadKind::Default).await
}

/// `POST /stream/{uid}/downloads/{default|audio}`.
pub async fn create_download(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid, kind)): UrlPath<(String, String, String)>,
) -> Result<Response, CfError> {
    let kind = kind_of(&kind)?;
    create(&state, &uid, kind).await
}

async fn delete(state: &ApiState, uid: &str, kinds: &[DownloadKind]) -> Result<Response, CfError> {
    let record = video_record(state, uid).await?;
    for kind in kinds {
        let name = crate::plan::rendition_name(kind.resolution());
        if let Some(row) = record.renditions.iter().find(|r| r.name == name) {
            let settings = load(state, uid).await?.settings;
            remove_rendition(state, settings, uid, row).await?;
        }
    }
    Ok(ok(json!("ok")))
}

/// `DELETE /stream/{uid}/downloads`: every download.
pub async fn delete_downloads(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
) -> Result<Response, CfError> {
    delete(&state, &uid, &DownloadKind::ALL).await
}

/// `DELETE /stream/{uid}/downloads/{default|audio}`.
pub async fn delete_download(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid, kind)): UrlPath<(String, String, String)>,
) -> Result<Response, CfError> {
    let kind = kind_of(&kind)?;
    delete(&state, &uid, &[kind]).await
}

/// `POST /stream/{uid}/token`: a signed token for the video, made with
/// reeld's own key or with the signing key `id` whose private `pem` is
/// given.
pub async fn token(
    _auth: CfAuth,
    State(state): State<ApiState>,
    UrlPath((_account, uid)): UrlPath<(String, String)>,
    body: Body,
) -> Result<Response, CfError> {
    let body = object_body(body, &state).await?;
    video_record(&state, &uid).await?;
    let now = crate::clock::now_s();
    let number = |name: &str, default: i64| -> Result<i64, CfError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| {
                CfError::bad_request(format!("{name} must be a Unix time in seconds"))
            }),
        }
    };
    let exp = number("exp", now + DEFAULT_TOKEN_S)?;
    let nbf = number("nbf", now - DEFAULT_TOKEN_S)?;
    if exp > now + MAX_LIFETIME_S {
        return Err(CfError::bad_request(
            "exp may be at most 24 hours from now".into(),
        ));
    }
    if exp <= nbf || exp <= now {
        return Err(CfError::bad_request(
            "exp must be in the future and after nbf".into(),
        ));
    }
    let downloadable = match body.get("downloadable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(CfError::bad_request(
                "downloadable must be true or false".into(),
            ));
        }
    };
    let rules = body.get("accessRules").cloned().unwrap_or(json!([]));
    let parsed: Vec<crate::playback::rules::AccessRule> = serde_json::from_value(rules.clone())
        .map_err(|e| CfError::bad_request(format!("accessRules is invalid: {e}")))?;
    // Rules that can never be applied are refused now, not at every view.
    if let Err(crate::playback::rules::RuleRefusal::Invalid { index, why }) =
        crate::playback::rules::check(&parsed, std::net::Ipv4Addr::UNSPECIFIED.into(), None)
    {
        return Err(CfError::bad_request(format!("accessRules[{index}]: {why}")));
    }
    let (kid, pem) = match (body.get("id"), body.get("pem")) {
        (None, None) => (
            state.playback.own_key_id.clone(),
            state.playback.own_private_pem.clone(),
        ),
        (Some(Value::String(id)), Some(Value::String(pem))) => user_key(&state, id, pem).await?,
        _ => {
            return Err(CfError::bad_request(
                "id and pem are given together, or neither".into(),
            ));
        }
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.clone());
    let claims = json!({
        "sub": uid, "kid": kid, "exp": exp, "nbf": nbf, "iat": now,
        "downloadable": downloadable, "accessRules": rules,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| CfError::bad_request("pem is not an RSA private key".into()))?;
    let token = jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| CfError::from(ApiError::Internal(format!("cannot sign a token: {e}"))))?;
    Ok(ok(json!({ "token": token })))
}

/// The signing key `id` and the PEM text of its private half, given
/// base64-encoded (as Cloudflare hands it out) or as PEM, checked against
/// the public half reeld keeps.
async fn user_key(state: &ApiState, id: &str, pem: &str) -> Result<(String, String), CfError> {
    use base64::Engine as _;
    let text = if pem.contains("-----BEGIN") {
        pem.to_owned()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(pem.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| CfError::bad_request("pem is neither PEM nor base64 PEM".into()))?
    };
    let (_, public) = crate::playback::keys::public_of(&text)
        .map_err(|e| CfError::bad_request(format!("pem: {e}")))?;
    let kid = id.to_owned();
    let known = if crate::playback::is_id(&kid) {
        blocking(state, move |db| Ok(db.read(|r| r.signing_key(&kid))?)).await?
    } else {
        None
    };
    match known {
        Some(key) if key.public_key == public => Ok((id.to_owned(), text)),
        Some(_) => Err(CfError::bad_request(format!(
            "pem is not the private key of signing key {id}"
        ))),
        None => Err(CfError::bad_request(format!(
            "there is no signing key {id}"
        ))),
    }
}
