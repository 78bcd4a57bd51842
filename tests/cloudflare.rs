//! Cloudflare Stream's API over real HTTP against a running daemon: Bearer
//! auth and account ids, a video's state, downloads whose `percentComplete`
//! is the encode's real progress, `requireSignedURLs`, the token endpoint
//! (`downloadable`, IP rules, country rules without a GeoIP database), and
//! signing keys. Refusals come in Cloudflare's envelope.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::http::{Api, Http, file_url, wait_for_asset};
use common::{StoreKind, TestEnv, long_clip};
use serde_json::{Value, json};

const ACCOUNT: &str = "acct0123456789";
const TOKEN: &str = "cf-api-token-0123456789";

fn cloudflare_env() -> TestEnv {
    TestEnv::with_store(
        StoreKind::Local,
        &[
            (
                "# account_id = \"023e105f4ecef8ad9ca31a8372d0c353\"",
                &format!("account_id = \"{ACCOUNT}\""),
            ),
            (
                "# api_token = \"at least 16 characters\"",
                &format!("api_token = \"{TOKEN}\""),
            ),
        ],
    )
}

fn cf(api: &Api, method: &str, path: &str, body: Option<&Value>) -> Http {
    api.with_credentials(None).request(
        method,
        &format!("/client/v4/accounts/{ACCOUNT}/stream{path}"),
        body,
        &[&format!("Authorization: Bearer {TOKEN}")],
    )
}

fn result(r: &Http) -> Value {
    let body = r.json();
    assert_eq!(body["success"], true, "{body:#}");
    body["result"].clone()
}

fn refused(r: &Http, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["success"], false);
    assert!(body["result"].is_null());
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(body["errors"][0]["code"].as_u64().is_some());
    assert!(message.contains(says), "{message:?} lacks {says:?}");
}

#[test]
fn downloads_report_real_progress_and_tokens_guard_signed_videos() {
    let env = cloudflare_env();
    let import = env.data("import");
    std::fs::create_dir_all(&import).unwrap();
    let clip = import.join("long.mkv");
    std::fs::rename(long_clip(&env), &clip).unwrap();
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    // Bearer auth, then the account.
    let anonymous = api.with_credentials(None);
    let path = format!("/client/v4/accounts/{ACCOUNT}/stream/keys");
    refused(
        &anonymous.request("GET", &path, None, &[]),
        401,
        "Authentication error",
    );
    let wrong = anonymous.request(
        "GET",
        &path,
        None,
        &["Authorization: Bearer wrong-token-0123456789"],
    );
    refused(&wrong, 401, "Authentication error");
    let other = anonymous.request(
        "GET",
        "/client/v4/accounts/someoneelse/stream/keys",
        None,
        &[&format!("Authorization: Bearer {TOKEN}")],
    );
    refused(&other, 403, "account");
    refused(
        &cf(&api, "GET", "/NoSuchVideo123", None),
        404,
        "does not exist",
    );

    // An encoded (not remuxed) source, so the downloads have a real encode
    // to report on while the asset prepares.
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({
            "inputs": [{"url": file_url(&clip)}],
            "video_quality": "premium",
            "static_renditions": [{"resolution": "highest"}, {"resolution": "audio-only"}],
        })),
        &[],
    );
    assert_eq!(r.status, 201);
    let uid = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    let start = Instant::now();
    let downloads = loop {
        let d = result(&cf(&api, "GET", &format!("/{uid}/downloads"), None));
        if let Some(pct) = d["default"]["percentComplete"].as_f64()
            && seen.last() != Some(&pct)
        {
            seen.push(pct);
        }
        if d["default"]["status"] == "ready" && d["audio"]["status"] == "ready" {
            break d;
        }
        assert_ne!(d["default"]["status"], "error", "{d:#}");
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "not ready: {d:#}"
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 100.0),
        "no progress between 0 and 100 was seen: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {seen:?}"
    );
    assert_eq!(downloads["default"]["percentComplete"], 100.0);
    let url = downloads["default"]["url"].as_str().unwrap().to_owned();
    assert!(
        url.ends_with(&format!("/stream/{uid}/downloads/default.mp4")),
        "{url}"
    );

    // The video object.
    let video = result(&cf(&api, "GET", &format!("/{uid}"), None));
    assert_eq!(video["uid"], uid.as_str());
    assert_eq!(video["readyToStream"], true);
    assert_eq!(video["status"]["state"], "ready");
    assert_eq!(video["status"]["pctComplete"], "100.0");
    assert_eq!(video["requireSignedURLs"], false);
    assert_eq!(video["input"]["width"], 1920);
    assert!(
        (video["duration"].as_f64().unwrap() - 8.0).abs() < 0.5,
        "{video:#}"
    );

    // The download URL, public while requireSignedURLs is off.
    let highest = std::fs::read(env.stored(&uid, "highest.mp4")).unwrap();
    let r = anonymous.request("GET", &url, None, &["Range: bytes=0-1023"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, highest[..1024]);
    let audio = anonymous.request("GET", &url.replace("default.mp4", "audio.m4a"), None, &[]);
    assert_eq!(audio.status, 200);

    // Signed URLs: the uid no longer opens it; a token from the token
    // endpoint does, if it allows downloads and its rules admit the viewer.
    let edited = result(&cf(
        &api,
        "POST",
        &format!("/{uid}"),
        Some(&json!({"requireSignedURLs": true, "meta": {"name": "Long"}})),
    ));
    assert_eq!(edited["requireSignedURLs"], true);
    assert_eq!(edited["meta"]["name"], "Long");
    refused(
        &anonymous.request("GET", &url, None, &[]),
        403,
        "requires signed URLs",
    );
    let token_for = |body: Value| {
        let t = result(&cf(&api, "POST", &format!("/{uid}/token"), Some(&body)));
        t["token"].as_str().unwrap().to_owned()
    };
    let fetch = |token: &str| {
        anonymous.request(
            "GET",
            &url.replace(&uid, token),
            None,
            &["Range: bytes=-100"],
        )
    };
    let r = fetch(&token_for(json!({"downloadable": true})));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, highest[highest.len() - 100..]);
    refused(&fetch(&token_for(json!({}))), 403, "downloadable");
    let allow_loopback = json!([
        {"type": "ip.src", "action": "allow", "ip": ["127.0.0.1/32"]},
        {"type": "any", "action": "block"},
    ]);
    assert_eq!(
        fetch(&token_for(
            json!({"downloadable": true, "accessRules": allow_loopback})
        ))
        .status,
        206
    );
    let block_loopback = json!([{"type": "ip.src", "action": "block", "ip": ["127.0.0.0/8"]}]);
    refused(
        &fetch(&token_for(
            json!({"downloadable": true, "accessRules": block_loopback}),
        )),
        403,
        "access rule 0 (ip.src) blocks",
    );
    let by_country = json!([{"type": "ip.geoip.country", "action": "allow", "country": ["US"]}]);
    refused(
        &fetch(&token_for(
            json!({"downloadable": true, "accessRules": by_country}),
        )),
        403,
        "GeoIP",
    );
    let too_long = cf(
        &api,
        "POST",
        &format!("/{uid}/token"),
        Some(&json!({"exp": 4_000_000_000u64})),
    );
    refused(&too_long, 400, "24 hours");

    // A signing key of the caller's own: a token it signs opens the file
    // until the key is deleted.
    let key = result(&cf(&api, "POST", "/keys", None));
    let kid = key["id"].as_str().unwrap().to_owned();
    let decode = |field: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(key[field].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let jwk: Value = serde_json::from_str(&decode("jwk")).unwrap();
    assert_eq!(
        (jwk["kid"].as_str(), jwk["kty"].as_str()),
        (Some(kid.as_str()), Some("RSA"))
    );
    assert!(jwk["d"].is_string());
    let signed_with_pem = token_for(json!({"id": kid, "pem": key["pem"], "downloadable": true}));
    assert_eq!(fetch(&signed_with_pem).status, 206);
    let listed = result(&cf(&api, "GET", "/keys", None));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == kid.as_str())
    );
    assert_eq!(
        result(&cf(&api, "DELETE", &format!("/keys/{kid}"), None)),
        "ok"
    );
    refused(&fetch(&signed_with_pem), 403, "not known");

    // Deleting one download leaves the other.
    assert_eq!(
        result(&cf(
            &api,
            "DELETE",
            &format!("/{uid}/downloads/audio"),
            None
        )),
        "ok"
    );
    let left = result(&cf(&api, "GET", &format!("/{uid}/downloads"), None));
    assert!(left.get("audio").is_none(), "{left:#}");
    assert_eq!(left["default"]["status"], "ready");
    let asset = wait_for_asset(&api, &uid, Duration::from_secs(5), "audio gone", |a| {
        a["static_renditions"]["files"]
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x["name"] != "audio.m4a"))
    });
    assert_eq!(asset["id"], uid.as_str());

    // Made again from the stored master; the legacy POST /downloads answers
    // with the default one, already there.
    let again = result(&cf(&api, "POST", &format!("/{uid}/downloads/audio"), None));
    assert!(
        again["audio"]["status"] == "inprogress" || again["audio"]["status"] == "ready",
        "{again:#}"
    );
    let start = Instant::now();
    while result(&cf(&api, "GET", &format!("/{uid}/downloads"), None))["audio"]["status"] != "ready"
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "audio was not made again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let legacy = result(&cf(&api, "POST", &format!("/{uid}/downloads"), None));
    assert_eq!(legacy["default"]["status"], "ready");
    refused(
        &cf(&api, "POST", &format!("/{uid}/downloads/subtitles"), None),
        400,
        "not a download type",
    );
}
