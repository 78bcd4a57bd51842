//! HTTP against a running daemon, with curl (a real client): requests with
//! the test token, the status, headers and body of each answer.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestDaemon, TestEnv};

/// The access token every test config carries.
pub const TOKEN_ID: &str = "test-token";
/// Its secret.
pub const TOKEN_SECRET: &str = "test-secret-0123456789";

/// One answer.
#[derive(Debug)]
pub struct Http {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Http {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The Mux error type of an error answer.
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The error messages joined.
    pub fn error_message(&self) -> String {
        self.json()["error"]["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }
}

/// The API of one running daemon.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Basic credentials, `id:secret`; `None` sends none.
    pub credentials: Option<String>,
    scratch: std::path::PathBuf,
}

impl TestEnv {
    /// The API of `daemon`, once it listens (its log names the address).
    pub fn api(&self, daemon: &TestDaemon) -> Api {
        let start = Instant::now();
        loop {
            let logs = strip_ansi(&std::fs::read_to_string(&daemon.log).unwrap_or_default());
            if let Some(address) = logs
                .lines()
                .rev()
                .filter(|l| l.contains("API listening."))
                .filter_map(|l| l.split("address=").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
                .next()
            {
                return Api {
                    base: format!("http://{address}"),
                    credentials: Some(format!("{TOKEN_ID}:{TOKEN_SECRET}")),
                    scratch: self.dir.path().to_owned(),
                };
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the API did not start; logs:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Api {
    /// The same API with other credentials (`None`: none at all).
    pub fn with_credentials(&self, credentials: Option<&str>) -> Api {
        Api {
            credentials: credentials.map(str::to_owned),
            ..self.clone()
        }
    }

    /// `METHOD base+path` with an optional JSON body and extra headers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[&str],
    ) -> Http {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.curl(method, &url, body.map(|b| b.to_string()), headers)
    }

    /// Like `request`, with the body sent as given (bytes that need not be JSON).
    pub fn request_raw(&self, method: &str, path: &str, body: &str, headers: &[&str]) -> Http {
        self.curl(
            method,
            &format!("{}{path}", self.base),
            Some(body.to_owned()),
            headers,
        )
    }

    /// `PUT url` with `data` as the raw body (no credentials: upload URLs
    /// are signed) and extra headers, as an upload client sends a chunk.
    pub fn put_bytes(&self, url: &str, data: &[u8], headers: &[&str]) -> Http {
        let body = tempfile::NamedTempFile::new_in(&self.scratch).unwrap();
        std::fs::write(body.path(), data).unwrap();
        let mut args = vec![
            "--data-binary".to_owned(),
            format!("@{}", body.path().display()),
        ];
        // curl would call the bytes a form.
        args.extend(["-H".to_owned(), "Content-Type: video/mp4".to_owned()]);
        for h in headers {
            args.extend(["-H".to_owned(), (*h).to_owned()]);
        }
        self.with_credentials(None).curl_args("PUT", url, &args)
    }

    /// `curl -T FILE url`: a whole-file upload, as Mux's guide shows it.
    pub fn put_file(&self, url: &str, file: &Path) -> Http {
        let args = vec!["-T".to_owned(), file.display().to_string()];
        self.with_credentials(None).curl_args("PUT", url, &args)
    }

    fn curl_args(&self, method: &str, url: &str, args: &[String]) -> Http {
        let out_file = tempfile::NamedTempFile::new_in(&self.scratch).unwrap();
        let out = Command::new("curl")
            .args(["-sS", "--globoff", "-D", "-", "-o"])
            .arg(out_file.path())
            .args(["--max-time", "120", "-X", method])
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {method} {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_head(
            &out.stdout,
            &std::fs::read(out_file.path()).unwrap_or_default(),
        )
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Http {
        self.request("GET", path, None, &[])
    }

    /// A signed download URL fetched as a browser fetches it, with no
    /// credentials and following a redirect: an S3 store's files redirect
    /// to the store's presigned URLs; a local store's are served directly.
    pub fn download(&self, url: &str) -> Http {
        let plain = self.with_credentials(None);
        let first = plain.get(url);
        match (first.status, first.header("location")) {
            (302, Some(location)) => plain.get(location),
            _ => first,
        }
    }

    fn curl(&self, method: &str, url: &str, body: Option<String>, headers: &[&str]) -> Http {
        let out_file = tempfile::NamedTempFile::new_in(&self.scratch).unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--globoff", "-D", "-", "-o"])
            .arg(out_file.path())
            .args(["--max-time", "60"]);
        if method == "HEAD" {
            cmd.arg("--head");
        } else {
            cmd.args(["-X", method]);
        }
        if let Some(c) = &self.credentials {
            cmd.args(["-u", c]);
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = &body {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ]);
            cmd.stdin(Stdio::piped());
            let _ = b;
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.arg(url).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("curl runs (scripts/install-deps installs it)");
        if let Some(b) = body {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "curl {method} {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // With --head, curl writes the head where the body would go.
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            std::fs::read(out_file.path()).unwrap_or_default()
        };
        parse_head(&out.stdout, &body)
    }
}

/// The text without terminal colour codes (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_head(head: &[u8], body: &[u8]) -> Http {
    let text = String::from_utf8_lossy(head);
    // With redirects or 100-continue there can be several heads; the last counts.
    let last = text
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or("");
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_vec(),
    }
}

/// A `file://` URL of `path`.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Waits until `GET /video/v1/assets/{id}` satisfies `pred`; returns the asset.
pub fn wait_for_asset(
    api: &Api,
    id: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let r = api.get(&format!("/video/v1/assets/{id}"));
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        let asset = r.json()["data"].clone();
        if pred(&asset) {
            return asset;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}: {asset:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
