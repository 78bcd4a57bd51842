//! Sources by identity: a new export renamed over a file that is still being
//! transcoded is an asset of its own. The first job keeps reading the file it
//! took, and disposal (`delete` or `move`) touches only that file, never the
//! new one that has its name.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Drops the long clip as `final.mp4`, renames a 3 s export over it while it
/// is being transcoded, and checks both become ready assets of their own
/// lengths. Returns the second export's bytes.
fn rename_over_during_transcode(env: &TestEnv) -> Vec<u8> {
    let long = long_clip(env);
    let short = env.dir.path().join("short.mp4");
    make_clip(&short, ClipSpec::av(640, 360, 3));
    let watch = env.watch_dir();
    let _daemon = env.start_daemon();

    std::fs::copy(&long, watch.join("final.mp4")).unwrap();
    env.wait_until_transcoding(TIMEOUT);
    // An editor's re-export: written under a hidden name, renamed over.
    let tmp = watch.join(".final.mp4.export");
    std::fs::copy(&short, &tmp).unwrap();
    std::fs::rename(&tmp, watch.join("final.mp4")).unwrap();

    let assets = env.wait_for_assets(TIMEOUT, "both exports", |a| all_finished(a, 2));
    let expected = [duration_of(&ffprobe(&long)), duration_of(&ffprobe(&short))];
    let mut lengths: Vec<f64> = Vec::new();
    for asset in &assets {
        assert_eq!(asset["status"], "ready", "{asset:#?}\n{}", env.logs());
        lengths.push(duration_of(&ffprobe(
            &env.master_path(asset["id"].as_str().unwrap()),
        )));
    }
    lengths.sort_by(f64::total_cmp);
    let mut want = expected.to_vec();
    want.sort_by(f64::total_cmp);
    for (got, want) in lengths.iter().zip(&want) {
        assert!(
            (got - want).abs() < 0.25,
            "each master is as long as its own source: {lengths:?} vs {want:?}"
        );
    }
    assert!(
        env.logs()
            .contains("Another file has the source's name now; it is left alone"),
        "{}",
        env.logs()
    );
    std::fs::read(&short).unwrap()
}

/// Waits until the watch folder holds nothing (both sources disposed of).
fn wait_until_empty(dir: &Path) {
    wait_for(TIMEOUT, "the watch folder to be empty", || {
        files_below(dir).is_empty()
    });
}

#[test]
fn a_file_renamed_over_a_source_being_transcoded_survives_delete() {
    let env = TestEnv::new(&[
        ("on_success = \"keep\"", "on_success = \"delete\""),
        ("video_quality = \"plus\"", "video_quality = \"premium\""),
    ]);
    rename_over_during_transcode(&env);
    // The first file was replaced by the user; the second was deleted after
    // its own asset was ready. Nothing went to the failed folder.
    wait_until_empty(&env.watch_dir());
    assert!(files_below(&env.data("failed")).is_empty());
}

#[test]
fn a_file_renamed_over_a_source_being_transcoded_survives_move() {
    let env = TestEnv::new(&[
        ("on_success = \"keep\"", "on_success = \"move\""),
        ("video_quality = \"plus\"", "video_quality = \"premium\""),
    ]);
    let second = rename_over_during_transcode(&env);
    wait_until_empty(&env.watch_dir());
    // The done folder holds the second export, byte for byte, and only it.
    let done = env.data("done");
    assert_eq!(
        files_below(&done),
        ["final.mp4".to_owned()].into_iter().collect()
    );
    assert_eq!(std::fs::read(done.join("final.mp4")).unwrap(), second);
    assert!(files_below(&env.data("failed")).is_empty());
}
