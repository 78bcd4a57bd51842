//! A real S3 server for tests: s3s-fs, which checks SigV4 signatures (of
//! headers and of presigned URLs), serving a temp folder on a loopback port
//! from a runtime thread of its own. Each bucket is a sub-folder and each
//! object a file at `ROOT/BUCKET/KEY`, so a test reads stored files directly.
//!
//! The server can be taken down on cue: armed with `outage_on_part`, the
//! first multipart part whose key matches drops its connection, the
//! listener closes (connections are refused) and open connections are cut,
//! and after the given time it listens again on the same port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The access key of every test server.
pub const ACCESS_KEY: &str = "AKIDREELDTEST";
/// Its secret.
pub const SECRET_KEY: &str = "reeld-test-secret";
/// The bucket reeld stores into.
pub const BUCKET: &str = "media";

/// A running S3 server; stopped when dropped.
pub struct S3Server {
    /// Where it listens.
    pub addr: SocketAddr,
    root: tempfile::TempDir,
    control: Arc<Control>,
}

#[derive(Default)]
struct Control {
    /// `(key fragment, how long)`: the next outage's trigger.
    armed: Mutex<Option<(String, Duration)>>,
    down_for: Mutex<Duration>,
    go_down: tokio::sync::Notify,
    outages: AtomicUsize,
    back_up: AtomicUsize,
    stop: AtomicBool,
}

impl Control {
    /// Whether `req` trips the armed outage (disarming it).
    fn trips(&self, req: &axum::http::Request<hyper::body::Incoming>) -> bool {
        let query = req.uri().query().unwrap_or("");
        if req.method() != axum::http::Method::PUT || !query.contains("partNumber=") {
            return false;
        }
        let mut armed = self.armed.lock().unwrap();
        match armed.as_ref() {
            Some((fragment, _)) if req.uri().path().contains(fragment.as_str()) => {
                let (_, duration) = armed.take().unwrap();
                *self.down_for.lock().unwrap() = duration;
                true
            }
            _ => false,
        }
    }
}

impl S3Server {
    /// Starts a server with one empty bucket, `BUCKET`.
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let control = Arc::new(Control::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, ctl) = (root.path().to_owned(), control.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(path, ctl, tx));
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the S3 server starts");
        S3Server {
            addr,
            root,
            control,
        }
    }

    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder objects of `BUCKET` are files in.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }

    /// The `[storage]` section for this server, signing with `secret`.
    pub fn storage_toml(&self, secret: &str) -> String {
        format!(
            "url = \"s3://{BUCKET}\"\n\n[storage.s3]\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
             secret_access_key = \"{secret}\"\nallow_http = true",
            self.endpoint()
        )
    }

    /// Multipart uploads begun and neither completed nor aborted (s3s-fs
    /// keeps one `.upload-ID.json`, and its parts, per open upload).
    pub fn incomplete_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                (name.starts_with(".upload-") && name.ends_with(".json"))
                    || name.starts_with(".upload_id-")
            })
            .collect()
    }

    /// The next multipart part sent to a key containing `fragment` takes
    /// the server down for `duration`.
    pub fn outage_on_part(&self, fragment: &str, duration: Duration) {
        *self.control.armed.lock().unwrap() = Some((fragment.to_owned(), duration));
    }

    /// Outages begun so far.
    pub fn outages(&self) -> usize {
        self.control.outages.load(Ordering::SeqCst)
    }

    /// Outages ended so far (the server listens again).
    pub fn recoveries(&self) -> usize {
        self.control.back_up.load(Ordering::SeqCst)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.control.go_down.notify_one();
    }
}

fn service(root: &Path) -> s3s::service::S3Service {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    builder.build()
}

async fn serve(root: PathBuf, control: Arc<Control>, started: std::sync::mpsc::Sender<SocketAddr>) {
    let s3 = service(&root);
    let mut addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut first = true;
    loop {
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                // The old socket may linger a moment after an outage.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        if first {
            addr = listener.local_addr().unwrap();
            started.send(addr).unwrap();
            first = false;
        } else {
            control.back_up.fetch_add(1, Ordering::SeqCst);
        }
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else { continue };
                    let (s3, control) = (s3.clone(), control.clone());
                    connections.spawn(async move {
                        let handler = hyper::service::service_fn(move |req| {
                            let (s3, control) = (s3.clone(), control.clone());
                            async move {
                                if control.trips(&req) {
                                    control.go_down.notify_one();
                                    return Err(s3s::HttpError::new("outage".into()));
                                }
                                hyper::service::Service::call(&s3, req).await
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), handler)
                        .await;
                    });
                }
                _ = control.go_down.notified() => break,
            }
        }
        drop(listener);
        connections.abort_all();
        if control.stop.load(Ordering::SeqCst) {
            return;
        }
        control.outages.fetch_add(1, Ordering::SeqCst);
        let down_for = *control.down_for.lock().unwrap();
        tokio::time::sleep(down_for).await;
    }
}
