//! Configuration: the TOML file as written (`RawConfig`), checked into a
//! validated `Config` that the rest of the daemon uses.
//!
//! This module owns path resolution (relative paths resolve against the config
//! file's folder) and reports every problem of a config at once. It must not
//! touch the file system beyond reading the config itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::asset::{MaxResolutionTier, VideoQuality};

mod api;
mod check;
mod playback;
mod storage;
mod webhooks;
pub use api::{ApiConfig, ApiToken, RawApi, UrlInputsConfig};
pub use playback::{CloudflareConfig, PlaybackConfig, RawCloudflare, RawPlayback};
pub use storage::{RawS3, RawStorage, S3Config, Secret, StorageConfig};
pub use webhooks::{Endpoint, RawWebhooks, WebhooksConfig, glob_match};

/// The default configuration, committed as `config.toml` at the repository root.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config.toml");

/// Everything that can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("config {origin} is not valid: {message}")]
    Parse {
        /// Where the config came from.
        origin: String,
        /// What the TOML parser said, with the line.
        message: String,
    },
    /// The file parsed but some values are unacceptable; all are listed.
    #[error("config {origin} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        /// Where the config came from.
        origin: String,
        /// One sentence per problem.
        problems: Vec<String>,
    },
}

/// What to do with a source once its asset is stored and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSuccess {
    /// Leave the source where it was dropped.
    Keep,
    /// Move it to `done_dir`, keeping its path below the watch folder.
    Move,
    /// Delete it.
    Delete,
}

/// `[ingest]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// The watch folder (recursive).
    pub watch_dir: PathBuf,
    /// Seconds a file's size and mtime must stay unchanged before it is taken.
    pub settle_seconds: f64,
    /// `keep`, `move` or `delete`.
    pub on_success: OnSuccess,
    /// Where `move` puts sources. Required when `on_success = "move"`.
    pub done_dir: Option<PathBuf>,
    /// Where failed sources go, with `NAME.error.json` beside them.
    pub failed_dir: PathBuf,
    /// Files taken but not yet processed, at most; more wait in the folder.
    #[serde(default = "default_max_queued_files")]
    pub max_queued_files: usize,
    /// Seconds between full rescans of the watch folder (inotify does the
    /// work between them; the rescan catches what it cannot see).
    pub rescan_seconds: f64,
}

fn default_max_queued_files() -> usize {
    1000
}

/// `[database]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// The SQLite file.
    pub path: PathBuf,
}

/// `[transcode]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTranscode {
    /// Scratch folder for outputs before they are stored.
    pub spool_dir: PathBuf,
    /// Pipelines running at once.
    pub concurrency: usize,
    /// Seconds without pipeline progress before the watchdog stops it.
    pub stall_timeout_seconds: f64,
    /// Attempts for transiently failing jobs.
    pub max_attempts: u32,
    /// On SIGTERM/SIGINT, seconds running jobs may take to finish before
    /// their pipelines are stopped and the jobs go back to the queue.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: f64,
    /// Folder of the encoder fragments (`h264-*.gst`, `aac.gst`); files
    /// missing there fall back to the copies built into reeld.
    pub pipelines_dir: PathBuf,
    /// The memory a worker process may take (its data segment), in MiB.
    pub worker_memory_mb: u64,
    /// The CPU niceness of worker processes (0 to 19).
    pub worker_nice: i32,
}

fn default_shutdown_grace() -> f64 {
    30.0
}

/// `[defaults]` as written: per-asset settings that apply unless overridden.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// The largest tier an asset is stored at.
    pub max_resolution_tier: MaxResolutionTier,
    /// The encoder quality level.
    pub video_quality: VideoQuality,
}

/// `[log]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// A `tracing_subscriber::EnvFilter` directive.
    pub level: String,
}

/// The config file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Watch-folder ingest.
    pub ingest: RawIngest,
    /// Where outputs are stored.
    pub storage: RawStorage,
    /// Where state is kept.
    pub database: RawDatabase,
    /// Pipeline limits.
    pub transcode: RawTranscode,
    /// Per-asset defaults.
    pub defaults: RawDefaults,
    /// Logging.
    pub log: RawLog,
    /// The HTTP API.
    pub api: RawApi,
    /// Webhook deliveries.
    pub webhooks: RawWebhooks,
    /// Stream URLs and playback tokens.
    #[serde(default)]
    pub playback: RawPlayback,
    /// The Cloudflare Stream-compatible routes.
    #[serde(default)]
    pub cloudflare: RawCloudflare,
    /// Settings for files dropped in `watch_dir/NAME/…`: the body of Mux's
    /// create-asset request, as TOML.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, toml::Table>,
}

/// A validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    /// The watch folder.
    pub watch_dir: PathBuf,
    /// How long a file must be unchanged before it is taken.
    pub settle: Duration,
    /// What happens to a successful source.
    pub on_success: OnSuccess,
    /// Files taken but not yet processed, at most.
    pub max_queued_files: usize,
    /// How often the whole watch folder is rescanned.
    pub rescan_interval: Duration,
    /// Where `move` puts sources.
    pub done_dir: Option<PathBuf>,
    /// Where failed sources go.
    pub failed_dir: PathBuf,
    /// The object store.
    pub storage: StorageConfig,
    /// The SQLite file.
    pub database_path: PathBuf,
    /// Scratch space for pipeline outputs.
    pub spool_dir: PathBuf,
    /// Pipelines at once.
    pub concurrency: usize,
    /// Watchdog limit for a pipeline that stops making progress.
    pub stall_timeout: Duration,
    /// How long running jobs may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Attempts for a transiently failing job.
    pub max_attempts: u32,
    /// Folder of the encoder fragments.
    pub pipelines_dir: PathBuf,
    /// The memory limit of a worker process, in bytes (`RLIMIT_DATA`).
    pub worker_memory_bytes: u64,
    /// The niceness of worker processes.
    pub worker_nice: i32,
    /// Default `max_resolution_tier`.
    pub default_max_resolution_tier: MaxResolutionTier,
    /// Default `video_quality`.
    pub default_video_quality: VideoQuality,
    /// The log filter.
    pub log_level: String,
    /// Watch sub-folder profiles, as create-asset request bodies.
    pub profiles: std::collections::BTreeMap<String, serde_json::Value>,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Webhook deliveries.
    pub webhooks: WebhooksConfig,
    /// Stream URLs and playback tokens.
    pub playback: PlaybackConfig,
    /// The Cloudflare Stream-compatible routes, when configured.
    pub cloudflare: Option<CloudflareConfig>,
    /// The folder relative paths were resolved against.
    pub base_dir: PathBuf,
}

impl Config {
    /// The settings for a file dropped at `relative` (its path below the watch
    /// folder) before any sidecar: the defaults, then the profile named by its
    /// first folder, if there is one.
    pub fn settings_for(&self, relative: &Path) -> crate::asset::AssetSettings {
        let mut settings = crate::asset::AssetSettings::defaults(
            self.default_max_resolution_tier,
            self.default_video_quality,
        );
        let mut parts = relative.components();
        if let (Some(first), Some(_)) = (parts.next(), parts.next())
            && let Some(body) = self.profiles.get(&*first.as_os_str().to_string_lossy())
        {
            // Checked at start-up, so it applies cleanly.
            let _ = crate::settings::apply_request(&mut settings, body, "profile");
        }
        settings
    }

    /// The settings that differ between `self` and `new` and only take
    /// effect after a restart (everything but defaults, profiles and the log
    /// level, which a reload applies).
    pub fn restart_needed_for(&self, new: &Config) -> Vec<&'static str> {
        let mut differ = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                differ.push(name);
            }
        };
        check("ingest.watch_dir", self.watch_dir == new.watch_dir);
        check("ingest.settle_seconds", self.settle == new.settle);
        check(
            "ingest.rescan_seconds",
            self.rescan_interval == new.rescan_interval,
        );
        check("ingest.on_success", self.on_success == new.on_success);
        check(
            "ingest.max_queued_files",
            self.max_queued_files == new.max_queued_files,
        );
        check("ingest.done_dir", self.done_dir == new.done_dir);
        check("ingest.failed_dir", self.failed_dir == new.failed_dir);
        // An S3 store's settings reload (new credentials, say); moving to
        // another kind of store or another folder needs a restart.
        check(
            "storage",
            match (&self.storage, &new.storage) {
                (StorageConfig::S3(_), StorageConfig::S3(_)) => true,
                (a, b) => a == b,
            },
        );
        check("database.path", self.database_path == new.database_path);
        check("transcode.spool_dir", self.spool_dir == new.spool_dir);
        check("transcode.concurrency", self.concurrency == new.concurrency);
        check(
            "transcode.stall_timeout_seconds",
            self.stall_timeout == new.stall_timeout,
        );
        check(
            "transcode.shutdown_grace_seconds",
            self.shutdown_grace == new.shutdown_grace,
        );
        check(
            "transcode.max_attempts",
            self.max_attempts == new.max_attempts,
        );
        check(
            "transcode.pipelines_dir",
            self.pipelines_dir == new.pipelines_dir,
        );
        check(
            "transcode.worker_memory_mb",
            self.worker_memory_bytes == new.worker_memory_bytes,
        );
        check("transcode.worker_nice", self.worker_nice == new.worker_nice);
        check("api", self.api == new.api);
        check("webhooks", self.webhooks == new.webhooks);
        differ
    }

    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, &base, &path.display().to_string())
    }

    /// The embedded default, with paths relative to `base_dir`.
    pub fn embedded(base_dir: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(EMBEDDED_DEFAULT, base_dir, "(embedded default)")
    }

    /// Parses `text` and validates it; relative paths resolve against `base_dir`.
    ///
    /// The text names only what it changes: it is laid over the embedded
    /// default, table by table, so every key it leaves out keeps its default.
    pub fn from_toml(text: &str, base_dir: &Path, origin: &str) -> Result<Config, ConfigError> {
        let parse_error = |e: &dyn std::fmt::Display| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        };
        let mut given: toml::Table = toml::from_str(text).map_err(|e| parse_error(&e))?;
        let mut merged: toml::Table =
            toml::from_str(EMBEDDED_DEFAULT).expect("the embedded default parses");
        // Bad keys are set aside and reported with the value problems below.
        let mut problems = check::set_aside_bad_keys(&mut given, &merged);
        overlay(&mut merged, given);
        let validated = match toml::Value::Table(merged).try_into::<RawConfig>() {
            Ok(raw) => raw.validate(base_dir, origin),
            Err(e) if problems.is_empty() => return Err(parse_error(&e)),
            Err(e) => Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: vec![e.to_string().trim().to_owned()],
            }),
        };
        match validated {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems,
            }),
            Err(ConfigError::Invalid { problems: more, .. }) => {
                problems.extend(more);
                Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    problems,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// Lays `given` over `base`: tables merge key by key, anything else
/// (values, arrays such as `[[api.tokens]]`) replaces what was there.
fn overlay(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(g)) => overlay(b, g),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl RawConfig {
    /// Checks every value and resolves paths, listing all problems at once.
    pub fn validate(self, base_dir: &Path, origin: &str) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base_dir.join(p)
            }
        };

        let ingest = &self.ingest;
        for (key, path) in [
            ("ingest.watch_dir", Some(&ingest.watch_dir)),
            ("ingest.failed_dir", Some(&ingest.failed_dir)),
            ("ingest.done_dir", ingest.done_dir.as_ref()),
            ("database.path", Some(&self.database.path)),
            ("transcode.spool_dir", Some(&self.transcode.spool_dir)),
            (
                "transcode.pipelines_dir",
                Some(&self.transcode.pipelines_dir),
            ),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                problems.push(format!("{key} is empty; it must name a path"));
            }
        }
        if !(ingest.settle_seconds.is_finite() && ingest.settle_seconds >= 0.0) {
            problems.push(format!(
                "ingest.settle_seconds must be a number of seconds >= 0, not {}",
                ingest.settle_seconds
            ));
        }
        if !(ingest.rescan_seconds.is_finite() && ingest.rescan_seconds >= 1.0) {
            problems.push(format!(
                "ingest.rescan_seconds must be a number of seconds >= 1, not {}",
                ingest.rescan_seconds
            ));
        }
        if ingest.on_success == OnSuccess::Move && ingest.done_dir.is_none() {
            problems.push("ingest.on_success = \"move\" needs ingest.done_dir".to_owned());
        }
        let watch_dir = resolve(&ingest.watch_dir);
        let failed_dir = resolve(&ingest.failed_dir);
        let done_dir = ingest.done_dir.as_deref().map(resolve);
        if failed_dir == watch_dir {
            problems.push("ingest.failed_dir must not be the watch folder itself".to_owned());
        }
        if done_dir.as_ref() == Some(&watch_dir) {
            problems.push("ingest.done_dir must not be the watch folder itself".to_owned());
        }

        let storage =
            match storage::parse_storage(&self.storage, &resolve, &|name| std::env::var(name).ok())
            {
                Ok(s) => Some(s),
                Err(p) => {
                    problems.push(p);
                    None
                }
            };

        if ingest.max_queued_files == 0 {
            problems.push("ingest.max_queued_files must be at least 1".to_owned());
        }
        let t = &self.transcode;
        if t.concurrency == 0 {
            problems.push("transcode.concurrency must be at least 1".to_owned());
        }
        if !(t.stall_timeout_seconds.is_finite() && t.stall_timeout_seconds > 0.0) {
            problems.push(format!(
                "transcode.stall_timeout_seconds must be > 0, not {}",
                t.stall_timeout_seconds
            ));
        }
        if !(t.shutdown_grace_seconds.is_finite() && t.shutdown_grace_seconds >= 0.0) {
            problems.push(format!(
                "transcode.shutdown_grace_seconds must be >= 0, not {}",
                t.shutdown_grace_seconds
            ));
        }
        if t.max_attempts == 0 {
            problems.push("transcode.max_attempts must be at least 1".to_owned());
        }
        if t.worker_memory_mb < 64 {
            problems.push(format!(
                "transcode.worker_memory_mb must be at least 64, not {}",
                t.worker_memory_mb
            ));
        }
        if !(0..=19).contains(&t.worker_nice) {
            problems.push(format!(
                "transcode.worker_nice must be from 0 to 19, not {}",
                t.worker_nice
            ));
        }
        let mut profiles = std::collections::BTreeMap::new();
        for (name, table) in &self.profiles {
            let body = serde_json::to_value(table).expect("TOML tables convert to JSON");
            let mut check = crate::asset::AssetSettings::defaults(
                self.defaults.max_resolution_tier,
                self.defaults.video_quality,
            );
            match crate::settings::apply_request(&mut check, &body, &format!("profiles.{name}")) {
                Ok(()) => {
                    profiles.insert(name.clone(), body);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problems.push(format!(
                "log.level {:?} is not a valid filter: {e}",
                self.log.level
            ));
        }

        let mut raw_playback = self.playback;
        let mut raw_api = self.api;
        match (raw_api.stream_base_url.take(), &raw_playback.stream_base_url) {
            (Some(_), Some(_)) => problems.push(
                "api.stream_base_url and playback.stream_base_url are the same setting; set one of them"
                    .to_owned(),
            ),
            (Some(url), None) => raw_playback.stream_base_url = Some(url),
            _ => {}
        }
        let api = raw_api.validate(&resolve, &mut problems);
        let webhooks = self.webhooks.validate(&mut problems);
        let playback = raw_playback.validate(&resolve, &mut problems);
        let cloudflare = self.cloudflare.validate(&mut problems);

        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems,
            });
        }
        Ok(Config {
            watch_dir,
            settle: Duration::from_secs_f64(ingest.settle_seconds),
            on_success: ingest.on_success,
            max_queued_files: ingest.max_queued_files,
            rescan_interval: Duration::from_secs_f64(ingest.rescan_seconds),
            done_dir,
            failed_dir,
            storage: storage.expect("checked above"),
            database_path: resolve(&self.database.path),
            spool_dir: resolve(&t.spool_dir),
            concurrency: t.concurrency,
            stall_timeout: Duration::from_secs_f64(t.stall_timeout_seconds),
            shutdown_grace: Duration::from_secs_f64(t.shutdown_grace_seconds),
            max_attempts: t.max_attempts,
            pipelines_dir: resolve(&t.pipelines_dir),
            worker_memory_bytes: t.worker_memory_mb.saturating_mul(1 << 20),
            worker_nice: t.worker_nice,
            default_max_resolution_tier: self.defaults.max_resolution_tier,
            default_video_quality: self.defaults.video_quality,
            log_level: self.log.level,
            profiles,
            api: api.expect("checked above"),
            webhooks: webhooks.expect("checked above"),
            playback,
            cloudflare,
            base_dir: base_dir.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
