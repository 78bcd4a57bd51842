//! `http(s)://` inputs of `POST /video/v1/assets`, fetched from an HTTP
//! server run by the test: redirects, 404, a 500 that recovers, a server
//! that trickles, progress while fetching, and the address policy (a
//! redirect to loopback or to the metadata address is refused).
//!
//! The server listens on 127.0.0.2, which the test config allows; every
//! other loopback address stays refused, as by default.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::http::{Api, wait_for_asset};
use common::{ClipSpec, TestEnv, make_clip};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(120);

/// The test's origin server: what each path answers.
struct Origin {
    base: String,
    loopback_base: String,
}

fn serve(listener: TcpListener, clip: Arc<Vec<u8>>, flaky: Arc<AtomicUsize>, loopback: String) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (clip, flaky, loopback) = (clip.clone(), flaky.clone(), loopback.clone());
            std::thread::spawn(move || answer(stream, &clip, &flaky, &loopback));
        }
    });
}

fn answer(mut stream: TcpStream, clip: &[u8], flaky: &AtomicUsize, loopback: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let head = |status: &str, extra: &str, length: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n{extra}\r\n")
    };
    let redirect = |to: &str| head("302 Found", &format!("Location: {to}\r\n"), 0);
    let out = &mut stream;
    let _ = match path.as_str() {
        "/clip.mp4" => out
            .write_all(head("200 OK", "Content-Type: video/mp4\r\n", clip.len()).as_bytes())
            .and_then(|()| out.write_all(clip)),
        "/r1" => out.write_all(redirect("/r2").as_bytes()),
        "/r2" => out.write_all(redirect("/clip.mp4?signed=secret").as_bytes()),
        "/loop" => out.write_all(redirect("/loop").as_bytes()),
        "/missing" => out.write_all(head("404 Not Found", "", 0).as_bytes()),
        "/flaky" if flaky.fetch_add(1, Ordering::SeqCst) < 2 => {
            out.write_all(head("500 Internal Server Error", "", 0).as_bytes())
        }
        "/flaky" => out
            .write_all(head("200 OK", "", clip.len()).as_bytes())
            .and_then(|()| out.write_all(clip)),
        // The whole clip over about 3 s, in ten pieces.
        "/slow" => out
            .write_all(head("200 OK", "", clip.len()).as_bytes())
            .and_then(|()| {
                for piece in clip.chunks(clip.len().div_ceil(10)) {
                    out.write_all(piece)?;
                    out.flush()?;
                    std::thread::sleep(Duration::from_millis(300));
                }
                Ok(())
            }),
        // A byte every 200 ms: never done within the time limit.
        "/trickle" => out
            .write_all(head("200 OK", "", clip.len()).as_bytes())
            .and_then(|()| {
                for b in clip {
                    out.write_all(&[*b])?;
                    out.flush()?;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(())
            }),
        "/to-loopback" => out.write_all(redirect(&format!("{loopback}/clip.mp4")).as_bytes()),
        "/to-metadata" => {
            out.write_all(redirect("http://169.254.169.254/latest/meta-data/").as_bytes())
        }
        _ => out.write_all(head("400 Bad Request", "", 0).as_bytes()),
    };
}

fn origin(clip: Vec<u8>) -> Origin {
    let clip = Arc::new(clip);
    let flaky = Arc::new(AtomicUsize::new(0));
    // The same content on 127.0.0.1, so that a refusal there is the
    // policy's, not a connection that could not be made.
    let lo = TcpListener::bind("127.0.0.1:0").unwrap();
    let loopback_base = format!("http://{}", lo.local_addr().unwrap());
    serve(lo, clip.clone(), flaky.clone(), loopback_base.clone());
    let allowed = TcpListener::bind("127.0.0.2:0").unwrap();
    let base = format!("http://{}", allowed.local_addr().unwrap());
    serve(allowed, clip, flaky, loopback_base.clone());
    Origin {
        base,
        loopback_base,
    }
}

fn create(api: &Api, url: &str) -> Value {
    let r = api.request(
        "POST",
        "/video/v1/assets",
        Some(&json!({"inputs": [{"url": url}], "video_quality": "basic", "passthrough": url})),
        &[],
    );
    assert_eq!(r.status, 201, "{url}: {}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn finished(api: &Api, id: &str) -> Value {
    wait_for_asset(api, id, WITHIN, "the asset to finish", |a| {
        a["status"] != "preparing"
    })
}

fn message(asset: &Value) -> String {
    asset["errors"]["messages"][0]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn url_inputs_are_fetched_within_limits_and_the_address_policy() {
    let env = TestEnv::new(&[
        ("allow = []", "allow = [\"127.0.0.2\"]"),
        ("total_timeout_seconds = 3600", "total_timeout_seconds = 8"),
    ]);
    let clip_path = env.dir.path().join("clip.mp4");
    make_clip(&clip_path, ClipSpec::av(640, 360, 3));
    let origin = origin(std::fs::read(&clip_path).unwrap());
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    // Refused before any asset exists: a literal metadata or loopback address.
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("{}/clip.mp4", origin.loopback_base),
        "gopher://example.com/".to_owned(),
    ] {
        let r = api.request(
            "POST",
            "/video/v1/assets",
            Some(&json!({"inputs": [{"url": url}]})),
            &[],
        );
        assert_eq!(r.status, 400, "{url}");
        assert!(
            r.error_message().contains("inputs[0].url"),
            "{}",
            r.error_message()
        );
    }

    let redirected = create(&api, &format!("{}/r1", origin.base));
    let slow = create(&api, &format!("{}/slow", origin.base));
    let missing = create(&api, &format!("{}/missing", origin.base));
    let flaky = create(&api, &format!("{}/flaky", origin.base));
    let trickle = create(&api, &format!("{}/trickle", origin.base));
    let to_loopback = create(&api, &format!("{}/to-loopback", origin.base));
    let to_metadata = create(&api, &format!("{}/to-metadata", origin.base));
    let looping = create(&api, &format!("{}/loop", origin.base));
    assert_eq!(redirected["ingest_type"], "on_demand_url");

    // Progress while the slow one downloads: ingesting, part-way.
    let id = slow["id"].as_str().unwrap();
    let part_way = wait_for_asset(&api, id, WITHIN, "ingesting progress part-way", |a| {
        a["status"] != "preparing"
            || (a["progress"]["state"] == "ingesting"
                && a["progress"]["progress"]
                    .as_f64()
                    .is_some_and(|p| p > 0.0 && p < 100.0))
    });
    assert_eq!(part_way["status"], "preparing", "{part_way:#}");

    for ok in [&redirected, &slow, &flaky] {
        let asset = finished(&api, ok["id"].as_str().unwrap());
        assert_eq!(asset["status"], "ready", "{asset:#}");
        assert!((asset["duration"].as_f64().unwrap() - 3.0).abs() < 0.2);
    }
    let expect_error = |created: &Value, words: &[&str]| {
        let asset = finished(&api, created["id"].as_str().unwrap());
        assert_eq!(asset["status"], "errored", "{asset:#}");
        assert_eq!(asset["errors"]["type"], "invalid_input", "{asset:#}");
        let text = message(&asset);
        eprintln!("{}: {text}", created["passthrough"]);
        for w in words {
            assert!(text.contains(w), "{:?} lacks {w:?}", text);
        }
        assert!(!text.contains("secret"), "{text}");
    };
    expect_error(&missing, &["404"]);
    expect_error(&trickle, &["8 s", "total_timeout_seconds"]);
    expect_error(&to_loopback, &["refused", "loopback"]);
    expect_error(&to_metadata, &["refused", "169.254.169.254", "link-local"]);
    expect_error(&looping, &["redirected more than 5 times"]);
    // The flaky server was asked again after its 500s.
    let logs = env.logs();
    assert!(logs.contains("Input download failed; retrying."), "{logs}");
}
