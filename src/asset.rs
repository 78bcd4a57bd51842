//! The asset model: Mux's asset object, field for field, and the per-asset
//! settings (the body of Mux's create-asset request).
//!
//! Only values from Mux's enums can be represented here: Mux's own SDKs reject a
//! whole response that carries any other. This module owns the JSON shape that
//! the CLI prints and the HTTP API serves; it does no I/O.

use serde::{Deserialize, Serialize};

mod renditions;
pub use renditions::{
    Mp4Support, RenditionRequest, RenditionResolution, RenditionStatus, RenditionType,
    StaticRenditionFile, StaticRenditions,
};

/// `status` of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetStatus {
    /// Being ingested or transcoded.
    Preparing,
    /// The master (and renditions) are stored.
    Ready,
    /// Could not be made; see `errors`.
    Errored,
}

impl AssetStatus {
    /// The enum value as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Preparing => "preparing",
            AssetStatus::Ready => "ready",
            AssetStatus::Errored => "errored",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<AssetStatus> {
        match s {
            "preparing" => Some(AssetStatus::Preparing),
            "ready" => Some(AssetStatus::Ready),
            "errored" => Some(AssetStatus::Errored),
            _ => None,
        }
    }
}

/// `resolution_tier`: the tier an asset was stored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResolutionTier {
    /// No video.
    #[serde(rename = "audio-only")]
    AudioOnly,
    /// Up to 1280×720 (also every smaller video: Mux has no lower tier).
    #[serde(rename = "720p")]
    P720,
    /// Up to 1920×1080.
    #[serde(rename = "1080p")]
    P1080,
    /// Up to 2560×1440.
    #[serde(rename = "1440p")]
    P1440,
    /// Up to 3840×2160.
    #[serde(rename = "2160p")]
    P2160,
}

impl ResolutionTier {
    /// The tier of a video stored at `width`×`height` (display orientation).
    ///
    /// Tiers are judged on the long and short edge so that portrait video
    /// lands in the same tier as its landscape twin.
    pub fn of_video(width: u32, height: u32) -> ResolutionTier {
        let (long, short) = (width.max(height), width.min(height));
        if long <= 1280 && short <= 720 {
            ResolutionTier::P720
        } else if long <= 1920 && short <= 1080 {
            ResolutionTier::P1080
        } else if long <= 2560 && short <= 1440 {
            ResolutionTier::P1440
        } else {
            ResolutionTier::P2160
        }
    }
}

/// `max_resolution_tier`: the cap an asset is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxResolutionTier {
    /// Fits 1920×1080 (portrait 1080×1920). Mux's default.
    #[serde(rename = "1080p")]
    P1080,
    /// Fits 2560×1440.
    #[serde(rename = "1440p")]
    P1440,
    /// Fits 3840×2160.
    #[serde(rename = "2160p")]
    P2160,
}

impl MaxResolutionTier {
    /// The (long edge, short edge) box, in pixels, that the master must fit in.
    pub fn bounds(self) -> (u32, u32) {
        match self {
            MaxResolutionTier::P1080 => (1920, 1080),
            MaxResolutionTier::P1440 => (2560, 1440),
            MaxResolutionTier::P2160 => (3840, 2160),
        }
    }
}

/// `video_quality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoQuality {
    /// Fastest encode, smallest files.
    Basic,
    /// The default balance.
    Plus,
    /// Slowest encode, best quality per bit.
    Premium,
}

impl VideoQuality {
    /// Mux's deprecated `encoding_tier` twin, still required in responses.
    pub fn encoding_tier(self) -> &'static str {
        match self {
            VideoQuality::Basic => "baseline",
            VideoQuality::Plus => "smart",
            VideoQuality::Premium => "premium",
        }
    }

    /// The name used for this level in `pipelines/`.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoQuality::Basic => "basic",
            VideoQuality::Plus => "plus",
            VideoQuality::Premium => "premium",
        }
    }
}

/// `master_access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MasterAccess {
    /// No master URL is exposed.
    #[default]
    None,
    /// A signed URL valid for 24 h.
    Temporary,
}

/// `ingest_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestType {
    /// Created from an `inputs[].url`.
    OnDemandUrl,
    /// A file handed over directly: the watch folder and `reeld ingest`.
    OnDemandDirectUpload,
}

impl IngestType {
    /// The enum value as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestType::OnDemandUrl => "on_demand_url",
            IngestType::OnDemandDirectUpload => "on_demand_direct_upload",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<IngestType> {
        match s {
            "on_demand_url" => Some(IngestType::OnDemandUrl),
            "on_demand_direct_upload" => Some(IngestType::OnDemandDirectUpload),
            _ => None,
        }
    }
}

/// `meta`: user metadata with Mux's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Max 512 code points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Max 128 code points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    /// Max 128 code points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The per-asset settings in force for one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetSettings {
    /// Cap on the stored resolution.
    pub max_resolution_tier: MaxResolutionTier,
    /// Encoder quality level.
    pub video_quality: VideoQuality,
    /// Whether the master is downloadable.
    #[serde(default)]
    pub master_access: MasterAccess,
    /// Loudness normalisation of audio outputs.
    #[serde(default)]
    pub normalize_audio: bool,
    /// Free-form user data, max 255 characters.
    #[serde(default)]
    pub passthrough: Option<String>,
    /// Title, creator and external ids.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// A test asset.
    #[serde(default)]
    pub test: bool,
    /// Static renditions requested (Mux's `static_renditions`).
    #[serde(default)]
    pub static_renditions: Vec<RenditionRequest>,
    /// The legacy `mp4_support` value, when one was given instead.
    #[serde(default)]
    pub mp4_support: Option<Mp4Support>,
    /// The playback IDs to make with the asset (`playback_policies`).
    #[serde(default)]
    pub playback_policies: Vec<crate::playback::PlaybackPolicy>,
}

impl AssetSettings {
    /// The settings of an asset nobody said anything about.
    pub fn defaults(max_resolution_tier: MaxResolutionTier, video_quality: VideoQuality) -> Self {
        AssetSettings {
            max_resolution_tier,
            video_quality,
            master_access: MasterAccess::None,
            normalize_audio: false,
            passthrough: None,
            meta: None,
            test: false,
            static_renditions: Vec::new(),
            mp4_support: None,
            playback_policies: Vec::new(),
        }
    }
}

/// A field over Mux's limits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} is {actual} characters long; the limit is {limit}")]
pub struct FieldTooLong {
    /// The field's JSON path.
    pub field: &'static str,
    /// Its length in code points.
    pub actual: usize,
    /// Mux's limit.
    pub limit: usize,
}

impl AssetSettings {
    /// Checks Mux's field limits; over a limit is an error, never a silent cut.
    pub fn check_limits(&self) -> Result<(), FieldTooLong> {
        let check = |field, value: &Option<String>, limit| match value {
            Some(v) if v.chars().count() > limit => Err(FieldTooLong {
                field,
                actual: v.chars().count(),
                limit,
            }),
            _ => Ok(()),
        };
        check("passthrough", &self.passthrough, 255)?;
        for r in &self.static_renditions {
            check("static_renditions[].passthrough", &r.passthrough, 255)?;
        }
        if let Some(meta) = &self.meta {
            check("meta.title", &meta.title, 512)?;
            check("meta.creator_id", &meta.creator_id, 128)?;
            check("meta.external_id", &meta.external_id, 128)?;
        }
        Ok(())
    }
}

/// One entry of `tracks[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Stable within the asset.
    pub id: String,
    /// `video` or `audio`.
    #[serde(rename = "type")]
    pub kind: TrackKind,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Stored width as displayed (video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// Stored height as displayed (video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Stored frame rate, `-1` when unknown (video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_rate: Option<f64>,
    /// The source's channel count (audio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_channels: Option<u32>,
    /// Whether this is the primary audio track (audio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// `tracks[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
}

/// `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetErrors {
    /// A stable code, e.g. `invalid_input`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Sentences a person understands.
    pub messages: Vec<String>,
}

/// `progress.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressState {
    /// Before or after transcoding (probe, upload).
    Ingesting,
    /// A pipeline is running.
    Transcoding,
    /// `status` is `ready`.
    Completed,
    /// `status` is `errored`.
    Errored,
}

impl ProgressState {
    /// The enum value as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressState::Ingesting => "ingesting",
            ProgressState::Transcoding => "transcoding",
            ProgressState::Completed => "completed",
            ProgressState::Errored => "errored",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<ProgressState> {
        match s {
            "ingesting" => Some(ProgressState::Ingesting),
            "transcoding" => Some(ProgressState::Transcoding),
            "completed" => Some(ProgressState::Completed),
            "errored" => Some(ProgressState::Errored),
            _ => None,
        }
    }
}

/// `progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Where the job is.
    pub state: ProgressState,
    /// 0–100, or -1 when unknown.
    pub progress: f64,
    /// Why the job is waiting, while it waits (for the store, say); not
    /// in Mux's model, and absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `master`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Master {
    /// `preparing`, `ready` or `errored`.
    pub status: String,
    /// A signed URL, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What probing and transcoding learned about an asset's stored media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MediaSummary {
    /// Seconds.
    pub duration: Option<f64>,
    /// The stored tier.
    pub resolution_tier: Option<ResolutionTier>,
    /// Frame rate of the master, -1 when unknown.
    pub max_stored_frame_rate: Option<f64>,
    /// `W:H` reduced, of the master as displayed.
    pub aspect_ratio: Option<String>,
    /// The stored tracks.
    pub tracks: Vec<Track>,
    /// Mux's `non_standard_input_reasons` of the source; absent when standard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_standard_input_reasons: Option<std::collections::BTreeMap<String, String>>,
    /// Bytes of the stored master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_filesize: Option<u64>,
}

/// Mux's asset object as reeld serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// Random, URL-safe.
    pub id: String,
    /// Unix seconds, as a string (Mux's format).
    pub created_at: String,
    /// `preparing`, `ready` or `errored`.
    pub status: AssetStatus,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The stored tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_tier: Option<ResolutionTier>,
    /// The cap.
    pub max_resolution_tier: MaxResolutionTier,
    /// Deprecated twin of `video_quality`, required by Mux's schema.
    pub encoding_tier: String,
    /// Quality level.
    pub video_quality: VideoQuality,
    /// Frame rate stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stored_frame_rate: Option<f64>,
    /// `W:H`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// Stored tracks.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tracks: Vec<Track>,
    /// Why the asset errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<AssetErrors>,
    /// User data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
    /// User metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Whether the master is downloadable.
    pub master_access: MasterAccess,
    /// The master's status and URL, when access is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Master>,
    /// Downloadable MP4/M4A files, when any were requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_renditions: Option<StaticRenditions>,
    /// The legacy `mp4_support`, as requested.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mp4_support: Option<Mp4Support>,
    /// Loudness normalisation.
    pub normalize_audio: bool,
    /// What makes the source non-standard (Mux's keys); absent when standard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_standard_input_reasons: Option<std::collections::BTreeMap<String, String>>,
    /// reeld's addition: bytes of the stored master, once it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_filesize: Option<u64>,
    /// How it was ingested.
    pub ingest_type: IngestType,
    /// The direct upload it was made from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upload_id: Option<String>,
    /// Its playback IDs (absent when it has none, as in Mux's JSON).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub playback_ids: Vec<crate::playback::PlaybackId>,
    /// A test asset.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub test: bool,
    /// Job progress.
    pub progress: Progress,
}

/// Mux's response envelope: `{"data": …}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// Length of an asset id in characters (Mux's are 32–44).
const ASSET_ID_LEN: usize = 32;

/// A new random asset id: 32 characters of `[0-9A-Za-z]` (about 190 bits).
pub fn new_asset_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(ASSET_ID_LEN);
    while id.len() < ASSET_ID_LEN {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).expect("the OS random source is available");
        // 248 is the largest multiple of 62 below 256: rejecting the rest keeps
        // every character equally likely.
        for b in buf.into_iter().filter(|b| *b < 248) {
            if id.len() == ASSET_ID_LEN {
                break;
            }
            id.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    id
}

/// Reduces `width:height` to lowest terms, as Mux prints it (`16:9`).
pub fn aspect_ratio(width: u32, height: u32) -> String {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(width, height).max(1);
    format!("{}:{}", width / g, height / g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_by_long_and_short_edge() {
        let cases = [
            (640, 360, ResolutionTier::P720),
            (854, 480, ResolutionTier::P720),
            (1280, 720, ResolutionTier::P720),
            (720, 1280, ResolutionTier::P720),
            (1282, 720, ResolutionTier::P1080),
            (1920, 1080, ResolutionTier::P1080),
            (1080, 1920, ResolutionTier::P1080),
            (1920, 1082, ResolutionTier::P1440),
            (2560, 1440, ResolutionTier::P1440),
            (3840, 2160, ResolutionTier::P2160),
            (4096, 2160, ResolutionTier::P2160),
        ];
        for (w, h, tier) in cases {
            assert_eq!(ResolutionTier::of_video(w, h), tier, "{w}x{h}");
        }
    }

    #[test]
    fn enums_serialize_as_mux_values() {
        assert_eq!(
            serde_json::to_string(&ResolutionTier::AudioOnly).unwrap(),
            "\"audio-only\""
        );
        assert_eq!(
            serde_json::to_string(&MaxResolutionTier::P2160).unwrap(),
            "\"2160p\""
        );
        assert_eq!(
            serde_json::to_string(&IngestType::OnDemandDirectUpload).unwrap(),
            "\"on_demand_direct_upload\""
        );
        assert_eq!(
            serde_json::to_string(&MasterAccess::None).unwrap(),
            "\"none\""
        );
    }

    #[test]
    fn ids_are_unique_and_alphanumeric() {
        let a = new_asset_id();
        let b = new_asset_id();
        assert_eq!(a.len(), ASSET_ID_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn aspect_ratios_reduce() {
        assert_eq!(aspect_ratio(1920, 1080), "16:9");
        assert_eq!(aspect_ratio(1080, 1920), "9:16");
        assert_eq!(aspect_ratio(854, 480), "427:240");
        assert_eq!(aspect_ratio(640, 480), "4:3");
    }

    #[test]
    fn limits_are_checked_in_code_points() {
        let mut s = AssetSettings::defaults(MaxResolutionTier::P1080, VideoQuality::Plus);
        s.passthrough = Some("é".repeat(255));
        assert!(s.check_limits().is_ok());
        s.passthrough = Some("a".repeat(256));
        assert_eq!(
            s.check_limits().unwrap_err(),
            FieldTooLong {
                field: "passthrough",
                actual: 256,
                limit: 255
            }
        );
    }
}
