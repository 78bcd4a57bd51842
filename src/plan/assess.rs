//! The assessment's part of planning: what the job measured of the source
//! (standard or not, a variable frame rate, the loudness gain), applied to
//! the outputs in one pure call. A standard input's master becomes a stream
//! copy and the files that need an encode are left to a renditions job; a
//! variable-rate source is encoded at a steady rate.

use super::{
    GOP_SECONDS, MASTER_NAME, MAX_FRAME_RATE, OutputPlan, Plan, PlanError, Scope, plan_outputs,
};
use crate::asset::AssetSettings;
use crate::probe::MediaInfo;

/// What the job measured of a source beyond the probe. The default is a
/// source that is not copied, has a steady rate and gets no gain: what a
/// renditions job, which reads the stored master, plans with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// A standard input (no `non_standard_input_reasons`) with a steady
    /// frame rate: its streams may be copied.
    pub copyable: bool,
    /// The typical frame rate of a variable-rate source: every encode runs
    /// at it.
    pub steady_fps: Option<f64>,
    /// `normalize_audio`'s gain in dB.
    pub audio_gain_db: Option<f64>,
}

/// The channels the audio encodes get (the source's primary audio, stereo
/// or mono), which the loudness measurement must meter; `None` without audio.
pub fn audio_output_channels(info: &MediaInfo) -> Option<u32> {
    info.audio.first().map(|a| a.channels.clamp(1, 2))
}

/// Decides every output for `info` under `settings`, given what the job
/// measured of the source. Pure: the job applies the plan as it is.
pub fn plan_asset(
    info: &MediaInfo,
    settings: &AssetSettings,
    scope: Scope<'_>,
    assessment: &Assessment,
) -> Result<Plan, PlanError> {
    let mut plan = plan_outputs(info, settings, scope)?;
    copy_streams(&mut plan, info, settings, assessment.copyable);
    if let Some(fps) = assessment.steady_fps {
        steady_frame_rate(&mut plan, fps);
    }
    plan.deferred = plan.defer_encoded_outputs();
    plan.audio_gain_db = assessment.audio_gain_db;
    Ok(plan)
}

/// The fast path: marks the master's encodes as stream copies where the
/// source is a standard input (`standard` is true when it has no
/// `non_standard_input_reasons`) whose H.264 video already is what the master
/// would be (same size, upright, progressive, at most 60 fps) and whose audio
/// is AAC in at most two channels. Outputs of the master's size share the
/// copy; smaller renditions are still encoded from one decode. Test assets
/// (watermarked) and loudness-normalised audio are never copied.
fn copy_streams(plan: &mut Plan, info: &MediaInfo, settings: &AssetSettings, standard: bool) {
    // Only MP4/MOV/M4A sources: their index gives every packet exact decode
    // and presentation times. Matroska keeps no decode times, and a copy of
    // its B-frame video would come out with wrong frame durations.
    let timestamped = matches!(
        info.container.as_deref(),
        Some("video/quicktime" | "audio/x-m4a")
    );
    if !standard || !timestamped || settings.test {
        return;
    }
    let Some(master) = plan.outputs.iter().find(|o| o.name == MASTER_NAME) else {
        return;
    };
    let (video, audio) = (master.video, master.audio);
    let video_copies = match (video, info.video.first()) {
        (Some(index), Some(source)) => {
            let target = &plan.video_encodes[index];
            source.codec == "h264"
                && (target.width, target.height) == (source.width, source.height)
                && source.rotation == 0
                && !source.flipped
                && !source.interlaced
                && target.max_frame_rate.is_none()
        }
        (None, _) => true,
        (Some(_), None) => false,
    };
    let audio_copies = match (audio, info.audio.first()) {
        (Some(_), Some(source)) => {
            source.codec == "aac" && source.channels <= 2 && !settings.normalize_audio
        }
        (None, _) => true,
        (Some(_), None) => false,
    };
    // All or nothing: a pipeline either copies or decodes.
    if video_copies && audio_copies {
        if let Some(index) = video {
            plan.video_encodes[index].copy = true;
        }
        if let Some(index) = audio {
            plan.audio_encodes[index].copy = true;
        }
    }
}

/// Frame rates a steady output snaps to when the measured one is within 0.5 %.
const COMMON_FRAME_RATES: [(u32, u32); 8] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
];

/// Makes the output of a variable-frame-rate source steady: every encode runs
/// at the source's typical rate (its most common frame step, snapped to a
/// common rate, at most 60), repeating or dropping frames, so that players see
/// a constant rate and the audio stays in sync. Copies are left alone (the
/// caller does not copy a variable-rate source).
fn steady_frame_rate(plan: &mut Plan, typical_fps: f64) {
    let fps = typical_fps.min(f64::from(MAX_FRAME_RATE));
    let off = |&(n, d): &(u32, u32)| (f64::from(n) / f64::from(d) - fps).abs();
    let rate = COMMON_FRAME_RATES
        .iter()
        .filter(|r| off(r) <= fps * 0.005)
        .min_by(|a, b| off(a).total_cmp(&off(b)))
        .copied()
        .unwrap_or(((fps.round() as u32).max(1), 1));
    let stored = f64::from(rate.0) / f64::from(rate.1);
    for target in plan.video_encodes.iter_mut().filter(|v| !v.copy) {
        target.steady_frame_rate = Some(rate);
        target.max_frame_rate = None;
        target.stored_frame_rate = (stored * 1000.0).round() / 1000.0;
        target.keyframe_interval = ((stored * GOP_SECONDS).round() as u32).max(1);
    }
}

impl Plan {
    /// Whether the master is made by copying the source's streams.
    pub fn copies(&self) -> bool {
        self.video_encodes.iter().any(|v| v.copy) || self.audio_encodes.iter().any(|a| a.copy)
    }

    /// Leaves out of this run every output that needs an encode, when the
    /// master is a copy: the master is stored at disk speed, and the rest is
    /// made from it by a renditions job (one decode). Returns their names.
    fn defer_encoded_outputs(&mut self) -> Vec<String> {
        if !self.copies() {
            return Vec::new();
        }
        let (video, audio) = (&self.video_encodes, &self.audio_encodes);
        let (keep, deferred): (Vec<OutputPlan>, Vec<OutputPlan>) =
            std::mem::take(&mut self.outputs)
                .into_iter()
                .partition(|o| {
                    o.video.is_none_or(|i| video[i].copy) && o.audio.is_none_or(|i| audio[i].copy)
                });
        self.outputs = keep;
        deferred.into_iter().map(|o| o.name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{info, plan_master, settings, stereo, video, with_renditions};
    use super::*;
    use crate::asset::{MaxResolutionTier, RenditionResolution, RenditionStatus};

    #[test]
    fn a_standard_mp4_master_is_a_copy_and_encoded_files_are_deferred() {
        use RenditionResolution as R;
        let source = info(vec![video(1920, 1080)], vec![stereo()]);
        let settings = with_renditions(
            MaxResolutionTier::P1080,
            &[R::Highest, R::P720, R::AudioOnly],
        );
        let mut plan = plan_master(&source, &settings).unwrap();
        copy_streams(&mut plan, &source, &settings, true);
        assert!(plan.copies());
        assert!(plan.video_encodes[0].copy && plan.audio_encodes[0].copy);
        let deferred = plan.defer_encoded_outputs();
        assert_eq!(deferred, ["highest.mp4", "720p.mp4", "audio.m4a"]);
        let names: Vec<&str> = plan.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, [MASTER_NAME]);
        // The deferred files stay planned (preparing) for the follow-up job.
        assert!(
            plan.renditions
                .iter()
                .all(|r| r.status == RenditionStatus::Preparing)
        );
    }

    #[test]
    fn what_is_never_copied() {
        let standard = info(vec![video(1920, 1080)], vec![stereo()]);
        let tier = settings(MaxResolutionTier::P1080);
        let copies = |source: &MediaInfo, settings: &AssetSettings, is_standard: bool| {
            let mut plan = plan_master(source, settings).unwrap();
            copy_streams(&mut plan, source, settings, is_standard);
            plan.copies()
        };
        assert!(copies(&standard, &tier, true));
        assert!(!copies(&standard, &tier, false), "non-standard");
        let mut test = tier.clone();
        test.test = true;
        assert!(
            !copies(&standard, &test, true),
            "test assets are watermarked"
        );
        let mut loud = tier.clone();
        loud.normalize_audio = true;
        assert!(!copies(&standard, &loud, true), "normalised audio");
        let mut mkv = standard.clone();
        mkv.container = Some("video/x-matroska".into());
        assert!(!copies(&mkv, &tier, true), "no decode times to copy");
        let big = info(vec![video(3840, 2160)], vec![stereo()]);
        assert!(!copies(&big, &tier, true), "above the tier");
        let mut rotated = standard.clone();
        rotated.video[0].rotation = 90;
        assert!(
            !copies(&rotated, &tier, true),
            "rotation is applied to pixels"
        );
        let mut hevc = standard.clone();
        hevc.video[0].codec = "hevc".into();
        assert!(!copies(&hevc, &tier, true), "the master is H.264");
        let mut fast = standard.clone();
        fast.video[0].frame_rate = (120, 1);
        assert!(!copies(&fast, &tier, true), "capped at 60 fps");
        let mut surround = standard.clone();
        surround.audio[0].channels = 6;
        assert!(!copies(&surround, &tier, true), "downmixed to stereo");
        let audio_only = info(vec![], vec![stereo()]);
        let mut m4a = audio_only.clone();
        m4a.container = Some("audio/x-m4a".into());
        assert!(copies(&m4a, &tier, true), "AAC in M4A");
    }

    #[test]
    fn a_variable_rate_source_is_made_steady_at_its_typical_rate() {
        let source = info(vec![video(1280, 720)], vec![stereo()]);
        let mut plan = plan_master(&source, &settings(MaxResolutionTier::P1080)).unwrap();
        steady_frame_rate(&mut plan, 29.969);
        let target = &plan.video_encodes[0];
        assert_eq!(target.steady_frame_rate, Some((30000, 1001)));
        assert_eq!(target.stored_frame_rate, 29.97);
        assert_eq!(target.keyframe_interval, 60);
        steady_frame_rate(&mut plan, 240.0);
        assert_eq!(plan.video_encodes[0].steady_frame_rate, Some((60, 1)));
        steady_frame_rate(&mut plan, 12.4);
        assert_eq!(plan.video_encodes[0].steady_frame_rate, Some((12, 1)));
    }

    #[test]
    fn plan_asset_applies_the_assessment() {
        let source = info(vec![video(1920, 1080)], vec![stereo()]);
        let tier = settings(MaxResolutionTier::P1080);
        let planned = |a: &Assessment| plan_asset(&source, &tier, Scope::Everything, a).unwrap();
        let plain = planned(&Assessment::default());
        assert!(!plain.copies() && plain.deferred.is_empty());
        assert_eq!(plain.audio_gain_db, None);
        let copied = planned(&Assessment {
            copyable: true,
            ..Assessment::default()
        });
        assert!(copied.copies());
        let steady = planned(&Assessment {
            steady_fps: Some(25.01),
            audio_gain_db: Some(-3.5),
            ..Assessment::default()
        });
        assert_eq!(steady.video_encodes[0].steady_frame_rate, Some((25, 1)));
        assert_eq!(steady.audio_gain_db, Some(-3.5));
        assert_eq!(audio_output_channels(&source), Some(2));
        assert_eq!(
            audio_output_channels(&info(vec![video(64, 64)], vec![])),
            None
        );
    }
}
