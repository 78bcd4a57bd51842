//! `"test": true` assets, as Mux makes them: outputs limited to the first
//! 10 s, a visible watermark, and deletion with their files 24 h after
//! creation (the age is set in the real SQLite file, then the daemon runs).

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn stored_duration(path: &std::path::Path) -> f64 {
    duration_of(&ffprobe(path))
}

#[test]
fn test_assets_are_ten_seconds_watermarked_and_expire_after_a_day() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("fourteen.mp4");
    make_clip(&src, ClipSpec::av(640, 360, 14));

    let settings = r#"{"test": true, "static_renditions": [{"resolution": "270p"}]}"#;
    let (ok, test_asset, err) = env.ingest(&src, Some(settings));
    assert!(ok, "{err}");
    assert_eq!(test_asset["status"], "ready", "{test_asset}");
    assert_eq!(test_asset["test"], true);
    let test_id = test_asset["id"].as_str().unwrap().to_owned();
    let master = env.master_path(&test_id);
    let rendition = master.with_file_name("270p.mp4");
    for path in [&master, &rendition] {
        let d = stored_duration(path);
        assert!(
            (d - 10.0).abs() < 0.2,
            "{} lasts {d} s, not 10",
            path.display()
        );
        assert_faststart(path);
    }
    assert!((test_asset["duration"].as_f64().unwrap() - 10.0).abs() < 0.2);

    // The same source as a normal asset: full length, no watermark.
    let (ok, normal, err) = env.ingest(&src, None);
    assert!(ok, "{err}");
    let normal_id = normal["id"].as_str().unwrap().to_owned();
    let normal_master = env.master_path(&normal_id);
    assert!((stored_duration(&normal_master) - stored_duration(&src)).abs() < 0.1);
    let clean = first_frame_psnr(&normal_master, &src, 640, 360);
    let marked = first_frame_psnr(&master, &src, 640, 360);
    assert!(
        clean > 40.0,
        "a normal master matches its source: {clean} dB"
    );
    assert!(
        marked < 30.0,
        "the test master carries a visible mark: {marked} dB"
    );

    // A day and an hour later, the daemon deletes the test asset and its
    // files, and leaves the normal one alone.
    let db = rusqlite::Connection::open(env.data("reeld.db")).expect("database opens");
    let aged = db
        .execute(
            "UPDATE assets SET created_at = created_at - 90000 WHERE id = ?1",
            [&test_id],
        )
        .expect("update");
    assert_eq!(aged, 1);
    drop(db);
    let mut daemon = env.start_daemon();
    let left = env.wait_for_assets(Duration::from_secs(30), "the test asset to expire", |a| {
        !a.iter().any(|x| x["id"] == test_id.as_str())
    });
    let ids: Vec<&Value> = left.iter().map(|a| &a["id"]).collect();
    assert_eq!(
        ids,
        vec![&Value::String(normal_id.clone())],
        "the normal asset stays"
    );
    let folder = env.store_root().join("assets").join(&test_id);
    let files: Vec<_> = std::fs::read_dir(&folder)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        files.is_empty(),
        "the test asset's files are deleted: {files:?}"
    );
    assert!(normal_master.exists());
    assert_eq!(daemon.terminate().code(), Some(0));
}
