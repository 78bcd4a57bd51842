//! A real browser uploads to reeld: headless Chromium (Debian's package)
//! loads a page from another origin that uploads a clip with UpChunk to a
//! direct upload's URL. This is what proves the CORS preflight and the
//! exposed `Range` header: a browser refuses what a script can be lied to
//! about. An upload made for another origin must fail in the same browser.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{Api, wait_for_asset};
use common::{TestEnv, sdk_dir, wait_for};
use serde_json::{Value, json};

/// Serves the test page, UpChunk's module and the clip on a port of its own
/// (so the page's origin is not reeld's). Returns the origin.
fn page_server(clip: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let page =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/upload.html"))
            .unwrap();
    let upchunk =
        std::fs::read(sdk_dir().join("node_modules/@mux/upchunk/dist/upchunk.mjs")).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (kind, body): (&str, &[u8]) = match path.split('?').next().unwrap_or("/") {
                "/" => ("text/html; charset=utf-8", &page),
                "/upchunk.mjs" => ("text/javascript", &upchunk),
                "/clip.mp4" => ("video/mp4", &clip),
                _ => ("text/plain", b"not found"),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    origin
}

/// Runs the page in Chromium for `upload_url`; the page's `window.result`.
fn browser_upload(page_origin: &str, upload_url: &str) -> Value {
    let page = format!("{page_origin}/?url={}", percent_encode(upload_url));
    let out = Command::new("node")
        .arg(sdk_dir().join("browser-upload.mjs"))
        .env("PAGE_URL", &page)
        .current_dir(sdk_dir())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser-upload.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no result ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn create_upload(api: &Api, cors_origin: &str) -> Value {
    let r = api.request(
        "POST",
        "/video/v1/uploads",
        Some(
            &json!({"cors_origin": cors_origin, "new_asset_settings": {"passthrough": "browser"}}),
        ),
        &[],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

#[test]
fn chromium_uploads_with_upchunk_from_another_origin() {
    common::assert_browser_installed();
    let env = TestEnv::new(&[]);
    // Noise does not compress: several 256 KiB chunks.
    let clip = env.dir.path().join("noise.mp4");
    common::gst_launch(&format!(
        "mp4mux name=m ! filesink location={} \
         videotestsrc pattern=snow num-buffers=90 ! \
         video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! m.",
        clip.display()
    ));
    let bytes = std::fs::read(&clip).unwrap();
    let chunks = bytes.len().div_ceil(256 * 1024);
    assert!(chunks >= 3, "the clip is {} bytes", bytes.len());
    let page_origin = page_server(bytes);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);
    assert_ne!(api.base, page_origin);

    // For the page's origin: every chunk goes through, the 308s' Range is
    // readable (exposed), and the asset is made.
    let upload = create_upload(&api, &page_origin);
    let result = browser_upload(&page_origin, upload["url"].as_str().unwrap());
    assert_eq!(result["ok"], true, "{result:#}");
    let seen = result["chunks"].as_array().unwrap();
    assert_eq!(seen.len(), chunks, "{result:#}");
    for (i, chunk) in seen[..chunks - 1].iter().enumerate() {
        assert_eq!(chunk["status"], 308, "{result:#}");
        assert_eq!(
            chunk["range"],
            format!("bytes=0-{}", (i + 1) * 256 * 1024 - 1),
            "the browser must be able to read Range: {result:#}"
        );
    }
    assert_eq!(seen[chunks - 1]["status"], 200);
    let id = upload["id"].as_str().unwrap();
    let mut done = Value::Null;
    wait_for(Duration::from_secs(10), "asset_created", || {
        done = api.get(&format!("/video/v1/uploads/{id}")).json()["data"].clone();
        done["status"] == "asset_created"
    });
    let asset = wait_for_asset(
        &api,
        done["asset_id"].as_str().unwrap(),
        Duration::from_secs(120),
        "ready",
        |a| a["status"] != "preparing",
    );
    assert_eq!(asset["status"], "ready", "{asset:#}");
    assert_eq!(asset["passthrough"], "browser");

    // For another origin: the browser refuses the answers (UpChunk sees
    // status 0), and the upload is left waiting.
    let foreign = create_upload(&api, "https://app.example.com");
    let result = browser_upload(&page_origin, foreign["url"].as_str().unwrap());
    assert_eq!(result["ok"], false, "{result:#}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("responded with 0"),
        "{result:#}"
    );
    let still = api.get(&format!(
        "/video/v1/uploads/{}",
        foreign["id"].as_str().unwrap()
    ));
    assert_eq!(still.json()["data"]["status"], "waiting");
}
