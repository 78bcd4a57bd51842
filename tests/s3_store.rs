//! The S3 store against a real S3 server (s3s-fs, which checks SigV4
//! signatures; see `common::s3`). The real `reeld` binary stores masters
//! and renditions there by multipart upload, makes later renditions from
//! the master it downloads back, and deletes an expired test asset's
//! objects. Downloads redirect to the store's presigned URLs. An outage in
//! the middle of an upload is waited out without using an attempt, and a
//! wrong secret pauses the queue, named by `reeld doctor` and the log,
//! until a SIGHUP brings the right one.

mod common;

use std::time::Duration;

use common::http::{Api, Http, file_url, wait_for_asset};
use common::s3::SECRET_KEY;
use common::*;
use serde_json::json;

const READY_WITHIN: Duration = Duration::from_secs(180);

fn s3_env() -> TestEnv {
    TestEnv::with_store(StoreKind::S3, &[])
}

/// A clip in the folder the API may read inputs from.
fn importable_clip(env: &TestEnv, spec: ClipSpec) -> std::path::PathBuf {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    make_clip(&clip, spec);
    clip
}

/// Waits for the asset's `progress.reason` to contain `words`.
fn wait_for_reason(api: &Api, id: &str, within: Duration, words: &str) -> serde_json::Value {
    wait_for_asset(api, id, within, words, |a| {
        a["progress"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(words))
    })
}

/// How many attempts the asset's job has used.
fn attempts(env: &TestEnv, asset_id: &str) -> i64 {
    let db = rusqlite::Connection::open(env.data("reeld.db")).unwrap();
    db.query_row(
        "SELECT attempts FROM jobs WHERE asset_id = ?1 AND kind = 'transcode'",
        [asset_id],
        |r| r.get(0),
    )
    .unwrap()
}

fn create(api: &Api, body: serde_json::Value) -> String {
    let r = api.request("POST", "/video/v1/assets", Some(&body), &[]);
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()["data"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn masters_and_renditions_go_to_s3_and_come_back_from_it() {
    let env = s3_env();
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(1280, 720, 2));

    // A remuxed master, then its renditions from the master downloaded back.
    let settings =
        r#"{"static_renditions": [{"resolution": "480p"}, {"resolution": "audio-only"}]}"#;
    let (ok, asset, err) = env.ingest(&clip, Some(settings));
    assert!(ok, "{err}");
    let id = asset["id"].as_str().unwrap().to_owned();
    assert_eq!(asset["static_renditions"]["status"], "ready", "{asset}");
    let duration = duration_of(&ffprobe(&clip));
    assert_master(&env.master_path(&id), 1280, 720, true, duration);
    let p = ffprobe(&env.stored(&id, "480p.mp4"));
    assert_eq!(stream(&p, "video").unwrap()["height"], 480);
    assert!(stream(&ffprobe(&env.stored(&id, "audio.m4a")), "video").is_none());
    assert!(!env.data("store").exists(), "nothing went to local disk");
    assert!(env.s3.as_ref().unwrap().incomplete_uploads().is_empty());

    // Added later: made from the master read back from S3.
    let out = env.reeld(&["renditions", "add", &id, "270p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = ffprobe(&env.stored(&id, "270p.mp4"));
    assert_eq!(stream(&p, "video").unwrap()["height"], 270);

    // A test asset, aged past its day: the daemon deletes its objects.
    let (ok, test_asset, err) = env.ingest(&clip, Some(r#"{"test": true}"#));
    assert!(ok, "{err}");
    let test_id = test_asset["id"].as_str().unwrap().to_owned();
    assert!(env.master_path(&test_id).exists());
    let db = rusqlite::Connection::open(env.data("reeld.db")).unwrap();
    db.execute(
        "UPDATE assets SET created_at = created_at - 90000 WHERE id = ?1",
        [&test_id],
    )
    .unwrap();
    drop(db);
    let mut daemon = env.start_daemon();
    env.wait_for_assets(Duration::from_secs(60), "the test asset to expire", |a| {
        !a.iter().any(|x| x["id"] == test_id.as_str())
    });
    assert!(!env.master_path(&test_id).exists(), "its objects are gone");
    assert!(env.master_path(&id).exists(), "the other asset stays");
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// `GET url` with curl, which does not follow redirects unless asked.
fn fetch(api: &Api, url: &str, headers: &[&str]) -> Http {
    api.request("GET", url, None, headers)
}

#[test]
fn downloads_of_s3_files_redirect_to_presigned_urls() {
    let env = s3_env();
    let clip = importable_clip(&env, ClipSpec::av(640, 360, 2));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let plain = api.with_credentials(None);
    let id = create(
        &api,
        json!({"inputs": [{"url": file_url(&clip)}],
               "static_renditions": [{"resolution": "audio-only"}]}),
    );
    let asset = wait_for_asset(&api, &id, READY_WITHIN, "ready", |a| {
        a["static_renditions"]["status"] == "ready"
    });
    let url = rendition_file(&asset, "audio.m4a")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = std::fs::read(env.stored(&id, "audio.m4a")).unwrap();

    // reeld checks its own signature, then hands out the store's.
    let redirect = fetch(&plain, &url, &[]);
    assert_eq!(redirect.status, 302, "{redirect:?}");
    let location = redirect.header("location").unwrap().to_owned();
    let s3 = env.s3.as_ref().unwrap();
    assert!(location.starts_with(&s3.endpoint()), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let expires_in: u64 = location
        .split("X-Amz-Expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .parse()
        .unwrap();
    let reeld_expires: i64 = url.split("expires=").nth(1).unwrap()[..10].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expires_in as i64 <= reeld_expires - now + 1 && expires_in > 0,
        "the presigned URL expires with reeld's ({expires_in} s, reeld's in {} s)",
        reeld_expires - now
    );

    // A plain client downloads it, whole and by range.
    let whole = fetch(&plain, &location, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, stored);
    assert_eq!(whole.header("content-type"), Some("audio/mp4"));
    let part = fetch(&plain, &location, &["Range: bytes=100-1099"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &stored[100..1100]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-1099/{}", stored.len()).as_str())
    );

    // `download=` is signed into the URL as response-content-disposition;
    // changing it breaks the store's signature.
    let named = fetch(&plain, &format!("{url}&download=holiday"), &[]);
    assert_eq!(named.status, 302);
    let named_location = named.header("location").unwrap().to_owned();
    assert!(
        named_location
            .contains("response-content-disposition=attachment%3B%20filename%3D%22holiday%22"),
        "{named_location}"
    );
    assert_eq!(fetch(&plain, &named_location, &[]).status, 200);
    let tampered = named_location.replace("holiday", "other");
    assert_eq!(
        fetch(&plain, &tampered, &[]).status,
        403,
        "S3 checks the signature"
    );

    // reeld's own checks still come first.
    let forged = url.replace("signature=", "signature=0");
    assert_eq!(fetch(&plain, &forged, &[]).status, 403);
}

#[test]
fn an_outage_in_the_middle_of_an_upload_is_waited_out_without_an_attempt() {
    let env = s3_env();
    let s3 = env.s3.as_ref().unwrap();
    let clip = importable_clip(&env, ClipSpec::av(1280, 720, 3));
    s3.outage_on_part("master.mp4", Duration::from_secs(30));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(&api, json!({"inputs": [{"url": file_url(&clip)}]}));

    // The first part of the master takes the server down with it; the
    // asset says it waits, and stays preparing.
    wait_for(Duration::from_secs(120), "the outage", || s3.outages() == 1);
    let waiting = wait_for_reason(&api, &id, Duration::from_secs(60), "Waiting for the store");
    assert_eq!(waiting["status"], "preparing", "{waiting}");
    assert_eq!(s3.recoveries(), 0, "still down: {waiting}");
    assert_eq!(s3.incomplete_uploads().len(), 1, "the upload was begun");

    let ready = wait_for_asset(&api, &id, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(s3.recoveries(), 1);
    assert!(ready["progress"].get("reason").is_none(), "{ready}");
    assert_master(
        &env.master_path(&id),
        1280,
        720,
        true,
        duration_of(&ffprobe(&clip)),
    );
    assert_eq!(attempts(&env, &id), 1, "the outage used no attempt");
    assert!(
        s3.incomplete_uploads().is_empty(),
        "no incomplete multipart upload is left: {:?}",
        s3.incomplete_uploads()
    );
    let logs = env.logs();
    assert!(
        logs.contains("The store is unavailable; retrying (no attempt is used)."),
        "{logs}"
    );
    assert!(logs.contains("The store answers again."), "{logs}");
}

#[test]
fn a_wrong_secret_pauses_the_queue_until_sighup_brings_the_right_one() {
    let env = s3_env();
    let config = std::fs::read_to_string(&env.config).unwrap();
    let wrong = config.replace(
        &format!("secret_access_key = \"{SECRET_KEY}\""),
        "secret_access_key = \"not-the-secret\"",
    );
    assert_ne!(config, wrong);
    std::fs::write(&env.config, &wrong).unwrap();

    // The doctor names the problem and what to check.
    let out = env.reeld(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("reeld doctor, wrong secret:\n{report}");
    assert!(!out.status.success(), "{report}");
    let write = report
        .lines()
        .find(|l| l.contains("store write"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(write.starts_with("FAIL"), "{report}");
    assert!(
        write.contains("SignatureDoesNotMatch") && write.contains("secret_access_key"),
        "{write}"
    );
    assert!(
        report.lines().any(|l| l.starts_with("OK   database")),
        "{report}"
    );

    // The daemon stays up and answers; the asset waits, using no attempt.
    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let clip = importable_clip(&env, ClipSpec::av(640, 360, 1));
    let id = create(&api, json!({"inputs": [{"url": file_url(&clip)}]}));
    let waiting = wait_for_reason(&api, &id, Duration::from_secs(60), "credentials");
    assert_eq!(waiting["status"], "preparing");
    assert!(daemon.is_running());
    let db = rusqlite::Connection::open(env.data("reeld.db")).unwrap();
    let (state, used): (String, i64) = db
        .query_row(
            "SELECT state, attempts FROM jobs WHERE asset_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), used), ("queued", 0));
    let logs = env.logs();
    assert_eq!(
        logs.matches("does not accept reeld's credentials").count(),
        1,
        "said once: {logs}"
    );

    // The right secret and a SIGHUP: the job runs.
    std::fs::write(&env.config, &config).unwrap();
    daemon.signal("HUP");
    let ready = wait_for_asset(&api, &id, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(attempts(&env, &id), 1);
    assert!(
        env.logs()
            .contains("The store answers again; the queue resumes.")
    );

    // Wrong again by SIGHUP, then right again: each reload is compared with
    // the store's current settings, so going back to the first ones works.
    std::fs::write(&env.config, &wrong).unwrap();
    daemon.signal("HUP");
    wait_for(Duration::from_secs(30), "the second pause", || {
        env.logs()
            .matches("does not accept reeld's credentials")
            .count()
            == 2
    });
    let second = create(&api, json!({"inputs": [{"url": file_url(&clip)}]}));
    wait_for_reason(&api, &second, Duration::from_secs(30), "credentials");
    std::fs::write(&env.config, &config).unwrap();
    daemon.signal("HUP");
    let ready = wait_for_asset(&api, &second, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(ready["status"], "ready", "{ready}");

    let out = env.reeld(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("reeld doctor, right secret:\n{report}");
    assert!(out.status.success(), "{report}");
    for step in ["write", "read", "list", "delete"] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&format!("OK   store {step}"))),
            "{report}"
        );
    }
    assert_eq!(daemon.terminate().code(), Some(0));
}
