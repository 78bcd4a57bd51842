//! Mux's asset object, made from what the database stores. The API and the
//! CLI (`reeld assets list|get`) both serve this, so they always agree.
//!
//! This module decides what a reader sees *now*: whether temporary master
//! access is still on, and the signed URLs of the master and of each ready
//! rendition file. It reads no database and no store.

use crate::asset::{
    Asset, AssetStatus, Master, MasterAccess, RenditionStatus, StaticRenditionFile,
    StaticRenditions,
};
use crate::db::{AssetRecord, DbError, RenditionRow, UploadRecord, UploadStatus};
use crate::links::Links;
use crate::plan::MASTER_NAME;

/// Whether temporary master access is on for `record` at `now_s`.
pub fn master_access_on(record: &AssetRecord, now_s: i64) -> bool {
    record.settings.master_access == MasterAccess::Temporary
        && match record.status {
            // The 24 h start when the master is ready.
            AssetStatus::Ready => record.master_expires_at.is_some_and(|e| now_s < e),
            AssetStatus::Preparing | AssetStatus::Errored => true,
        }
}

/// The asset as Mux shows it at `now_s`. Without `links`, no URLs are given.
pub fn asset(record: AssetRecord, links: Option<&Links>, now_s: i64) -> Result<Asset, DbError> {
    let master_on = master_access_on(&record, now_s);
    let master = master_on.then(|| match record.status {
        AssetStatus::Preparing => Master {
            status: "preparing".into(),
            url: None,
        },
        AssetStatus::Errored => Master {
            status: "errored".into(),
            url: None,
        },
        AssetStatus::Ready => Master {
            status: "ready".into(),
            url: links
                .zip(record.master_expires_at)
                .map(|(l, expires)| l.signed_url(&record.id, MASTER_NAME, expires)),
        },
    });
    let static_renditions = static_renditions(&record, links, now_s)?;
    let settings = record.settings;
    let summary = record.summary;
    Ok(Asset {
        created_at: record.created_at.to_string(),
        status: record.status,
        duration: summary.duration,
        resolution_tier: summary.resolution_tier,
        max_resolution_tier: settings.max_resolution_tier,
        encoding_tier: settings.video_quality.encoding_tier().to_owned(),
        video_quality: settings.video_quality,
        max_stored_frame_rate: summary.max_stored_frame_rate,
        aspect_ratio: summary.aspect_ratio,
        tracks: summary.tracks,
        errors: record.errors,
        passthrough: settings.passthrough,
        meta: settings.meta,
        master_access: if master_on {
            MasterAccess::Temporary
        } else {
            MasterAccess::None
        },
        master,
        static_renditions,
        mp4_support: settings.mp4_support,
        normalize_audio: settings.normalize_audio,
        non_standard_input_reasons: summary.non_standard_input_reasons,
        master_filesize: summary.master_filesize,
        ingest_type: record.ingest_type,
        upload_id: record.upload_id,
        playback_ids: record.playback_ids,
        test: settings.test,
        progress: record.progress,
        id: record.id,
    })
}

/// Mux's upload object at `now_s`. The signed `url` is given while the
/// upload waits for bytes (and `links` is given); `error` only when asked
/// (webhook bodies leave it out, as Mux's do).
pub fn upload(record: &UploadRecord, links: Option<&Links>, with_error: bool) -> serde_json::Value {
    let mut out = serde_json::json!({
        "id": record.id,
        "status": record.status,
        "timeout": record.timeout_s,
        "cors_origin": record.cors_origin,
    });
    let fields = out.as_object_mut().expect("an object");
    if let Some(settings) = &record.new_asset_settings {
        fields.insert("new_asset_settings".into(), settings.clone());
    }
    if let Some(asset_id) = &record.asset_id {
        fields.insert("asset_id".into(), asset_id.clone().into());
    }
    if with_error && let Some(error) = &record.error {
        fields.insert(
            "error".into(),
            serde_json::to_value(error).expect("serializes"),
        );
    }
    if record.status == UploadStatus::Waiting
        && let Some(links) = links
    {
        let url = links.upload_url(&record.id, record.expires_at_ms.div_euclid(1000));
        fields.insert("url".into(), url.into());
    }
    if record.test {
        fields.insert("test".into(), true.into());
    }
    out
}

/// `static_renditions`: the recorded files, or, before the source is
/// planned, what the request asks for (all `preparing`, or `errored` if the
/// asset errored first).
fn static_renditions(
    record: &AssetRecord,
    links: Option<&Links>,
    now_s: i64,
) -> Result<Option<StaticRenditions>, DbError> {
    if !record.renditions.is_empty() {
        let expires = links.map(|l| l.rendition_expiry(now_s));
        let files = record
            .renditions
            .iter()
            .map(|row| {
                let mut file = rendition_file(row)?;
                if file.status == RenditionStatus::Ready
                    && let (Some(l), Some(e)) = (links, expires)
                {
                    file.url = Some(l.signed_url(&record.id, &file.name, e));
                }
                Ok(file)
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        return Ok(Some(StaticRenditions::of(files)));
    }
    let requested = crate::plan::requested_names(&record.settings);
    if requested.is_empty() {
        return Ok(None);
    }
    let file_status = if record.status == AssetStatus::Errored {
        RenditionStatus::Errored
    } else {
        RenditionStatus::Preparing
    };
    let files = requested
        .into_iter()
        .map(
            |(name, resolution, kind, passthrough)| StaticRenditionFile {
                id: String::new(),
                ext: if name.ends_with(".m4a") {
                    "m4a".into()
                } else {
                    "mp4".into()
                },
                name,
                resolution,
                resolution_tier: None,
                width: None,
                height: None,
                bitrate: None,
                filesize: None,
                status: file_status,
                kind,
                passthrough,
                url: None,
            },
        )
        .collect();
    Ok(Some(StaticRenditions::of(files)))
}

/// One rendition file as Mux shows it (without its URL).
pub fn rendition_file(row: &RenditionRow) -> Result<StaticRenditionFile, DbError> {
    let corrupt = |what: &str, v: &str| DbError::Corrupt {
        table: "renditions",
        detail: format!("{}: {what} {v:?}", row.name),
    };
    Ok(StaticRenditionFile {
        resolution: row
            .resolution
            .as_deref()
            .map(|r| enum_of(r).map_err(|_| corrupt("resolution", r)))
            .transpose()?,
        resolution_tier: row
            .resolution_tier
            .as_deref()
            .map(|r| enum_of(r).map_err(|_| corrupt("resolution_tier", r)))
            .transpose()?,
        status: RenditionStatus::parse(&row.status)
            .ok_or_else(|| corrupt("status", &row.status))?,
        kind: enum_of(&row.kind).map_err(|_| corrupt("kind", &row.kind))?,
        width: row.width,
        height: row.height,
        bitrate: row.bitrate,
        filesize: row.filesize.map(|f| f.to_string()),
        id: row.id.clone(),
        name: row.name.clone(),
        ext: row.ext.clone(),
        passthrough: row.passthrough.clone(),
        url: None,
    })
}

fn enum_of<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
}
