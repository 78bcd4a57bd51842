//! How files arrive in the watch folder: a large file copied in slowly, a file
//! written, closed, reopened and appended, and a file renamed in from a
//! `.part` name. Each is taken once, complete.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Writes `data` to `to` in `chunk`-byte pieces, one every `every`, through
/// one open handle (as `cp` or a network copy would).
fn write_slowly(data: &[u8], to: &Path, chunk: usize, every: Duration) {
    let mut file = std::fs::File::create(to).unwrap();
    for piece in data.chunks(chunk) {
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        std::thread::sleep(every);
    }
}

#[test]
fn a_200_mb_file_copied_at_5_mb_per_second_is_taken_once_complete() {
    let env = TestEnv::new(&[]);
    // About 200 MB of real video: lossless H.264 of moving noise.
    let src = env.dir.path().join("big.mp4");
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=12,noise=alls=60:allf=t")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&src)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let data = std::fs::read(&src).unwrap();
    assert!(
        data.len() > 150_000_000,
        "the source is big: {} bytes",
        data.len()
    );

    let _daemon = env.start_daemon();
    write_slowly(
        &data,
        &env.watch_dir().join("big.mp4"),
        5_000_000,
        Duration::from_secs(1),
    );
    let assets = env.wait_for_assets(TIMEOUT, "the big file", |a| all_finished(a, 1));
    std::thread::sleep(Duration::from_secs(3));
    let assets_after = env.assets();
    assert_eq!(assets_after.len(), 1, "taken once: {assets_after:#?}");
    assert_eq!(assets[0]["status"], "ready", "{:#?}", assets[0]);
    let expected = duration_of(&ffprobe(&src));
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        640,
        360,
        false,
        expected,
    );
}

#[test]
fn reopened_and_appended_or_renamed_from_part_each_taken_once_complete() {
    let env = TestEnv::new(&[]);
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let data = std::fs::read(&clip).unwrap();
    let watch = env.watch_dir();
    let _daemon = env.start_daemon();

    // Written, closed, reopened (within the settle time) and appended.
    let appended = watch.join("appended.mp4");
    let half = data.len() / 2;
    std::fs::write(&appended, &data[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&appended)
        .unwrap();
    file.write_all(&data[half..]).unwrap();
    drop(file);

    // Copied under a partial name, slowly, then renamed into place.
    let part = watch.join("renamed.mp4.part");
    write_slowly(&data, &part, data.len() / 4 + 1, Duration::from_millis(700));
    std::fs::rename(&part, watch.join("renamed.mp4")).unwrap();

    let assets = env.wait_for_assets(TIMEOUT, "two assets", |a| all_finished(a, 2));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.assets().len(), 2, "each taken once");
    let expected = duration_of(&ffprobe(&clip));
    for asset in &assets {
        assert_eq!(asset["status"], "ready", "{asset:#?}");
        assert_master(
            &env.master_path(asset["id"].as_str().unwrap()),
            640,
            360,
            true,
            expected,
        );
    }
}
