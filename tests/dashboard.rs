//! The web dashboard: its session and CSRF rules and headers with curl,
//! then the whole page in headless Chromium (Debian's package, driven by
//! playwright-core from tests/sdk/dashboard.mjs) against a real daemon:
//! sign in, a dropped file's row going from preparing to ready, playing the
//! master, a rendition added and deleted, the asset deleted, a markup title
//! shown as text, and an upload dropped on the page. The screenshots it
//! takes are left in the test's target folder (the README's come from it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{Api, TOKEN_ID, TOKEN_SECRET, wait_for_asset};
use common::{ClipSpec, TestEnv, make_clip, sdk_dir, to_matroska};
use serde_json::{Value, json};

/// The `reeld_session=…` pair of a sign-in answer's `Set-Cookie`.
fn session_cookie(answer: &common::http::Http) -> String {
    let set = answer.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().unwrap().to_owned()
}

fn sign_in(api: &Api, secret: &str) -> common::http::Http {
    api.with_credentials(None).request(
        "POST",
        "/ui/session",
        Some(&json!({"token_id": TOKEN_ID, "token_secret": secret})),
        &[],
    )
}

#[test]
fn sessions_csrf_and_headers() {
    let env = TestEnv::new(&[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let anonymous = api.with_credentials(None);

    // The page, with its policy; its files by name only.
    let page = anonymous.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    for part in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(anonymous.get("/ui/app.js").status, 200);
    for path in [
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/nope.js",
        "/ui/",
    ] {
        assert_eq!(anonymous.get(path).status, 404, "{path}");
    }

    // A wrong secret: 401, no cookie; a browser's request gets no Basic
    // challenge (which would open the browser's own dialog).
    let wrong = sign_in(&api, "not-the-secret-0123");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.header("www-authenticate").is_none());
    let from_page = anonymous.request(
        "GET",
        "/video/v1/assets",
        None,
        &["Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(from_page.status, 401);
    assert!(from_page.header("www-authenticate").is_none());
    assert!(
        anonymous
            .get("/video/v1/assets")
            .header("www-authenticate")
            .is_some()
    );

    // Not JSON, or from another site: refused before the secret is looked at.
    let form = anonymous.request_raw(
        "POST",
        "/ui/session",
        &format!("token_id={TOKEN_ID}&token_secret={TOKEN_SECRET}"),
        &["Content-Type: application/x-www-form-urlencoded"],
    );
    assert!(matches!(form.status, 400 | 403), "{}", form.status);
    assert!(form.header("set-cookie").is_none());
    let cross = anonymous.request(
        "POST",
        "/ui/session",
        Some(&json!({"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET})),
        &["Sec-Fetch-Site: cross-site"],
    );
    assert_eq!(cross.status, 403);

    // The right pair: an HttpOnly, SameSite=Strict cookie and a CSRF token.
    let signed = sign_in(&api, TOKEN_SECRET);
    assert_eq!(
        signed.status,
        201,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let set = signed.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let cookie = format!("Cookie: {}", session_cookie(&signed));
    let csrf = signed.json()["data"]["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(csrf.len() >= 32);
    let me = anonymous.request("GET", "/ui/session", None, &[&cookie]);
    assert_eq!(me.json()["data"]["token_id"], TOKEN_ID);
    assert_eq!(me.json()["data"]["csrf_token"], csrf.as_str());

    // Reads need only the cookie; changes need the CSRF token too.
    assert_eq!(
        anonymous
            .request("GET", "/video/v1/assets", None, &[&cookie])
            .status,
        200
    );
    let body = json!({"passthrough": "x"});
    let no_token = anonymous.request("POST", "/video/v1/uploads", Some(&body), &[&cookie]);
    assert_eq!(no_token.status, 403);
    assert!(
        no_token.error_message().contains("CSRF"),
        "{}",
        no_token.error_message()
    );
    let bad_token = anonymous.request(
        "POST",
        "/video/v1/uploads",
        Some(&body),
        &[
            &cookie,
            "X-CSRF-Token: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    );
    assert_eq!(bad_token.status, 403);
    let csrf_header = format!("X-CSRF-Token: {csrf}");
    let made = anonymous.request(
        "POST",
        "/video/v1/uploads",
        Some(&json!({"cors_origin": api.base})),
        &[&cookie, &csrf_header],
    );
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    // A forged cookie is nobody's session.
    let forged = anonymous.request(
        "GET",
        "/video/v1/assets",
        None,
        &[
            "Cookie: reeld_session=forged",
            "Sec-Fetch-Site: same-origin",
        ],
    );
    assert_eq!(forged.status, 401);

    // The queue route the dashboard's queue page reads.
    let jobs = api.get("/video/v1/jobs");
    assert_eq!(jobs.status, 200);
    assert!(jobs.json()["data"].is_array());

    // A browser holding Basic credentials changes nothing for another site.
    let forged_form = api.request(
        "POST",
        "/video/v1/uploads",
        Some(&json!({"cors_origin": "https://evil.example"})),
        &["Sec-Fetch-Site: cross-site"],
    );
    assert_eq!(forged_form.status, 403);
    assert_eq!(
        api.request(
            "GET",
            "/video/v1/assets",
            None,
            &["Sec-Fetch-Site: cross-site"]
        )
        .status,
        200
    );

    // Two session cookies (one planted beside the real one): neither counts.
    let shadowed = format!("{cookie}; reeld_session=planted");
    assert_eq!(
        anonymous
            .request("GET", "/video/v1/assets", None, &[&shadowed])
            .status,
        401
    );

    // Sign-out ends the session for every request that carries it.
    let out = anonymous.request("DELETE", "/ui/session", None, &[&cookie, &csrf_header]);
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        anonymous
            .request("GET", "/video/v1/assets", None, &[&cookie])
            .status,
        401
    );
}

#[test]
fn the_asset_list_filters_by_status_and_searches() {
    let env = TestEnv::new(&[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let clip = env.dir.path().join("a.mp4");
    make_clip(&clip, ClipSpec::av(320, 240, 1));
    std::fs::write(
        env.dir.path().join("not-media.mp4"),
        b"this is not a video file at all",
    )
    .unwrap();
    std::fs::copy(&clip, env.watch_dir().join("holiday.mp4")).unwrap();
    std::fs::copy(
        env.dir.path().join("not-media.mp4"),
        env.watch_dir().join("broken.mp4"),
    )
    .unwrap();
    env.wait_for_assets(Duration::from_secs(60), "both finished", |a| {
        common::all_finished(a, 2)
    });
    let list = |query: &str| -> Vec<Value> {
        let r = api.get(&format!("/video/v1/assets?{query}"));
        assert_eq!(
            r.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["data"].as_array().unwrap().clone()
    };
    let all = list("");
    assert_eq!(all.len(), 2);
    let ready = list("status=ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["status"], "ready");
    let errored = list("status=errored");
    assert_eq!(errored.len(), 1);
    let id = ready[0]["id"].as_str().unwrap();
    api.request(
        "PATCH",
        &format!("/video/v1/assets/{id}"),
        Some(&json!({"meta": {"title": "Summer 100% Holiday_"}, "passthrough": "order-77"})),
        &[],
    );
    for query in [
        "search=holiday",
        "search=100%25",
        "search=ORDER-7",
        &format!("search={id}"),
    ] {
        let found = list(query);
        assert_eq!(found.len(), 1, "{query}");
        assert_eq!(found[0]["id"], id, "{query}");
    }
    assert!(list("search=winter").is_empty());
    // `_` and `%` are searched for, not wildcards.
    assert!(list("search=y_H").is_empty());
    assert_eq!(api.get("/video/v1/assets?status=done").status, 400);
}

#[test]
fn chromium_uses_the_dashboard() {
    common::assert_browser_installed();
    // Encoded, not remuxed (Matroska), with x264's slow preset and 25 ms
    // per frame held before the encoder: at least 9 s of encoding, so many of
    // the page's refreshes (progress is written once a second) see it move.
    let env = TestEnv::new(&[("video_quality = \"plus\"", "video_quality = \"premium\"")]);
    env.edit_fragment("h264-premium.gst", |text| {
        text.replace("reeldx264enc", "identity sleep-time=25000 ! reeldx264enc")
    });
    let mp4 = env.dir.path().join("drop.mp4");
    make_clip(&mp4, ClipSpec::av(1280, 720, 12));
    let drop_clip = to_matroska(&mp4);
    let upload_clip = env.dir.path().join("from-the-page.mp4");
    make_clip(&upload_clip, ClipSpec::av(640, 360, 2));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    let out = Command::new("node")
        .arg(sdk_dir().join("dashboard.mjs"))
        .current_dir(sdk_dir())
        .env("BASE_URL", &api.base)
        .env("TOKEN_ID", TOKEN_ID)
        .env("TOKEN_SECRET", TOKEN_SECRET)
        .env("WATCH_DIR", env.watch_dir())
        .env("DROP_CLIP", &drop_clip)
        .env("UPLOAD_CLIP", &upload_clip)
        .env("SHOTS_DIR", &shots)
        .output()
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard.mjs failed:\n{}\n{stderr}\ndaemon:\n{}",
        String::from_utf8_lossy(&out.stdout),
        env.logs()
    );
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no result ({e}):\n{stderr}"));

    // The bar rose while the page watched: several figures, increasing.
    let progress: Vec<f64> = seen["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(progress.len() >= 2, "progress seen: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(
        progress.iter().any(|p| *p > 0.0 && *p < 100.0),
        "{progress:?}"
    );
    assert!(seen["played"].as_f64().unwrap() > 0.5);

    // What the page did, as the API sees it.
    let dropped = seen["asset_id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/video/v1/assets/{dropped}")).status, 404);
    let uploaded = wait_for_asset(
        &api,
        seen["uploaded_id"].as_str().unwrap(),
        Duration::from_secs(120),
        "ready",
        |a| a["status"] != "preparing",
    );
    assert_eq!(uploaded["status"], "ready", "{uploaded:#}");
    assert_eq!(uploaded["meta"]["title"], "from-the-page.mp4");
    assert!(uploaded["upload_id"].is_string());

    for name in ["dashboard-assets.png", "dashboard-asset.png"] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
    }
}

#[test]
fn a_session_outlives_a_restart_but_not_a_new_secret() {
    let env = TestEnv::new(&[]);
    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let signed = sign_in(&api, TOKEN_SECRET);
    assert_eq!(signed.status, 201);
    let cookie = format!("Cookie: {}", session_cookie(&signed));
    daemon.terminate();

    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let anonymous = api.with_credentials(None);
    let after_restart = anonymous.request("GET", "/video/v1/assets", None, &[&cookie]);
    assert_eq!(after_restart.status, 200);
    drop(daemon);

    // The same token id with a new secret: the old sign-in is over.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(TOKEN_SECRET, "a-new-secret-0123456789"),
    )
    .unwrap();
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let anonymous = api.with_credentials(None);
    let after_rotation = anonymous.request("GET", "/video/v1/assets", None, &[&cookie]);
    assert_eq!(after_rotation.status, 401);
}
