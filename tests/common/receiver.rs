//! A webhook receiver for tests: a real HTTP server on 127.0.0.1:0 that
//! records every request and answers as the test tells it to.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// Answer with this status.
    Status(u16),
    /// Read the request and never answer (close after a while).
    Hang,
    /// Answer with this status after a pause of 600 ms.
    Slow(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The status it was answered with (`None`: no answer).
    pub answered: Option<u16>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the webhook body is JSON")
    }

    /// Header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Policy = dyn Fn(usize) -> Reply + Send + Sync;

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    requests: Arc<Mutex<Vec<Received>>>,
    policy: Arc<Mutex<Arc<Policy>>>,
}

impl Receiver {
    /// Starts a receiver; `policy` gets the request's index (from 0).
    pub fn start(policy: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Received>>> = Default::default();
        let policy: Arc<Mutex<Arc<Policy>>> = Arc::new(Mutex::new(Arc::new(policy)));
        let (reqs, pol) = (requests.clone(), policy.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (reqs, pol) = (reqs.clone(), pol.clone());
                std::thread::spawn(move || handle(stream, &reqs, &pol));
            }
        });
        Receiver {
            url,
            requests,
            policy,
        }
    }

    /// Changes how later requests are answered.
    pub fn set_policy(&self, policy: impl Fn(usize) -> Reply + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(policy);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    /// Waits until `pred` holds for the delivered requests.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.delivered();
            if pred(&got) {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; delivered: {:#?}",
                got.iter()
                    .map(|r| r.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn handle(stream: std::net::TcpStream, reqs: &Mutex<Vec<Received>>, pol: &Mutex<Arc<Policy>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let index = {
        let mut r = reqs.lock().unwrap();
        r.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            answered: None,
        });
        r.len() - 1
    };
    let policy = pol.lock().unwrap().clone();
    match policy(index) {
        Reply::Hang => std::thread::sleep(Duration::from_secs(5)),
        Reply::Slow(code) | Reply::Status(code) => {
            if matches!(policy(index), Reply::Slow(_)) {
                std::thread::sleep(Duration::from_millis(600));
            }
            let mut stream = stream;
            let ok = stream
                .write_all(
                    format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                    .as_bytes(),
                )
                .is_ok();
            if ok {
                reqs.lock().unwrap()[index].answered = Some(code);
            }
        }
    }
}
