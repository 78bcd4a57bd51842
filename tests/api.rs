//! The Mux-compatible HTTP API over real HTTP (curl) against `reeld run`:
//! auth, every asset route, validation errors, pagination, master access,
//! static renditions, and deletes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::http::{Api, file_url, wait_for_asset};
use common::{ClipSpec, TestEnv, make_clip};
use serde_json::{Value, json};

const READY_WITHIN: Duration = Duration::from_secs(120);

/// A short standard clip in the allowed import folder.
fn import_clip(env: &TestEnv, name: &str, spec: ClipSpec) -> PathBuf {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    make_clip(&path, spec);
    path
}

fn create(api: &Api, body: Value) -> Value {
    let r = api.request("POST", "/video/v1/assets", Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn ready(api: &Api, id: &str) -> Value {
    wait_for_asset(api, id, READY_WITHIN, "the asset to be ready", |a| {
        a["status"] == "ready"
            && a["static_renditions"]["status"]
                .as_str()
                .is_none_or(|s| s != "preparing")
    })
}

#[test]
fn auth_is_required_and_checked() {
    let env = TestEnv::new(&[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    let health = api.with_credentials(None).get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    for credentials in [
        None,
        Some("test-token:wrong-secret-0123456789"),
        Some("other:test-secret-0123456789"),
        Some("test-token:"),
    ] {
        let r = api.with_credentials(credentials).get("/video/v1/assets");
        assert_eq!(r.status, 401, "{credentials:?}");
        assert_eq!(r.error_type(), "unauthorized");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic"))
        );
        assert_eq!(r.header("x-should-retry"), Some("false"));
    }
    // A garbled header is a 401 too, not a 400 or a crash.
    let r = api.with_credentials(None).request(
        "GET",
        "/video/v1/assets",
        None,
        &["Authorization: Basic !!!"],
    );
    assert_eq!(r.status, 401);

    let ok = api.request(
        "GET",
        "/video/v1/assets",
        None,
        &["Content-Type: application/json"],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!({"data": [], "next_cursor": null}));

    let missing = api.get("/video/v1/nothing-here");
    assert_eq!(
        (missing.status, missing.error_type().as_str()),
        (404, "not_found")
    );
    // The secret never reaches the log.
    assert!(!env.logs().contains(common::http::TOKEN_SECRET));
}

#[test]
fn every_invalid_request_names_its_problem() {
    let env = TestEnv::new(&[]);
    let clip = import_clip(&env, "a.mp4", ClipSpec::av(320, 240, 2));
    let outside = env.data("outside.mp4");
    std::fs::copy(&clip, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, env.data("import/link.mp4")).unwrap();
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let url = file_url(&clip);
    let long = |n: usize| "x".repeat(n);

    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "inputs[0].url"),
        (
            json!({"inputs": [{"url": "http://169.254.169.254/latest/meta-data/"}]}),
            "169.254.169.254 is a link-local address",
        ),
        (
            json!({"inputs": [{"url": "ftp://example.com/a.mp4"}]}),
            "ftp://",
        ),
        (
            json!({"inputs": [{"url": format!("{}/../outside.mp4", file_url(&env.data("import")))}]}),
            "allowed_input_dirs",
        ),
        (
            json!({"inputs": [{"url": file_url(&env.data("import/link.mp4"))}]}),
            "allowed_input_dirs",
        ),
        (
            json!({"inputs": [{"url": file_url(&env.data("import/none.mp4"))}]}),
            "none.mp4",
        ),
        (
            json!({"inputs": [{"url": url}], "passthrough": long(256)}),
            "passthrough",
        ),
        (
            json!({"inputs": [{"url": url}], "meta": {"title": long(513)}}),
            "meta.title",
        ),
        (
            json!({"inputs": [{"url": url}], "meta": {"creator_id": long(129)}}),
            "meta.creator_id",
        ),
        (
            json!({"inputs": [{"url": url}], "max_resolution_tier": "4k"}),
            "max_resolution_tier",
        ),
        (
            json!({"inputs": [{"url": url}], "video_quality": 3}),
            "video_quality",
        ),
        (
            json!({"inputs": [{"url": url}], "static_renditions": [{"resolution": "4k"}]}),
            "static_renditions[0].resolution",
        ),
    ];
    for (body, names) in cases {
        let r = api.request("POST", "/video/v1/assets", Some(&body), &[]);
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_type(), "invalid_parameters");
        assert!(
            r.error_message().contains(names),
            "{body}: {}",
            r.error_message()
        );
        assert_eq!(r.header("x-should-retry"), Some("false"));
    }
    let not_json = api.request_raw("POST", "/video/v1/assets", "{not json", &[]);
    assert_eq!(
        (not_json.status, not_json.error_type().as_str()),
        (400, "invalid_parameters")
    );
    let too_big = api.request_raw(
        "POST",
        "/video/v1/assets",
        &format!("{{\"x\":\"{}\"}}", long(2 << 20)),
        &[],
    );
    assert_eq!(too_big.status, 413);

    // Unknown fields are ignored, as Mux ignores them.
    let asset = create(
        &api,
        json!({"inputs": [{"url": url}], "not_a_mux_field": 1, "playback_policies": ["public"]}),
    );
    let id = asset["id"].as_str().unwrap().to_owned();

    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("page=0", "page"),
        ("cursor=zzz", "cursor"),
    ] {
        let r = api.get(&format!("/video/v1/assets?{query}"));
        assert_eq!(r.status, 400, "{query}");
        assert!(
            r.error_message().contains(name),
            "{query}: {}",
            r.error_message()
        );
    }
    let bad_id = api.get("/video/v1/assets/not..an-id");
    assert_eq!(
        (bad_id.status, bad_id.error_type().as_str()),
        (400, "invalid_parameters")
    );
    let unknown = api.get("/video/v1/assets/abcdefABCDEF0123456789abcdefABCD");
    assert_eq!(
        (unknown.status, unknown.error_type().as_str()),
        (404, "not_found")
    );

    let patch =
        |body: Value| api.request("PATCH", &format!("/video/v1/assets/{id}"), Some(&body), &[]);
    for (body, name) in [
        (json!({"passthrough": long(256)}), "passthrough"),
        (json!({"passthrough": 5}), "passthrough"),
        (json!({"meta": {"title": long(513)}}), "meta.title"),
        (json!({"meta": {"external_id": 1}}), "meta.external_id"),
        (json!({"meta": "x"}), "meta"),
    ] {
        let r = patch(body.clone());
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.error_message().contains(name),
            "{body}: {}",
            r.error_message()
        );
    }
    let access = |body: Value| {
        api.request(
            "PUT",
            &format!("/video/v1/assets/{id}/master-access"),
            Some(&body),
            &[],
        )
    };
    let r = access(json!({"master_access": "forever"}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("master_access"));
    ready(&api, &id);
    let r = api.request(
        "POST",
        &format!("/video/v1/assets/{id}/static-renditions"),
        Some(&json!({"resolution": "4k"})),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("resolution"),
        "{}",
        r.error_message()
    );
    let r = api.request(
        "PUT",
        &format!("/video/v1/assets/{id}/mp4-support"),
        Some(&json!({"mp4_support": "everything"})),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("mp4_support"));
    let r = api.request(
        "DELETE",
        &format!("/video/v1/assets/{id}/static-renditions/nope"),
        None,
        &[],
    );
    assert_eq!((r.status, r.error_type().as_str()), (404, "not_found"));
}

#[test]
fn pages_walk_every_asset_once() {
    let env = TestEnv::new(&[]);
    let clip = import_clip(&env, "a.mp4", ClipSpec::av(320, 240, 1));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let mut created = Vec::new();
    for i in 0..5 {
        let a = create(
            &api,
            json!({"inputs": [{"url": file_url(&clip)}], "passthrough": format!("n{i}")}),
        );
        created.push(a["id"].as_str().unwrap().to_owned());
    }
    // By cursor, two at a time: newest first, each once, then null.
    let mut seen = Vec::new();
    let mut path = "/video/v1/assets?limit=2".to_owned();
    loop {
        let page = api.get(&path).json();
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/video/v1/assets?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut expected = created.clone();
    expected.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "each asset once");
    // By page number: the same order.
    let mut by_page = Vec::new();
    for page in 1..=4 {
        let data = api
            .get(&format!("/video/v1/assets?limit=2&page={page}"))
            .json()["data"]
            .as_array()
            .unwrap()
            .clone();
        by_page.extend(data.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(by_page, seen);
    // The CLI prints the same objects from the same code.
    let cli = env.assets();
    let cli_ids: Vec<&str> = cli.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(cli_ids, seen.iter().map(String::as_str).collect::<Vec<_>>());
    let one = api.get(&format!("/video/v1/assets/{}", created[0])).json()["data"].clone();
    let from_cli = cli.iter().find(|a| a["id"] == one["id"]).unwrap();
    assert_eq!(from_cli["passthrough"], one["passthrough"]);
    assert_eq!(from_cli["created_at"], one["created_at"]);
}

#[test]
fn an_asset_over_its_whole_life() {
    let env = TestEnv::new(&[]);
    let clip = import_clip(&env, "life.mp4", ClipSpec::av(640, 360, 3));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    let asset = create(
        &api,
        json!({
            "inputs": [{"url": file_url(&clip)}],
            "static_renditions": [{"resolution": "highest"}],
            "passthrough": "p1",
            "meta": {"title": "A title"},
        }),
    );
    let id = asset["id"].as_str().unwrap().to_owned();
    assert_eq!(asset["status"], "preparing");
    assert_eq!(asset["ingest_type"], "on_demand_url");
    let asset = ready(&api, &id);
    assert_eq!(asset["master_access"], "none");
    assert!(asset.get("master").is_none());
    let file = &asset["static_renditions"]["files"][0];
    assert_eq!(
        (file["name"].as_str(), file["status"].as_str()),
        (Some("highest.mp4"), Some("ready"))
    );
    let highest_url = file["url"]
        .as_str()
        .expect("a ready file carries a signed url")
        .to_owned();
    let got = api.download(&highest_url);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("video/mp4"));
    assert_eq!(
        got.body.len().to_string(),
        file["filesize"].as_str().unwrap()
    );

    // PATCH passthrough and meta.
    let patched = api.request(
        "PATCH",
        &format!("/video/v1/assets/{id}"),
        Some(&json!({"passthrough": "p2", "meta": {"title": "New", "external_id": "e1"}})),
        &[],
    );
    assert_eq!(patched.status, 200);
    let patched = patched.json()["data"].clone();
    assert_eq!(patched["passthrough"], "p2");
    assert_eq!(
        patched["meta"],
        json!({"title": "New", "external_id": "e1"})
    );

    // Master access: on, a URL that serves the master, then off again.
    let on = api.request(
        "PUT",
        &format!("/video/v1/assets/{id}/master-access"),
        Some(&json!({"master_access": "temporary"})),
        &[],
    );
    assert_eq!(on.status, 200);
    let on = on.json()["data"].clone();
    assert_eq!(on["master_access"], "temporary");
    assert_eq!(on["master"]["status"], "ready");
    let master_url = on["master"]["url"].as_str().unwrap().to_owned();
    let master = api.download(&master_url);
    assert_eq!(master.status, 200);
    assert_eq!(
        master.body.len() as u64,
        std::fs::metadata(env.master_path(&id)).unwrap().len()
    );
    let off = api.request(
        "PUT",
        &format!("/video/v1/assets/{id}/master-access"),
        Some(&json!({"master_access": "none"})),
        &[],
    );
    assert_eq!(off.json()["data"]["master_access"], "none");
    assert!(off.json()["data"].get("master").is_none());
    assert_eq!(
        api.with_credentials(None).get(&master_url).status,
        403,
        "the old URL stops working"
    );

    // A static rendition added later: 201 preparing, then ready, then deleted.
    let added = api.request(
        "POST",
        &format!("/video/v1/assets/{id}/static-renditions"),
        Some(&json!({"resolution": "audio-only", "passthrough": "sound"})),
        &[],
    );
    assert_eq!(
        added.status,
        201,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
    let added = added.json()["data"].clone();
    assert_eq!(
        (added["name"].as_str(), added["status"].as_str()),
        (Some("audio.m4a"), Some("preparing"))
    );
    let rendition_id = added["id"].as_str().unwrap().to_owned();
    let asset = wait_for_asset(&api, &id, READY_WITHIN, "audio.m4a to be ready", |a| {
        a["static_renditions"]["files"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["name"] == "audio.m4a" && f["status"] == "ready")
        })
    });
    let audio = common::rendition_file(&asset, "audio.m4a").clone();
    let got = api.download(audio["url"].as_str().unwrap());
    assert_eq!(
        (got.status, got.header("content-type")),
        (200, Some("audio/mp4"))
    );
    let stored = env.stored(&id, "audio.m4a");
    assert!(stored.exists());
    let deleted = api.request(
        "DELETE",
        &format!("/video/v1/assets/{id}/static-renditions/{rendition_id}"),
        None,
        &[],
    );
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert!(!stored.exists(), "the file is removed");
    let asset = api.get(&format!("/video/v1/assets/{id}")).json()["data"].clone();
    let names: Vec<&str> = asset["static_renditions"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["highest.mp4"]);

    // Legacy mp4_support on the same asset is refused (it has static_renditions).
    let legacy = api.request(
        "PUT",
        &format!("/video/v1/assets/{id}/mp4-support"),
        Some(&json!({"mp4_support": "capped-1080p"})),
        &[],
    );
    assert_eq!(legacy.status, 400);

    // Delete: 204, then 404, and the stored files go.
    let gone = api.request("DELETE", &format!("/video/v1/assets/{id}"), None, &[]);
    assert_eq!(gone.status, 204);
    assert_eq!(api.get(&format!("/video/v1/assets/{id}")).status, 404);
    assert_eq!(
        api.request("DELETE", &format!("/video/v1/assets/{id}"), None, &[])
            .status,
        404
    );
    assert_eq!(api.with_credentials(None).get(&highest_url).status, 404);
    common::wait_for(
        Duration::from_secs(30),
        "the deleted asset's files to go",
        || {
            !env.store_root().join("assets").join(&id).exists()
                || common::files_below(&env.store_root().join("assets").join(&id)).is_empty()
        },
    );
    assert!(clip.exists(), "an API input file is never touched");
}

#[test]
fn legacy_mp4_support_is_added_and_removed() {
    let env = TestEnv::new(&[]);
    let clip = import_clip(&env, "legacy.mp4", ClipSpec::av(640, 360, 2));
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let asset = create(
        &api,
        json!({"inputs": [{"url": file_url(&clip)}], "mp4_support": "capped-1080p"}),
    );
    let id = asset["id"].as_str().unwrap().to_owned();
    assert_eq!(asset["mp4_support"], "capped-1080p");
    let asset = ready(&api, &id);
    assert_eq!(
        asset["static_renditions"]["files"][0]["name"],
        "capped-1080p.mp4"
    );
    let put = |v: &str| {
        api.request(
            "PUT",
            &format!("/video/v1/assets/{id}/mp4-support"),
            Some(&json!({"mp4_support": v})),
            &[],
        )
    };
    let r = put("audio-only,capped-1080p");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let asset = ready(&api, &id);
    let mut names: Vec<String> = asset["static_renditions"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}={}",
                f["name"].as_str().unwrap(),
                f["status"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["audio.m4a=ready", "capped-1080p.mp4=ready"]);
    let r = put("none");
    assert_eq!(r.status, 200);
    let asset = r.json()["data"].clone();
    assert!(asset.get("mp4_support").is_none());
    assert!(asset.get("static_renditions").is_none(), "{asset:#}");
    assert!(!env.stored(&id, "capped-1080p.mp4").exists());
    assert!(env.master_path(&id).exists());
}

#[test]
fn an_asset_being_made_refuses_what_needs_it_ready_and_can_be_deleted() {
    let env = TestEnv::new(&[]);
    // 100 ms per frame: the 10 s source takes half a minute to encode, so
    // the job is certainly still running when it is deleted.
    env.edit_fragment("h264-plus.gst", |text| {
        text.replace("reeldx264enc", "identity sleep-time=100000 ! reeldx264enc")
    });
    let mp4 = import_clip(&env, "slow.mp4", ClipSpec::av(320, 240, 10));
    let source = common::to_matroska(&mp4);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let asset = create(
        &api,
        json!({"inputs": [{"url": file_url(&source)}], "master_access": "temporary"}),
    );
    let id = asset["id"].as_str().unwrap().to_owned();
    assert_eq!(asset["master"]["status"], "preparing");
    wait_for_asset(
        &api,
        &id,
        READY_WITHIN,
        "the transcode to be under way",
        |a| {
            a["progress"]["state"] == "transcoding"
                && a["progress"]["progress"].as_f64().unwrap_or(0.0) > 0.0
        },
    );
    for (method, path, body) in [
        (
            "PUT",
            "master-access",
            json!({"master_access": "temporary"}),
        ),
        ("PUT", "mp4-support", json!({"mp4_support": "capped-1080p"})),
        (
            "POST",
            "static-renditions",
            json!({"resolution": "highest"}),
        ),
    ] {
        let r = api.request(
            method,
            &format!("/video/v1/assets/{id}/{path}"),
            Some(&body),
            &[],
        );
        assert_eq!(
            (r.status, r.error_type().as_str()),
            (412, "failed_request"),
            "{path}"
        );
        assert_eq!(r.header("x-should-retry"), Some("false"));
    }
    // The progress moves while the job runs.
    let first = api.get(&format!("/video/v1/assets/{id}")).json()["data"]["progress"]["progress"]
        .as_f64()
        .unwrap();
    wait_for_asset(&api, &id, READY_WITHIN, "the progress to move", |a| {
        a["progress"]["progress"].as_f64().unwrap_or(0.0) > first
    });

    // A DELETE stops the job; nothing is left in the store or the spool.
    let r = api.request("DELETE", &format!("/video/v1/assets/{id}"), None, &[]);
    assert_eq!(r.status, 204);
    assert_eq!(api.get(&format!("/video/v1/assets/{id}")).status, 404);
    common::wait_for(
        Duration::from_secs(60),
        "the job to stop and the files to go",
        || env.logs().contains("Deleted asset's files removed."),
    );
    assert!(env.logs().contains("Job stopped."), "{}", env.logs());
    assert!(common::files_below(&env.store_root().join("assets").join(&id)).is_empty());
    assert!(!env.data(&format!("spool/{id}")).exists());
    assert!(source.exists(), "an API input file is never touched");
    // The worker is free again: a new asset is made.
    let clip = import_clip(&env, "next.mp4", ClipSpec::av(320, 240, 1));
    let next = create(&api, json!({"inputs": [{"url": file_url(&clip)}]}));
    ready(&api, next["id"].as_str().unwrap());
}
