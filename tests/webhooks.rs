//! Webhooks from the outbox to real HTTP receivers in the test: the ordered
//! events of an ingest, Mux's signature (checked here with an HMAC of the
//! test's own, and with Mux's Node SDK), retries, a kill -9 with events
//! pending, a receiver that never answers, and the events of API changes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{Api, file_url, wait_for_asset};
use common::receiver::{Receiver, Reply};
use common::{ClipSpec, TestEnv, make_clip};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const SECRET: &str = "whsec-test-0123456789";
const WITHIN: Duration = Duration::from_secs(120);

/// An installation whose `[webhooks]` keys are `settings` (`key = value`
/// lines replacing the defaults'), delivering to `endpoints` (URL, extra
/// TOML lines).
fn env_with(endpoints: &[(&str, &str)], settings: &[&str]) -> TestEnv {
    let mut wanted = vec![
        "allow_private_addresses = true",
        "retry_base_seconds = 0.2",
        "timeout_seconds = 1",
    ];
    for line in settings {
        let key = line.split(' ').next().unwrap();
        wanted.retain(|w| !w.starts_with(&format!("{key} ")));
        wanted.push(line);
    }
    let defaults = TestEnv::new(&[]);
    let text = std::fs::read_to_string(&defaults.config).unwrap();
    // Each key's line in the [webhooks] table of the default config.
    let section = &text[text.find("[webhooks]").unwrap()..];
    let replacements: Vec<(String, String)> = wanted
        .iter()
        .map(|line| {
            let key = line.split(' ').next().unwrap();
            let current = section
                .lines()
                .find(|l| l.starts_with(&format!("{key} ")))
                .unwrap_or_else(|| panic!("[webhooks] has no {key}"));
            (current.to_owned(), (*line).to_owned())
        })
        .collect();
    let pairs: Vec<(&str, &str)> = replacements
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let env = TestEnv::new(&pairs);
    let mut toml = String::new();
    for (url, events) in endpoints {
        toml +=
            &format!("[[webhooks.endpoints]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{events}\n");
    }
    env.append_config(&toml);
    env
}

fn clip(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.data("import");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.mp4");
    make_clip(&path, ClipSpec::av(640, 360, 2));
    path
}

fn create(api: &Api, body: Value) -> String {
    let r = api.request("POST", "/video/v1/assets", Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"]["id"].as_str().unwrap().to_owned()
}

fn types_of(received: &[common::receiver::Received], asset: &str) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json())
        .filter(|e| e["object"]["id"] == asset || e["data"]["asset_id"] == asset)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks `Mux-Signature: t=…,v1=…` with an HMAC computed here.
fn check_signature(r: &common::receiver::Received) {
    let header = r.header("mux-signature").expect("signed");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=…,v1=… with no spaces");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature of {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn an_ingest_sends_its_events_in_order_signed_as_mux_signs() {
    let receiver = Receiver::start(|_| Reply::Status(200));
    let env = env_with(&[(&receiver.url, "")], &["environment_name = \"test-env\""]);
    let source = clip(&env);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(
        &api,
        json!({"inputs": [{"url": file_url(&source)}], "master_access": "temporary", "passthrough": "pt",
               "static_renditions": [{"resolution": "highest"}, {"resolution": "1080p"}]}),
    );
    let got = receiver.wait_for(WITHIN, "the rendition to be ready", |r| {
        types_of(r, &id)
            .iter()
            .any(|t| t == "video.asset.static_rendition.ready")
    });
    assert_eq!(
        types_of(&got, &id),
        [
            "video.asset.created",
            "video.asset.master.preparing",
            "video.asset.static_rendition.created",
            "video.asset.static_rendition.created",
            "video.asset.static_rendition.skipped",
            "video.asset.ready",
            "video.asset.master.ready",
            "video.asset.static_rendition.ready",
        ]
    );
    let mut ids = std::collections::HashSet::new();
    for r in &got {
        check_signature(r);
        let e = r.json();
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_owned()),
            "no id twice"
        );
        assert_eq!(e["id"].as_str().unwrap().len(), 36);
        assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(e["environment"]["name"], "test-env");
        assert_eq!(e["attempts"], json!([]), "delivered at the first attempt");
    }
    let ready = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "video.asset.ready")
        .unwrap();
    assert_eq!(ready["object"], json!({"type": "asset", "id": id}));
    assert_eq!(ready["data"]["status"], "ready");
    assert_eq!(ready["data"]["passthrough"], "pt");
    let master = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "video.asset.master.ready")
        .unwrap();
    assert!(master["data"]["master"]["url"].is_string());
    let file = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "video.asset.static_rendition.ready")
        .unwrap();
    assert_eq!(file["object"]["type"], "static_rendition");
    assert_eq!(file["data"]["asset_id"], id.as_str());
    assert_eq!(file["data"]["name"], "highest.mp4");

    // Mux's Node SDK accepts a delivery as Mux's own.
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let out = Command::new("node")
        .arg(sdk.join("unwrap.mjs"))
        .current_dir(&sdk)
        .env("BODY", &got[0].body)
        .env("SIGNATURE", got[0].header("mux-signature").unwrap())
        .env("SECRET", SECRET)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "webhooks.unwrap refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The outbox lists them as delivered, in the API and the CLI.
    let listed = api.get("/video/v1/webhook-events?status=delivered").json();
    assert_eq!(listed["data"].as_array().unwrap().len(), got.len());
    let cli = env.reeld(&["webhooks", "list", "--status", "pending"]);
    assert!(cli.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&cli.stdout).unwrap()["data"],
        json!([])
    );
}

#[test]
fn a_receiver_that_fails_three_times_gets_each_event_once() {
    let receiver = Receiver::start(|i| {
        if i < 3 {
            Reply::Status(500)
        } else {
            Reply::Status(204)
        }
    });
    let env = env_with(
        &[(
            &receiver.url,
            "events = [\"video.asset.created\", \"video.asset.ready\"]",
        )],
        &[],
    );
    let source = clip(&env);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(&api, json!({"inputs": [{"url": file_url(&source)}]}));
    let got = receiver.wait_for(WITHIN, "created and ready", |r| types_of(r, &id).len() >= 2);
    assert_eq!(
        types_of(&got, &id),
        ["video.asset.created", "video.asset.ready"],
        "filtered, once each"
    );
    let created = got[0].json();
    let attempts = created["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    assert!(attempts.iter().all(|a| a["response_status_code"] == 500));
    assert_eq!(
        receiver.requests().len(),
        5,
        "three failures, then one delivery per event"
    );
}

#[test]
fn events_pending_at_a_kill_are_sent_after_the_restart_once() {
    let receiver = Receiver::start(|_| Reply::Status(503));
    let env = env_with(&[(&receiver.url, "")], &[]);
    let source = clip(&env);
    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(&api, json!({"inputs": [{"url": file_url(&source)}]}));
    wait_for_asset(&api, &id, WITHIN, "ready", |a| a["status"] == "ready");
    common::wait_for(WITHIN, "a refused delivery", || {
        !receiver.requests().is_empty()
    });
    daemon.kill9();
    receiver.set_policy(|_| Reply::Status(200));
    let daemon = env.start_daemon();
    let _api = env.api(&daemon);
    let got = receiver.wait_for(WITHIN, "created and ready after the restart", |r| {
        types_of(r, &id).iter().any(|t| t == "video.asset.ready")
    });
    assert_eq!(
        types_of(&got, &id),
        ["video.asset.created", "video.asset.ready"]
    );
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "no duplicate ids");
}

#[test]
fn a_receiver_that_never_answers_is_given_up_on_and_holds_nothing_up() {
    let dead = Receiver::start(|_| Reply::Hang);
    let alive = Receiver::start(|_| Reply::Status(200));
    let env = env_with(
        &[(&dead.url, ""), (&alive.url, "")],
        &["retry_for_hours = 0.002", "timeout_seconds = 0.5"],
    );
    let source = clip(&env);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(&api, json!({"inputs": [{"url": file_url(&source)}]}));
    wait_for_asset(&api, &id, WITHIN, "ready", |a| a["status"] == "ready");
    alive.wait_for(WITHIN, "the live receiver's events", |r| {
        types_of(r, &id).len() == 2
    });
    let failed = || {
        api.get("/video/v1/webhook-events?status=failed").json()["data"]
            .as_array()
            .unwrap()
            .clone()
    };
    common::wait_for(
        WITHIN,
        "the dead receiver's events to be given up on",
        || failed().len() == 2,
    );
    let rows = failed();
    assert!(rows.iter().all(|r| r["endpoint"] == dead.url.as_str()));
    // The first event is retried until its period is over (the later one
    // waits behind it, in order, and may get a single try).
    assert!(
        rows.iter()
            .map(|r| r["attempts"].as_array().unwrap().len())
            .max()
            .unwrap()
            >= 2,
        "retried first: {rows:#?}"
    );
    assert!(dead.requests().len() >= 3);
    // Replay: the CLI queues it again and the relay tries again.
    let event = rows[0]["id"].as_str().unwrap();
    let before = dead.requests().len();
    let out = env.reeld(&["webhooks", "retry", event]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::wait_for(WITHIN, "another attempt", || dead.requests().len() > before);
    let r = api.request("POST", "/video/v1/webhook-events/nope/retry", None, &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn changes_made_through_the_api_send_their_events() {
    let receiver = Receiver::start(|_| Reply::Status(200));
    let env = env_with(&[(&receiver.url, "")], &[]);
    let source = clip(&env);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(&api, json!({"inputs": [{"url": file_url(&source)}]}));
    receiver.wait_for(WITHIN, "ready", |r| {
        types_of(r, &id).iter().any(|t| t == "video.asset.ready")
    });
    let path = format!("/video/v1/assets/{id}");
    api.request(
        "PATCH",
        &path,
        Some(&json!({"passthrough": "changed"})),
        &[],
    );
    api.request(
        "PUT",
        &format!("{path}/master-access"),
        Some(&json!({"master_access": "temporary"})),
        &[],
    );
    api.request(
        "PUT",
        &format!("{path}/master-access"),
        Some(&json!({"master_access": "none"})),
        &[],
    );
    let file = api.request(
        "POST",
        &format!("{path}/static-renditions"),
        Some(&json!({"resolution": "audio-only"})),
        &[],
    );
    let file_id = file.json()["data"]["id"].as_str().unwrap().to_owned();
    receiver.wait_for(WITHIN, "the rendition to be ready", |r| {
        types_of(r, &id)
            .iter()
            .any(|t| t == "video.asset.static_rendition.ready")
    });
    assert_eq!(
        api.request(
            "DELETE",
            &format!("{path}/static-renditions/{file_id}"),
            None,
            &[]
        )
        .status,
        204
    );
    assert_eq!(api.request("DELETE", &path, None, &[]).status, 204);
    let got = receiver.wait_for(WITHIN, "deleted", |r| {
        types_of(r, &id).iter().any(|t| t == "video.asset.deleted")
    });
    assert_eq!(
        types_of(&got, &id),
        [
            "video.asset.created",
            "video.asset.ready",
            "video.asset.updated",
            "video.asset.master.ready",
            "video.asset.master.deleted",
            "video.asset.static_rendition.created",
            "video.asset.static_rendition.ready",
            "video.asset.static_rendition.deleted",
            "video.asset.deleted",
        ]
    );
    let updated = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "video.asset.updated")
        .unwrap();
    assert_eq!(updated["data"]["passthrough"], "changed");
}

#[test]
fn sigterm_sends_what_is_due_before_exiting() {
    // Each answer takes 600 ms, and one asset's events go one at a time: the
    // queue is still full when SIGTERM comes.
    let receiver = Receiver::start(|_| Reply::Slow(200));
    let env = env_with(&[(&receiver.url, "")], &[]);
    let source = clip(&env);
    let mut daemon = env.start_daemon();
    let api = env.api(&daemon);
    let id = create(
        &api,
        json!({"inputs": [{"url": file_url(&source)}], "master_access": "temporary",
               "static_renditions": [{"resolution": "highest"}, {"resolution": "audio-only"}]}),
    );
    wait_for_asset(&api, &id, WITHIN, "everything ready", |a| {
        a["status"] == "ready" && a["static_renditions"]["status"] == "ready"
    });
    daemon.signal("TERM");
    assert!(daemon.wait().success());
    let pending = env.reeld(&["webhooks", "list", "--status", "pending"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&pending.stdout).unwrap()["data"],
        json!([])
    );
    let delivered = env.reeld(&["webhooks", "list", "--status", "delivered"]);
    let delivered = serde_json::from_slice::<Value>(&delivered.stdout).unwrap()["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        receiver.requests().len(),
        delivered,
        "each sent once, all answered"
    );
    let types = types_of(&receiver.requests(), &id);
    assert_eq!(types.len(), 8, "{types:?}");
    assert!(env.logs().contains("reeld stopped."));
}
