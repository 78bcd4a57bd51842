//! The spool disk fills up during a transcode (a small tmpfs mounted on the
//! spool folder; the test runs as root, as CI does): the job fails with a
//! clear error and goes back to the queue, the source stays, the daemon stays
//! up, and once there is room again the asset becomes ready.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "this test needs root: mount -t tmpfs failed"
        );
        Tmpfs(at.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_disk_is_a_clear_retried_error_and_success_once_space_returns() {
    let env = TestEnv::new(&[]);
    let spool = Tmpfs::mount(&env.data("spool"), "8m");
    // A 1.4 MB source (noise at 3 Mbit/s) passes the free-space check on an
    // 8 MB disk, but its encodes do not fit: about 3 MB each for master,
    // highest and 1080p, and mp4mux's fast start writes each one twice.
    let src = env.dir.path().join("noise.mkv");
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1920x1080:rate=30:duration=4,noise=alls=40:allf=t")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "3M",
            "-maxrate",
            "3M",
        ])
        .args(["-bufsize", "3M", "-pix_fmt", "yuv420p"])
        .arg(&src)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let watch = env.watch_dir();
    std::fs::write(
        watch.join("noise.mkv.json"),
        r#"{"static_renditions": [{"resolution": "highest"}, {"resolution": "1080p"}]}"#,
    )
    .unwrap();
    std::fs::copy(&src, watch.join("noise.mkv")).unwrap();
    let mut daemon = env.start_daemon();

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !env.logs().contains("Job put back in the queue") {
        assert!(
            std::time::Instant::now() < deadline,
            "no requeue: {}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = env.logs();
    assert!(
        logs.contains("No space left") || logs.contains("Not enough free space"),
        "the error names the full disk: {logs}"
    );
    let assets = env.assets();
    assert_eq!(
        assets[0]["status"], "preparing",
        "not errored, not ready: {:#?}",
        assets[0]
    );
    assert!(watch.join("noise.mkv").exists(), "the source is kept");
    assert!(daemon.is_running(), "the daemon is alive");

    // Room again: the retry (after its backoff) succeeds.
    spool.resize("256m");
    let assets = env.wait_for_assets(
        Duration::from_secs(120),
        "the asset after space returns",
        |a| all_finished(a, 1),
    );
    assert_eq!(assets[0]["status"], "ready", "{:#?}", assets[0]);
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        1920,
        1080,
        false,
        4.0,
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}
