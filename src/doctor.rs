//! `reeld doctor`: checks that this machine and config can run reeld, one
//! line per check, each failure with what to do about it. The daemon runs
//! the same checks at start-up and logs the ones that fail.
//!
//! It checks the store (a probe object written, read, listed and deleted
//! under `reeld-probe/`), the database, the GStreamer elements reeld and its
//! pipeline fragments use, the folders it reads and writes, and whether it
//! can see which files other processes hold open.

use std::path::Path;

use crate::config::Config;
use crate::db::Db;
use crate::store::{Store, probe};

/// Elements reeld's own pipelines, probe and loudness passes create.
const REQUIRED_ELEMENTS: &[&str] = &[
    "filesrc",
    "filesink",
    "fakesink",
    "uridecodebin",
    "decodebin",
    "parsebin",
    "qtdemux",
    "mp4mux",
    "h264parse",
    "aacparse",
    "queue",
    "multiqueue",
    "tee",
    "capsfilter",
    "videoconvert",
    "videoscale",
    "videorate",
    "videoflip",
    "deinterlace",
    "textoverlay",
    "audioconvert",
    "audioresample",
    "volume",
];

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, with a limit the operator should know about.
    Warn,
    /// reeld cannot work like this.
    Fail,
}

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    /// How it went.
    pub verdict: Verdict,
    /// What was checked (`store write`, `watch folder`, …).
    pub name: String,
    /// What was found.
    pub detail: String,
    /// What to do, for a warning or a failure.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            verdict: Verdict::Ok,
            name: name.to_owned(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(
        verdict: Verdict,
        name: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            verdict,
            name: name.to_owned(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The report line: `OK   name: detail`, with ` Fix: …` when there is one.
    pub fn line(&self) -> String {
        let tag = match self.verdict {
            Verdict::Ok => "OK  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        match &self.fix {
            Some(fix) => format!("{tag} {}: {}. Fix: {fix}", self.name, self.detail),
            None => format!("{tag} {}: {}", self.name, self.detail),
        }
    }
}

/// Every check but the store's (which needs the runtime).
pub fn local_checks(config: &Config) -> Vec<Check> {
    let mut checks = vec![database(&config.database_path)];
    checks.extend(gstreamer(config));
    checks.push(folder(
        "watch folder",
        &config.watch_dir,
        "ingest.watch_dir",
    ));
    checks.push(folder(
        "failed folder",
        &config.failed_dir,
        "ingest.failed_dir",
    ));
    if let Some(done) = &config.done_dir {
        checks.push(folder("done folder", done, "ingest.done_dir"));
    }
    checks.push(folder(
        "spool folder",
        &config.spool_dir,
        "transcode.spool_dir",
    ));
    checks.push(writers_visible());
    checks
}

/// The store's round trip, a line per step.
pub async fn store_checks(config: &Config) -> Vec<Check> {
    let store = match Store::open(&config.storage) {
        Ok(store) => store,
        Err(e) => {
            return vec![Check::bad(
                Verdict::Fail,
                "store",
                e.chain(),
                "correct [storage] in the config",
            )];
        }
    };
    let where_ = store.description();
    // Traceable like a daemon's probe, so a leftover is removed at start-up.
    let tag = crate::jobs::store_watch::probe_tag(&format!(
        "{}:{}:doctor",
        crate::jobs::hostname(),
        std::process::id()
    ));
    probe::round_trip(&store, &tag)
        .await
        .into_iter()
        .map(|step| {
            let name = format!("store {}", step.name);
            match step.result {
                Some(Ok(())) => {
                    Check::ok(&name, format!("{where_} ({}/{tag})", probe::PROBE_PREFIX))
                }
                Some(Err(e)) => Check::bad(Verdict::Fail, &name, e.chain(), e.advice(&where_)),
                None => Check::bad(
                    Verdict::Fail,
                    &name,
                    "not tried: an earlier step failed",
                    "fix the step above",
                ),
            }
        })
        .collect()
}

/// At start-up, the one check start-up does not make itself: the daemon
/// has just opened the database, loaded the fragments, created the folders
/// and said whether writers are visible (each failing start-up with its
/// own message), and probes the store next. An element missing from
/// GStreamer would otherwise show only when a job needs it.
pub fn log_problems() {
    let check = elements();
    match check.verdict {
        Verdict::Ok => tracing::debug!("doctor: {}", check.line()),
        Verdict::Warn => tracing::warn!("doctor: {}", check.line()),
        Verdict::Fail => tracing::error!("doctor: {}", check.line()),
    }
}

fn database(path: &Path) -> Check {
    let name = "database";
    let checked = Db::open(path).and_then(|db| db.read(|r| r.quick_check()));
    match checked {
        Ok((result, version)) if result == "ok" => Check::ok(
            name,
            format!("{} (schema {version}, quick_check ok)", path.display()),
        ),
        Ok((result, _)) => Check::bad(
            Verdict::Fail,
            name,
            format!("{}: quick_check says {result}", path.display()),
            "stop reeld, keep a copy of the file, and restore it from a backup \
             (or run `sqlite3 FILE .recover`)",
        ),
        Err(e) => Check::bad(
            Verdict::Fail,
            name,
            format!("{}: {e}", path.display()),
            "check database.path and that reeld's user may write its folder",
        ),
    }
}

fn gstreamer(config: &Config) -> Vec<Check> {
    // Without GStreamer, the fragments' check names that failure too.
    let elements = elements();
    let fragments = match crate::pipelines::Fragments::load(&config.pipelines_dir) {
        Ok(loaded) => Check::ok(
            "pipeline fragments",
            format!(
                "{} parse, with elements {}",
                config.pipelines_dir.display(),
                loaded.element_names().join(", ")
            ),
        ),
        Err(errors) => Check::bad(
            Verdict::Fail,
            "pipeline fragments",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            "install the plugin that provides the element named (`gst-inspect-1.0 NAME`), \
             or edit the fragment",
        ),
    };
    vec![elements, fragments]
}

/// Whether GStreamer starts and has every element in `REQUIRED_ELEMENTS`.
fn elements() -> Check {
    if let Err(e) = crate::graph::init() {
        return Check::bad(
            Verdict::Fail,
            "GStreamer",
            e.to_string(),
            "install the packages scripts/install-deps names",
        );
    }
    let missing: Vec<&str> = REQUIRED_ELEMENTS
        .iter()
        .copied()
        .filter(|e| gst::ElementFactory::find(e).is_none())
        .collect();
    if missing.is_empty() {
        Check::ok(
            "GStreamer elements",
            format!("all {} present", REQUIRED_ELEMENTS.len()),
        )
    } else {
        Check::bad(
            Verdict::Fail,
            "GStreamer elements",
            format!("missing: {}", missing.join(", ")),
            "install GStreamer's base, good and bad plugin packages (scripts/install-deps); \
             `gst-inspect-1.0 NAME` tells whether an element is there",
        )
    }
}

/// A folder reeld must read and write: it exists (or can be made) and a
/// file can be created, renamed and removed in it.
fn folder(name: &str, path: &Path, setting: &str) -> Check {
    let shown = path.display();
    if !path.exists() {
        // The daemon creates it at start; its parent must allow that.
        let parent = path.parent().filter(|p| p.exists());
        return match parent.map(try_write) {
            Some(Ok(())) => Check::ok(name, format!("{shown} (created at start-up)")),
            Some(Err(e)) => Check::bad(
                Verdict::Fail,
                name,
                format!("{shown} does not exist and cannot be created: {e}"),
                format!("create it for reeld's user, or change {setting}"),
            ),
            None => Check::bad(
                Verdict::Fail,
                name,
                format!("{shown} and its parent do not exist"),
                format!("create it for reeld's user, or change {setting}"),
            ),
        };
    }
    if !path.is_dir() {
        return Check::bad(
            Verdict::Fail,
            name,
            format!("{shown} is not a folder"),
            format!("point {setting} at a folder"),
        );
    }
    match try_write(path) {
        Ok(()) => Check::ok(name, format!("{shown} (read, write, rename)")),
        Err(e) => Check::bad(
            Verdict::Fail,
            name,
            format!("{shown}: {e}"),
            format!(
                "give reeld's user read and write permission on it (chown/chmod), or change {setting}"
            ),
        ),
    }
}

fn try_write(dir: &Path) -> std::io::Result<()> {
    std::fs::read_dir(dir)?;
    let first = dir.join(format!(".reeld-doctor-{}", std::process::id()));
    let second = dir.join(format!(".reeld-doctor-{}-renamed", std::process::id()));
    std::fs::write(&first, b"reeld doctor\n")?;
    let renamed = std::fs::rename(&first, &second);
    let _ = std::fs::remove_file(&first);
    renamed?;
    std::fs::remove_file(&second)
}

fn writers_visible() -> Check {
    let name = "open writers";
    match crate::watch::other_users_fds_visible() {
        Some(true) => Check::ok(
            name,
            "other processes' open files are visible in /proc, so files still being written are seen",
        ),
        None => Check::ok(
            name,
            "no other user's process runs, so whether their open files are visible is not known",
        ),
        Some(false) => Check::bad(
            Verdict::Warn,
            name,
            "other users' open files are not visible (/proc/PID/fd needs root or CAP_SYS_PTRACE); \
             reeld relies on close-after-write events and settle_seconds instead",
            "run reeld with CAP_SYS_PTRACE (AmbientCapabilities=CAP_SYS_PTRACE in the unit), \
             or keep writers under reeld's own user",
        ),
    }
}

/// `reeld doctor`: prints the report; the exit status says whether every
/// check passed (warnings pass).
pub async fn run(config: &Config) -> bool {
    let mut checks = local_checks(config);
    checks.extend(store_checks(config).await);
    let mut passed = true;
    for check in &checks {
        println!("{}", check.line());
        passed &= check.verdict != Verdict::Fail;
    }
    passed
}
