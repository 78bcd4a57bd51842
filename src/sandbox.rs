//! What a worker process may do, set by the worker itself before it touches
//! a job's media: its memory (`RLIMIT_DATA`), its CPU niceness, death with
//! its supervisor, no new privileges, and a Landlock ruleset naming the
//! files of its one job.
//!
//! The ruleset is made while the process has one thread: Landlock confines
//! the calling thread and the threads it starts later, so everything the
//! job runs (GStreamer's streaming threads, the async runtime) inherits it.
//! Where the kernel has no Landlock, the worker runs with the other limits
//! and says so once (the README has the details).

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, BitFlags, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};

/// The Landlock ABI whose rights the ruleset handles (5: Linux 6.10, with
/// rename across folders, truncation and device ioctls); older kernels get
/// what they have.
const LANDLOCK_ABI: ABI = ABI::V5;

/// Sets the resource limits of this worker process: at most
/// `memory_bytes` of data segment (heap and private mappings), the CPU
/// niceness `nice`, death by SIGKILL when the supervisor dies, and no new
/// privileges (a set-uid program it could run gains nothing).
pub fn limit_worker(memory_bytes: u64, nice: i32) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, Signal};
    default_fault_signals();
    rustix::process::setrlimit(
        Resource::Data,
        Rlimit {
            current: Some(memory_bytes),
            maximum: Some(memory_bytes),
        },
    )?;
    rustix::process::setpriority_process(None, nice)?;
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The supervisor may have died before the death signal was set.
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
        return Err(std::io::Error::other("the supervisor is gone"));
    }
    rustix::thread::set_no_new_privs(true)?;
    Ok(())
}

/// Gives SIGSEGV and SIGBUS their default action back. Rust's runtime
/// handles them to report stack overflows; for any other fault its handler
/// restores the default and returns, so that the fault repeats and kills
/// the process. A fault the kernel raises does repeat, but one sent with
/// `kill` does not, and the worker would live on after it. With the default
/// action, both end the worker, and the supervisor counts the crash (a
/// stack overflow then ends it as a plain SIGSEGV).
#[allow(unsafe_code)]
fn default_fault_signals() {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: `signal` with SIG_DFL installs no handler of ours; it runs
        // on the worker's only thread, before any other code.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
}

/// How many threads this process has (`None` when `/proc` cannot say).
pub fn thread_count() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The paths one job may use, beyond the system's libraries.
#[derive(Debug, Default, Clone)]
pub struct JobPaths {
    /// Read: the source file, the encoder fragments, the config's keys.
    pub read: Vec<PathBuf>,
    /// Read and write: the job's spool folder, its store folder (a local
    /// store), the database's files.
    pub write: Vec<PathBuf>,
}

/// How far the ruleset holds on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// Every handled right is enforced.
    Full,
    /// An older Landlock: some rights (renames across folders, truncation)
    /// are not restricted.
    Partial,
    /// The kernel has no Landlock: only the other limits hold.
    None,
    /// The process had more than one thread, which Landlock would not all
    /// confine, so it was not tried.
    Skipped,
}

/// Folders every GStreamer process reads: libraries, plugins, their data,
/// and this process's own `/proc` entry (`/proc/self/fd` reopens the held
/// source). Other processes' entries stay closed: the supervisor's
/// environment may hold the store's credentials.
const SYSTEM_READ: &[&str] = &["/usr", "/lib", "/lib64", "/sys", "/proc/self"];
/// Single files of `/etc` the media libraries and the HTTP client read; the
/// rest of `/etc` stays closed.
const SYSTEM_READ_FILES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
];
/// Folders read whole: certificates for HTTPS (S3, URL inputs) and fonts.
const SYSTEM_READ_FOLDERS: &[&str] = &["/etc/ssl", "/etc/fonts", "/var/cache/fontconfig"];
/// Device files a process writes to or reads randomness from.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// Confines this process (which must still have one thread) to the system's
/// libraries and `paths`, for good: a Landlock domain can only narrow.
pub fn confine(paths: &JobPaths) -> Result<Confinement, landlock::RulesetError> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::from_read(LANDLOCK_ABI);
    let read_file = read & AccessFs::from_file(LANDLOCK_ABI);
    let write: BitFlags<AccessFs> = all;
    let home_cache = gstreamer_cache();
    let status = Ruleset::default()
        .handle_access(all)?
        .create()?
        .add_rules(path_beneath_rules(SYSTEM_READ, read))?
        .add_rules(path_beneath_rules(SYSTEM_READ_FOLDERS, read))?
        .add_rules(path_beneath_rules(SYSTEM_READ_FILES, read_file))?
        .add_rules(path_beneath_rules(DEVICES, read_file | AccessFs::WriteFile))?
        // GStreamer's plugin registry, which it rewrites when plugins change.
        .add_rules(path_beneath_rules(home_cache.iter(), write))?
        .add_rules(path_beneath_rules(&paths.read, read))?
        .add_rules(path_beneath_rules(&paths.write, write))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Confinement::Full,
        RulesetStatus::PartiallyEnforced => Confinement::Partial,
        RulesetStatus::NotEnforced => Confinement::None,
    })
}

/// Where GStreamer keeps its registry: `$XDG_CACHE_HOME/gstreamer-1.0` or
/// `~/.cache/gstreamer-1.0` (and fontconfig's cache beside it).
fn gstreamer_cache() -> Vec<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    cache
        .map(|c| vec![c.join("gstreamer-1.0"), c.join("fontconfig")])
        .unwrap_or_default()
}
