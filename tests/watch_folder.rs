//! The daemon, `reeld run`, on a temporary config: files dropped into the
//! watch folder become assets; bad files go to the failed folder; files still
//! being written are not taken; a crash mid-transcode loses nothing and makes
//! nothing twice.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn dropped_1080p_and_2160p_clips_become_ready_and_bad_files_fail_cleanly() {
    let env = TestEnv::new(&[]);
    let clips = tempfile::tempdir().unwrap();
    let hd = clips.path().join("hd.mp4");
    let uhd = clips.path().join("uhd.mp4");
    make_clip(&hd, ClipSpec::av(1920, 1080, 2));
    make_clip(&uhd, ClipSpec::av(3840, 2160, 1));
    let watch = env.watch_dir();
    // One file is there before the daemon starts: start-up takes it too.
    std::fs::copy(&hd, watch.join("early.mp4")).unwrap();
    let _daemon = env.start_daemon();

    std::fs::copy(&uhd, watch.join("uhd.mp4")).unwrap();
    std::fs::create_dir_all(watch.join("sub")).unwrap();
    std::fs::write(watch.join("sub/readme.mp4"), "not a video\n").unwrap();
    // Never taken: partial-download names and dot-files.
    std::fs::copy(&hd, watch.join("copying.mp4.part")).unwrap();
    std::fs::copy(&hd, watch.join(".hidden.mp4")).unwrap();

    let assets = env.wait_for_assets(READY_TIMEOUT, "three finished assets", |a| {
        all_finished(a, 3)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        env.assets().len(),
        3,
        "the .part and dot-file are not taken"
    );

    let ready = with_status(&assets, "ready");
    assert_eq!(ready.len(), 2, "{assets:#?}");
    for asset in ready {
        assert_eq!(asset["resolution_tier"], "1080p");
        let master = env.master_path(asset["id"].as_str().unwrap());
        let expected = duration_of(&ffprobe(if asset["duration"].as_f64().unwrap() > 1.5 {
            &hd
        } else {
            &uhd
        }));
        assert_master(&master, 1920, 1080, true, expected);
    }
    // on_success = keep (the default): sources stay.
    assert!(watch.join("early.mp4").exists() && watch.join("uhd.mp4").exists());

    let errored = with_status(&assets, "errored");
    assert_eq!(errored.len(), 1);
    assert_eq!(errored[0]["errors"]["type"], "invalid_input");
    let failed = env.data("failed/sub/readme.mp4");
    // A recently written errored source is held back a few settle times
    // before it moves (jobs/dispose.rs), so wait for the move itself.
    common::wait_for(
        Duration::from_secs(30),
        "the bad source in the failed folder",
        || failed.exists(),
    );
    assert!(
        failed.exists(),
        "bad source moved to the failed folder, keeping its sub-folder"
    );
    assert!(!watch.join("sub/readme.mp4").exists());
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.data("failed/sub/readme.mp4.error.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["asset_id"], errored[0]["id"]);
    assert_eq!(report["error"]["type"], "invalid_input");
}

#[test]
fn move_on_success_moves_the_source_only_after_the_master_is_stored() {
    let env = TestEnv::new(&[("on_success = \"keep\"", "on_success = \"move\"")]);
    let watch = env.watch_dir();
    let _daemon = env.start_daemon();
    let src = env.dir.path().join("clip.mp4");
    make_clip(&src, ClipSpec::av(1280, 720, 2));
    std::fs::rename(&src, watch.join("clip.mp4")).unwrap();
    let assets = env.wait_for_assets(READY_TIMEOUT, "one ready asset", |a| {
        a.len() == 1 && a[0]["status"] == "ready"
    });
    let master = env.master_path(assets[0]["id"].as_str().unwrap());
    assert!(master.exists());
    // The move follows the database commit; give it a moment.
    for _ in 0..40 {
        if env.data("done/clip.mp4").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(env.data("done/clip.mp4").exists());
    assert!(!watch.join("clip.mp4").exists());

    // Moved back into the watch folder (same file, same inode and mtime): it
    // was one drop, and stays one asset.
    std::fs::rename(env.data("done/clip.mp4"), watch.join("back.mp4")).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(env.assets().len(), 1, "a file moved back is not a new drop");
}

#[test]
fn a_file_written_slowly_is_taken_once_and_complete() {
    let env = TestEnv::new(&[]);
    let watch = env.watch_dir();
    let src = env.dir.path().join("clip.mp4");
    make_clip(&src, ClipSpec::av(1280, 720, 3));
    let bytes = std::fs::read(&src).unwrap();
    let _daemon = env.start_daemon();

    // A writer that keeps the file open and pauses longer than the 1 s settle
    // time between chunks: size and mtime stand still, but it is not done.
    let target = watch.join("slow.mp4");
    let mut f = std::fs::File::create(&target).unwrap();
    let chunk = bytes.len().div_ceil(4);
    for part in bytes.chunks(chunk) {
        f.write_all(part).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1800));
        assert!(
            env.assets().is_empty(),
            "taken while a writer still held it open"
        );
    }
    drop(f);

    let assets = env.wait_for_assets(READY_TIMEOUT, "one finished asset", |a| all_finished(a, 1));
    assert_eq!(assets[0]["status"], "ready", "{assets:#?}");
    let expected = duration_of(&ffprobe(&src));
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        1280,
        720,
        true,
        expected,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.assets().len(), 1);
}

#[test]
fn a_daemon_killed_mid_transcode_finishes_after_restart_with_one_asset() {
    let env = TestEnv::new(&[("video_quality = \"plus\"", "video_quality = \"premium\"")]);
    let watch = env.watch_dir();
    let src = long_clip(&env);
    let mut daemon = env.start_daemon();
    std::fs::copy(&src, watch.join("long.mkv")).unwrap();
    env.wait_until_transcoding(READY_TIMEOUT);
    daemon.kill9();
    let assets = env.assets();
    assert_eq!(
        assets[0]["status"], "preparing",
        "killed before it finished"
    );
    let spool = env.data("spool").join(assets[0]["id"].as_str().unwrap());
    assert!(spool.exists(), "the dead run left a partial output behind");

    let _daemon = env.start_daemon();
    let assets = env.wait_for_assets(READY_TIMEOUT, "the asset to finish after restart", |a| {
        a.iter().any(|x| x["status"] != "preparing")
    });
    std::thread::sleep(Duration::from_secs(3));
    let assets_after = env.assets();
    assert_eq!(
        assets_after.len(),
        1,
        "one file, one asset: {assets_after:#?}"
    );
    assert_eq!(assets[0]["status"], "ready", "{assets:#?}\n{}", env.logs());
    let expected = duration_of(&ffprobe(&src));
    assert_master(
        &env.master_path(assets[0]["id"].as_str().unwrap()),
        1920,
        1080,
        true,
        expected,
    );
    assert!(watch.join("long.mkv").exists(), "source kept");
    assert!(!spool.exists(), "no partial output left in the spool");
}

#[test]
fn sigterm_stops_cleanly_and_a_kept_source_is_not_taken_again() {
    let env = TestEnv::new(&[]);
    let watch = env.watch_dir();
    let src = watch.join("clip.mp4");
    make_clip(&src, ClipSpec::av(640, 360, 1));
    let mut daemon = env.start_daemon();
    env.wait_for_assets(READY_TIMEOUT, "one ready asset", |a| all_finished(a, 1));
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");

    // Restarted with the file still there: same file, no new asset.
    let _daemon = env.start_daemon();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(env.assets().len(), 1);
    // Dropped again (a new file with the same name): a new asset.
    std::fs::remove_file(&src).unwrap();
    make_clip(&src, ClipSpec::av(640, 360, 1));
    env.wait_for_assets(READY_TIMEOUT, "a second asset", |a| all_finished(a, 2));
}

#[test]
fn a_folder_moved_into_the_watch_folder_is_taken_without_waiting_for_a_rescan() {
    // The full rescan runs every 600 s (the default); the files below must
    // arrive through events and the scan of the new folder alone.
    let env = TestEnv::new(&[]);
    let watch = env.watch_dir();
    let outside = env.dir.path().join("batch");
    std::fs::create_dir_all(outside.join("inner")).unwrap();
    make_clip(&outside.join("one.mp4"), ClipSpec::av(640, 360, 1));
    make_clip(&outside.join("inner/two.mp4"), ClipSpec::av(640, 360, 1));
    let daemon = env.start_daemon();
    wait_for(
        Duration::from_secs(30),
        "the daemon to watch the folder",
        || {
            std::fs::read_to_string(&daemon.log)
                .is_ok_and(|l| l.contains("Watching for new files."))
        },
    );

    // Moved in whole: the files in it send no events of their own.
    std::fs::rename(&outside, watch.join("batch")).unwrap();
    let assets = env.wait_for_assets(Duration::from_secs(60), "two ready assets", |a| {
        a.len() == 2 && a.iter().all(|x| x["status"] == "ready")
    });
    assert_eq!(assets.len(), 2, "{assets:#?}");
}
