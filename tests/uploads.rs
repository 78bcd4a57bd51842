//! Direct uploads over real HTTP (curl) against `reeld run`: chunks with
//! `Content-Range` as UpChunk sends them, overlaps and gaps, a restart
//! between chunks, whole-file `curl -T`, limits, CORS, cancel, timeout, a
//! non-media file, and the `video.upload.*` webhooks.
//!
//! Mux's Node SDK and UpChunk itself drive the same routes in tests/sdk.rs.

mod common;

use std::time::Duration;

use common::http::Api;
use common::receiver::{Receiver, Reply};
use common::{ClipSpec, TestEnv, make_clip, wait_for};
use serde_json::{Value, json};

const READY_WITHIN: Duration = Duration::from_secs(120);

fn create_upload(api: &Api, body: Value) -> Value {
    let r = api.request("POST", "/video/v1/uploads", Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn upload(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("/video/v1/uploads/{id}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn put_range(api: &Api, url: &str, data: &[u8], first: usize, last: usize) -> common::http::Http {
    api.put_bytes(
        url,
        &data[first..=last],
        &[&format!(
            "Content-Range: bytes {first}-{last}/{}",
            data.len()
        )],
    )
}

fn wait_for_upload(api: &Api, id: &str, status: &str, within: Duration) -> Value {
    let mut last = Value::Null;
    wait_for(within, &format!("upload {id} to be {status}"), || {
        last = upload(api, id);
        last["status"] == status
    });
    last
}

fn clip(env: &TestEnv, name: &str) -> Vec<u8> {
    let path = env.dir.path().join(name);
    make_clip(&path, ClipSpec::av(640, 360, 3));
    std::fs::read(&path).unwrap()
}

fn upload_bytes_path(env: &TestEnv, id: &str) -> std::path::PathBuf {
    env.data("spool").join("uploads").join(id)
}

#[test]
fn chunks_overlaps_gaps_and_a_restart_make_one_ready_asset() {
    let env = TestEnv::new(&[]);
    let data = clip(&env, "clip.mp4");
    assert!(data.len() > 4 * 16384, "the clip is {} bytes", data.len());
    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let created = create_upload(
        &api,
        json!({
            "cors_origin": "https://app.example.com",
            "new_asset_settings": {"passthrough": "chunked", "video_quality": "basic",
                                   "meta": {"title": "Up"}},
        }),
    );
    assert_eq!(created["status"], "waiting");
    assert_eq!(created["timeout"], 3600);
    assert_eq!(created["cors_origin"], "https://app.example.com");
    assert_eq!(created["new_asset_settings"]["passthrough"], "chunked");
    let id = created["id"].as_str().unwrap().to_owned();
    let url = created["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/uploads/{id}?", api.base)),
        "{url}"
    );

    let chunk = 16384;
    let r = put_range(&api, &url, &data, 0, chunk - 1);
    assert_eq!(r.status, 308, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("range"), Some("bytes=0-16383"));
    assert_eq!(r.header("location"), None);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("Range"));
    // The same chunk again (a lost answer, retried): the overlap is skipped.
    let r = put_range(&api, &url, &data, 0, chunk - 1);
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range"), Some("bytes=0-16383"));
    // A chunk that overlaps half of what arrived.
    let r = put_range(&api, &url, &data, chunk / 2, 2 * chunk - 1);
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range"), Some("bytes=0-32767"));
    // A gap is refused, names the problem, and says where to go on.
    let r = put_range(&api, &url, &data, 3 * chunk, 4 * chunk - 1);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "invalid_parameters");
    assert!(
        r.error_message().contains("starts at byte 49152"),
        "{}",
        r.error_message()
    );
    assert_eq!(r.header("range"), Some("bytes=0-32767"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // A total that disagrees with the first chunks'.
    let r = api.put_bytes(
        &url,
        &data[2 * chunk..3 * chunk],
        &[&format!(
            "Content-Range: bytes {}-{}/{}",
            2 * chunk,
            3 * chunk - 1,
            data.len() + 1
        )],
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(upload(&api, &id)["status"], "waiting");

    // A restart between chunks: what arrived is kept.
    daemon.terminate();
    let daemon = env.start_daemon();
    let old_base = api.base.clone();
    let api = env.api(&daemon);
    // Each test daemon listens on a port of its own; the signature covers
    // the path and expiry, not the host.
    let url = url.replace(&old_base, &api.base);
    let r = api.put_bytes(
        &url,
        b"",
        &[&format!("Content-Range: bytes */{}", data.len())],
    );
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range"), Some("bytes=0-32767"));
    let mut first = 2 * chunk;
    while first < data.len() {
        let last = (first + chunk - 1).min(data.len() - 1);
        let r = put_range(&api, &url, &data, first, last);
        let expected = if last + 1 == data.len() { 200 } else { 308 };
        assert_eq!(
            r.status,
            expected,
            "bytes {first}-{last}: {}",
            String::from_utf8_lossy(&r.body)
        );
        first = last + 1;
    }
    // The last chunk again: still done, no second asset.
    let last_start = (data.len() - 1) / chunk * chunk;
    let r = put_range(&api, &url, &data, last_start, data.len() - 1);
    assert_eq!(r.status, 200);

    let done = upload(&api, &id);
    assert_eq!(done["status"], "asset_created");
    assert!(done.get("url").is_none(), "{done}");
    let asset_id = done["asset_id"].as_str().unwrap().to_owned();
    let found = api.get(&format!("/video/v1/assets?upload_id={id}")).json();
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["id"], asset_id.as_str());
    let asset = common::http::wait_for_asset(&api, &asset_id, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(asset["status"], "ready", "{asset:#}");
    assert_eq!(asset["upload_id"], id.as_str());
    assert_eq!(asset["ingest_type"], "on_demand_direct_upload");
    assert_eq!(asset["passthrough"], "chunked");
    assert_eq!(asset["meta"]["title"], "Up");
    assert_eq!(asset["video_quality"], "basic");
    assert!(asset["duration"].as_f64().unwrap() > 2.5, "{asset:#}");
    // The stored master is the uploaded clip, whole.
    let master = common::ffprobe(&env.master_path(&asset_id));
    assert!((common::duration_of(&master) - 3.0).abs() < 0.2);
    // The upload's bytes go once the asset has them.
    let bytes = upload_bytes_path(&env, &id);
    wait_for(
        Duration::from_secs(30),
        "the upload's bytes to be removed",
        || !bytes.exists(),
    );
    assert_eq!(env.assets().len(), 1, "one upload, one asset");
}

#[test]
fn whole_file_puts_limits_signatures_and_cors() {
    let env = TestEnv::new(&[(
        "max_upload_bytes = 107374182400",
        "max_upload_bytes = 400000",
    )]);
    let data = clip(&env, "clip.mp4");
    assert!(data.len() < 400_000, "the clip is {} bytes", data.len());
    let file = env.dir.path().join("clip.mp4");
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let created = create_upload(&api, json!({"cors_origin": "*", "test": true}));
    let url = created["url"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["test"], true);

    // The CORS preflight a browser sends before UpChunk's first PUT.
    let r = api.with_credentials(None).request(
        "OPTIONS",
        &url,
        None,
        &[
            "Origin: https://elsewhere.example",
            "Access-Control-Request-Method: PUT",
            "Access-Control-Request-Headers: content-range,content-type",
        ],
    );
    assert!(r.status == 204 || r.status == 200, "{}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-range,content-type")
    );

    // An altered signature, and another upload's URL, are refused.
    let altered = url.replace("signature=", "signature=A");
    let r = api.put_file(&altered, &file);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let other = create_upload(&api, json!({"cors_origin": "*"}));
    let swapped = url.replace(&id, other["id"].as_str().unwrap());
    assert_eq!(api.put_file(&swapped, &file).status, 403);

    // Larger than max_upload_bytes: refused by the declared total, and by
    // the count of a body that declares nothing.
    let big = vec![0u8; 500_000];
    let r = api.put_bytes(&url, &big[..1000], &["Content-Range: bytes 0-999/500000"]);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error_message().contains("max_upload_bytes"),
        "{}",
        r.error_message()
    );
    let r = api.put_bytes(&url, &big, &["Transfer-Encoding: chunked"]);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(upload(&api, &id)["status"], "waiting");

    // curl -T: the whole file in one request.
    let r = api.put_file(&url, &file);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let done = upload(&api, &id);
    assert_eq!(done["status"], "asset_created");
    let asset_id = done["asset_id"].as_str().unwrap();
    let asset = common::http::wait_for_asset(&api, asset_id, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(asset["status"], "ready", "{asset:#}");
    assert_eq!(asset["test"], true);

    // Bad requests to the create call name the field.
    for (body, field) in [
        (json!({}), "cors_origin"),
        (
            json!({"cors_origin": "https://a.example/path"}),
            "cors_origin",
        ),
        (json!({"cors_origin": "*", "timeout": 30}), "timeout"),
        (
            json!({"cors_origin": "*", "new_asset_settings": {"max_resolution_tier": "8k"}}),
            "new_asset_settings.max_resolution_tier",
        ),
    ] {
        let r = api.request("POST", "/video/v1/uploads", Some(&body), &[]);
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.error_message().contains(field),
            "{body}: {}",
            r.error_message()
        );
    }
}

#[test]
fn cancelled_timed_out_and_non_media_uploads_make_no_ready_asset() {
    let receiver = Receiver::start(|_| Reply::Status(200));
    let env = TestEnv::new(&[(
        "allow_private_addresses = false",
        "allow_private_addresses = true",
    )]);
    env.append_config(&format!(
        "[[webhooks.endpoints]]\nurl = \"{}\"\nsecret = \"a-secret-for-the-tests\"\nevents = [\"video.upload.*\"]\n",
        receiver.url
    ));
    let data = clip(&env, "clip.mp4");
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    // Cancelled between chunks; its last chunk arrives later and makes nothing.
    let cancelled = create_upload(&api, json!({"cors_origin": "*"}));
    let (cid, curl_) = (
        cancelled["id"].as_str().unwrap().to_owned(),
        cancelled["url"].as_str().unwrap().to_owned(),
    );
    assert_eq!(put_range(&api, &curl_, &data, 0, 65535).status, 308);
    assert!(upload_bytes_path(&env, &cid).exists());
    let r = api.request("PUT", &format!("/video/v1/uploads/{cid}/cancel"), None, &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["status"], "cancelled");
    assert!(!upload_bytes_path(&env, &cid).exists());
    let r = api.request("PUT", &format!("/video/v1/uploads/{cid}/cancel"), None, &[]);
    assert_eq!(r.status, 403);
    let r = put_range(&api, &curl_, &data, 65536, data.len() - 1);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error_message().contains("cancelled"));
    assert!(upload(&api, &cid).get("asset_id").is_none());

    // Not media: the asset errors, and so does the upload, with Mux's shape.
    let text = create_upload(&api, json!({"cors_origin": "*"}));
    let tid = text["id"].as_str().unwrap().to_owned();
    let r = api.put_bytes(
        text["url"].as_str().unwrap(),
        b"this is not a video file\n",
        &[],
    );
    assert_eq!(r.status, 200);
    let errored = wait_for_upload(&api, &tid, "errored", READY_WITHIN);
    assert_eq!(errored["error"]["type"], "invalid_input", "{errored}");
    assert!(!errored["error"]["message"].as_str().unwrap().is_empty());
    let asset = api
        .get(&format!(
            "/video/v1/assets/{}",
            errored["asset_id"].as_str().unwrap()
        ))
        .json();
    assert_eq!(asset["data"]["status"], "errored");
    wait_for(
        Duration::from_secs(30),
        "the errored upload's bytes to go",
        || !upload_bytes_path(&env, &tid).exists(),
    );

    // Waiting at its timeout (Mux's shortest, 60 s): timed out, bytes removed.
    let slow = create_upload(&api, json!({"cors_origin": "*", "timeout": 60}));
    let (sid, surl) = (
        slow["id"].as_str().unwrap().to_owned(),
        slow["url"].as_str().unwrap().to_owned(),
    );
    assert_eq!(put_range(&api, &surl, &data, 0, 65535).status, 308);
    wait_for_upload(&api, &sid, "timed_out", Duration::from_secs(90));
    assert!(!upload_bytes_path(&env, &sid).exists());
    let r = put_range(&api, &surl, &data, 65536, data.len() - 1);
    assert_eq!(r.status, 403);

    // The events, through the outbox: no event for a timeout (Mux has none).
    let got = receiver.wait_for(Duration::from_secs(30), "upload events", |got| {
        ["video.upload.errored", "video.upload.cancelled"]
            .iter()
            .all(|kind| got.iter().any(|r| r.json()["type"] == *kind))
    });
    let kinds: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let j = r.json();
            (
                j["type"].as_str().unwrap().to_owned(),
                j["object"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let of = |id: &str| -> Vec<&str> {
        kinds
            .iter()
            .filter(|(_, o)| o == id)
            .map(|(k, _)| k.as_str())
            .collect()
    };
    assert_eq!(of(&cid), ["video.upload.created", "video.upload.cancelled"]);
    assert_eq!(
        of(&tid),
        [
            "video.upload.created",
            "video.upload.asset_created",
            "video.upload.errored"
        ]
    );
    assert_eq!(of(&sid), ["video.upload.created"]);
    let event = got
        .iter()
        .map(|r| r.json())
        .find(|j| j["type"] == "video.upload.asset_created")
        .unwrap();
    assert_eq!(event["object"]["type"], "upload");
    assert_eq!(event["data"]["status"], "asset_created");
    assert!(event["data"]["asset_id"].is_string());
    assert!(event["data"].get("error").is_none());
}

#[test]
fn a_file_shorter_than_recorded_is_resumed_from_what_it_has_not_zeros() {
    let env = TestEnv::new(&[]);
    let data = clip(&env, "clip.mp4");
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let created = create_upload(&api, json!({"cors_origin": "*"}));
    let (id, url) = (
        created["id"].as_str().unwrap().to_owned(),
        created["url"].as_str().unwrap().to_owned(),
    );
    assert_eq!(put_range(&api, &url, &data, 0, 32767).status, 308);
    // Bytes the database counted are lost from the file (a crash before
    // they reached the disk).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(upload_bytes_path(&env, &id))
        .unwrap();
    file.set_len(10_000).unwrap();
    let r = put_range(&api, &url, &data, 32768, data.len() - 1);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("range"), Some("bytes=0-9999"));
    // Sent again from where the file is, the upload completes, byte-exact.
    let r = put_range(&api, &url, &data, 10_000, data.len() - 1);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let asset_id = upload(&api, &id)["asset_id"].as_str().unwrap().to_owned();
    let asset = common::http::wait_for_asset(&api, &asset_id, READY_WITHIN, "ready", |a| {
        a["status"] != "preparing"
    });
    assert_eq!(asset["status"], "ready", "{asset:#}");
}
