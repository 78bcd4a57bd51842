//! The S3 store against a real S3 server: s3s-fs, which checks SigV4
//! signatures, runs inside the test process on a loopback port. The real
//! `reeld` binary stores masters and renditions there by multipart upload,
//! makes later renditions from the master it downloads back, and deletes an
//! expired test asset's objects; a wrong secret is a clear, retried error.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const ACCESS_KEY: &str = "AKIDREELDTEST";
const SECRET_KEY: &str = "reeld-test-secret";
const BUCKET: &str = "media";

/// Starts s3s-fs on 127.0.0.1 serving `root` (each bucket a sub-folder) on
/// its own runtime thread; returns its address.
fn start_s3_server(root: &Path) -> SocketAddr {
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let root = root.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            let service = builder.build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the S3 server starts")
}

/// A test installation whose store is the S3 server at `addr`.
fn s3_env(addr: SocketAddr, secret: &str) -> TestEnv {
    let storage = format!(
        "url = \"s3://{BUCKET}\"\n\n[storage.s3]\nendpoint = \"http://{addr}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
         secret_access_key = \"{secret}\"\nallow_http = true"
    );
    TestEnv::new(&[("url = \"file://data/store\"", &storage)])
}

fn object(root: &Path, asset_id: &str, name: &str) -> PathBuf {
    root.join(BUCKET).join("assets").join(asset_id).join(name)
}

#[test]
fn masters_and_renditions_go_to_s3_and_come_back_from_it() {
    let s3_root = tempfile::tempdir().unwrap();
    let addr = start_s3_server(s3_root.path());
    let env = s3_env(addr, SECRET_KEY);
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
    assert_master(
        &object(s3_root.path(), &id, "master.mp4"),
        1280,
        720,
        true,
        duration,
    );
    let p = ffprobe(&object(s3_root.path(), &id, "480p.mp4"));
    assert_eq!(stream(&p, "video").unwrap()["height"], 480);
    assert!(stream(&ffprobe(&object(s3_root.path(), &id, "audio.m4a")), "video").is_none());
    assert!(!env.data("store").exists(), "nothing went to local disk");

    // Added later: made from the master read back from S3.
    let out = env.reeld(&["renditions", "add", &id, "270p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = ffprobe(&object(s3_root.path(), &id, "270p.mp4"));
    assert_eq!(stream(&p, "video").unwrap()["height"], 270);

    // A test asset, aged past its day: the daemon deletes its objects.
    let (ok, test_asset, err) = env.ingest(&clip, Some(r#"{"test": true}"#));
    assert!(ok, "{err}");
    let test_id = test_asset["id"].as_str().unwrap().to_owned();
    assert!(object(s3_root.path(), &test_id, "master.mp4").exists());
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
    assert!(
        !object(s3_root.path(), &test_id, "master.mp4").exists(),
        "its objects are gone"
    );
    assert!(
        object(s3_root.path(), &id, "master.mp4").exists(),
        "the other asset stays"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn a_wrong_secret_is_a_clear_error_and_the_job_stays_queued() {
    let s3_root = tempfile::tempdir().unwrap();
    let addr = start_s3_server(s3_root.path());
    let env = s3_env(addr, "not-the-secret");
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 1));
    let (ok, asset, err) = env.ingest(&clip, None);
    assert!(!ok, "nothing can be stored with a wrong secret");
    assert_eq!(
        asset["status"], "preparing",
        "not errored: a store problem is retried: {asset}"
    );
    assert!(
        err.contains("not finished") && (err.contains("403") || err.contains("ermission")),
        "the message names the refusal: {err}"
    );
    let stored = std::fs::read_dir(s3_root.path().join(BUCKET))
        .unwrap()
        .count();
    assert_eq!(stored, 0, "nothing was stored");
}
