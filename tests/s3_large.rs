//! A master of more than 2 GB goes to S3 in bounded memory: the daemon's
//! peak resident set (`VmHWM`) stays under 300 MiB for the whole job, which
//! reads, remuxes and uploads the file part by part.
//!
//! The source is a standard H.264 stream (so the master is a remux the size
//! of the source): 20 s of noisy 720p at 4.5 Mb/s, repeated with ffmpeg's
//! stream copy until it passes 2 GB.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::{file_url, wait_for_asset};
use common::*;
use serde_json::json;

const MASTER_AT_LEAST: u64 = 2_000_000_000;
const PEAK_RSS_LIMIT_KIB: u64 = 300 * 1024;

/// Writes a standard H.264 MP4 of just over `MASTER_AT_LEAST` bytes.
fn make_large_source(dir: &Path) -> std::path::PathBuf {
    let segment = dir.join("segment.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30,noise=alls=40:allf=t",
        "-t",
        "20",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-b:v",
        "4500k",
        "-maxrate",
        "4500k",
        "-bufsize",
        "4500k",
        segment.to_str().unwrap(),
    ]);
    let size = std::fs::metadata(&segment).unwrap().len();
    let repeats = (MASTER_AT_LEAST + 64 * 1024 * 1024).div_ceil(size);
    let source = dir.join("large.mp4");
    ffmpeg(&[
        "-stream_loop",
        &(repeats - 1).to_string(),
        "-i",
        segment.to_str().unwrap(),
        "-c",
        "copy",
        source.to_str().unwrap(),
    ]);
    std::fs::remove_file(&segment).unwrap();
    source
}

/// A process's peak resident set, from `/proc/PID/status`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM is reported")
}

#[test]
fn a_master_over_2_gb_is_uploaded_to_s3_in_bounded_memory() {
    let env = TestEnv::with_store(StoreKind::S3, &[]);
    let import = env.data("import");
    std::fs::create_dir_all(&import).unwrap();
    let source = make_large_source(&import);
    let source_bytes = std::fs::metadata(&source).unwrap().len();

    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({"inputs": [{"url": file_url(&source)}]})),
        &[],
    );
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let id = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let asset = wait_for_asset(&api, &id, Duration::from_secs(1500), "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(asset["status"], "ready", "{asset}");
    let peak = peak_rss_kib(daemon.pid());

    let master = env.master_path(&id);
    let master_bytes = std::fs::metadata(&master).unwrap().len();
    eprintln!(
        "source {source_bytes} bytes, master {master_bytes} bytes, daemon peak RSS {} MiB",
        peak / 1024
    );
    assert!(
        master_bytes >= MASTER_AT_LEAST,
        "master {master_bytes} bytes"
    );
    assert!(
        asset["non_standard_input_reasons"].is_null(),
        "a remux, so the master is the source's size: {asset}"
    );
    let duration = duration_of(&ffprobe(&master));
    assert!(
        (duration - duration_of(&ffprobe(&source))).abs() < 0.5,
        "{duration}"
    );
    assert!(env.s3.as_ref().unwrap().incomplete_uploads().is_empty());
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "the daemon's peak RSS was {} MiB",
        peak / 1024
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}
