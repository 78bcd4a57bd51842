//! Test harness: media made on the fly with GStreamer, outputs checked with
//! ffprobe (an independent reader) and a top-level MP4 box walker, and a
//! `TestDaemon` that runs the real `reeld` binary on a temporary config.

#![allow(dead_code)]

pub mod http;
pub mod receiver;
pub mod rng;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The static rendition file `name` of an asset's JSON.
pub fn rendition_file<'a>(asset: &'a Value, name: &str) -> &'a Value {
    asset["static_renditions"]["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {asset:#}"))
}

/// tests/sdk: the official clients' scripts and their `node_modules`.
pub fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Panics, saying what to install, unless Debian's Chromium and
/// playwright-core (from `npm ci --prefix tests/sdk`) are there.
pub fn assert_browser_installed() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/install-deps installs Debian's chromium"
    );
    assert!(
        sdk_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/sdk` (scripts/test does) first"
    );
}

/// The binary under test.
pub fn reeld_bin() -> &'static str {
    env!("CARGO_BIN_EXE_reeld")
}

/// Runs `gst-launch-1.0 -q -e` on a whitespace-separated description.
pub fn gst_launch(description: &str) {
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("-e")
        .args(description.split_whitespace())
        .status()
        .expect("gst-launch-1.0 runs (scripts/install-deps installs it)");
    assert!(status.success(), "gst-launch-1.0 failed: {description}");
}

/// Runs `ffmpeg -y -v error ARGS` (the output is the last argument).
pub fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error"])
        .args(args)
        .status()
        .expect("ffmpeg runs (scripts/install-deps installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// What a generated clip contains.
#[derive(Clone, Copy)]
pub struct ClipSpec {
    /// Video size, or `None` for audio only.
    pub video: Option<(u32, u32)>,
    /// Frames per second.
    pub fps: u32,
    /// Seconds.
    pub seconds: u32,
    /// Whether there is an audio track.
    pub audio: bool,
}

impl ClipSpec {
    /// A video with stereo audio.
    pub fn av(width: u32, height: u32, seconds: u32) -> ClipSpec {
        ClipSpec {
            video: Some((width, height)),
            fps: 30,
            seconds,
            audio: true,
        }
    }
}

/// Writes an H.264 (8-bit 4:2:0) + AAC MP4, or an AAC-only M4A, to `path`.
pub fn make_clip(path: &Path, spec: ClipSpec) {
    let frames = spec.fps * spec.seconds;
    // AAC frames are 1024 samples at 48 kHz.
    let audio_buffers = spec.seconds * 48_000 / 1024;
    let mut desc = format!("mp4mux name=m ! filesink location={} ", path.display());
    if let Some((w, h)) = spec.video {
        desc += &format!(
            "videotestsrc pattern=ball num-buffers={frames} ! \
             video/x-raw,format=I420,width={w},height={h},framerate={}/1 ! \
             x264enc speed-preset=veryfast key-int-max=60 ! video/x-h264,profile=high ! h264parse ! m. ",
            spec.fps
        );
    }
    if spec.audio {
        desc += &format!(
            "audiotestsrc wave=sine num-buffers={audio_buffers} samplesperbuffer=1024 ! \
             audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! m. "
        );
    }
    gst_launch(&desc);
}

/// The same streams rewrapped in Matroska (`NAME.mkv` beside it): a source
/// reeld encodes rather than remuxes, for tests about the encoding pipeline.
pub fn to_matroska(mp4: &Path) -> PathBuf {
    let mkv = mp4.with_extension("mkv");
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-i"])
        .arg(mp4)
        .args(["-c", "copy"])
        .arg(&mkv)
        .status()
        .expect("ffmpeg runs");
    assert!(
        status.success(),
        "ffmpeg could not rewrap {}",
        mp4.display()
    );
    mkv
}

/// An 8 s 1080p clip in Matroska: encoded, not remuxed, so that with
/// `video_quality = "premium"` (x264 "slow") the pipeline is busy long enough
/// to be killed or stopped in it.
pub fn long_clip(env: &TestEnv) -> PathBuf {
    let mp4 = env.dir.path().join("long.mp4");
    make_clip(&mp4, ClipSpec::av(1920, 1080, 8));
    to_matroska(&mp4)
}

/// Every file below `dir` (none if it does not exist), relative to it.
pub fn files_below(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found
}

/// ffprobe's view of a file: `{"streams": [...], "format": {...}}`.
pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/install-deps installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// The first stream of `kind` (`video` or `audio`) in ffprobe output.
pub fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == kind)
}

/// The container duration in seconds.
pub fn duration_of(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("format has a duration")
}

/// The top-level MP4 box types in file order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("file is readable");
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        let size = match size32 {
            1 => u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()),
            0 => (data.len() - pos) as u64,
            n => n,
        };
        boxes.push(kind);
        if size < 8 {
            break;
        }
        pos += size as usize;
    }
    boxes
}

/// Asserts that `moov` comes before `mdat` (fast start).
pub fn assert_faststart(path: &Path) {
    let boxes = top_level_boxes(path);
    let moov = boxes.iter().position(|b| b == "moov");
    let mdat = boxes.iter().position(|b| b == "mdat");
    assert!(
        matches!((moov, mdat), (Some(m), Some(d)) if m < d),
        "moov must precede mdat in {}: {boxes:?}",
        path.display()
    );
}

/// Checks a stored master: H.264 High 8-bit 4:2:0 (+ AAC-LC when `audio`),
/// the expected size, `moov` first, and the source's duration within 0.1 s.
pub fn assert_master(path: &Path, width: u32, height: u32, audio: bool, source_duration: f64) {
    let p = ffprobe(path);
    let v = stream(&p, "video").expect("master has video");
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(v["profile"], "High", "{v}");
    assert_eq!(v["pix_fmt"], "yuv420p", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(width.into()), Some(height.into()))
    );
    // Upright: no rotation left for players to apply.
    let rotated = v["side_data_list"]
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s["rotation"].as_i64().unwrap_or(0) != 0));
    assert!(!rotated, "master must carry no rotation: {v}");
    match stream(&p, "audio") {
        Some(a) if audio => {
            assert_eq!(a["codec_name"], "aac");
            assert_eq!(a["profile"], "LC");
        }
        None if !audio => {}
        other => panic!("audio expected: {audio}, found {other:?}"),
    }
    let d = duration_of(&p);
    assert!(
        (d - source_duration).abs() <= 0.1,
        "master duration {d} vs source {source_duration}"
    );
    assert_faststart(path);
}

/// The value of `key` in the options x264 writes into the stream it makes
/// (`threads`, `lookahead_threads`, …), read from an MP4 or raw H.264 file.
pub fn x264_option(path: &Path, key: &str) -> Option<String> {
    let bytes = std::fs::read(path).expect("encoded file is readable");
    let start = bytes.windows(8).position(|w| w == b"options:")?;
    let end = bytes[start..].iter().position(|&b| b == 0)? + start;
    let options = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    options
        .split_whitespace()
        .find_map(|option| option.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

/// A temporary installation: config, folders, and optionally a running daemon.
pub struct TestEnv {
    /// Holds the folder for the test's lifetime.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The S3 server the store is on, when it is on one.
    pub s3: Option<s3::S3Server>,
}

/// Which store a test installation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `file://data/store`.
    Local,
    /// A bucket on an S3 server the test starts.
    S3,
}

impl StoreKind {
    /// `REELD_TEST_STORE=s3` runs the suite on S3; local disk otherwise.
    pub fn from_env() -> StoreKind {
        match std::env::var("REELD_TEST_STORE").as_deref() {
            Ok("s3") => StoreKind::S3,
            _ => StoreKind::Local,
        }
    }
}

impl TestEnv {
    /// A config with a 1 s settle time; `extra` replaces lines of the default
    /// (pairs of `(from, to)`). The store is the one `REELD_TEST_STORE` asks for.
    pub fn new(replacements: &[(&str, &str)]) -> TestEnv {
        TestEnv::with_store(StoreKind::from_env(), replacements)
    }

    /// As `new`, on the store `kind`.
    pub fn with_store(kind: StoreKind, replacements: &[(&str, &str)]) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
                .expect("default config is readable")
                .replace("settle_seconds = 3", "settle_seconds = 1")
                // A free port for every daemon: tests run side by side.
                .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
                .replace(
                    "pipelines_dir = \"pipelines\"",
                    &format!(
                        "pipelines_dir = \"{}\"",
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("pipelines")
                            .display()
                    ),
                );
        for (from, to) in replacements {
            assert!(text.contains(from), "config has no {from:?}");
            text = text.replace(from, to);
        }
        text += &format!(
            "\n[[api.tokens]]\nid = \"{}\"\nsecret = \"{}\"\n",
            http::TOKEN_ID,
            http::TOKEN_SECRET
        );
        let local_store = "url = \"file://data/store\"";
        let s3 = match kind {
            StoreKind::S3 => {
                assert!(
                    text.contains(local_store),
                    "an S3 test installation needs the default [storage] url line to replace"
                );
                let server = s3::S3Server::start();
                text = text.replace(local_store, &server.storage_toml(s3::SECRET_KEY));
                Some(server)
            }
            StoreKind::Local => None,
        };
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).expect("config is writable");
        TestEnv { dir, config, s3 }
    }

    /// The folder asset files are stored under (`assets/ID/NAME` below it):
    /// the local store's root, or the S3 server's bucket folder.
    pub fn store_root(&self) -> PathBuf {
        match &self.s3 {
            Some(server) => server.bucket_dir(),
            None => self.data("store"),
        }
    }

    /// The stored file `name` of an asset.
    pub fn stored(&self, asset_id: &str, name: &str) -> PathBuf {
        self.store_root().join("assets").join(asset_id).join(name)
    }

    /// Appends TOML to the config (tables such as `[webhooks]`).
    pub fn append_config(&self, toml: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push('\n');
        text.push_str(toml);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Gives this installation its own copy of the repository's
    /// `pipelines/` and rewrites the fragment `name` (`h264-plus.gst`, …)
    /// with `edit`.
    pub fn edit_fragment(&self, name: &str, edit: impl FnOnce(&str) -> String) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let fragments = self.dir.path().join("pipelines");
        if !fragments.exists() {
            std::fs::create_dir_all(&fragments).unwrap();
            for entry in std::fs::read_dir(&repo).unwrap().flatten() {
                std::fs::copy(entry.path(), fragments.join(entry.file_name())).unwrap();
            }
            let config = std::fs::read_to_string(&self.config).unwrap().replace(
                &repo.display().to_string(),
                &fragments.display().to_string(),
            );
            std::fs::write(&self.config, config).unwrap();
        }
        let path = fragments.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&text)).unwrap();
    }

    /// A path under the data folder.
    pub fn data(&self, relative: &str) -> PathBuf {
        self.dir.path().join("data").join(relative)
    }

    /// The watch folder (created).
    pub fn watch_dir(&self) -> PathBuf {
        let w = self.data("watch");
        std::fs::create_dir_all(&w).unwrap();
        w
    }

    /// Runs `reeld --config … ARGS` to completion.
    pub fn reeld(&self, args: &[&str]) -> std::process::Output {
        self.reeld_with_env(args, &[])
    }

    /// `reeld`, with extra environment variables.
    pub fn reeld_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new(reeld_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("reeld runs")
    }

    /// `reeld ingest FILE [--settings JSON]`: (exit success, the printed
    /// asset or null, stderr).
    pub fn ingest(&self, file: &Path, settings: Option<&str>) -> (bool, Value, String) {
        self.ingest_with_env(file, settings, &[])
    }

    /// `ingest`, with extra environment variables (`RUST_LOG`, say).
    pub fn ingest_with_env(
        &self,
        file: &Path,
        settings: Option<&str>,
        env: &[(&str, &str)],
    ) -> (bool, Value, String) {
        let mut args = vec!["ingest", file.to_str().expect("UTF-8 test path")];
        if let Some(s) = settings {
            args.extend(["--settings", s]);
        }
        let out = self.reeld_with_env(&args, env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let asset: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (
            out.status.success(),
            asset["data"].clone(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `reeld assets list` parsed.
    pub fn assets(&self) -> Vec<Value> {
        let out = self.reeld(&["assets", "list"]);
        assert!(
            out.status.success(),
            "assets list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("assets list prints JSON");
        v["data"].as_array().expect("data is a list").clone()
    }

    /// Starts `reeld run`.
    pub fn start_daemon(&self) -> TestDaemon {
        self.start_daemon_with_env(&[])
    }

    /// Starts `reeld run` with extra environment variables.
    pub fn start_daemon_with_env(&self, vars: &[(&str, &str)]) -> TestDaemon {
        self.spawn_daemon(Command::new(reeld_bin()), vars)
    }

    /// Starts `reeld run` as the unprivileged `user` (through `setpriv`, with
    /// no supplementary groups), after handing it this installation's folder.
    /// As the systemd unit runs it: other users' open files are invisible.
    pub fn start_daemon_as(&self, user: &str) -> TestDaemon {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown the test folder to {user}");
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", user, "--regid", user, "--clear-groups", "--"])
            .arg(reeld_bin());
        self.spawn_daemon(command, &[("HOME", home.to_str().unwrap())])
    }

    fn spawn_daemon(&self, mut command: Command, vars: &[(&str, &str)]) -> TestDaemon {
        let log_path = self.dir.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("RUST_LOG", "reeld=debug")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("reeld run starts");
        TestDaemon {
            child: Some(child),
            log: log_path,
        }
    }

    /// Waits until `pred` holds for the asset list, or panics after `timeout`.
    pub fn wait_for_assets(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let assets = self.assets();
            if pred(&assets) {
                return assets;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; assets: {assets:#?}\nlogs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the only asset's pipeline is under way (progress > 0).
    pub fn wait_until_transcoding(&self, timeout: Duration) {
        self.wait_for_assets(timeout, "the transcode to be under way", |a| {
            a.len() == 1
                && a[0]["progress"]["state"] == "transcoding"
                && a[0]["progress"]["progress"].as_f64().unwrap_or(0.0) > 0.0
        });
    }

    /// The daemon logs written so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for p in names
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
            {
                out += &std::fs::read_to_string(&p).unwrap_or_default();
            }
        }
        out
    }

    /// The stored master of an asset.
    pub fn master_path(&self, asset_id: &str) -> PathBuf {
        self.stored(asset_id, "master.mp4")
    }
}

/// A running `reeld run`; killed when dropped.
pub struct TestDaemon {
    child: Option<Child>,
    /// This daemon's log file.
    pub log: PathBuf,
}

impl TestDaemon {
    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    /// Sends `kill -NAME` (`TERM`, `HUP`, …) without waiting.
    pub fn signal(&self, name: &str) {
        let c = self.child.as_ref().expect("daemon is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(c.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits for the daemon to exit; returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon is running");
        c.wait().expect("daemon exits")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every asset with `status == s`.
pub fn with_status<'a>(assets: &'a [Value], s: &str) -> Vec<&'a Value> {
    assets.iter().filter(|a| a["status"] == s).collect()
}

/// Whether there are `n` assets and every one has finished (ready or
/// errored), static renditions included (a remuxed master is ready before
/// its renditions are).
pub fn all_finished(assets: &[Value], n: usize) -> bool {
    assets.len() == n
        && assets
            .iter()
            .all(|a| a["status"] != "preparing" && a["static_renditions"]["status"] != "preparing")
}

/// PSNR (dB, average over planes) between the first frame of `a` as ffmpeg
/// displays it (rotation applied, scaled to `width`×`height`) and the first
/// frame of `b`.
pub fn first_frame_psnr(a: &Path, b: &Path, width: u32, height: u32) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args([
            "-lavfi",
            &format!(
                "[0:v]scale={width}:{height},format=yuv420p[x];[1:v]format=yuv420p[y];[x][y]psnr"
            ),
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    let average = log
        .split("average:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no PSNR in ffmpeg output: {log}"));
    if average == "inf" {
        f64::INFINITY
    } else {
        average.parse().expect("PSNR is a number")
    }
}

/// An unprivileged user to run the daemon as, created if missing; `None`
/// when the tests do not run as root (and so cannot switch users).
pub fn unprivileged_user() -> Option<&'static str> {
    const USER: &str = "reeld-test";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return None;
    }
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        // Another test may create it at the same moment: check again after.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status();
        assert!(
            Command::new("id")
                .arg(USER)
                .output()
                .unwrap()
                .status
                .success(),
            "useradd {USER} failed"
        );
    }
    Some(USER)
}

/// Waits until `pred` holds, or panics after `timeout` naming `what`.
pub fn wait_for(timeout: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
