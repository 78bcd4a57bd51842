//! Signed downloads of stored files over real HTTP: ranges, validators,
//! `download=` names, tampered and expired URLs (with a clock the test
//! moves), and downloads while a transcode runs. These are reeld serving a
//! local store's files itself; S3 files redirect to the store (s3_store.rs).

mod common;

use std::time::Duration;

use common::http::{Api, Http, file_url, wait_for_asset};
use common::{ClipSpec, StoreKind, TestEnv, make_clip};
use serde_json::json;

const READY_WITHIN: Duration = Duration::from_secs(120);

/// A daemon with one ready asset whose master access is on; the test clock
/// offset file is `env.dir/clock`.
fn ready_master(env: &TestEnv) -> (common::TestDaemon, Api, String, String) {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let clock = env.dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let daemon = env.start_daemon_with_env(&[("REELD_CLOCK_OFFSET_FILE", clock.to_str().unwrap())]);
    let api = env.api(&daemon);
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({"inputs": [{"url": file_url(&clip)}], "master_access": "temporary"})),
        &[],
    );
    assert_eq!(r.status, 201);
    let id = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let asset = wait_for_asset(&api, &id, READY_WITHIN, "ready", |a| a["status"] == "ready");
    assert_eq!(asset["master"]["status"], "ready");
    let url = asset["master"]["url"].as_str().unwrap().to_owned();
    (daemon, api.with_credentials(None), id, url)
}

fn get(api: &Api, url: &str, headers: &[&str]) -> Http {
    api.request("GET", url, None, headers)
}

#[test]
fn ranges_validators_and_names_behave_as_a_static_file_server() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    let (_daemon, api, id, url) = ready_master(&env);
    let file = std::fs::read(env.master_path(&id)).unwrap();
    let size = file.len();

    let whole = get(&api, &url, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, file);
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    let etag = whole.header("etag").unwrap().to_owned();
    let last_modified = whole.header("last-modified").unwrap().to_owned();
    assert!(whole.header("content-disposition").is_none());

    let head = api.request("HEAD", &url, None, &[]);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );

    let range = |spec: &str| get(&api, &url, &[&format!("Range: {spec}")]);
    let r = range("bytes=0-99");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, file[..100]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-99/{size}").as_str())
    );
    let r = range("bytes=-500");
    assert_eq!((r.status, r.body.as_slice()), (206, &file[size - 500..]));
    let r = range(&format!("bytes={}-", size - 10));
    assert_eq!((r.status, r.body.as_slice()), (206, &file[size - 10..]));
    let r = range(&format!("bytes=100-{}", size * 2));
    assert_eq!((r.status, r.body.as_slice()), (206, &file[100..]));
    let r = range(&format!("bytes={size}-"));
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    // Several ranges are answered with the whole file, as RFC 9110 allows.
    let r = range("bytes=0-9,20-29");
    assert_eq!((r.status, r.body.len()), (200, size));
    let r = range("bytes=9-1");
    assert_eq!(r.status, 200, "an invalid range is ignored");

    let r = get(&api, &url, &[&format!("If-None-Match: {etag}")]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get(
        &api,
        &url,
        &[&format!("If-Modified-Since: {last_modified}")],
    );
    assert_eq!(r.status, 304);
    let r = get(&api, &url, &["If-None-Match: \"other\""]);
    assert_eq!(r.status, 200);
    let r = get(
        &api,
        &url,
        &["Range: bytes=0-9", &format!("If-Range: {etag}")],
    );
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = get(&api, &url, &["Range: bytes=0-9", "If-Range: \"stale\""]);
    assert_eq!(
        (r.status, r.body.len()),
        (200, size),
        "a stale If-Range gets the whole file"
    );

    for (name, expected) in [
        ("clip.mp4", "attachment; filename=\"clip.mp4\""),
        ("../x", "attachment; filename=\"_x\""),
        ("a%22b.mp4", "attachment; filename=\"a_b.mp4\""),
        (
            "a%0D%0ASet-Cookie:%20x=1",
            "attachment; filename=\"aSet-Cookie_ x=1\"",
        ),
        (
            "%C3%A9t%C3%A9.mp4",
            "attachment; filename=\"_t_.mp4\"; filename*=UTF-8''%C3%A9t%C3%A9.mp4",
        ),
    ] {
        let r = get(&api, &format!("{url}&download={name}"), &[]);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-disposition"), Some(expected), "{name}");
        assert!(r.header("set-cookie").is_none());
    }
}

#[test]
fn tampered_foreign_and_expired_urls_are_refused() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    let (_daemon, api, id, url) = ready_master(&env);
    assert_eq!(get(&api, &url, &[]).status, 200);
    let parsed = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let base = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap());
    let base = format!("{base}:{}", parsed.port().unwrap());
    let with = |path: &str, expires: &str, signature: &str| {
        format!("{base}{path}?expires={expires}&signature={signature}")
    };
    let sig = &q["signature"];
    let exp = &q["expires"];
    let mut flipped = sig.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let later = (exp.parse::<i64>().unwrap() + 3600).to_string();
    for bad in [
        with(parsed.path(), exp, &flipped),
        with(parsed.path(), &later, sig),
        with(&format!("/downloads/{id}/other.mp4"), exp, sig),
        with(parsed.path(), exp, ""),
        format!("{base}{}", parsed.path()),
    ] {
        let r = get(&api, &bad, &[]);
        assert_eq!(r.status, 403, "{bad}");
        assert_eq!(r.error_type(), "forbidden");
    }
    // The clock moves a day and a minute on: the URL has expired, and so has
    // master access, as in Mux.
    std::fs::write(env.dir.path().join("clock"), (24 * 3600 + 60).to_string()).unwrap();
    let r = get(&api, &url, &[]);
    assert_eq!(r.status, 403);
    assert!(
        r.error_message().contains("expired"),
        "{}",
        r.error_message()
    );
    let authed = api.with_credentials(Some(&format!(
        "{}:{}",
        common::http::TOKEN_ID,
        common::http::TOKEN_SECRET
    )));
    let asset = authed.get(&format!("/video/v1/assets/{id}")).json()["data"].clone();
    assert_eq!(asset["master_access"], "none");
    assert!(asset.get("master").is_none());
}

#[test]
fn a_url_from_another_key_is_refused() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    let (mut daemon, api, _id, url) = ready_master(&env);
    assert_eq!(get(&api, &url, &[]).status, 200);
    daemon.terminate();
    // A new key (as another installation would have) makes old URLs foreign.
    std::fs::remove_file(env.data("url-signing.key")).unwrap();
    let daemon = env.start_daemon();
    let api = env.api(&daemon).with_credentials(None);
    let port_url = {
        let old = url::Url::parse(&url).unwrap();
        let mut new = url::Url::parse(&api.base).unwrap();
        new.set_path(old.path());
        new.set_query(old.query());
        new.to_string()
    };
    assert_eq!(get(&api, &port_url, &[]).status, 403);
}

#[test]
fn downloads_run_while_a_transcode_does() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    // 100 ms per encoded frame: the encode below takes half a minute, so it
    // certainly runs all through the downloads (the ready master is a
    // remux and never meets the encoder).
    env.edit_fragment("h264-plus.gst", |text| {
        text.replace("reeldx264enc", "identity sleep-time=100000 ! reeldx264enc")
    });
    let (_daemon, api, id, url) = ready_master(&env);
    let file = std::fs::read(env.master_path(&id)).unwrap();
    let mp4 = env.data("import/busy.mp4");
    make_clip(&mp4, ClipSpec::av(320, 240, 10));
    let source = common::to_matroska(&mp4);
    let authed = api.with_credentials(Some(&format!(
        "{}:{}",
        common::http::TOKEN_ID,
        common::http::TOKEN_SECRET
    )));
    let r = authed.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({"inputs": [{"url": file_url(&source)}]})),
        &[],
    );
    let busy = r.json()["data"]["id"].as_str().unwrap().to_owned();
    wait_for_asset(
        &authed,
        &busy,
        READY_WITHIN,
        "the transcode to be under way",
        |a| a["progress"]["state"] == "transcoding",
    );
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let api = api.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let start = i * 1000;
                let r = api.request(
                    "GET",
                    &url,
                    None,
                    &[&format!("Range: bytes={start}-{}", start + 65_535)],
                );
                (start, r)
            })
        })
        .collect();
    for h in handles {
        let (start, r) = h.join().unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(r.body, file[start..start + 65_536]);
    }
    let whole = get(&api, &url, &[]);
    assert_eq!(whole.body, file);
    let asset = authed.get(&format!("/video/v1/assets/{busy}")).json()["data"].clone();
    assert_eq!(
        asset["status"], "preparing",
        "the transcode was still running"
    );
}

#[test]
fn downloads_beyond_the_limit_wait_their_turn() {
    let env = TestEnv::with_store(
        StoreKind::Local,
        &[(
            "max_concurrent_downloads = 256",
            "max_concurrent_downloads = 1",
        )],
    );
    let (_daemon, api, id, url) = ready_master(&env);
    // A master larger than the socket buffers, and a client that reads it
    // slowly: it holds the one download slot.
    let big: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let tmp = env.master_path(&id).with_extension("tmp");
    std::fs::write(&tmp, &big).unwrap();
    std::fs::rename(&tmp, env.master_path(&id)).unwrap();
    let mut slow = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--limit-rate", "4k", &url])
        .spawn()
        .unwrap();
    // Only once the slow download is under way (its 200 is in the log) may
    // another request come: before, it could take the slot itself.
    common::wait_for(
        Duration::from_secs(30),
        "the slow download to start",
        || {
            common::http::strip_ansi(&env.logs())
                .lines()
                .any(|l| l.contains("path=/downloads/") && l.contains("status=200"))
        },
    );
    let mut refused = None;
    common::wait_for(Duration::from_secs(30), "a download to be refused", || {
        let r = get(&api, &url, &["Range: bytes=0-0"]);
        let busy = r.status == 503;
        if busy {
            refused = Some(r);
        }
        busy
    });
    let refused = refused.unwrap();
    assert_eq!(refused.error_type(), "service_unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.header("x-should-retry").is_none(),
        "a retry can help"
    );
    slow.kill().unwrap();
    slow.wait().unwrap();
    common::wait_for(Duration::from_secs(30), "the slot to be free again", || {
        get(&api, &url, &["Range: bytes=0-0"]).status == 206
    });
}
