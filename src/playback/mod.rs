//! Playback IDs and the signed tokens that open them, as Mux and Cloudflare
//! Stream model them.
//!
//! An asset has playback IDs, each `public` or `signed`. Its static
//! renditions are served at `{stream_base_url}/{PLAYBACK_ID}/{file}`
//! (Mux's form) and at `{stream_base_url}/{ASSET_ID or TOKEN}/downloads/
//! {default.mp4|audio.m4a}` (Cloudflare's form, where the video uid is the
//! asset id). A signed ID, or an asset with `requireSignedURLs`, needs an
//! RS256 JWT made with a signing key whose public half reeld holds.
//!
//! - [`keys`]: RSA key pairs for signing keys, in PEM and JWK, and the
//!   token reeld mints for Cloudflare's token endpoint.
//! - [`tokens`]: the checks a token must pass.
//! - [`rules`]: Cloudflare's `accessRules` (IP ranges, countries).

pub mod keys;
pub mod rules;
pub mod tokens;

use serde::{Deserialize, Serialize};

/// How a playback ID may be used (Mux's `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackPolicy {
    /// Anyone with the ID may fetch the files.
    Public,
    /// A signed token naming the ID is needed.
    Signed,
}

impl PlaybackPolicy {
    /// As Mux spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybackPolicy::Public => "public",
            PlaybackPolicy::Signed => "signed",
        }
    }

    /// From Mux's spelling.
    pub fn parse(s: &str) -> Option<PlaybackPolicy> {
        match s {
            "public" => Some(PlaybackPolicy::Public),
            "signed" => Some(PlaybackPolicy::Signed),
            _ => None,
        }
    }
}

/// One playback ID of an asset (`playback_ids[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackId {
    /// The ID, as it appears in stream URLs.
    pub id: String,
    /// Public or signed.
    pub policy: PlaybackPolicy,
}

/// A new playback ID: 32 letters and digits, like Mux's, unguessable.
pub fn new_playback_id() -> String {
    crate::asset::new_asset_id()
}

/// Whether `s` can be a playback ID, asset id or key id (letters and
/// digits, at most 64): anything else is refused before the database.
pub fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The stream files Cloudflare's downloads API names: `default` is
/// `highest.mp4` and `audio` is `audio.m4a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    /// The video at the master's resolution.
    Default,
    /// The audio alone.
    Audio,
}

impl DownloadKind {
    /// Both, in Cloudflare's order.
    pub const ALL: [DownloadKind; 2] = [DownloadKind::Default, DownloadKind::Audio];

    /// As Cloudflare spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadKind::Default => "default",
            DownloadKind::Audio => "audio",
        }
    }

    /// From Cloudflare's spelling.
    pub fn parse(s: &str) -> Option<DownloadKind> {
        match s {
            "default" => Some(DownloadKind::Default),
            "audio" => Some(DownloadKind::Audio),
            _ => None,
        }
    }

    /// The static rendition that holds it.
    pub fn resolution(self) -> crate::asset::RenditionResolution {
        match self {
            DownloadKind::Default => crate::asset::RenditionResolution::Highest,
            DownloadKind::Audio => crate::asset::RenditionResolution::AudioOnly,
        }
    }

    /// The file name in Cloudflare's download URL.
    pub fn url_file(self) -> &'static str {
        match self {
            DownloadKind::Default => "default.mp4",
            DownloadKind::Audio => "audio.m4a",
        }
    }

    /// The kind a Cloudflare download URL's file name asks for.
    pub fn from_url_file(file: &str) -> Option<DownloadKind> {
        DownloadKind::ALL.into_iter().find(|k| k.url_file() == file)
    }
}
