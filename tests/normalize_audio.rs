//! `normalize_audio: true`: every audio output lands at -24 LUFS ±1 LU
//! (EBU R128 integrated) with true peaks at or below -1 dBTP, measured before
//! and after with an independent meter, ffmpeg's `ebur128` filter.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// (integrated loudness in LUFS, true peak in dBTP) of a file's audio.
fn loudness(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-v", "info", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    let summary = log
        .rsplit("Summary:")
        .next()
        .expect("ebur128 prints a summary");
    let value = |label: &str| -> f64 {
        summary
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in ebur128 summary: {summary}"))
    };
    (value("I:"), value("Peak:"))
}

#[test]
fn normalized_audio_lands_at_minus_24_lufs_with_true_peaks_below_minus_1() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("loud.mp4");
    // A loud tone whose level swells and fades: about -7 LUFS.
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=20")
        .args(["-f", "lavfi", "-i"])
        .arg("aevalsrc=0.8*sin(2*PI*440*t)*(0.6+0.4*sin(2*PI*0.25*t)):s=48000:d=20")
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "192k", "-ac", "2"])
        .arg(&src)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let (before, _) = loudness(&src);
    assert!(before > -15.0, "the source is loud: {before} LUFS");

    let settings = r#"{"normalize_audio": true, "static_renditions": [{"resolution": "audio-only"}, {"resolution": "270p"}]}"#;
    let (ok, asset, err) = env.ingest(&src, Some(settings));
    assert!(ok, "{err}");
    assert_eq!(asset["normalize_audio"], true);
    let master = env.master_path(asset["id"].as_str().unwrap());
    for name in ["master.mp4", "audio.m4a", "270p.mp4"] {
        let path = master.with_file_name(name);
        let (integrated, peak) = loudness(&path);
        assert!(
            (integrated + 24.0).abs() <= 1.0,
            "{name}: {integrated} LUFS, not -24 ±1 (source {before} LUFS)"
        );
        assert!(peak <= -1.0, "{name}: true peak {peak} dBTP above -1");
        assert!((duration_of(&ffprobe(&path)) - 20.0).abs() < 0.1);
    }
}
