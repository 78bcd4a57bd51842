//! Real-world inputs: every kind of source users drop in, made on the fly
//! with ffmpeg (an independent encoder), ingested by the real `reeld ingest`,
//! and checked by probing the stored outputs with ffprobe. Each ends `ready`
//! with a master that probes right, or `errored` with a message that names
//! the cause. `non_standard_input_reasons` is checked key for key.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// Runs `ffmpeg ARGS NAME` (ARGS split on white space) writing `name` in the
/// test folder.
fn ffmpeg(env: &TestEnv, name: &str, args: &str) -> PathBuf {
    let out = env.dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error"])
        .args(args.split_whitespace())
        .arg(&out)
        .status()
        .expect("ffmpeg runs (scripts/install-deps installs it)");
    assert!(status.success(), "ffmpeg failed making {name}: {args:?}");
    out
}

/// A moving test picture of `size` at `rate` for `seconds`.
fn picture(size: &str, rate: &str, seconds: &str) -> String {
    format!("testsrc2=size={size}:rate={rate}:duration={seconds}")
}

/// A stereo tone for `seconds`.
fn tone(seconds: &str) -> String {
    format!("sine=frequency=440:sample_rate=48000:duration={seconds}")
}

/// Ingests `path`; asserts it ended ready and returns the asset.
fn ready(env: &TestEnv, path: &Path, settings: Option<&str>) -> Value {
    let (ok, asset, err) = env.ingest(path, settings);
    assert!(ok, "{} was not made ready: {err}", path.display());
    assert_eq!(asset["status"], "ready", "{asset}");
    asset
}

/// `ready`, with the run's log at info level (ANSI colours removed).
fn ready_logged(env: &TestEnv, path: &Path, settings: Option<&str>) -> (Value, String) {
    let (ok, asset, log) = env.ingest_with_env(path, settings, &[("RUST_LOG", "reeld=info")]);
    assert!(ok, "{} was not made ready: {log}", path.display());
    assert_eq!(asset["status"], "ready", "{asset}");
    (asset, common::http::strip_ansi(&log))
}

/// What the log says when the transcode measures the video in place of a
/// parse pass beforehand (a source the probe proves non-standard).
const MEASURED_DURING_TRANSCODE: &str = "its video is measured during the transcode";

/// What is left in the spool folder (files or folders).
fn spool_entries(env: &TestEnv) -> Vec<PathBuf> {
    std::fs::read_dir(env.data("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Asserts the asset's `non_standard_input_reasons` are exactly `expected`.
fn assert_reasons(asset: &Value, expected: &[(&str, &str)]) {
    let got = &asset["non_standard_input_reasons"];
    if expected.is_empty() {
        assert!(got.is_null(), "a standard input has no reasons: {got}");
        return;
    }
    let want: serde_json::Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    assert_eq!(got, &Value::Object(want), "non_standard_input_reasons");
}

fn master(env: &TestEnv, asset: &Value) -> PathBuf {
    env.master_path(asset["id"].as_str().expect("asset id"))
}

/// Frames per second of the master's video as ffprobe averages it.
fn average_fps(path: &Path) -> f64 {
    let p = ffprobe(path);
    let v = stream(&p, "video").expect("video");
    let rate = v["avg_frame_rate"].as_str().expect("avg_frame_rate");
    let (n, d) = rate.split_once('/').expect("n/d");
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

/// Decodes the whole file with ffmpeg: it must decode without error.
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{} does not decode cleanly: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A transcoded source: the master is H.264 High 8-bit 4:2:0 + AAC-LC at
/// `size`, `moov` first, as long as the source, and decodes cleanly.
fn assert_transcoded(env: &TestEnv, src: &Path, asset: &Value, size: (u32, u32), audio: bool) {
    let path = master(env, asset);
    assert_master(&path, size.0, size.1, audio, duration_of(&ffprobe(src)));
    decodes_cleanly(&path);
}

#[test]
fn a_standard_h264_aac_source_is_remuxed_not_reencoded() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "standard.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -ac 2 -movflags +faststart",
            picture("1280x720", "30", "3"),
            tone("3")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[]);
    let out = master(&env, &asset);
    assert_faststart(&out);
    // Not re-encoded: every decoded picture is bit-identical to the source's
    // (an encode never is). The parser only repeats the parameter sets in
    // the first key frame.
    let pictures_md5 = |path: &Path| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v", "-f", "md5", "-"])
            .output()
            .expect("ffmpeg runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        pictures_md5(&src),
        pictures_md5(&out),
        "the master's pictures are the source's"
    );
    let d = duration_of(&ffprobe(&out));
    assert!((d - 3.0).abs() < 0.1, "duration {d}");
}

#[test]
fn a_standard_source_with_renditions_gets_them_from_one_decode_of_the_master() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "standard-ladder.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -ac 2",
            picture("1280x720", "30", "2"),
            tone("2")
        ),
    );
    let settings = r#"{"static_renditions":[{"resolution":"highest"},{"resolution":"480p"},{"resolution":"audio-only"}]}"#;
    let asset = ready(&env, &src, Some(settings));
    let files = asset["static_renditions"]["files"]
        .as_array()
        .expect("files");
    assert_eq!(asset["static_renditions"]["status"], "ready", "{asset}");
    for (name, size) in [
        ("highest.mp4", Some((1280, 720))),
        ("480p.mp4", Some((854, 480))),
        ("audio.m4a", None),
    ] {
        let file = files.iter().find(|f| f["name"] == name).expect(name);
        assert_eq!(file["status"], "ready", "{file}");
        let path = master(&env, &asset).with_file_name(name);
        let p = ffprobe(&path);
        match size {
            Some((w, h)) => {
                let v = stream(&p, "video").expect("video");
                assert_eq!(
                    (v["width"].as_u64(), v["height"].as_u64()),
                    (Some(w), Some(h))
                );
            }
            None => assert!(stream(&p, "video").is_none()),
        }
        assert_faststart(&path);
    }
}

#[test]
fn hevc() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "hevc.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v libx265 -preset ultrafast -x265-params log-level=error -pix_fmt yuv420p -tag:v hvc1 -c:a aac",
            picture("640x360", "30", "2"),
            tone("2")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[]);
    assert_transcoded(&env, &src, &asset, (640, 360), true);
}

#[test]
fn vp9_with_opus_in_webm() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "vp9.webm",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 500k -c:a libopus",
            picture("640x360", "30", "2"),
            tone("2")
        ),
    );
    let (asset, log) = ready_logged(&env, &src, None);
    assert_reasons(&asset, &[("audio_codec", "opus"), ("video_codec", "vp9")]);
    assert_transcoded(&env, &src, &asset, (640, 360), true);
    assert!(log.contains(MEASURED_DURING_TRANSCODE), "{log}");
}

#[test]
fn a_variable_rate_webm_that_declares_a_fixed_rate_is_encoded_again_steady() {
    let env = TestEnv::new(&[]);
    // The container says 30 fps; 3 of every 10 frames are missing.
    let src = ffmpeg(
        &env,
        "vfr.webm",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -vf select='not(between(mod(n,10),3,5))' -fps_mode vfr -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -c:a libopus",
            picture("640x360", "30", "4"),
            tone("4")
        ),
    );
    let (asset, log) = ready_logged(&env, &src, None);
    assert_reasons(&asset, &[("audio_codec", "opus"), ("video_codec", "vp9")]);
    assert!(log.contains(MEASURED_DURING_TRANSCODE), "{log}");
    assert!(log.contains("encoding again at a steady rate"), "{log}");
    assert_transcoded(&env, &src, &asset, (640, 360), true);
    let p = ffprobe(&master(&env, &asset));
    let v = stream(&p, "video").unwrap();
    assert_eq!(
        v["r_frame_rate"], v["avg_frame_rate"],
        "a steady frame rate: {v}"
    );
    assert_eq!(v["r_frame_rate"], "30/1", "{v}");
}

#[test]
fn av1() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "av1.mp4",
        &format!(
            "-f lavfi -i {} -c:v libaom-av1 -cpu-used 8 -row-mt 1 -b:v 300k",
            picture("320x240", "30", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("video_codec", "av1")]);
    assert_transcoded(&env, &src, &asset, (320, 240), false);
}

#[test]
fn prores_with_pcm_in_mov() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "prores.mov",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v prores_ks -profile:v 0 -c:a pcm_s16le",
            picture("640x360", "25", "1"),
            tone("1")
        ),
    );
    let asset = ready(&env, &src, None);
    let reasons = &asset["non_standard_input_reasons"];
    assert_eq!(reasons["video_codec"], "prores", "{reasons}");
    assert_eq!(
        reasons["unsupported_pixel_format"], "yuv422p10le",
        "{reasons}"
    );
    assert!(
        reasons["audio_codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("pcm")),
        "{reasons}"
    );
    assert_transcoded(&env, &src, &asset, (640, 360), true);
}

#[test]
fn mpeg2_in_mpeg_ts() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "mpeg2.ts",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v mpeg2video -b:v 4M -c:a mp2 -f mpegts",
            picture("720x576", "25", "2"),
            tone("2")
        ),
    );
    let asset = ready(&env, &src, None);
    let reasons = &asset["non_standard_input_reasons"];
    assert_eq!(reasons["video_codec"], "mpeg2video", "{reasons}");
    assert_eq!(reasons["audio_codec"], "mp2", "{reasons}");
    assert_transcoded(&env, &src, &asset, (720, 576), true);
}

#[test]
fn mjpeg_in_avi() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "mjpeg.avi",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v mjpeg -q:v 5 -pix_fmt yuvj420p -c:a pcm_s16le",
            picture("640x480", "30", "2"),
            tone("2")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_eq!(
        asset["non_standard_input_reasons"]["video_codec"], "mjpeg",
        "{asset}"
    );
    assert_transcoded(&env, &src, &asset, (640, 480), true);
}

#[test]
fn interlaced_is_deinterlaced() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "interlaced.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -vf tinterlace=mode=interleave_top,setfield=tff -c:v libx264 -preset veryfast -flags +ildct+ilme -x264-params tff=1 -pix_fmt yuv420p -c:a aac",
            picture("720x480", "60000/1001", "2"),
            tone("2")
        ),
    );
    let p = ffprobe(&src);
    assert_eq!(
        stream(&p, "video").unwrap()["field_order"],
        "tt",
        "the source is interlaced"
    );
    let asset = ready(&env, &src, None);
    assert_eq!(
        asset["non_standard_input_reasons"]["unexpected_media_file_parameters"], "non-standard",
        "{asset}"
    );
    assert_transcoded(&env, &src, &asset, (720, 480), true);
    let out = ffprobe(&master(&env, &asset));
    let order = &stream(&out, "video").unwrap()["field_order"];
    assert!(
        order.is_null() || order == "progressive",
        "the master is progressive: {order}"
    );
}

#[test]
fn anamorphic_sd_gets_square_pixels_at_the_display_aspect_ratio() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "anamorphic.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -vf setsar=32/27 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac",
            picture("720x480", "30", "2"),
            tone("2")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("pixel_aspect_ratio", "32:27")]);
    assert_transcoded(&env, &src, &asset, (854, 480), true);
    let out = ffprobe(&master(&env, &asset));
    let sar = &stream(&out, "video").unwrap()["sample_aspect_ratio"];
    assert!(sar.is_null() || sar == "1:1", "square pixels: {sar}");
}

#[test]
fn odd_dimensions_become_even() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "odd.webm",
        &format!(
            "-f lavfi -i {} -c:v libvpx-vp9 -deadline realtime -cpu-used 8",
            picture("853x479", "30", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    let p = ffprobe(&master(&env, &asset));
    let v = stream(&p, "video").unwrap();
    let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
    assert!(w % 2 == 0 && h % 2 == 0, "even size, got {w}x{h}");
    assert!(
        w.abs_diff(853) <= 1 && h.abs_diff(479) <= 1,
        "853x479 kept, got {w}x{h}"
    );
    assert_transcoded(&env, &src, &asset, (w as u32, h as u32), false);
}

#[test]
fn ten_bit_h264_becomes_eight_bit() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "10bit.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -pix_fmt yuv420p10le",
            picture("640x360", "30", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("unsupported_pixel_format", "yuv420p10le")]);
    assert_transcoded(&env, &src, &asset, (640, 360), false);
}

#[test]
fn h264_444_becomes_420() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "444.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -pix_fmt yuv444p",
            picture("640x360", "30", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("unsupported_pixel_format", "yuv444p")]);
    assert_transcoded(&env, &src, &asset, (640, 360), false);
}

#[test]
fn variable_frame_rate_gives_a_steady_output_in_sync() {
    let env = TestEnv::new(&[]);
    // Drops 3 of every 10 frames and keeps their timestamps: gaps of 4 frames.
    let src = ffmpeg(
        &env,
        "vfr.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -vf select='not(between(mod(n,10),3,5))' -fps_mode vfr -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac",
            picture("640x360", "30", "4"),
            tone("4")
        ),
    );
    let asset = ready(&env, &src, None);
    let out = master(&env, &asset);
    assert_transcoded(&env, &src, &asset, (640, 360), true);
    let p = ffprobe(&out);
    let v = stream(&p, "video").unwrap();
    assert_eq!(
        v["r_frame_rate"], v["avg_frame_rate"],
        "a steady frame rate: {v}"
    );
    let a = stream(&p, "audio").unwrap();
    let duration = |s: &Value| s["duration"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        (duration(v) - duration(a)).abs() < 0.1,
        "video and audio end together: {v} {a}"
    );
}

#[test]
fn two_fps() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "2fps.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -pix_fmt yuv420p",
            picture("640x360", "2", "5")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("video_frame_rate", "2")]);
    assert_transcoded(&env, &src, &asset, (640, 360), false);
    assert!((average_fps(&master(&env, &asset)) - 2.0).abs() < 0.01);
}

#[test]
fn a_120_fps_source_is_stored_at_60() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "120fps.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -pix_fmt yuv420p",
            picture("640x360", "120", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[]);
    assert_eq!(asset["max_stored_frame_rate"], 60.0);
    assert_transcoded(&env, &src, &asset, (640, 360), false);
    assert!((average_fps(&master(&env, &asset)) - 60.0).abs() < 0.5);
}

#[test]
fn four_k_60() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "4k60.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i {} -c:v libx264 -preset ultrafast -crf 30 -maxrate 4M -bufsize 4M -pix_fmt yuv420p -c:a aac",
            picture("3840x2160", "60", "1"),
            tone("1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("video_resolution", "3840x2160")]);
    assert_transcoded(&env, &src, &asset, (1920, 1080), true);
    assert!((average_fps(&master(&env, &asset)) - 60.0).abs() < 0.5);
}

#[test]
fn several_audio_tracks_keep_the_first() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "two-audio.mp4",
        &format!(
            "-f lavfi -i {} -f lavfi -i sine=frequency=440:sample_rate=48000:duration=2 -f lavfi -i sine=frequency=1000:sample_rate=44100:duration=2 -map 0:v -map 1:a -map 2:a -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac",
            picture("640x360", "30", "2")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_transcoded(&env, &src, &asset, (640, 360), true);
    let p = ffprobe(&master(&env, &asset));
    let audio: Vec<&Value> = p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(audio.len(), 1, "one audio track in the master");
}

/// An audio-only source: ready as `audio-only` with AAC-LC stereo in MP4,
/// `max_channels` the source's.
fn audio_only(name: &str, codec_args: &str, channels: u64, codec: &str) {
    let env = TestEnv::new(&[]);
    let layout = if channels == 6 { "5.1" } else { "stereo" };
    let args = format!(
        "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=2,aformat=channel_layouts={layout} {codec_args}"
    );
    let src = ffmpeg(&env, name, &args);
    let asset = ready(&env, &src, None);
    assert_eq!(asset["resolution_tier"], "audio-only", "{asset}");
    assert_eq!(asset["tracks"][0]["type"], "audio");
    assert_eq!(asset["tracks"][0]["max_channels"], channels);
    assert_reasons(&asset, &[("audio_codec", codec)]);
    let out = master(&env, &asset);
    let p = ffprobe(&out);
    assert!(stream(&p, "video").is_none());
    let a = stream(&p, "audio").expect("audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["profile"], "LC");
    assert_eq!(a["channels"], 2);
    assert!((duration_of(&p) - duration_of(&ffprobe(&src))).abs() < 0.1);
    assert_faststart(&out);
}

#[test]
fn audio_only_mp3() {
    audio_only("tone.mp3", "-c:a libmp3lame -b:a 128k", 2, "mp3");
}

#[test]
fn audio_only_ac3_5_1() {
    audio_only("tone.ac3", "-c:a ac3 -b:a 384k", 6, "ac3");
}

#[test]
fn audio_only_flac() {
    audio_only("tone.flac", "-c:a flac", 2, "flac");
}

#[test]
fn audio_only_opus() {
    audio_only("tone.opus", "-c:a libopus", 2, "opus");
}

#[test]
fn video_with_no_audio() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "silent.mkv",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -pix_fmt yuv420p",
            picture("640x360", "30", "2")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_eq!(asset["tracks"].as_array().unwrap().len(), 1, "{asset}");
    assert_transcoded(&env, &src, &asset, (640, 360), false);
}

#[test]
fn a_very_long_gop() {
    let env = TestEnv::new(&[]);
    // One key frame in 22 s.
    let src = ffmpeg(
        &env,
        "long-gop.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -g 1000 -keyint_min 1000 -sc_threshold 0 -pix_fmt yuv420p",
            picture("320x180", "15", "22")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("video_gop_size", "high")]);
    assert_transcoded(&env, &src, &asset, (320, 180), false);
    // The master is stored with 2 s GOPs.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(master(&env, &asset))
        .output()
        .expect("ffprobe runs");
    let keys = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(
        keys >= 10,
        "the master has a key frame every 2 s, found {keys}"
    );
}

#[test]
fn a_very_high_bitrate() {
    let env = TestEnv::new(&[]);
    // Lossless noise: far above 16 Mbit/s in every GOP.
    let src = ffmpeg(
        &env,
        "high-bitrate.mp4",
        &format!(
            "-f lavfi -i {} -vf noise=alls=60:allf=t -c:v libx264 -preset ultrafast -qp 0 -pix_fmt yuv420p",
            picture("1280x720", "30", "1")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(&asset, &[("video_bitrate", "high")]);
    assert_transcoded(&env, &src, &asset, (1280, 720), false);
}

#[test]
fn an_open_gop() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "open-gop.mp4",
        &format!(
            "-f lavfi -i {} -c:v libx264 -preset veryfast -x264-params open-gop=1:keyint=30:min-keyint=30 -bf 3 -pix_fmt yuv420p",
            picture("640x360", "30", "4")
        ),
    );
    let asset = ready(&env, &src, None);
    assert_reasons(
        &asset,
        &[("unexpected_media_file_parameters", "non-standard")],
    );
    assert_transcoded(&env, &src, &asset, (640, 360), false);
}

#[test]
fn a_still_image_is_errored_as_invalid_input() {
    let env = TestEnv::new(&[]);
    let src = ffmpeg(
        &env,
        "still.jpg",
        &format!("-f lavfi -i {} -frames:v 1", picture("640x360", "1", "1")),
    );
    let (ok, asset, err) = env.ingest(&src, None);
    assert!(!ok);
    assert_eq!(asset["status"], "errored", "{asset}");
    assert_eq!(asset["errors"]["type"], "invalid_input");
    let message = asset["errors"]["messages"][0].as_str().unwrap_or_default();
    assert!(
        message.contains("still image"),
        "message names the cause: {message} / {err}"
    );
    let leftovers = spool_entries(&env);
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

#[test]
fn a_pipeline_that_stops_making_progress_is_ended_by_the_watchdog() {
    // An encoder fragment that holds every frame for 8 s: the pipeline makes
    // no progress for longer than the 2 s stall limit.
    let env = TestEnv::new(&[("stall_timeout_seconds = 120", "stall_timeout_seconds = 2")]);
    env.edit_fragment("h264-plus.gst", |text| {
        text.replace("reeldx264enc", "identity sleep-time=8000000 ! reeldx264enc")
    });

    // Matroska: encoded, not remuxed.
    let mp4 = env.dir.path().join("stalls.mp4");
    make_clip(&mp4, ClipSpec::av(640, 360, 2));
    let src = to_matroska(&mp4);
    let (ok, asset, err) = env.ingest(&src, None);
    assert!(!ok, "a stalled pipeline is not a success");
    assert_eq!(
        asset["status"], "errored",
        "never left preparing: {asset} {err}"
    );
    let message = asset["errors"]["messages"][0].as_str().unwrap_or_default();
    assert!(
        message.contains("no progress for 2 s"),
        "the message names the stall: {message}"
    );
    let leftovers = spool_entries(&env);
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}
