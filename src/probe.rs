//! Probing: GStreamer's Discoverer turned into our own `MediaInfo`.
//!
//! This module is the only place that reads `DiscovererInfo`; everything after
//! it (`plan`, the asset model) sees plain data that can be written to and read
//! from JSON fixtures. Probing is synchronous: call it from a blocking thread.

use std::path::Path;

use gst_pbutils::prelude::*;
use serde::{Deserialize, Serialize};

/// How long the Discoverer may take on one file before giving up.
const DISCOVER_TIMEOUT_SECONDS: u64 = 60;

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file has no bytes.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// GStreamer could not make sense of the file.
    #[error("the file is not media GStreamer can read: {reason}")]
    NotMedia {
        /// GStreamer's explanation.
        reason: String,
    },
    /// A decoder or demuxer for the file's format is not installed.
    #[error("no GStreamer plugin is installed for this format: {details}")]
    MissingPlugin {
        /// Which plugins are missing.
        details: String,
    },
    /// The file is a still image, not a video.
    #[error("the file is a still image ({codec}), not a video or audio recording")]
    StillImage {
        /// The image codec.
        codec: String,
    },
    /// The file has neither a video nor an audio stream.
    #[error("the file has no video or audio stream")]
    NoStreams,
    /// Probing took longer than the limit.
    #[error("probing did not finish within {DISCOVER_TIMEOUT_SECONDS} s")]
    Timeout,
    /// GStreamer itself failed to start.
    #[error("GStreamer failed to start probing: {0}")]
    Init(String),
}

impl ProbeError {
    /// Whether retrying could help (the file itself is not at fault).
    pub fn is_transient(&self) -> bool {
        matches!(self, ProbeError::Init(_) | ProbeError::Timeout)
    }
}

/// A video stream as found in the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// Codec short name (`h264`, `hevc`, `vp9`, `av1`, `prores`, `mpeg2video`, `mjpeg`, …).
    pub codec: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Pixel aspect ratio (numerator, denominator).
    pub par: (u32, u32),
    /// Frame rate (numerator, denominator); (0, 1) when unknown or variable.
    pub frame_rate: (u32, u32),
    /// Clockwise rotation to apply for display, in degrees (0, 90, 180, 270).
    pub rotation: u32,
    /// Whether the display also mirrors the picture.
    pub flipped: bool,
    /// Interlaced content.
    pub interlaced: bool,
    /// Bits per sample as reported, when known.
    pub bit_depth: Option<u32>,
    /// Chroma subsampling, e.g. `4:2:0`, when the parser reports it.
    pub chroma_format: Option<String>,
    /// Codec profile, when reported.
    pub profile: Option<String>,
    /// Bits per second, when known.
    pub bitrate: Option<u32>,
}

impl VideoStream {
    /// The frame rate as a number, if known.
    pub fn fps(&self) -> Option<f64> {
        let (n, d) = self.frame_rate;
        (n > 0 && d > 0).then(|| f64::from(n) / f64::from(d))
    }

    /// Width and height as displayed, unrounded: pixel aspect ratio applied,
    /// then rotation.
    pub fn display_size(&self) -> (f64, f64) {
        let (pn, pd) = if self.par.0 == 0 || self.par.1 == 0 {
            (1, 1)
        } else {
            self.par
        };
        // Non-square pixels stretch the width (as players do), keeping the height.
        let w = f64::from(self.width) * f64::from(pn) / f64::from(pd);
        let h = f64::from(self.height);
        if self.rotation % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// An audio stream as found in the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    /// Codec short name (`aac`, `mp3`, `ac3`, `opus`, `flac`, …).
    pub codec: String,
    /// Channels.
    pub channels: u32,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per second, when known.
    pub bitrate: Option<u32>,
    /// Language tag, when present.
    pub language: Option<String>,
}

#[cfg(test)]
impl VideoStream {
    /// A progressive 30 fps H.264 High 8-bit 4:2:0 stream, square pixels
    /// (test fixtures change what they need).
    pub fn h264_for_tests(width: u32, height: u32) -> VideoStream {
        VideoStream {
            codec: "h264".into(),
            width,
            height,
            par: (1, 1),
            frame_rate: (30, 1),
            rotation: 0,
            flipped: false,
            interlaced: false,
            bit_depth: Some(8),
            chroma_format: Some("4:2:0".into()),
            profile: Some("high".into()),
            bitrate: None,
        }
    }
}

#[cfg(test)]
impl AudioStream {
    /// Stereo 48 kHz AAC (test fixtures change what they need).
    pub fn aac_stereo_for_tests() -> AudioStream {
        AudioStream {
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48_000,
            bitrate: None,
            language: None,
        }
    }
}

/// What probing found in a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The container's media type (`video/quicktime`, `video/mpegts`, …), if any.
    pub container: Option<String>,
    /// Seconds, when known.
    pub duration: Option<f64>,
    /// Video streams in file order; the first is the one reeld uses.
    pub video: Vec<VideoStream>,
    /// Audio streams in file order; the first is primary.
    pub audio: Vec<AudioStream>,
}

/// Probes the file at `path`.
pub fn probe_file(path: &Path) -> Result<MediaInfo, ProbeError> {
    let meta = std::fs::metadata(path).map_err(|source| ProbeError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    if meta.len() == 0 {
        return Err(ProbeError::Empty);
    }
    // Not canonicalized when already absolute: a job's source is
    // `/proc/self/fd/N`, which must stay that link, not the name it resolves
    // to (another file may have that name now).
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        path.canonicalize()
            .map_err(|source| ProbeError::Unreadable {
                path: path.display().to_string(),
                source,
            })?
    };
    let uri = gst::glib::filename_to_uri(&abs, None)
        .map_err(|e| ProbeError::Init(format!("cannot make a URI of {}: {e}", abs.display())))?;
    crate::graph::init().map_err(|e| ProbeError::Init(e.to_string()))?;
    let discoverer =
        gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_SECONDS))
            .map_err(|e| ProbeError::Init(e.to_string()))?;
    let info = match discoverer.discover_uri(&uri) {
        Ok(info) => info,
        Err(e) => return Err(classify_discover_error(&e.to_string())),
    };
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::Timeout => return Err(ProbeError::Timeout),
        gst_pbutils::DiscovererResult::MissingPlugins => {
            let details = info
                .missing_elements_installer_details()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ProbeError::MissingPlugin { details });
        }
        other => {
            return Err(ProbeError::NotMedia {
                reason: format!("{other:?}"),
            });
        }
    }
    media_info_from(&info)
}

fn classify_discover_error(message: &str) -> ProbeError {
    if message.contains("missing") && message.contains("plugin") {
        ProbeError::MissingPlugin {
            details: message.to_owned(),
        }
    } else {
        ProbeError::NotMedia {
            reason: message.trim_end_matches('.').to_owned(),
        }
    }
}

fn media_info_from(info: &gst_pbutils::DiscovererInfo) -> Result<MediaInfo, ProbeError> {
    let container = info
        .stream_info()
        .and_then(|s| s.caps())
        .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
        .filter(|name| !name.starts_with("video/x-raw") && !name.starts_with("audio/x-raw"));

    let mut video = Vec::new();
    for v in info.video_streams() {
        let codec = codec_of(v.caps().as_ref());
        if v.is_image() {
            return Err(ProbeError::StillImage { codec });
        }
        let (rotation, flipped) = v
            .tags()
            .as_ref()
            .and_then(|t| {
                t.get::<gst::tags::ImageOrientation>()
                    .map(|o| o.get().to_string())
            })
            .map(|o| parse_orientation(&o))
            .unwrap_or((0, false));
        let caps_field = |name: &str| -> Option<String> {
            v.caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<String>(name).ok()))
        };
        let par = v.par();
        let fps = v.framerate();
        let codec_name = codec.clone();
        video.push(VideoStream {
            codec,
            width: v.width(),
            height: v.height(),
            par: (par.numer().max(0) as u32, par.denom().max(0) as u32),
            frame_rate: (fps.numer().max(0) as u32, fps.denom().max(1) as u32),
            rotation,
            flipped,
            interlaced: v.is_interlaced(),
            bit_depth: caps_field("bit-depth-luma")
                .and_then(|s| s.parse().ok())
                .or_else(|| {
                    v.caps().and_then(|c| {
                        c.structure(0)
                            .and_then(|s| s.get::<u32>("bit-depth-luma").ok())
                    })
                })
                .or((codec_name == "prores").then_some(10))
                .or(Some(v.depth()).filter(|d| (8..=16).contains(d))),
            chroma_format: caps_field("chroma-format").or_else(|| {
                // ProRes says it by variant: 4444 (XQ) is 4:4:4, the rest 4:2:2.
                caps_field("variant")
                    .filter(|_| codec_name == "prores")
                    .map(|v| {
                        if v.starts_with("4444") {
                            "4:4:4"
                        } else {
                            "4:2:2"
                        }
                        .to_owned()
                    })
            }),
            profile: caps_field("profile"),
            bitrate: Some(v.bitrate()).filter(|b| *b > 0),
        });
    }

    let mut audio = Vec::new();
    for a in info.audio_streams() {
        audio.push(AudioStream {
            codec: codec_of(a.caps().as_ref()),
            channels: a.channels(),
            sample_rate: a.sample_rate(),
            bitrate: Some(a.bitrate()).filter(|b| *b > 0),
            language: a.language().map(|l| l.to_string()),
        });
    }

    if video.is_empty() && audio.is_empty() {
        return Err(ProbeError::NoStreams);
    }
    Ok(MediaInfo {
        container,
        duration: info.duration().map(|d| d.nseconds() as f64 / 1e9),
        video,
        audio,
    })
}

/// Maps GStreamer caps to the codec names ffprobe and Mux use.
fn codec_of(caps: Option<&gst::Caps>) -> String {
    let Some(s) = caps.and_then(|c| c.structure(0)) else {
        return "unknown".to_owned();
    };
    let mpegversion = s.get::<i32>("mpegversion").ok();
    match s.name().as_str() {
        "video/x-h264" => "h264",
        "video/x-h265" => "hevc",
        "video/x-vp8" => "vp8",
        "video/x-vp9" => "vp9",
        "video/x-av1" => "av1",
        "video/x-prores" => "prores",
        "video/mpeg" if mpegversion == Some(4) => "mpeg4",
        "video/mpeg" if mpegversion == Some(1) => "mpeg1video",
        "video/mpeg" => "mpeg2video",
        "image/jpeg" => "mjpeg",
        "image/png" => "png",
        "video/x-theora" => "theora",
        "audio/mpeg" if mpegversion == Some(1) && s.get::<i32>("layer").ok() == Some(2) => "mp2",
        "audio/mpeg" if mpegversion == Some(1) => "mp3",
        "audio/mpeg" => "aac",
        "audio/x-ac3" => "ac3",
        "audio/x-eac3" => "eac3",
        "audio/x-opus" => "opus",
        "audio/x-flac" => "flac",
        "audio/x-vorbis" => "vorbis",
        "audio/x-alac" => "alac",
        // libav's names: pcm_s16le, pcm_f32le, …
        "audio/x-raw" => {
            return match s.get::<&str>("format") {
                Ok(format) => format!("pcm_{}", format.to_lowercase()),
                Err(_) => "pcm".to_owned(),
            };
        }
        name => {
            return name
                .rsplit('/')
                .next()
                .unwrap_or(name)
                .trim_start_matches("x-")
                .to_owned();
        }
    }
    .to_owned()
}

/// Parses GStreamer's `image-orientation` tag (`rotate-90`, `flip-rotate-270`, …)
/// into (clockwise degrees, mirrored).
fn parse_orientation(tag: &str) -> (u32, bool) {
    let (flipped, rest) = match tag.strip_prefix("flip-") {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let degrees = rest
        .strip_prefix("rotate-")
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| matches!(d, 0 | 90 | 180 | 270))
        .unwrap_or(0);
    (degrees, flipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_tags() {
        assert_eq!(parse_orientation("rotate-0"), (0, false));
        assert_eq!(parse_orientation("rotate-90"), (90, false));
        assert_eq!(parse_orientation("rotate-270"), (270, false));
        assert_eq!(parse_orientation("flip-rotate-180"), (180, true));
        assert_eq!(parse_orientation("nonsense"), (0, false));
    }

    fn stream(width: u32, height: u32, par: (u32, u32), rotation: u32) -> VideoStream {
        VideoStream {
            codec: "h264".into(),
            width,
            height,
            par,
            frame_rate: (30, 1),
            rotation,
            flipped: false,
            interlaced: false,
            bit_depth: Some(8),
            chroma_format: None,
            profile: None,
            bitrate: None,
        }
    }

    #[test]
    fn display_size_applies_par_then_rotation() {
        assert_eq!(
            stream(1920, 1080, (1, 1), 0).display_size(),
            (1920.0, 1080.0)
        );
        assert_eq!(
            stream(1920, 1080, (1, 1), 90).display_size(),
            (1080.0, 1920.0)
        );
        let (w, h) = stream(720, 480, (32, 27), 0).display_size();
        assert!((w - 853.333).abs() < 0.001 && h == 480.0);
        assert_eq!(stream(720, 480, (0, 1), 0).display_size(), (720.0, 480.0));
    }
}
