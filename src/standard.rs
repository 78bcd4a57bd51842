//! Mux's "standard input" rules: which properties of a source make it
//! non-standard, as the asset's `non_standard_input_reasons`.
//!
//! Pure: it reads what `probe` found and what `inspect` measured, and returns
//! Mux's keys with Mux's value formats. An empty map means the input is
//! standard; the asset then omits the field. Limits per tier:
//!
//! | tier          | codecs (8-bit 4:2:0)       | px per side | key frames | average | any GOP | fps    |
//! |---------------|----------------------------|-------------|------------|---------|---------|--------|
//! | 1080p, 1440p  | H.264, HEVC (may be 10-bit)| ≤ 2048      | ≤ 20 s     | 8 Mbps  | 16 Mbps | 5–120  |
//! | 2160p         | same                       | ≤ 4096      | ≤ 10 s     | 20 Mbps | 40 Mbps | 5–60   |
//!
//! Audio must be AAC, pixels square, GOPs closed, the picture progressive,
//! and edit lists simple (see `inspect::mp4::is_simple`).

use std::collections::BTreeMap;

use crate::asset::MaxResolutionTier;
use crate::inspect::{Inspection, mp4};
use crate::probe::MediaInfo;

/// Mux's reason keys and the values it gives them.
pub type Reasons = BTreeMap<String, String>;

struct Limits {
    max_side: u32,
    max_keyframe_interval: f64,
    max_average_bitrate: f64,
    max_gop_bitrate: f64,
    frame_rates: (f64, f64),
}

fn limits(tier: MaxResolutionTier) -> Limits {
    match tier {
        MaxResolutionTier::P1080 | MaxResolutionTier::P1440 => Limits {
            max_side: 2048,
            max_keyframe_interval: 20.0,
            max_average_bitrate: 8e6,
            max_gop_bitrate: 16e6,
            frame_rates: (5.0, 120.0),
        },
        MaxResolutionTier::P2160 => Limits {
            max_side: 4096,
            max_keyframe_interval: 10.0,
            max_average_bitrate: 20e6,
            max_gop_bitrate: 40e6,
            frame_rates: (5.0, 60.0),
        },
    }
}

/// libav's name of a pixel format (`yuv420p`, `yuv444p10le`, …) from the
/// chroma format, bit depth and profile the parser reported.
pub fn pixel_format(
    chroma_format: Option<&str>,
    bit_depth: Option<u32>,
    profile: Option<&str>,
) -> Option<String> {
    let chroma = match chroma_format {
        Some(c) => c.to_owned(),
        None => match profile? {
            p if p.contains("4:4:4") => "4:4:4".into(),
            p if p.contains("4:2:2") => "4:2:2".into(),
            _ => "4:2:0".into(),
        },
    };
    let depth = bit_depth.unwrap_or(match profile {
        Some(p) if p.contains("10") => 10,
        _ => 8,
    });
    let base = match chroma.as_str() {
        "4:2:0" => "yuv420p",
        "4:2:2" => "yuv422p",
        "4:4:4" => "yuv444p",
        "4:0:0" => "gray",
        _ => return None,
    };
    Some(if depth > 8 {
        format!("{base}{depth}le")
    } else {
        base.to_owned()
    })
}

/// A frame rate as Mux writes it: up to three decimals, no trailing zeros.
pub fn format_frame_rate(fps: f64) -> String {
    let text = format!("{:.3}", (fps * 1000.0).round() / 1000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The reasons `info` (as measured by `inspection`) is not a standard input
/// at `tier`. `inspection` is `None` when the parse pass failed.
pub fn reasons(
    info: &MediaInfo,
    inspection: Option<&Inspection>,
    tier: MaxResolutionTier,
) -> Reasons {
    let limits = limits(tier);
    let mut reasons = Reasons::new();
    let mut note = |key: &str, value: String| {
        reasons.insert(key.to_owned(), value);
    };

    if let Some(v) = info.video.first() {
        let hevc = v.codec == "hevc";
        if v.codec != "h264" && !hevc {
            note("video_codec", v.codec.clone());
        }
        if let Some(format) = pixel_format(
            v.chroma_format.as_deref(),
            v.bit_depth,
            v.profile.as_deref(),
        ) {
            let allowed = format == "yuv420p" || (hevc && format == "yuv420p10le");
            if !allowed {
                note("unsupported_pixel_format", format);
            }
        }
        if v.width > limits.max_side || v.height > limits.max_side {
            note("video_resolution", format!("{}x{}", v.width, v.height));
        }
        let (pn, pd) = v.par;
        if pn > 0 && pd > 0 && pn != pd {
            note("pixel_aspect_ratio", format!("{pn}:{pd}"));
        }
        let measured = inspection.and_then(|i| i.video.as_ref());
        let fps = measured.and_then(|m| m.average_frame_rate).or(v.fps());
        match fps {
            Some(f) if f >= limits.frame_rates.0 - 0.01 && f <= limits.frame_rates.1 + 0.01 => {}
            Some(f) => note("video_frame_rate", format_frame_rate(f)),
            None => note("video_frame_rate", "-1".into()),
        }
        match measured {
            Some(m) => {
                if m.max_keyframe_interval > limits.max_keyframe_interval {
                    note("video_gop_size", "high".into());
                }
                if m.average_bitrate > limits.max_average_bitrate
                    || m.max_gop_bitrate > limits.max_gop_bitrate
                {
                    note("video_bitrate", "high".into());
                }
                if m.open_gop || v.interlaced {
                    note("unexpected_media_file_parameters", "non-standard".into());
                }
            }
            // Unmeasured is not standard: nothing says the GOPs are sane.
            None => note("unexpected_media_file_parameters", "non-standard".into()),
        }
        if let Some(i) = inspection
            && !mp4::is_simple(&i.edits.video)
        {
            note("video_edit_list", "non-standard".into());
        }
    }
    if let Some(a) = info.audio.first() {
        if a.codec != "aac" {
            note("audio_codec", a.codec.clone());
        }
        if let Some(i) = inspection
            && !mp4::is_simple(&i.edits.audio)
        {
            note("audio_edit_list", "non-standard".into());
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::VideoMeasurements;
    use crate::inspect::mp4::{Edit, EditLists};
    use crate::probe::{AudioStream, VideoStream};

    fn video(codec: &str, width: u32, height: u32) -> VideoStream {
        VideoStream {
            codec: codec.into(),
            ..VideoStream::h264_for_tests(width, height)
        }
    }

    fn audio(codec: &str) -> AudioStream {
        AudioStream {
            codec: codec.into(),
            ..AudioStream::aac_stereo_for_tests()
        }
    }

    fn measured() -> VideoMeasurements {
        VideoMeasurements {
            frames: 1800,
            duration: 60.0,
            average_frame_rate: Some(30.0),
            variable_frame_rate: false,
            typical_frame_rate: Some(30.0),
            max_keyframe_interval: 2.0,
            average_bitrate: 5e6,
            max_gop_bitrate: 7e6,
            open_gop: false,
        }
    }

    /// One case: how it differs from a standard 1080p30 H.264/AAC MP4.
    struct Case {
        name: &'static str,
        tier: MaxResolutionTier,
        change: fn(&mut MediaInfo, &mut Inspection),
        expect: &'static [(&'static str, &'static str)],
    }

    const P1080: MaxResolutionTier = MaxResolutionTier::P1080;
    const P2160: MaxResolutionTier = MaxResolutionTier::P2160;

    fn edit(media_time: i64) -> Edit {
        Edit {
            segment_duration: 1000,
            media_time,
            media_rate: 0x10000,
        }
    }

    #[test]
    fn mux_rules_table() {
        let cases = [
            Case {
                name: "standard H.264/AAC",
                tier: P1080,
                change: |_, _| {},
                expect: &[],
            },
            Case {
                name: "HEVC 8-bit is standard",
                tier: P1080,
                change: |m, _| m.video[0].codec = "hevc".into(),
                expect: &[],
            },
            Case {
                name: "HEVC 10-bit is standard",
                tier: P1080,
                change: |m, _| {
                    m.video[0].codec = "hevc".into();
                    m.video[0].bit_depth = Some(10);
                },
                expect: &[],
            },
            Case {
                name: "VP9",
                tier: P1080,
                change: |m, _| m.video[0].codec = "vp9".into(),
                expect: &[("video_codec", "vp9")],
            },
            Case {
                name: "AV1",
                tier: P1080,
                change: |m, _| m.video[0].codec = "av1".into(),
                expect: &[("video_codec", "av1")],
            },
            Case {
                name: "ProRes 4:2:2 10-bit",
                tier: P1080,
                change: |m, _| {
                    m.video[0].codec = "prores".into();
                    m.video[0].chroma_format = Some("4:2:2".into());
                    m.video[0].bit_depth = Some(10);
                },
                expect: &[
                    ("unsupported_pixel_format", "yuv422p10le"),
                    ("video_codec", "prores"),
                ],
            },
            Case {
                name: "MPEG-2",
                tier: P1080,
                change: |m, _| m.video[0].codec = "mpeg2video".into(),
                expect: &[("video_codec", "mpeg2video")],
            },
            Case {
                name: "H.264 10-bit",
                tier: P1080,
                change: |m, _| m.video[0].bit_depth = Some(10),
                expect: &[("unsupported_pixel_format", "yuv420p10le")],
            },
            Case {
                name: "H.264 4:4:4",
                tier: P1080,
                change: |m, _| m.video[0].chroma_format = Some("4:4:4".into()),
                expect: &[("unsupported_pixel_format", "yuv444p")],
            },
            Case {
                name: "MP3 audio",
                tier: P1080,
                change: |m, _| m.audio[0].codec = "mp3".into(),
                expect: &[("audio_codec", "mp3")],
            },
            Case {
                name: "AC-3 audio",
                tier: P1080,
                change: |m, _| m.audio[0].codec = "ac3".into(),
                expect: &[("audio_codec", "ac3")],
            },
            Case {
                name: "4K at 1080p",
                tier: P1080,
                change: |m, _| (m.video[0].width, m.video[0].height) = (3840, 2160),
                expect: &[("video_resolution", "3840x2160")],
            },
            Case {
                name: "4K at 2160p",
                tier: P2160,
                change: |m, _| (m.video[0].width, m.video[0].height) = (3840, 2160),
                expect: &[],
            },
            Case {
                name: "anamorphic SD",
                tier: P1080,
                change: |m, _| {
                    (m.video[0].width, m.video[0].height) = (720, 480);
                    m.video[0].par = (32, 27);
                },
                expect: &[("pixel_aspect_ratio", "32:27")],
            },
            Case {
                name: "2 fps",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().average_frame_rate = Some(2.0),
                expect: &[("video_frame_rate", "2")],
            },
            Case {
                name: "120 fps at 1080p",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().average_frame_rate = Some(120.0),
                expect: &[],
            },
            Case {
                name: "120 fps at 2160p",
                tier: P2160,
                change: |_, i| i.video.as_mut().unwrap().average_frame_rate = Some(120.0),
                expect: &[("video_frame_rate", "120")],
            },
            Case {
                name: "119.88 fps at 2160p",
                tier: P2160,
                change: |_, i| {
                    i.video.as_mut().unwrap().average_frame_rate = Some(120_000.0 / 1001.0)
                },
                expect: &[("video_frame_rate", "119.88")],
            },
            Case {
                name: "unknown frame rate",
                tier: P1080,
                change: |m, i| {
                    m.video[0].frame_rate = (0, 1);
                    i.video.as_mut().unwrap().average_frame_rate = None;
                },
                expect: &[("video_frame_rate", "-1")],
            },
            Case {
                name: "key frames 30 s apart",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().max_keyframe_interval = 30.0,
                expect: &[("video_gop_size", "high")],
            },
            Case {
                name: "key frames 15 s apart at 2160p",
                tier: P2160,
                change: |_, i| i.video.as_mut().unwrap().max_keyframe_interval = 15.0,
                expect: &[("video_gop_size", "high")],
            },
            Case {
                name: "average 12 Mbps",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().average_bitrate = 12e6,
                expect: &[("video_bitrate", "high")],
            },
            Case {
                name: "one GOP at 20 Mbps",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().max_gop_bitrate = 20e6,
                expect: &[("video_bitrate", "high")],
            },
            Case {
                name: "12 Mbps at 2160p",
                tier: P2160,
                change: |_, i| i.video.as_mut().unwrap().average_bitrate = 12e6,
                expect: &[],
            },
            Case {
                name: "open GOP",
                tier: P1080,
                change: |_, i| i.video.as_mut().unwrap().open_gop = true,
                expect: &[("unexpected_media_file_parameters", "non-standard")],
            },
            Case {
                name: "interlaced",
                tier: P1080,
                change: |m, _| m.video[0].interlaced = true,
                expect: &[("unexpected_media_file_parameters", "non-standard")],
            },
            Case {
                name: "video edit list with two entries",
                tier: P1080,
                change: |_, i| i.edits.video = vec![edit(0), edit(3000)],
                expect: &[("video_edit_list", "non-standard")],
            },
            Case {
                name: "audio edit list with two entries",
                tier: P1080,
                change: |_, i| i.edits.audio = vec![edit(1024), edit(9000)],
                expect: &[("audio_edit_list", "non-standard")],
            },
            Case {
                name: "one priming offset is simple",
                tier: P1080,
                change: |_, i| i.edits.audio = vec![edit(1024)],
                expect: &[],
            },
            Case {
                name: "video without audio",
                tier: P1080,
                change: |m, _| m.audio.clear(),
                expect: &[],
            },
            Case {
                name: "audio-only MP3",
                tier: P1080,
                change: |m, i| {
                    m.video.clear();
                    i.video = None;
                    m.audio[0].codec = "mp3".into();
                },
                expect: &[("audio_codec", "mp3")],
            },
            Case {
                name: "unmeasured video",
                tier: P1080,
                change: |_, i| i.video = None,
                expect: &[("unexpected_media_file_parameters", "non-standard")],
            },
        ];
        for case in cases {
            let mut info = MediaInfo {
                container: Some("video/quicktime".into()),
                duration: Some(60.0),
                video: vec![video("h264", 1920, 1080)],
                audio: vec![audio("aac")],
            };
            let mut inspection = Inspection {
                video: Some(measured()),
                edits: EditLists::default(),
            };
            (case.change)(&mut info, &mut inspection);
            let got = reasons(&info, Some(&inspection), case.tier);
            let want: Reasons = case
                .expect
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn pixel_format_names() {
        assert_eq!(
            pixel_format(Some("4:2:0"), Some(8), None).as_deref(),
            Some("yuv420p")
        );
        assert_eq!(
            pixel_format(None, None, Some("high-10")).as_deref(),
            Some("yuv420p10le")
        );
        assert_eq!(
            pixel_format(None, None, Some("high-4:4:4")).as_deref(),
            Some("yuv444p")
        );
        assert_eq!(
            pixel_format(Some("4:0:0"), Some(8), None).as_deref(),
            Some("gray")
        );
        assert_eq!(pixel_format(None, None, None), None);
    }

    #[test]
    fn frame_rate_format() {
        assert_eq!(format_frame_rate(2.0), "2");
        assert_eq!(format_frame_rate(30_000.0 / 1001.0), "29.97");
        assert_eq!(format_frame_rate(120.0), "120");
        assert_eq!(format_frame_rate(12.5), "12.5");
    }
}
