//! Mux's official SDKs against a running reeld, with only the base URL
//! changed: `@mux/mux-node` (pinned in tests/sdk/package.json) walks every
//! asset call, and `mux_python` (pinned in tests/sdk/requirements.txt) reads
//! ready, errored, audio-only and preparing assets through its strict models.
//! Mux's SDK also makes playback IDs, signing keys and tokens, and
//! Cloudflare's (`cloudflare`, pinned beside it) drives the Stream routes.
//!
//! `scripts/test` installs both (npm ci, a venv); run it once before
//! `cargo test` on a new machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http::{Api, TOKEN_ID, TOKEN_SECRET, file_url, wait_for_asset};
use common::{ClipSpec, TestEnv, make_clip, sdk_dir};
use serde_json::json;

/// The Python with mux_python installed: `REELD_SDK_PYTHON`, as scripts/test
/// sets it, or the venv scripts/test makes.
fn python() -> PathBuf {
    std::env::var_os("REELD_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/reeld/sdk-venv/bin/python"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sdk_env<'a>(cmd: &'a mut Command, api: &Api) -> &'a mut Command {
    cmd.env("MUX_BASE_URL", &api.base)
        .env("MUX_TOKEN_ID", TOKEN_ID)
        .env("MUX_TOKEN_SECRET", TOKEN_SECRET)
}

#[test]
fn mux_node_sdk_runs_against_reeld_unchanged() {
    assert!(
        sdk_dir().join("node_modules/@mux/mux-node").exists(),
        "run `npm ci --prefix tests/sdk` (scripts/test does) first"
    );
    let env = TestEnv::new(&[]);
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("node.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    run(
        sdk_env(&mut Command::new("node"), &api)
            .arg(sdk_dir().join("mux-node.mjs"))
            .env("INPUT_URL", file_url(&clip))
            .current_dir(sdk_dir()),
        "tests/sdk/mux-node.mjs",
    );
}

/// Direct uploads from Node: the SDK creates, lists and cancels them, and
/// UpChunk itself sends a clip of several chunks (one re-sent) to the
/// upload URL.
#[test]
fn mux_node_sdk_and_upchunk_upload_directly() {
    assert!(
        sdk_dir().join("node_modules/@mux/upchunk").exists(),
        "run `npm ci --prefix tests/sdk` (scripts/test does) first"
    );
    let env = TestEnv::new(&[]);
    // Noise does not compress: 4 s make several 256 KiB chunks.
    let clip = env.dir.path().join("noise.mp4");
    common::gst_launch(&format!(
        "mp4mux name=m ! filesink location={} \
         videotestsrc pattern=snow num-buffers=120 ! \
         video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! m. \
         audiotestsrc num-buffers=187 samplesperbuffer=1024 ! \
         audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! m.",
        clip.display()
    ));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    run(
        sdk_env(&mut Command::new("node"), &api)
            .arg(sdk_dir().join("uploads.mjs"))
            .env("CLIP", &clip)
            .env("CLIP_SECONDS", "4")
            .current_dir(sdk_dir()),
        "tests/sdk/uploads.mjs",
    );
}

#[test]
fn mux_python_reads_every_kind_of_asset() {
    assert!(
        python().exists(),
        "no Python with mux_python at {}: run scripts/test (it makes the venv)",
        python().display()
    );
    let env = TestEnv::new(&[]);
    // A slow encode keeps one asset preparing while the SDK reads it.
    env.edit_fragment("h264-plus.gst", |text| {
        text.replace("reeldx264enc", "identity sleep-time=200000 ! reeldx264enc")
    });
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let video = dir.join("video.mp4");
    make_clip(&video, ClipSpec::av(640, 360, 2));
    let audio = dir.join("audio.m4a");
    make_clip(
        &audio,
        ClipSpec {
            video: None,
            fps: 30,
            seconds: 2,
            audio: true,
        },
    );
    let broken = dir.join("broken.mp4");
    std::fs::write(&broken, b"this is not a video").unwrap();
    let slow = common::to_matroska(&video);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let create = |path: &Path, extra: serde_json::Value| {
        let mut body = json!({"inputs": [{"url": file_url(path)}], "master_access": "temporary",
                              "static_renditions": [{"resolution": "highest"}, {"resolution": "audio-only"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = api.request("POST", "/video/v1/assets", Some(&body), &[]);
        assert_eq!(r.status, 201);
        r.json()["data"]["id"].as_str().unwrap().to_owned()
    };
    let ready_video = create(&video, json!({"meta": {"title": "v"}}));
    let ready_audio = create(&audio, json!({}));
    let errored = create(&broken, json!({}));
    let settled = |a: &serde_json::Value| {
        a["status"] != "preparing" && a["static_renditions"]["status"] != "preparing"
    };
    for id in [&ready_video, &ready_audio, &errored] {
        wait_for_asset(
            &api,
            id,
            Duration::from_secs(120),
            "the asset to settle",
            settled,
        );
    }
    let preparing = create(
        &slow,
        json!({"mp4_support": "capped-1080p", "static_renditions": []}),
    );
    wait_for_asset(
        &api,
        &preparing,
        Duration::from_secs(60),
        "the slow encode to start",
        |a| a["progress"]["state"] == "transcoding",
    );
    let expect = json!({
        ready_video.clone(): "ready",
        ready_audio.clone(): "ready",
        errored.clone(): "errored",
        preparing.clone(): "preparing",
    });
    let audio_asset = api.get(&format!("/video/v1/assets/{ready_audio}")).json()["data"].clone();
    assert_eq!(audio_asset["resolution_tier"], "audio-only");
    run(
        sdk_env(&mut Command::new(python()), &api)
            .arg(sdk_dir().join("mux_python_check.py"))
            .env("EXPECT", expect.to_string()),
        "tests/sdk/mux_python_check.py",
    );
    let still = api.get(&format!("/video/v1/assets/{preparing}")).json()["data"]["status"].clone();
    assert_eq!(
        still, "preparing",
        "the preparing asset was read while preparing"
    );
}

/// A ready asset with a `highest.mp4`, on the local store (the stream routes
/// on S3 are the same code as `/downloads`, tested in s3_store.rs).
fn ready_with_highest(env: &TestEnv, api: &Api) -> String {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("play.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({"inputs": [{"url": file_url(&clip)}],
                     "static_renditions": [{"resolution": "highest"}]})),
        &[],
    );
    assert_eq!(r.status, 201);
    let id = r.json()["data"]["id"].as_str().unwrap().to_owned();
    wait_for_asset(api, &id, Duration::from_secs(120), "ready", |a| {
        a["status"] == "ready" && a["static_renditions"]["status"] == "ready"
    });
    id
}

/// Playback IDs, signing keys and `mux.jwt.signPlaybackId` tokens, with
/// Mux's Node SDK.
#[test]
fn mux_node_sdk_makes_playback_ids_keys_and_tokens() {
    let env = TestEnv::with_store(common::StoreKind::Local, &[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = ready_with_highest(&env, &api);
    run(
        sdk_env(&mut Command::new("node"), &api)
            .arg(sdk_dir().join("playback.mjs"))
            .env("ASSET_ID", &id)
            .env("STREAM_BASE", format!("{}/stream", api.base))
            .current_dir(sdk_dir()),
        "tests/sdk/playback.mjs",
    );
}

/// Cloudflare's official Node SDK (pinned in tests/sdk/package.json) drives
/// the video, downloads, keys and token routes, with only `baseURL` set.
#[test]
fn cloudflare_node_sdk_drives_downloads_keys_and_tokens() {
    assert!(
        sdk_dir().join("node_modules/cloudflare").exists(),
        "run `npm ci --prefix tests/sdk` (scripts/test does) first"
    );
    let (account, token) = ("acct0123456789", "cf-api-token-0123456789");
    let env = TestEnv::with_store(
        common::StoreKind::Local,
        &[
            (
                "# account_id = \"023e105f4ecef8ad9ca31a8372d0c353\"",
                &format!("account_id = \"{account}\""),
            ),
            (
                "# api_token = \"at least 16 characters\"",
                &format!("api_token = \"{token}\""),
            ),
        ],
    );
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = ready_with_highest(&env, &api);
    run(
        Command::new("node")
            .arg(sdk_dir().join("cloudflare.mjs"))
            .env("CF_BASE_URL", format!("{}/client/v4", api.base))
            .env("CF_API_TOKEN", token)
            .env("CF_ACCOUNT_ID", account)
            .env("VIDEO_UID", &id)
            .current_dir(sdk_dir()),
        "tests/sdk/cloudflare.mjs",
    );
}
