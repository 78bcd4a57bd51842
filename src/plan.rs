//! Planning: a pure decision from what the source is (`MediaInfo`) and what the
//! asset asks for (`AssetSettings`) to what reeld will produce (`Plan`).
//!
//! No I/O and no GStreamer types here: every rule (tier caps, even sizes, frame
//! rate caps, channel counts) is a function of its arguments and is unit-tested
//! table by table.

use crate::asset::{
    AssetSettings, Mp4Support, RenditionRequest, RenditionResolution, RenditionStatus,
    RenditionType, ResolutionTier, VideoQuality,
};
use crate::probe::MediaInfo;

mod assess;
pub use assess::{Assessment, audio_output_channels, plan_asset};

/// Highest frame rate stored; faster sources drop frames down to it.
pub const MAX_FRAME_RATE: u32 = 60;
/// Key frame interval of encoded outputs, in seconds.
pub const GOP_SECONDS: f64 = 2.0;
/// Sample rate of every AAC output, in Hz.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// AAC bitrate of the master's audio, in bits per second.
pub const MASTER_AUDIO_BITRATE: u32 = 192_000;

/// How one distinct video encode is made (outputs of the same size share it).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTarget {
    /// Output width in square pixels, even.
    pub width: u32,
    /// Output height, even.
    pub height: u32,
    /// Cap on the output frame rate (frames per second), if the source exceeds it.
    pub max_frame_rate: Option<u32>,
    /// A constant rate (numerator, denominator) for a variable-rate source:
    /// frames are repeated or dropped to keep it. See [`steady_frame_rate`].
    pub steady_frame_rate: Option<(u32, u32)>,
    /// Whether the source must be deinterlaced.
    pub deinterlace: bool,
    /// Whether the source carries a rotation or mirror to apply to the pixels.
    pub reorient: bool,
    /// Whether a visible "test asset" watermark is drawn (test assets).
    pub watermark: bool,
    /// Key frame interval in frames.
    pub keyframe_interval: u32,
    /// Encoder quality level (selects the `pipelines/` fragment).
    pub quality: VideoQuality,
    /// The frame rate that will be stored, -1 when unknown.
    pub stored_frame_rate: f64,
    /// VBV maximum rate in kbit/s (the buffer holds 2 s of it).
    pub max_bitrate_kbps: u32,
    /// Where its picture is scaled from: another encode's scaled picture
    /// (index into `Plan::video_encodes`), or `None` for the decoded source.
    pub scale_from: Option<usize>,
    /// The resampling kernel for that step.
    pub scaler: Scaler,
    /// The source's compressed video is copied (remuxed), not decoded and
    /// encoded: see `assess::copy_streams`.
    pub copy: bool,
}

/// A resampling kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaler {
    /// Linear, for steps of at most `MAX_LINEAR_STEP` down (or none at all).
    Linear,
    /// Lanczos, for larger steps, where a linear kernel aliases.
    Lanczos,
}

/// Largest downscale (ratio of widths) done with the cheap linear kernel.
/// Measured in bench/ladder: 1080p → 720p (1.5×) linear equals ffmpeg's
/// bicubic in PSNR; 1080p → 480p (2.25×) linear loses 0.9 dB.
pub const MAX_LINEAR_STEP: f64 = 1.5;

/// How one distinct audio encode is made.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTarget {
    /// Output channels (1 or 2; more are downmixed to stereo).
    pub channels: u32,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// AAC bitrate in bits per second.
    pub bitrate: u32,
    /// The source's AAC is copied, not re-encoded: see `assess::copy_streams`.
    pub copy: bool,
}

/// One file the pipeline writes: which encodes are muxed into it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPlan {
    /// File name, also the last part of its store key (`master.mp4`, `720p.mp4`).
    pub name: String,
    /// Index into `Plan::video_encodes`.
    pub video: Option<usize>,
    /// Index into `Plan::audio_encodes`.
    pub audio: Option<usize>,
}

/// The fate of one requested static rendition file.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionPlan {
    /// `highest.mp4`, `720p.mp4`, `audio.m4a`, …
    pub name: String,
    /// `mp4` or `m4a`.
    pub ext: &'static str,
    /// The requested resolution (absent for legacy `mp4_support` files).
    pub resolution: Option<RenditionResolution>,
    /// `standard` or `advanced`.
    pub kind: RenditionType,
    /// User data.
    pub passthrough: Option<String>,
    /// `Preparing` when it will be made, else `Skipped` or `Errored`.
    pub status: RenditionStatus,
    /// Why it is skipped or errored.
    pub reason: Option<String>,
    /// Size it will have, for video files.
    pub size: Option<(u32, u32)>,
}

/// Everything reeld will produce for one asset from one decode of its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Distinct video encodes; the master's is first when the master is made.
    pub video_encodes: Vec<VideoTarget>,
    /// Distinct audio encodes.
    pub audio_encodes: Vec<AudioTarget>,
    /// Files to write, the master first when it is made.
    pub outputs: Vec<OutputPlan>,
    /// Every requested rendition file with its fate.
    pub renditions: Vec<RenditionPlan>,
    /// The tier the master lands in.
    pub resolution_tier: ResolutionTier,
    /// The outputs' duration in seconds, if known: outputs are checked against it.
    pub expected_duration: Option<f64>,
    /// Test assets stop after this many seconds of the source.
    pub duration_limit: Option<f64>,
    /// Gain in dB applied to all audio (`normalize_audio`, from the
    /// assessment's loudness measurement).
    pub audio_gain_db: Option<f64>,
    /// Requested files left to a later renditions job, because the master
    /// is a copy and they need an encode.
    pub deferred: Vec<String>,
    /// Channels of the source's primary audio (reported even when downmixed).
    pub source_audio_channels: Option<u32>,
}

impl Plan {
    /// The master's video encode, if the asset has video.
    pub fn master_video(&self) -> Option<&VideoTarget> {
        self.outputs
            .iter()
            .find(|o| o.name == MASTER_NAME)
            .and_then(|o| o.video)
            .map(|i| &self.video_encodes[i])
    }
}

/// Test assets (`"test": true`) keep this many seconds of the source, as Mux's do.
pub const TEST_ASSET_SECONDS: f64 = 10.0;

/// File name of the master in the spool and the store.
pub const MASTER_NAME: &str = "master.mp4";
/// AAC bitrate of rendition audio, in bits per second.
pub const RENDITION_AUDIO_BITRATE: u32 = 128_000;

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

/// What to plan: the master and every requested rendition (a new asset), or
/// only some renditions (added later, made from the stored master).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Master plus all requested renditions.
    Everything,
    /// Only the named rendition files.
    RenditionsOnly(&'a [String]),
}

/// VBV maximum rate for an encode whose short edge is `short_edge` pixels, in kbit/s.
pub fn max_bitrate_kbps(short_edge: u32) -> u32 {
    match short_edge {
        0..=270 => 400,
        271..=360 => 800,
        361..=480 => 1_200,
        481..=540 => 2_000,
        541..=720 => 3_000,
        721..=1080 => 5_000,
        1081..=1440 => 10_000,
        _ => 20_000,
    }
}

/// What a requested file asks for before the source is known.
struct Request {
    name: String,
    resolution: Option<RenditionResolution>,
    kind: RenditionType,
    passthrough: Option<String>,
    /// Legacy files are capped into a box (long, short) rather than set to a short edge.
    legacy_box: Option<(u32, u32)>,
    audio_only: bool,
    /// Legacy `audio-only` errors on a video-only asset (Mux's rule).
    error_without_audio: bool,
}

/// The file name of a requested resolution.
pub fn rendition_name(resolution: RenditionResolution) -> String {
    match resolution {
        RenditionResolution::Highest => "highest.mp4".into(),
        RenditionResolution::AudioOnly => "audio.m4a".into(),
        fixed => format!("{}.mp4", fixed.as_str()),
    }
}

fn requests(settings: &AssetSettings, has_video: bool) -> Vec<Request> {
    let fixed = |r: &RenditionRequest| Request {
        name: rendition_name(r.resolution),
        resolution: Some(r.resolution),
        kind: match r.resolution {
            RenditionResolution::Highest | RenditionResolution::AudioOnly => {
                RenditionType::Standard
            }
            _ => RenditionType::Advanced,
        },
        passthrough: r.passthrough.clone(),
        legacy_box: None,
        audio_only: r.resolution == RenditionResolution::AudioOnly,
        error_without_audio: false,
    };
    let legacy = |name: &str, legacy_box: Option<(u32, u32)>| Request {
        name: name.to_owned(),
        resolution: None,
        kind: RenditionType::Standard,
        passthrough: None,
        audio_only: legacy_box.is_none(),
        legacy_box,
        error_without_audio: legacy_box.is_none(),
    };
    let mut out: Vec<Request> = match settings.mp4_support {
        None | Some(Mp4Support::None) => settings.static_renditions.iter().map(fixed).collect(),
        // Mux: the video files of legacy MP4 support become audio.m4a on an audio-only asset.
        Some(Mp4Support::Capped1080p | Mp4Support::Standard) if !has_video => {
            vec![legacy("audio.m4a", None)]
        }
        Some(Mp4Support::Capped1080p) => vec![legacy("capped-1080p.mp4", Some((1920, 1080)))],
        Some(Mp4Support::Standard) => vec![
            legacy("high.mp4", Some((1920, 1080))),
            legacy("medium.mp4", Some((1280, 720))),
            legacy("low.mp4", Some((640, 360))),
        ],
        Some(Mp4Support::AudioOnly) => vec![legacy("audio.m4a", None)],
        Some(Mp4Support::AudioOnlyCapped1080p) if !has_video => vec![legacy("audio.m4a", None)],
        Some(Mp4Support::AudioOnlyCapped1080p) => vec![
            Request {
                error_without_audio: false,
                ..legacy("audio.m4a", None)
            },
            legacy("capped-1080p.mp4", Some((1920, 1080))),
        ],
    };
    // The same file asked for twice is one file.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.name.clone()));
    out
}

/// A requested rendition file: name, resolution (none for legacy files),
/// type and passthrough.
pub type RequestedFile = (
    String,
    Option<RenditionResolution>,
    RenditionType,
    Option<String>,
);

/// The rendition files that `settings` ask for, before the source is probed
/// (what the asset shows while it is being ingested).
pub fn requested_names(settings: &AssetSettings) -> Vec<RequestedFile> {
    requested_names_for(settings, true)
}

/// The rendition files that `settings` ask for, for an asset that has (or
/// has not) a video track.
pub fn requested_names_for(settings: &AssetSettings, has_video: bool) -> Vec<RequestedFile> {
    requests(settings, has_video)
        .into_iter()
        .map(|r| (r.name, r.resolution, r.kind, r.passthrough))
        .collect()
}

/// Decides every output for `info` under `settings`, as if the source had
/// to be decoded (see `plan_asset` for the assessment's part).
fn plan_outputs(
    info: &MediaInfo,
    settings: &AssetSettings,
    scope: Scope<'_>,
) -> Result<Plan, PlanError> {
    let source_video = info.video.first();
    let master_video = match source_video {
        None => None,
        Some(v) => {
            if v.width == 0 || v.height == 0 {
                return Err(PlanError::InvalidVideoSize {
                    width: v.width,
                    height: v.height,
                });
            }
            let (dw, dh) = v.display_size();
            let (width, height) = fit_within(dw, dh, settings.max_resolution_tier.bounds());
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
                steady_frame_rate: None,
                deinterlace: v.interlaced,
                reorient: v.rotation != 0 || v.flipped,
                watermark: settings.test,
                keyframe_interval: ((gop_fps * GOP_SECONDS).round() as u32).max(1),
                quality: settings.video_quality,
                stored_frame_rate: stored,
                max_bitrate_kbps: max_bitrate_kbps(width.min(height)),
                scale_from: None,
                scaler: if f64::from(v.width.max(v.height)) / f64::from(width.max(height))
                    > MAX_LINEAR_STEP + 1e-9
                {
                    Scaler::Lanczos
                } else {
                    Scaler::Linear
                },
                copy: false,
            })
        }
    };
    let source_audio = info.audio.first();
    let resolution_tier = match (&master_video, source_audio) {
        (Some(v), _) => ResolutionTier::of_video(v.width, v.height),
        (None, Some(_)) => ResolutionTier::AudioOnly,
        (None, None) => return Err(PlanError::NothingToTranscode),
    };
    let audio_target = |bitrate| {
        source_audio.map(|a| AudioTarget {
            channels: a.channels.clamp(1, 2),
            sample_rate: AUDIO_SAMPLE_RATE,
            bitrate,
            copy: false,
        })
    };

    let mut plan = Plan {
        video_encodes: Vec::new(),
        audio_encodes: Vec::new(),
        outputs: Vec::new(),
        renditions: Vec::new(),
        resolution_tier,
        expected_duration: match (info.duration, settings.test) {
            (Some(d), true) => Some(d.min(TEST_ASSET_SECONDS)),
            (d, _) => d,
        },
        duration_limit: settings.test.then_some(TEST_ASSET_SECONDS),
        audio_gain_db: None,
        deferred: Vec::new(),
        source_audio_channels: source_audio.map(|a| a.channels),
    };
    let video_index = |plan: &mut Plan, target: VideoTarget| -> usize {
        match plan
            .video_encodes
            .iter()
            .position(|v| (v.width, v.height) == (target.width, target.height))
        {
            Some(i) => i,
            None => {
                plan.video_encodes.push(target);
                plan.video_encodes.len() - 1
            }
        }
    };

    if matches!(scope, Scope::Everything) {
        let video = master_video.clone().map(|t| video_index(&mut plan, t));
        let audio = audio_target(MASTER_AUDIO_BITRATE).map(|a| {
            plan.audio_encodes.push(a);
            plan.audio_encodes.len() - 1
        });
        plan.outputs.push(OutputPlan {
            name: MASTER_NAME.into(),
            video,
            audio,
        });
    }

    let (tier_long, tier_short) = settings.max_resolution_tier.bounds();
    let source_short = source_video.map(|v| {
        let (w, h) = v.display_size();
        w.min(h)
    });
    let mut rendition_audio: Option<usize> = None;
    for request in requests(settings, master_video.is_some()) {
        if let Scope::RenditionsOnly(names) = scope
            && !names.contains(&request.name)
        {
            continue;
        }
        let mut rendition = RenditionPlan {
            ext: if request.audio_only { "m4a" } else { "mp4" },
            name: request.name.clone(),
            resolution: request.resolution,
            kind: request.kind,
            passthrough: request.passthrough.clone(),
            status: RenditionStatus::Preparing,
            reason: None,
            size: None,
        };
        let size: Option<(u32, u32)> = if request.audio_only {
            if source_audio.is_none() {
                rendition.status = if request.error_without_audio {
                    RenditionStatus::Errored
                } else {
                    RenditionStatus::Skipped
                };
                rendition.reason = Some("the asset has no audio".into());
            }
            None
        } else {
            match (&master_video, source_video) {
                (Some(master), Some(v)) => {
                    let (dw, dh) = v.display_size();
                    match (
                        request.resolution.and_then(|r| r.short_edge()),
                        request.legacy_box,
                    ) {
                        (Some(short), _) => {
                            if f64::from(short) > source_short.unwrap_or(0.0) + 0.5 {
                                rendition.status = RenditionStatus::Skipped;
                                rendition.reason = Some(format!("{short}p is above the source"));
                                None
                            } else if short > tier_short {
                                rendition.status = RenditionStatus::Skipped;
                                rendition.reason =
                                    Some(format!("{short}p is above max_resolution_tier"));
                                None
                            } else {
                                Some(short_edge_size(dw, dh, short))
                            }
                        }
                        (None, Some(bounds)) => Some(fit_within(
                            dw,
                            dh,
                            (bounds.0.min(tier_long), bounds.1.min(tier_short)),
                        )),
                        (None, None) => Some((master.width, master.height)),
                    }
                }
                _ => {
                    rendition.status = RenditionStatus::Skipped;
                    rendition.reason = Some("the asset has no video".into());
                    None
                }
            }
        };
        rendition.size = size;
        if rendition.status == RenditionStatus::Preparing {
            let video = size.map(|(width, height)| {
                let base = master_video.clone().expect("a sized rendition has video");
                video_index(
                    &mut plan,
                    VideoTarget {
                        width,
                        height,
                        max_bitrate_kbps: max_bitrate_kbps(width.min(height)),
                        ..base
                    },
                )
            });
            let audio = source_audio.map(|_| {
                *rendition_audio.get_or_insert_with(|| {
                    plan.audio_encodes
                        .push(audio_target(RENDITION_AUDIO_BITRATE).expect("source has audio"));
                    plan.audio_encodes.len() - 1
                })
            });
            plan.outputs.push(OutputPlan {
                name: rendition.name.clone(),
                video,
                audio,
            });
        }
        plan.renditions.push(rendition);
    }
    chain_scalers(&mut plan, source_video.map(|v| (v.width, v.height)));
    Ok(plan)
}

/// Decides where each encode's picture is scaled from. Scaling from the
/// smallest larger picture already made reads fewer pixels, and keeps each
/// step small enough for the cheap linear kernel: a 1080p source's 720p is
/// made from the decoded picture, its 480p from the 720p (1.5× each).
fn chain_scalers(plan: &mut Plan, source: Option<(u32, u32)>) {
    let Some((sw, sh)) = source else { return };
    let long = |w: u32, h: u32| f64::from(w.max(h));
    // Largest first, so that every parent comes before its children.
    let mut order: Vec<usize> = (0..plan.video_encodes.len()).collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(plan.video_encodes[i].width * plan.video_encodes[i].height)
    });
    for (rank, &i) in order.iter().enumerate() {
        let target = long(plan.video_encodes[i].width, plan.video_encodes[i].height);
        let source_ratio = long(sw, sh) / target;
        // The smallest larger encode within one linear step, else the source.
        // An encode at the source's own size is the decoded picture itself.
        let parent = order[..rank]
            .iter()
            .rev()
            .filter(|&&p| {
                long(plan.video_encodes[p].width, plan.video_encodes[p].height) < long(sw, sh)
            })
            .map(|&p| {
                (
                    p,
                    long(plan.video_encodes[p].width, plan.video_encodes[p].height) / target,
                )
            })
            .find(|&(_, ratio)| ratio > 1.0 && ratio <= MAX_LINEAR_STEP + 1e-9);
        let (scale_from, ratio) = match parent {
            Some((p, ratio)) => (Some(p), ratio),
            None => (None, source_ratio),
        };
        let encode = &mut plan.video_encodes[i];
        encode.scale_from = scale_from;
        encode.scaler = if ratio > MAX_LINEAR_STEP + 1e-9 {
            Scaler::Lanczos
        } else {
            Scaler::Linear
        };
    }
}

/// The size whose short edge is `short`, keeping the display aspect ratio, even.
fn short_edge_size(width: f64, height: f64, short: u32) -> (u32, u32) {
    let s = f64::from(short);
    if width >= height {
        (round_even(width * s / height), round_even(s))
    } else {
        (round_even(s), round_even(height * s / width))
    }
}

/// Scales a display size down (never up) so that its long edge and short edge
/// fit the tier's box, keeping the aspect ratio, and rounds to even sizes.
pub fn fit_within(width: f64, height: f64, (max_long, max_short): (u32, u32)) -> (u32, u32) {
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
pub(super) mod tests;
