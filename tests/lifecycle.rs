//! Stopping and reloading the real daemon: SIGTERM lets running jobs finish
//! within `shutdown_grace_seconds`, else stops their pipelines and puts them
//! back in the queue for the next start; SIGHUP applies new defaults and
//! profiles and names the settings that need a restart.

mod common;

use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Starts a premium 1080p encode with `grace` seconds of shutdown grace,
/// sends SIGTERM once it is under way, and waits for a clean exit.
fn sigterm_mid_transcode(grace: &str) -> (TestEnv, std::path::PathBuf) {
    let grace = format!("shutdown_grace_seconds = {grace}");
    let env = TestEnv::new(&[
        ("video_quality = \"plus\"", "video_quality = \"premium\""),
        ("shutdown_grace_seconds = 30", &grace),
    ]);
    let src = long_clip(&env);
    let mut daemon = env.start_daemon();
    std::fs::copy(&src, env.watch_dir().join("long.mkv")).unwrap();
    env.wait_until_transcoding(TIMEOUT);
    daemon.signal("TERM");
    let status = daemon.wait();
    assert!(status.success(), "exit status {status:?}");
    (env, src)
}

#[test]
fn sigterm_lets_a_running_job_finish_within_the_grace_period() {
    let (env, _) = sigterm_mid_transcode("600");
    let assets = env.assets();
    assert_eq!(assets.len(), 1);
    assert_eq!(
        assets[0]["status"], "ready",
        "finished before exit: {:#?}",
        assets[0]
    );
    assert!(env.logs().contains("running jobs may finish"));
}

#[test]
fn sigterm_past_the_grace_period_requeues_the_job_and_it_finishes_after_restart() {
    let (env, src) = sigterm_mid_transcode("0.5");
    let assets = env.assets();
    assert_eq!(
        assets[0]["status"], "preparing",
        "stopped mid-job: {:#?}",
        assets[0]
    );
    let logs = env.logs();
    assert!(logs.contains("Grace period over"), "{logs}");
    assert!(logs.contains("Job put back in the queue"), "{logs}");

    let _daemon = env.start_daemon();
    let assets = env.wait_for_assets(TIMEOUT, "the asset after restart", |a| all_finished(a, 1));
    assert_eq!(assets[0]["status"], "ready", "{:#?}", assets[0]);
    let expected = duration_of(&ffprobe(&src));
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        1920,
        1080,
        true,
        expected,
    );
}

#[test]
fn sighup_reloads_defaults_and_profiles_and_names_what_needs_a_restart() {
    let env = TestEnv::new(&[]);
    let watch = env.watch_dir();
    let daemon = env.start_daemon();
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 1));
    std::fs::copy(&clip, watch.join("before.mp4")).unwrap();
    env.wait_for_assets(TIMEOUT, "the first asset", |a| all_finished(a, 1));

    // New defaults, a new profile, and a setting that needs a restart.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let changed = config
        .replace("video_quality = \"plus\"", "video_quality = \"basic\"")
        .replace("concurrency = 1", "concurrency = 2")
        + "\n[profiles.small]\nstatic_renditions = [{ resolution = \"270p\" }]\n";
    std::fs::write(&env.config, changed).unwrap();
    daemon.signal("HUP");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !env
        .logs()
        .contains("SIGHUP: defaults, profiles and log level reloaded")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload: {}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = env.logs();
    assert!(
        logs.contains("only take effect after a restart") && logs.contains("transcode.concurrency"),
        "{logs}"
    );

    std::fs::create_dir_all(watch.join("small")).unwrap();
    std::fs::copy(&clip, watch.join("small/after.mp4")).unwrap();
    let assets = env.wait_for_assets(TIMEOUT, "the second asset", |a| all_finished(a, 2));
    let after = assets
        .iter()
        .find(|a| a["video_quality"] == "basic")
        .unwrap_or_else(|| panic!("the new default applies to new files: {assets:#?}"));
    let files = after["static_renditions"]["files"]
        .as_array()
        .expect("the new profile applies");
    assert_eq!(files[0]["name"], "270p.mp4");
    assert_eq!(files[0]["status"], "ready");
    let before = assets.iter().find(|a| a["id"] != after["id"]).unwrap();
    assert_eq!(
        before["video_quality"], "plus",
        "an existing asset keeps its settings"
    );
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let env = TestEnv::new(&[]);
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut daemon = env.start_daemon_with_env(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        // 1 s: reeld pings every 0.5 s while its workers show life.
        ("WATCHDOG_USEC", "1000000"),
    ]);
    let mut heard = Vec::new();
    let receive_until = |want: &str, heard: &mut Vec<String>| {
        let mut buf = [0u8; 256];
        while !heard.iter().any(|m| m.contains(want)) {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want}: {heard:?} {e}"));
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    receive_until("READY=1", &mut heard);
    receive_until("WATCHDOG=1", &mut heard);
    daemon.signal("HUP");
    receive_until("RELOADING=1", &mut heard);
    daemon.signal("TERM");
    receive_until("STOPPING=1", &mut heard);
    assert!(daemon.wait().success());
    let watchdog_pings = heard.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(watchdog_pings >= 1, "{heard:?}");
}
