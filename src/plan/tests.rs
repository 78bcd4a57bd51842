use super::*;
use crate::asset::MaxResolutionTier;
use crate::probe::{AudioStream, VideoStream};

pub(super) fn plan_master(info: &MediaInfo, settings: &AssetSettings) -> Result<Plan, PlanError> {
    plan_outputs(info, settings, Scope::Everything)
}

pub(super) fn settings(tier: MaxResolutionTier) -> AssetSettings {
    AssetSettings::defaults(tier, VideoQuality::Plus)
}

pub(super) fn video(width: u32, height: u32) -> VideoStream {
    VideoStream::h264_for_tests(width, height)
}

pub(super) fn stereo() -> AudioStream {
    AudioStream::aac_stereo_for_tests()
}

pub(super) fn info(video: Vec<VideoStream>, audio: Vec<AudioStream>) -> MediaInfo {
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
        let t = plan.master_video().cloned().unwrap();
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
    let plan = plan_master(&info(vec![v], vec![]), &settings(MaxResolutionTier::P1080)).unwrap();
    let t = plan.master_video().cloned().unwrap();
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
        let t = plan.master_video().cloned().unwrap();
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
    assert!(p.master_video().is_none());
    let p = plan_master(
        &info(vec![video(1280, 720)], vec![]),
        &settings(MaxResolutionTier::P1080),
    )
    .unwrap();
    assert!(p.audio_encodes.is_empty());
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
    assert_eq!(p.audio_encodes[0].channels, 2);
    a.channels = 1;
    let p = plan_master(&info(vec![], vec![a]), &settings(MaxResolutionTier::P1080)).unwrap();
    assert_eq!(p.audio_encodes[0].channels, 1);
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

pub(super) fn with_renditions(
    tier: MaxResolutionTier,
    list: &[RenditionResolution],
) -> AssetSettings {
    let mut s = settings(tier);
    s.static_renditions = list
        .iter()
        .map(|r| RenditionRequest {
            resolution: *r,
            passthrough: None,
        })
        .collect();
    s
}

/// (name, status, size) of a planned rendition.
type Fate = (String, RenditionStatus, Option<(u32, u32)>);
/// Source (width, height, rotation), tier, and the expected fates.
type LadderCase = (
    (u32, u32, u32),
    MaxResolutionTier,
    Vec<(&'static str, RenditionStatus, Option<(u32, u32)>)>,
);

fn fates(p: &Plan) -> Vec<Fate> {
    p.renditions
        .iter()
        .map(|r| (r.name.clone(), r.status, r.size))
        .collect()
}

#[test]
fn rendition_sizes_and_skips() {
    use RenditionResolution::*;
    use RenditionStatus::{Preparing as P, Skipped as S};
    let all = [
        Highest, AudioOnly, P2160, P1440, P1080, P720, P540, P480, P360, P270,
    ];
    let cases: [LadderCase; 4] = [
        (
            (1920, 1080, 0),
            MaxResolutionTier::P1080,
            vec![
                ("highest.mp4", P, Some((1920, 1080))),
                ("audio.m4a", P, None),
                ("2160p.mp4", S, None),
                ("1440p.mp4", S, None),
                ("1080p.mp4", P, Some((1920, 1080))),
                ("720p.mp4", P, Some((1280, 720))),
                ("540p.mp4", P, Some((960, 540))),
                ("480p.mp4", P, Some((854, 480))),
                ("360p.mp4", P, Some((640, 360))),
                ("270p.mp4", P, Some((480, 270))),
            ],
        ),
        (
            // 4K source under the 1080p tier: above the tier is skipped.
            (3840, 2160, 0),
            MaxResolutionTier::P1080,
            vec![
                ("highest.mp4", P, Some((1920, 1080))),
                ("audio.m4a", P, None),
                ("2160p.mp4", S, None),
                ("1440p.mp4", S, None),
                ("1080p.mp4", P, Some((1920, 1080))),
                ("720p.mp4", P, Some((1280, 720))),
                ("540p.mp4", P, Some((960, 540))),
                ("480p.mp4", P, Some((854, 480))),
                ("360p.mp4", P, Some((640, 360))),
                ("270p.mp4", P, Some((480, 270))),
            ],
        ),
        (
            (3840, 2160, 0),
            MaxResolutionTier::P2160,
            vec![
                ("highest.mp4", P, Some((3840, 2160))),
                ("audio.m4a", P, None),
                ("2160p.mp4", P, Some((3840, 2160))),
                ("1440p.mp4", P, Some((2560, 1440))),
                ("1080p.mp4", P, Some((1920, 1080))),
                ("720p.mp4", P, Some((1280, 720))),
                ("540p.mp4", P, Some((960, 540))),
                ("480p.mp4", P, Some((854, 480))),
                ("360p.mp4", P, Some((640, 360))),
                ("270p.mp4", P, Some((480, 270))),
            ],
        ),
        (
            // Portrait phone video: the resolution is the short edge (the width).
            (1920, 1080, 90),
            MaxResolutionTier::P1080,
            vec![
                ("highest.mp4", P, Some((1080, 1920))),
                ("audio.m4a", P, None),
                ("2160p.mp4", S, None),
                ("1440p.mp4", S, None),
                ("1080p.mp4", P, Some((1080, 1920))),
                ("720p.mp4", P, Some((720, 1280))),
                ("540p.mp4", P, Some((540, 960))),
                ("480p.mp4", P, Some((480, 854))),
                ("360p.mp4", P, Some((360, 640))),
                ("270p.mp4", P, Some((270, 480))),
            ],
        ),
    ];
    for ((w, h, rot), tier, expected) in cases {
        let mut v = video(w, h);
        v.rotation = rot;
        let p = plan_outputs(
            &info(vec![v], vec![stereo()]),
            &with_renditions(tier, &all),
            Scope::Everything,
        )
        .unwrap();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(n, s, z)| (n.to_owned(), s, z))
            .collect();
        assert_eq!(fates(&p), expected, "{w}x{h} rot {rot} {tier:?}");
    }
}

#[test]
fn a_480p_source_skips_everything_above_it() {
    use RenditionResolution::*;
    let p = plan_outputs(
        &info(vec![video(854, 480)], vec![stereo()]),
        &with_renditions(MaxResolutionTier::P1080, &[P720, P540, P480, P360]),
        Scope::Everything,
    )
    .unwrap();
    let statuses: Vec<_> = p.renditions.iter().map(|r| r.status).collect();
    use RenditionStatus::*;
    assert_eq!(statuses, vec![Skipped, Skipped, Preparing, Preparing]);
}

#[test]
fn streams_a_file_needs_must_exist() {
    use RenditionResolution::*;
    let s = with_renditions(MaxResolutionTier::P1080, &[Highest, AudioOnly, P720]);
    let audio_only = plan_outputs(&info(vec![], vec![stereo()]), &s, Scope::Everything).unwrap();
    let st: Vec<_> = audio_only.renditions.iter().map(|r| r.status).collect();
    use RenditionStatus::*;
    assert_eq!(
        st,
        vec![Skipped, Preparing, Skipped],
        "audio-only asset: only audio.m4a"
    );
    let silent =
        plan_outputs(&info(vec![video(1280, 720)], vec![]), &s, Scope::Everything).unwrap();
    let st: Vec<_> = silent.renditions.iter().map(|r| r.status).collect();
    assert_eq!(
        st,
        vec![Preparing, Skipped, Preparing],
        "no audio: audio.m4a skipped"
    );
}

#[test]
fn same_size_outputs_share_one_encode() {
    use RenditionResolution::*;
    let mut s = with_renditions(MaxResolutionTier::P1080, &[Highest, P1080, P720, AudioOnly]);
    let p = plan_outputs(
        &info(vec![video(1920, 1080)], vec![stereo()]),
        &s,
        Scope::Everything,
    )
    .unwrap();
    assert_eq!(
        p.video_encodes.len(),
        2,
        "1080 (master, highest, 1080p) and 720"
    );
    assert_eq!(p.audio_encodes.len(), 2, "the master's and the renditions'");
    assert_eq!(p.outputs.len(), 5);
    let master = &p.outputs[0];
    assert_eq!(master.name, MASTER_NAME);
    assert!(p.outputs.iter().filter(|o| o.video == master.video).count() == 3);
    // Only some renditions: no master output.
    s.static_renditions.push(RenditionRequest {
        resolution: P480,
        passthrough: None,
    });
    let names = vec!["480p.mp4".to_owned()];
    let p = plan_outputs(
        &info(vec![video(1920, 1080)], vec![stereo()]),
        &s,
        Scope::RenditionsOnly(&names),
    )
    .unwrap();
    assert_eq!(p.outputs.len(), 1);
    assert_eq!(p.outputs[0].name, "480p.mp4");
    assert_eq!(p.video_encodes.len(), 1);
    assert_eq!(
        (p.video_encodes[0].width, p.video_encodes[0].height),
        (854, 480)
    );
}

#[test]
fn legacy_mp4_support() {
    let names = fates;
    let mut s = settings(MaxResolutionTier::P2160);
    s.mp4_support = Some(Mp4Support::Standard);
    let p = plan_outputs(
        &info(vec![video(3840, 2160)], vec![stereo()]),
        &s,
        Scope::Everything,
    )
    .unwrap();
    use RenditionStatus::*;
    assert_eq!(
        names(&p),
        vec![
            ("high.mp4".into(), Preparing, Some((1920, 1080))),
            ("medium.mp4".into(), Preparing, Some((1280, 720))),
            ("low.mp4".into(), Preparing, Some((640, 360))),
        ]
    );
    s.mp4_support = Some(Mp4Support::AudioOnlyCapped1080p);
    let p = plan_outputs(
        &info(vec![video(3840, 2160)], vec![]),
        &s,
        Scope::Everything,
    )
    .unwrap();
    assert_eq!(
        names(&p),
        vec![
            ("audio.m4a".into(), Skipped, None),
            ("capped-1080p.mp4".into(), Preparing, Some((1920, 1080)))
        ]
    );
    s.mp4_support = Some(Mp4Support::AudioOnly);
    let p = plan_outputs(&info(vec![video(640, 360)], vec![]), &s, Scope::Everything).unwrap();
    assert_eq!(
        names(&p),
        vec![("audio.m4a".into(), Errored, None)],
        "Mux errors audio-only MP4 support without audio"
    );
    s.mp4_support = Some(Mp4Support::Capped1080p);
    let p = plan_outputs(&info(vec![], vec![stereo()]), &s, Scope::Everything).unwrap();
    assert_eq!(
        names(&p),
        vec![("audio.m4a".into(), Preparing, None)],
        "audio-only asset: audio.m4a instead"
    );
}

#[test]
fn scaling_steps_chain_through_smaller_pictures() {
    use RenditionResolution::*;
    let s = with_renditions(MaxResolutionTier::P1080, &[P720, P480, P360, P270]);
    let p = plan_outputs(
        &info(vec![video(1920, 1080)], vec![stereo()]),
        &s,
        Scope::Everything,
    )
    .unwrap();
    let step = |w: u32| {
        let e = p.video_encodes.iter().find(|e| e.width == w).unwrap();
        (e.scale_from.map(|i| p.video_encodes[i].width), e.scaler)
    };
    assert_eq!(
        step(1920),
        (None, Scaler::Linear),
        "the master is not resized"
    );
    assert_eq!(step(1280), (None, Scaler::Linear), "1.5x from the source");
    assert_eq!(
        step(854),
        (Some(1280), Scaler::Linear),
        "1.5x from the 720p"
    );
    assert_eq!(
        step(640),
        (Some(854), Scaler::Linear),
        "1.33x from the 480p"
    );
    assert_eq!(
        step(480),
        (Some(640), Scaler::Linear),
        "1.33x from the 360p"
    );
    // A lone small rendition of a large source: one big step, Lanczos.
    let s = with_renditions(MaxResolutionTier::P1080, &[P270]);
    let p = plan_outputs(
        &info(vec![video(1920, 1080)], vec![stereo()]),
        &s,
        Scope::Everything,
    )
    .unwrap();
    let small = p.video_encodes.iter().find(|e| e.width == 480).unwrap();
    assert_eq!((small.scale_from, small.scaler), (None, Scaler::Lanczos));
    // A 4K source capped at 1080p: the master itself is a 2x step.
    let p = plan_outputs(
        &info(vec![video(3840, 2160)], vec![]),
        &settings(MaxResolutionTier::P1080),
        Scope::Everything,
    )
    .unwrap();
    assert_eq!(p.video_encodes[0].scaler, Scaler::Lanczos);
}

#[test]
fn bitrate_caps_by_size() {
    assert_eq!(max_bitrate_kbps(1080), 5_000);
    assert_eq!(max_bitrate_kbps(720), 3_000);
    assert_eq!(max_bitrate_kbps(480), 1_200);
    assert_eq!(max_bitrate_kbps(2160), 20_000);
}

#[test]
fn test_assets_keep_ten_seconds_and_a_watermark() {
    let mut long = info(vec![video(1280, 720)], vec![stereo()]);
    long.duration = Some(95.0);
    let mut settings = settings(MaxResolutionTier::P1080);
    settings.test = true;
    let plan = plan_master(&long, &settings).unwrap();
    assert_eq!(plan.duration_limit, Some(10.0));
    assert_eq!(plan.expected_duration, Some(10.0));
    assert!(plan.video_encodes[0].watermark);
    let mut short = long.clone();
    short.duration = Some(4.0);
    assert_eq!(
        plan_master(&short, &settings).unwrap().expected_duration,
        Some(4.0)
    );
}
