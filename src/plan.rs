//! Planning: a pure decision from what the source is (`MediaInfo`) and what the
//! asset asks for (`AssetSettings`) to what reeld will produce (`Plan`).
//!
//! No I/O and no GStreamer types here: every rule (tier caps, even sizes, frame
//! rate caps, channel counts) is a function of its arguments and is unit-tested
//! table by table.

use crate::asset::{AssetSettings, MaxResolutionTier, ResolutionTier, VideoQuality};
use crate::probe::MediaInfo;

/// Highest frame rate stored; faster sources drop frames down to it.
pub const MAX_FRAME_RATE: u32 = 60;
/// Key frame interval of encoded outputs, in seconds.
pub const GOP_SECONDS: f64 = 2.0;
/// Sample rate of every AAC output, in Hz.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// AAC bitrate of the master's audio, in bits per second.
pub const MASTER_AUDIO_BITRATE: u32 = 192_000;

/// How the video of an output is made.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTarget {
    /// Output width in square pixels, even.
    pub width: u32,
    /// Output height, even.
    pub height: u32,
    /// Cap on the output frame rate (frames per second), if the source exceeds it.
    pub max_frame_rate: Option<u32>,
    /// Whether the source must be deinterlaced.
    pub deinterlace: bool,
    /// Key frame interval in frames.
    pub keyframe_interval: u32,
    /// Encoder quality level (selects the `pipelines/` fragment).
    pub quality: VideoQuality,
    /// The frame rate that will be stored, -1 when unknown.
    pub stored_frame_rate: f64,
}

/// How the audio of an output is made.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTarget {
    /// Output channels (1 or 2; more are downmixed to stereo).
    pub channels: u32,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// AAC bitrate in bits per second.
    pub bitrate: u32,
}

/// Everything reeld will produce for one asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The master's video, or `None` for audio-only sources.
    pub video: Option<VideoTarget>,
    /// The master's audio, or `None` for sources without audio.
    pub audio: Option<AudioTarget>,
    /// The tier the master lands in.
    pub resolution_tier: ResolutionTier,
    /// The source's duration in seconds, if known: outputs are checked against it.
    pub expected_duration: Option<f64>,
    /// Channels of the source's primary audio (reported even when downmixed).
    pub source_audio_channels: Option<u32>,
}

/// Why no plan can be made: the source has nothing reeld can store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Neither a video nor an audio stream.
    #[error("the file has no video or audio stream to transcode")]
    NothingToTranscode,
    /// A video stream reports a zero size.
    #[error("the video stream reports an invalid size {width}x{height}")]
    InvalidVideoSize {
        /// Reported width.
        width: u32,
        /// Reported height.
        height: u32,
    },
}

/// Decides the master for `info` under `settings`.
pub fn plan_master(info: &MediaInfo, settings: &AssetSettings) -> Result<Plan, PlanError> {
    let video = match info.video.first() {
        None => None,
        Some(v) => {
            if v.width == 0 || v.height == 0 {
                return Err(PlanError::InvalidVideoSize {
                    width: v.width,
                    height: v.height,
                });
            }
            let (dw, dh) = v.display_size();
            let (width, height) = fit_within(dw, dh, settings.max_resolution_tier);
            let fps = v.fps();
            let max_frame_rate = fps
                .filter(|f| *f > f64::from(MAX_FRAME_RATE) + 0.01)
                .map(|_| MAX_FRAME_RATE);
            let stored = match fps {
                Some(f) => f.min(f64::from(MAX_FRAME_RATE)),
                None => -1.0,
            };
            let gop_fps = if stored > 0.0 { stored } else { 30.0 };
            Some(VideoTarget {
                width,
                height,
                max_frame_rate,
                deinterlace: v.interlaced,
                keyframe_interval: ((gop_fps * GOP_SECONDS).round() as u32).max(1),
                quality: settings.video_quality,
                stored_frame_rate: stored,
            })
        }
    };
    let audio = info.audio.first().map(|a| AudioTarget {
        channels: a.channels.clamp(1, 2),
        sample_rate: AUDIO_SAMPLE_RATE,
        bitrate: MASTER_AUDIO_BITRATE,
    });
    let resolution_tier = match &video {
        Some(v) => ResolutionTier::of_video(v.width, v.height),
        None if audio.is_some() => ResolutionTier::AudioOnly,
        None => return Err(PlanError::NothingToTranscode),
    };
    Ok(Plan {
        video,
        audio,
        resolution_tier,
        expected_duration: info.duration,
        source_audio_channels: info.audio.first().map(|a| a.channels),
    })
}

/// Scales a display size down (never up) so that its long edge and short edge
/// fit the tier's box, keeping the aspect ratio, and rounds to even sizes.
pub fn fit_within(width: f64, height: f64, tier: MaxResolutionTier) -> (u32, u32) {
    let (max_long, max_short) = tier.bounds();
    let (long, short) = (width.max(height), width.min(height));
    let factor = (f64::from(max_long) / long)
        .min(f64::from(max_short) / short)
        .min(1.0);
    (round_even(width * factor), round_even(height * factor))
}

/// Rounds to the nearest even number of pixels, at least 2. An exact odd size
/// rounds down, so that rounding never adds pixels the source lacks.
fn round_even(x: f64) -> u32 {
    let even = ((x / 2.0 - 1e-6).round() * 2.0) as u32;
    even.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::MasterAccess;
    use crate::probe::{AudioStream, VideoStream};

    fn settings(tier: MaxResolutionTier) -> AssetSettings {
        AssetSettings {
            max_resolution_tier: tier,
            video_quality: VideoQuality::Plus,
            master_access: MasterAccess::None,
            normalize_audio: false,
            passthrough: None,
            meta: None,
            test: false,
        }
    }

    fn video(width: u32, height: u32) -> VideoStream {
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

    fn stereo() -> AudioStream {
        AudioStream {
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48_000,
            bitrate: None,
            language: None,
        }
    }

    fn info(video: Vec<VideoStream>, audio: Vec<AudioStream>) -> MediaInfo {
        MediaInfo {
            container: Some("video/quicktime".into()),
            duration: Some(10.0),
            video,
            audio,
        }
    }

    #[test]
    fn master_size_by_tier() {
        use MaxResolutionTier::*;
        let cases = [
            // (source w, h, rotation, tier) -> (out w, h, tier)
            ((1920, 1080, 0, P1080), (1920, 1080, ResolutionTier::P1080)),
            ((3840, 2160, 0, P1080), (1920, 1080, ResolutionTier::P1080)),
            ((3840, 2160, 0, P1440), (2560, 1440, ResolutionTier::P1440)),
            ((3840, 2160, 0, P2160), (3840, 2160, ResolutionTier::P2160)),
            ((4096, 2160, 0, P1080), (1920, 1012, ResolutionTier::P1080)),
            ((1280, 720, 0, P2160), (1280, 720, ResolutionTier::P720)),
            ((640, 360, 0, P1080), (640, 360, ResolutionTier::P720)),
            ((853, 479, 0, P1080), (852, 478, ResolutionTier::P720)),
            // Portrait by rotation: stored upright.
            ((1920, 1080, 90, P1080), (1080, 1920, ResolutionTier::P1080)),
            (
                (3840, 2160, 270, P1080),
                (1080, 1920, ResolutionTier::P1080),
            ),
            // Portrait by coding.
            ((2160, 3840, 0, P1080), (1080, 1920, ResolutionTier::P1080)),
            ((2160, 3840, 0, P1440), (1440, 2560, ResolutionTier::P1440)),
        ];
        for ((w, h, rot, tier), (ow, oh, otier)) in cases {
            let mut v = video(w, h);
            v.rotation = rot;
            let plan = plan_master(&info(vec![v], vec![stereo()]), &settings(tier)).unwrap();
            let t = plan.video.unwrap();
            assert_eq!(
                (t.width, t.height, plan.resolution_tier),
                (ow, oh, otier),
                "{w}x{h} rot {rot} at {tier:?}"
            );
        }
    }

    #[test]
    fn anamorphic_sd_becomes_square_pixels() {
        let mut v = video(720, 480);
        v.par = (32, 27);
        let plan =
            plan_master(&info(vec![v], vec![]), &settings(MaxResolutionTier::P1080)).unwrap();
        let t = plan.video.unwrap();
        assert_eq!((t.width, t.height), (854, 480));
    }

    #[test]
    fn frame_rate_is_kept_up_to_60() {
        let cases = [
            ((30, 1), None, 30.0, 60),
            ((30000, 1001), None, 29.97002997002997, 60),
            ((60, 1), None, 60.0, 120),
            ((120, 1), Some(60), 60.0, 120),
            ((2, 1), None, 2.0, 4),
            ((0, 1), None, -1.0, 60),
        ];
        for (rate, cap, stored, gop) in cases {
            let mut v = video(1280, 720);
            v.frame_rate = rate;
            let plan =
                plan_master(&info(vec![v], vec![]), &settings(MaxResolutionTier::P1080)).unwrap();
            let t = plan.video.unwrap();
            assert_eq!(t.max_frame_rate, cap, "{rate:?}");
            assert!((t.stored_frame_rate - stored).abs() < 1e-9, "{rate:?}");
            assert_eq!(t.keyframe_interval, gop, "{rate:?}");
        }
    }

    #[test]
    fn audio_only_and_video_only() {
        let p = plan_master(
            &info(vec![], vec![stereo()]),
            &settings(MaxResolutionTier::P1080),
        )
        .unwrap();
        assert_eq!(p.resolution_tier, ResolutionTier::AudioOnly);
        assert!(p.video.is_none());
        let p = plan_master(
            &info(vec![video(1280, 720)], vec![]),
            &settings(MaxResolutionTier::P1080),
        )
        .unwrap();
        assert!(p.audio.is_none());
        assert_eq!(
            plan_master(&info(vec![], vec![]), &settings(MaxResolutionTier::P1080)),
            Err(PlanError::NothingToTranscode)
        );
    }

    #[test]
    fn surround_is_downmixed_to_stereo_mono_kept() {
        let mut a = stereo();
        a.channels = 6;
        let p = plan_master(
            &info(vec![], vec![a.clone()]),
            &settings(MaxResolutionTier::P1080),
        )
        .unwrap();
        assert_eq!(p.audio.unwrap().channels, 2);
        a.channels = 1;
        let p = plan_master(&info(vec![], vec![a]), &settings(MaxResolutionTier::P1080)).unwrap();
        assert_eq!(p.audio.unwrap().channels, 1);
    }

    #[test]
    fn zero_sized_video_is_refused() {
        assert_eq!(
            plan_master(
                &info(vec![video(0, 0)], vec![]),
                &settings(MaxResolutionTier::P1080)
            ),
            Err(PlanError::InvalidVideoSize {
                width: 0,
                height: 0
            })
        );
    }
}
