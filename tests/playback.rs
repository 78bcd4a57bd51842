//! Playback IDs and signed tokens, Mux's way, over real HTTP against a
//! running daemon: public and signed IDs, signing keys made by the API,
//! every way a token can be wrong (including `alg: none` and HS256 signed
//! with the public key), ranges on stream URLs, and IDs and keys deleted.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::http::{Api, file_url, wait_for_asset};
use common::{ClipSpec, StoreKind, TestEnv, make_clip};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const READY_WITHIN: Duration = Duration::from_secs(120);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(kid: &str, key: &EncodingKey, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn b64url(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A ready asset with a public and a signed playback ID and two static
/// renditions.
fn ready_asset(env: &TestEnv, api: &Api) -> (Value, String, String) {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 3));
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({
            "inputs": [{"url": file_url(&clip)}],
            "playback_policy": ["public", "signed"],
            "static_renditions": [{"resolution": "highest"}, {"resolution": "audio-only"}],
        })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json()["data"].clone();
    let ids = created["playback_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{created:#}");
    let id_of = |policy: &str| {
        ids.iter().find(|p| p["policy"] == policy).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (public, signed) = (id_of("public"), id_of("signed"));
    let asset = wait_for_asset(
        api,
        created["id"].as_str().unwrap(),
        READY_WITHIN,
        "ready",
        |a| a["status"] == "ready" && a["static_renditions"]["status"] == "ready",
    );
    assert_eq!(asset["playback_ids"], created["playback_ids"]);
    (asset, public, signed)
}

#[test]
fn public_and_signed_playback_ids_serve_renditions_only_with_a_valid_token() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let (asset, public, signed) = ready_asset(&env, &api);
    let asset_id = asset["id"].as_str().unwrap();
    let highest = std::fs::read(env.stored(asset_id, "highest.mp4")).unwrap();
    let viewer = api.with_credentials(None);
    let stream = |pid: &str, file: &str, query: &str, headers: &[&str]| {
        viewer.request(
            "GET",
            &format!("/stream/{pid}/{file}{query}"),
            None,
            headers,
        )
    };

    // Public: no token; ranges as a static file server.
    let whole = stream(&public, "highest.mp4", "", &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, highest);
    let part = stream(&public, "highest.mp4", "", &["Range: bytes=100-199"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, highest[100..200]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-199/{}", highest.len()).as_str())
    );
    assert_eq!(stream(&public, "audio.m4a", "", &[]).status, 200);
    assert_eq!(stream(&public, "720p.mp4", "", &[]).status, 404);
    assert_eq!(stream(&public, "master.mp4", "", &[]).status, 404);
    assert_eq!(
        stream("NoSuchPlaybackId", "highest.mp4", "", &[]).status,
        404
    );

    // Signed, without a token.
    let r = stream(&signed, "highest.mp4", "", &[]);
    assert_eq!(r.status, 403);
    assert!(
        r.error_message().contains("signed"),
        "{}",
        r.error_message()
    );

    // A signing key from the API; its private key is base64 PEM.
    let r = api.request("POST", "/system/v1/signing-keys", None, &[]);
    assert_eq!(r.status, 201);
    let kid = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(r.json()["data"]["private_key"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let (_, public_pem) = reeld::playback::keys::public_of(&pem).unwrap();
    let listed = api.get("/system/v1/signing-keys").json();
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == kid.as_str())
    );
    assert!(!listed.to_string().contains("private"), "{listed}");
    assert_eq!(
        api.get(&format!("/system/v1/signing-keys/{kid}")).status,
        200
    );

    let good = json!({"sub": signed, "aud": "v", "exp": now() + 600});
    let token = sign(&kid, &key, good.clone());
    let with =
        |t: &str, headers: &[&str]| stream(&signed, "highest.mp4", &format!("?token={t}"), headers);
    let r = with(&token, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, highest);
    let r = with(&token, &["Range: bytes=-64"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, highest[highest.len() - 64..]);

    // Every way a token can be wrong, each refused with the check named.
    let other = reeld::playback::keys::generate("x".into()).unwrap();
    let other_key = EncodingKey::from_rsa_pem(other.private_pem.as_bytes()).unwrap();
    let claims = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let none = format!(
        "{}.{}.",
        b64url(&json!({"alg": "none", "kid": kid})),
        b64url(&good)
    );
    let refused = [
        (
            "expired",
            sign(&kid, &key, claims(json!({"exp": now() - 120}))),
            "expired",
        ),
        (
            "not yet valid",
            sign(&kid, &key, claims(json!({"nbf": now() + 600}))),
            "not valid yet",
        ),
        (
            "too long-lived",
            sign(
                &kid,
                &key,
                claims(json!({"iat": now(), "exp": now() + 25 * 3600})),
            ),
            "the limit is 86400 s",
        ),
        (
            "unknown kid",
            sign("UnknownKey0123", &key, good.clone()),
            "not known",
        ),
        (
            "wrong signature",
            sign(&kid, &other_key, good.clone()),
            "signature does not match",
        ),
        (
            "wrong sub",
            sign(&kid, &key, claims(json!({"sub": public}))),
            "another playback ID",
        ),
        (
            "wrong aud",
            sign(&kid, &key, claims(json!({"aud": "t"}))),
            "audience",
        ),
        ("alg none", none, "only RS256"),
        ("HS256 with the public key", hs256, "only RS256"),
    ];
    for (what, token, says) in refused {
        let r = with(&token, &[]);
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.error_type(), "forbidden", "{what}");
        assert!(
            r.error_message().contains(says),
            "{what}: {}",
            r.error_message()
        );
        assert!(!r.error_message().contains("BEGIN"), "{what}");
    }

    // A deleted key's tokens stop working; so does a deleted playback ID.
    let r = api.request(
        "DELETE",
        &format!("/system/v1/signing-keys/{kid}"),
        None,
        &[],
    );
    assert_eq!(r.status, 204);
    let r = with(&token, &[]);
    assert_eq!(r.status, 403);
    assert!(
        r.error_message().contains("not known"),
        "{}",
        r.error_message()
    );
    let r = api.get(&format!("/video/v1/playback-ids/{public}"));
    assert_eq!(
        r.json()["data"]["object"],
        json!({"type": "asset", "id": asset_id})
    );
    let r = api.request(
        "DELETE",
        &format!("/video/v1/assets/{asset_id}/playback-ids/{public}"),
        None,
        &[],
    );
    assert_eq!(r.status, 204);
    assert_eq!(stream(&public, "highest.mp4", "", &[]).status, 404);

    // A new public ID works at once.
    let r = api.request(
        "POST",
        &format!("/video/v1/assets/{asset_id}/playback-ids"),
        Some(&json!({"policy": "public"})),
        &[],
    );
    assert_eq!(r.status, 201);
    let fresh = r.json()["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(stream(&fresh, "audio.m4a", "", &[]).status, 200);
    let r = api.request(
        "POST",
        &format!("/video/v1/assets/{asset_id}/playback-ids"),
        Some(&json!({"policy": "drm"})),
        &[],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn the_cli_makes_keys_and_tokens_the_stream_accepts() {
    let env = TestEnv::with_store(StoreKind::Local, &[]);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let (_asset, _public, signed) = ready_asset(&env, &api);
    let out = env.reeld(&["keys", "create"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kid = made["id"].as_str().unwrap();
    let key_file = env.dir.path().join("key.b64");
    std::fs::write(&key_file, made["private_key"].as_str().unwrap()).unwrap();
    let listed: Value = serde_json::from_slice(&env.reeld(&["keys", "list"]).stdout).unwrap();
    assert_eq!(listed["data"][0]["id"], kid);
    assert_eq!(listed["data"][0]["origin"], "cli");

    let out = env.reeld(&[
        "keys",
        "sign",
        &signed,
        "--key-id",
        kid,
        "--private-key",
        key_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let viewer = api.with_credentials(None);
    let r = viewer.get(&format!(
        "/stream/{signed}/audio.m4a?token={}",
        token.trim()
    ));
    assert_eq!(r.status, 200);
    let out = env.reeld(&["keys", "delete", kid]);
    assert!(out.status.success());
    let r = viewer.get(&format!(
        "/stream/{signed}/audio.m4a?token={}",
        token.trim()
    ));
    assert_eq!(r.status, 403);
}
