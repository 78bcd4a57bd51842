//! Per-asset settings: the body of Mux's create-asset request, applied in
//! layers over the config's defaults (defaults → watch sub-folder profile →
//! sidecar `FILE.json` or `--settings`).
//!
//! Every field is checked on its own so that an error names the field it is
//! about (`static_renditions[1].resolution: unknown variant "4k", …`). Nothing
//! is silently ignored except the Mux request fields that do not apply here
//! (listed in `ACCEPTED_AND_IGNORED`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::asset::{AssetSettings, Meta, Mp4Support, RenditionRequest, VideoQuality};

/// Mux create-asset fields that are valid but have no effect here.
const ACCEPTED_AND_IGNORED: &[&str] = &[
    "input",
    "inputs",
    "advanced_playback_policies",
    "per_title_encode",
    "copy_overlays",
];

/// The fields `apply_request` reads, besides `ACCEPTED_AND_IGNORED`.
const APPLIED: &[&str] = &[
    "max_resolution_tier",
    "video_quality",
    "master_access",
    "normalize_audio",
    "passthrough",
    "test",
    "meta",
    "mp4_support",
    "static_renditions",
    "encoding_tier",
    "playback_policy",
    "playback_policies",
];

/// Whether `key` is a field of Mux's create-asset request that reeld knows.
/// The API drops other fields (Mux ignores unknown fields); sidecars and
/// profiles reject them, since there a typo is the likelier cause.
pub fn is_request_field(key: &str) -> bool {
    APPLIED.contains(&key) || ACCEPTED_AND_IGNORED.contains(&key)
}

/// A settings field that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: field `{field}` {problem}")]
pub struct SettingsError {
    /// Where the settings came from (`sidecar clip.mp4.json`, `profile "web"`, …).
    pub origin: String,
    /// The JSON path of the field.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SettingsError {
    /// The asset's `errors` for settings that cannot be used: the type Mux
    /// uses for a bad request, and this error as a sentence.
    pub fn asset_errors(&self) -> crate::asset::AssetErrors {
        crate::asset::AssetErrors {
            kind: "invalid_parameters".into(),
            messages: vec![format!("{self}.")],
        }
    }
}

fn field<T: DeserializeOwned>(origin: &str, name: &str, value: &Value) -> Result<T, SettingsError> {
    serde_json::from_value(value.clone()).map_err(|e| SettingsError {
        origin: origin.to_owned(),
        field: name.to_owned(),
        problem: format!("is invalid: {e}"),
    })
}

/// Applies a create-asset request body to `settings`, field by field.
pub fn apply_request(
    settings: &mut AssetSettings,
    body: &Value,
    origin: &str,
) -> Result<(), SettingsError> {
    let err = |field: &str, problem: String| SettingsError {
        origin: origin.to_owned(),
        field: field.to_owned(),
        problem,
    };
    let Some(object) = body.as_object() else {
        return Err(err("(body)", "must be a JSON object".into()));
    };
    let mut renditions_given = false;
    let mut video_quality_given = false;
    for (key, value) in object {
        match key.as_str() {
            "max_resolution_tier" => settings.max_resolution_tier = field(origin, key, value)?,
            "video_quality" => {
                settings.video_quality = field(origin, key, value)?;
                video_quality_given = true;
            }
            "master_access" => settings.master_access = field(origin, key, value)?,
            "normalize_audio" => settings.normalize_audio = field(origin, key, value)?,
            "passthrough" => settings.passthrough = field(origin, key, value)?,
            "test" => settings.test = field(origin, key, value)?,
            "meta" => settings.meta = Some(field::<Meta>(origin, key, value)?),
            "mp4_support" => {
                let v: Mp4Support = field(origin, key, value)?;
                settings.mp4_support = (v != Mp4Support::None).then_some(v);
            }
            "static_renditions" => {
                let Some(list) = value.as_array() else {
                    return Err(err(
                        key,
                        "must be a list of {\"resolution\": …} objects".into(),
                    ));
                };
                let mut requests = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let name = format!("static_renditions[{i}]");
                    if let Some(r) = item.get("resolution") {
                        let _: crate::asset::RenditionResolution =
                            field(origin, &format!("{name}.resolution"), r)?;
                    }
                    requests.push(field::<RenditionRequest>(origin, &name, item)?);
                }
                settings.static_renditions = requests;
                renditions_given = !settings.static_renditions.is_empty();
            }
            "playback_policy" | "playback_policies" => {
                // Mux takes one policy or a list under either name.
                let list = match value {
                    Value::String(_) => vec![value.clone()],
                    Value::Array(items) => items.clone(),
                    _ => {
                        return Err(err(
                            key,
                            "must be \"public\", \"signed\" or a list of them".into(),
                        ));
                    }
                };
                settings.playback_policies = list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| field(origin, &format!("{key}[{i}]"), v))
                    .collect::<Result<_, _>>()?;
            }
            "encoding_tier" => {
                // Mux's deprecated name for video_quality.
                let tier: String = field(origin, key, value)?;
                let quality = match tier.as_str() {
                    "baseline" => VideoQuality::Basic,
                    "smart" => VideoQuality::Plus,
                    "premium" => VideoQuality::Premium,
                    other => {
                        return Err(err(
                            key,
                            format!(
                                "is invalid: unknown value {other:?}, expected one of \"baseline\", \"smart\", \"premium\""
                            ),
                        ));
                    }
                };
                if !video_quality_given && !object.contains_key("video_quality") {
                    settings.video_quality = quality;
                }
            }
            k if ACCEPTED_AND_IGNORED.contains(&k) => {}
            other => {
                return Err(err(
                    other,
                    "is not a field of Mux's create-asset request".into(),
                ));
            }
        }
    }
    if renditions_given && settings.mp4_support.is_some() && object.contains_key("mp4_support") {
        return Err(err(
            "mp4_support",
            "cannot be combined with static_renditions (Mux allows one or the other)".into(),
        ));
    }
    // A later layer that picks one style replaces the other style of an earlier layer.
    if renditions_given {
        settings.mp4_support = None;
    } else if object.contains_key("mp4_support") {
        settings.static_renditions.clear();
    }
    settings.check_limits().map_err(|e| {
        err(
            e.field,
            format!("is {} characters long; the limit is {}", e.actual, e.limit),
        )
    })
}

/// Parses JSON text and applies it.
pub fn apply_json_text(
    settings: &mut AssetSettings,
    text: &str,
    origin: &str,
) -> Result<(), SettingsError> {
    let body: Value = serde_json::from_str(text).map_err(|e| SettingsError {
        origin: origin.to_owned(),
        field: "(body)".into(),
        problem: format!("is not valid JSON: {e}"),
    })?;
    apply_request(settings, &body, origin)
}

/// The sidecar of a media file, if one exists: `NAME.EXT.json`, else `NAME.json`.
pub fn sidecar_of(media: &Path) -> Option<PathBuf> {
    let full = PathBuf::from(format!("{}.json", media.display()));
    if full.is_file() {
        return Some(full);
    }
    let stem = media.with_extension("json");
    (stem != media && stem.is_file()).then_some(stem)
}

/// `base` with the media file's sidecar applied, if it has one. Returns the
/// settings, the sidecar's path, and the sidecar's problem if it is unusable
/// (the asset is then errored rather than made with settings nobody asked for).
pub fn with_sidecar(
    mut base: AssetSettings,
    media: &Path,
) -> (AssetSettings, Option<PathBuf>, Option<SettingsError>) {
    let Some(sidecar) = sidecar_of(media) else {
        return (base, None, None);
    };
    let origin = format!(
        "sidecar {}",
        sidecar
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let problem = match std::fs::read_to_string(&sidecar) {
        Ok(text) => apply_json_text(&mut base, &text, &origin).err(),
        Err(e) => Some(SettingsError {
            origin,
            field: "(file)".into(),
            problem: format!("cannot be read: {e}"),
        }),
    };
    (base, Some(sidecar), problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::{MasterAccess, MaxResolutionTier, RenditionResolution};
    use serde_json::json;

    fn base() -> AssetSettings {
        AssetSettings::defaults(MaxResolutionTier::P1080, VideoQuality::Plus)
    }

    #[test]
    fn a_full_request_applies() {
        let mut s = base();
        apply_request(
            &mut s,
            &json!({
                "inputs": [{"url": "file:///x"}],
                "playback_policy": ["public"],
                "max_resolution_tier": "2160p",
                "video_quality": "premium",
                "master_access": "temporary",
                "normalize_audio": true,
                "passthrough": "p",
                "meta": {"title": "T", "creator_id": "c", "external_id": "e"},
                "test": true,
                "static_renditions": [{"resolution": "highest"}, {"resolution": "720p", "passthrough": "x"}]
            }),
            "t",
        )
        .unwrap();
        assert_eq!(s.max_resolution_tier, MaxResolutionTier::P2160);
        assert_eq!(s.video_quality, VideoQuality::Premium);
        assert_eq!(s.master_access, MasterAccess::Temporary);
        assert!(s.normalize_audio && s.test);
        assert_eq!(s.meta.unwrap().title.as_deref(), Some("T"));
        assert_eq!(s.static_renditions.len(), 2);
        assert_eq!(s.static_renditions[1].resolution, RenditionResolution::P720);
    }

    #[test]
    fn errors_quote_the_bad_field() {
        let cases = [
            (
                json!({"max_resolution_tier": "4k"}),
                "max_resolution_tier",
                "4k",
            ),
            (
                json!({"static_renditions": [{"resolution": "highest"}, {"resolution": "999p"}]}),
                "static_renditions[1].resolution",
                "999p",
            ),
            (
                json!({"static_renditions": [{"resolution": "720p", "size": 1}]}),
                "static_renditions[0]",
                "size",
            ),
            (json!({"video_quality": 3}), "video_quality", "integer"),
            (
                json!({"mp4_support": "everything"}),
                "mp4_support",
                "everything",
            ),
            (json!({"colour": "red"}), "colour", "not a field"),
            (json!({"meta": {"titel": "x"}}), "meta", "titel"),
            (
                json!({"passthrough": "x".repeat(256)}),
                "passthrough",
                "256",
            ),
            (
                json!({"mp4_support": "standard", "static_renditions": [{"resolution": "highest"}]}),
                "mp4_support",
                "cannot be combined",
            ),
            (json!([1, 2]), "(body)", "object"),
        ];
        for (body, field, needle) in cases {
            let e = apply_request(&mut base(), &body, "sidecar a.json").unwrap_err();
            assert_eq!(e.field, field, "{body}");
            let text = e.to_string();
            assert!(
                text.contains(needle) && text.contains(field) && text.contains("sidecar a.json"),
                "{text}"
            );
        }
    }

    #[test]
    fn layers_override_in_order() {
        let mut s = base();
        apply_request(
            &mut s,
            &json!({"video_quality": "basic", "mp4_support": "standard"}),
            "profile",
        )
        .unwrap();
        apply_request(
            &mut s,
            &json!({"static_renditions": [{"resolution": "480p"}]}),
            "sidecar",
        )
        .unwrap();
        assert_eq!(
            s.video_quality,
            VideoQuality::Basic,
            "kept from the profile"
        );
        assert_eq!(
            s.mp4_support, None,
            "replaced by the sidecar's static_renditions"
        );
        assert_eq!(s.static_renditions.len(), 1);
        apply_request(&mut s, &json!({"encoding_tier": "premium"}), "x").unwrap();
        assert_eq!(s.video_quality, VideoQuality::Premium);
    }

    #[test]
    fn invalid_json_is_named() {
        let e = apply_json_text(&mut base(), "{\"max_resolution_tier\": ", "sidecar b.json")
            .unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn sidecar_names() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("clip.mp4");
        assert_eq!(sidecar_of(&media), None);
        std::fs::write(dir.path().join("clip.json"), "{}").unwrap();
        assert_eq!(sidecar_of(&media), Some(dir.path().join("clip.json")));
        std::fs::write(dir.path().join("clip.mp4.json"), "{}").unwrap();
        assert_eq!(sidecar_of(&media), Some(dir.path().join("clip.mp4.json")));
    }
}
