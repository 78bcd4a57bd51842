//! The static renditions of Mux's asset object: what a create-asset request
//! may ask for (`static_renditions[].resolution`, the legacy `mp4_support`)
//! and the `static_renditions.files[]` an asset serves.

use serde::{Deserialize, Serialize};

use super::ResolutionTier;

/// `static_renditions[].resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RenditionResolution {
    /// The master's size (`highest.mp4`).
    #[serde(rename = "highest")]
    Highest,
    /// AAC audio only (`audio.m4a`).
    #[serde(rename = "audio-only")]
    AudioOnly,
    /// Short edge 2160.
    #[serde(rename = "2160p")]
    P2160,
    /// Short edge 1440.
    #[serde(rename = "1440p")]
    P1440,
    /// Short edge 1080.
    #[serde(rename = "1080p")]
    P1080,
    /// Short edge 720.
    #[serde(rename = "720p")]
    P720,
    /// Short edge 540.
    #[serde(rename = "540p")]
    P540,
    /// Short edge 480.
    #[serde(rename = "480p")]
    P480,
    /// Short edge 360.
    #[serde(rename = "360p")]
    P360,
    /// Short edge 270.
    #[serde(rename = "270p")]
    P270,
}

impl RenditionResolution {
    /// Every value, for messages.
    pub const ALL: [RenditionResolution; 10] = [
        RenditionResolution::Highest,
        RenditionResolution::AudioOnly,
        RenditionResolution::P2160,
        RenditionResolution::P1440,
        RenditionResolution::P1080,
        RenditionResolution::P720,
        RenditionResolution::P540,
        RenditionResolution::P480,
        RenditionResolution::P360,
        RenditionResolution::P270,
    ];

    /// The value as Mux spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RenditionResolution::Highest => "highest",
            RenditionResolution::AudioOnly => "audio-only",
            RenditionResolution::P2160 => "2160p",
            RenditionResolution::P1440 => "1440p",
            RenditionResolution::P1080 => "1080p",
            RenditionResolution::P720 => "720p",
            RenditionResolution::P540 => "540p",
            RenditionResolution::P480 => "480p",
            RenditionResolution::P360 => "360p",
            RenditionResolution::P270 => "270p",
        }
    }

    /// Parses Mux's spelling.
    pub fn parse(s: &str) -> Option<RenditionResolution> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The short edge in pixels of a fixed resolution.
    pub fn short_edge(self) -> Option<u32> {
        match self {
            RenditionResolution::Highest | RenditionResolution::AudioOnly => None,
            RenditionResolution::P2160 => Some(2160),
            RenditionResolution::P1440 => Some(1440),
            RenditionResolution::P1080 => Some(1080),
            RenditionResolution::P720 => Some(720),
            RenditionResolution::P540 => Some(540),
            RenditionResolution::P480 => Some(480),
            RenditionResolution::P360 => Some(360),
            RenditionResolution::P270 => Some(270),
        }
    }
}

/// One entry of the create-asset request's `static_renditions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenditionRequest {
    /// What to make.
    pub resolution: RenditionResolution,
    /// User data for this file, max 255 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
}

/// The legacy `mp4_support` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mp4Support {
    /// No MP4s.
    #[serde(rename = "none")]
    None,
    /// `low.mp4`, `medium.mp4`, `high.mp4` (deprecated by Mux).
    #[serde(rename = "standard")]
    Standard,
    /// `capped-1080p.mp4`.
    #[serde(rename = "capped-1080p")]
    Capped1080p,
    /// `audio.m4a`.
    #[serde(rename = "audio-only")]
    AudioOnly,
    /// `audio.m4a` and `capped-1080p.mp4`.
    #[serde(rename = "audio-only,capped-1080p")]
    AudioOnlyCapped1080p,
}

/// `static_renditions.files[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenditionStatus {
    /// Not made yet.
    Preparing,
    /// Stored.
    Ready,
    /// Not made: it would upscale, or the asset lacks the stream.
    Skipped,
    /// Could not be made.
    Errored,
}

impl RenditionStatus {
    /// The enum value as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            RenditionStatus::Preparing => "preparing",
            RenditionStatus::Ready => "ready",
            RenditionStatus::Skipped => "skipped",
            RenditionStatus::Errored => "errored",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<RenditionStatus> {
        match s {
            "preparing" => Some(RenditionStatus::Preparing),
            "ready" => Some(RenditionStatus::Ready),
            "skipped" => Some(RenditionStatus::Skipped),
            "errored" => Some(RenditionStatus::Errored),
            _ => None,
        }
    }
}

/// `static_renditions.files[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenditionType {
    /// `highest` and `audio-only` (and the legacy files).
    Standard,
    /// A fixed resolution.
    Advanced,
}

impl RenditionType {
    /// The enum value as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            RenditionType::Standard => "standard",
            RenditionType::Advanced => "advanced",
        }
    }
}

/// One file of `static_renditions.files[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticRenditionFile {
    /// Stable id of this file.
    pub id: String,
    /// `highest.mp4`, `720p.mp4`, `audio.m4a`, `capped-1080p.mp4`, …
    pub name: String,
    /// `mp4` or `m4a`.
    pub ext: String,
    /// What was requested (absent for the legacy `mp4_support` files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<RenditionResolution>,
    /// The tier of the file as made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_tier: Option<ResolutionTier>,
    /// Width in pixels, as made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, as made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Bits per second, measured from the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Bytes, as a string (Mux's format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesize: Option<String>,
    /// Where it is.
    pub status: RenditionStatus,
    /// `standard` or `advanced`.
    #[serde(rename = "type")]
    pub kind: RenditionType,
    /// User data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
    /// A signed download URL, once ready (reeld's addition to Mux's shape;
    /// Mux's SDKs ignore fields they do not know).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
}

/// `static_renditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticRenditions {
    /// `preparing` while any file is, `errored` if any failed, else `ready`.
    pub status: String,
    /// The files.
    pub files: Vec<StaticRenditionFile>,
}

impl StaticRenditions {
    /// Wraps `files`, deriving the overall status.
    pub fn of(files: Vec<StaticRenditionFile>) -> StaticRenditions {
        let any = |s| files.iter().any(|f| f.status == s);
        let status = if any(RenditionStatus::Preparing) {
            "preparing"
        } else if any(RenditionStatus::Errored) {
            "errored"
        } else {
            "ready"
        };
        StaticRenditions {
            status: status.to_owned(),
            files,
        }
    }
}
