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

#[test]
fn a_writer_the_daemon_cannot_see_that_pauses_for_three_settle_times_is_waited_for() {
    let Some(user) = unprivileged_user() else {
        eprintln!("skipped: switching to an unprivileged user needs root");
        return;
    };
    let env = TestEnv::new(&[]);
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 4));
    let data = std::fs::read(&clip).unwrap();
    let watch = env.watch_dir();
    let daemon = env.start_daemon_as(user);
    wait_for(TIMEOUT, "the daemon to watch the folder", || {
        std::fs::read_to_string(&daemon.log).is_ok_and(|l| l.contains("Watching for new files."))
    });
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("Files other users' processes hold open cannot be seen"),
        "the start-up log says what reeld relies on: {log}"
    );

    // This process (root) writes half, stalls three settle times with the
    // file open, then writes the rest: the daemon's user cannot see the
    // open descriptor in /proc, only the file's events.
    let mut file = std::fs::File::create(watch.join("network-copy.mp4")).unwrap();
    file.write_all(&data[..data.len() / 2]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    file.write_all(&data[data.len() / 2..]).unwrap();
    drop(file);

    let assets = env.wait_for_assets(TIMEOUT, "the copied file", |a| all_finished(a, 1));
    assert_eq!(assets.len(), 1, "{assets:#?}");
    assert_eq!(
        assets[0]["status"],
        "ready",
        "{:#?}\n{}",
        assets[0],
        env.logs()
    );
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        640,
        360,
        true,
        duration_of(&ffprobe(&clip)),
    );
}

#[test]
fn a_half_written_sidecar_is_read_only_once_complete() {
    let env = TestEnv::new(&[]);
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let watch = env.watch_dir();
    let _daemon = env.start_daemon();

    // The sidecar is opened first and half written; the media arrives
    // complete; the sidecar is finished three settle times later.
    let sidecar = r#"{"passthrough": "from-the-sidecar", "static_renditions": [{"resolution": "audio-only"}]}"#;
    let (head, tail) = sidecar.split_at(sidecar.len() / 2);
    let mut json = std::fs::File::create(watch.join("clip.mp4.json")).unwrap();
    json.write_all(head.as_bytes()).unwrap();
    json.flush().unwrap();
    std::fs::copy(&clip, watch.join(".clip.mp4.copying")).unwrap();
    std::fs::rename(watch.join(".clip.mp4.copying"), watch.join("clip.mp4")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    json.write_all(tail.as_bytes()).unwrap();
    drop(json);

    let assets = env.wait_for_assets(TIMEOUT, "the clip", |a| all_finished(a, 1));
    assert_eq!(
        assets[0]["status"],
        "ready",
        "{:#?}\n{}",
        assets[0],
        env.logs()
    );
    assert_eq!(
        assets[0]["passthrough"], "from-the-sidecar",
        "{:#?}",
        assets[0]
    );
    let files = assets[0]["static_renditions"]["files"].as_array().unwrap();
    assert!(
        files.iter().any(|f| f["name"] == "audio.m4a"),
        "{:#?}",
        assets[0]
    );
}

#[test]
fn a_source_that_errored_half_written_and_then_grew_is_taken_again() {
    // A 2 s settle time: errored sources modified within five of them wait
    // in the folder, long enough for the resumed copy below.
    let env = TestEnv::new(&[("settle_seconds = 1", "settle_seconds = 2")]);
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 4));
    let data = std::fs::read(&clip).unwrap();
    let watch = env.watch_dir();
    let _daemon = env.start_daemon();

    // A transfer that stops half way, closed, as an interrupted copy leaves it.
    let path = watch.join("resumed.mp4");
    std::fs::write(&path, &data[..data.len() / 2]).unwrap();
    let first = env.wait_for_assets(TIMEOUT, "the half file to error", |a| {
        a.len() == 1 && a[0]["status"] == "errored"
    });
    // The transfer resumes and completes the same file.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("the errored source is still in the watch folder");
    file.write_all(&data[data.len() / 2..]).unwrap();
    drop(file);

    let assets = env.wait_for_assets(TIMEOUT, "the completed file", |a| {
        a.len() == 2 && a.iter().any(|x| x["status"] == "ready")
    });
    let ready = with_status(&assets, "ready");
    assert_eq!(ready.len(), 1, "{assets:#?}");
    assert_ne!(ready[0]["id"], first[0]["id"], "a new asset");
    assert_master(
        &env.master_path(ready[0]["id"].as_str().unwrap()),
        640,
        360,
        true,
        duration_of(&ffprobe(&clip)),
    );
    // The completed file is not in the failed folder: it is the new asset's.
    assert!(files_below(&env.data("failed")).is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), data);
}
